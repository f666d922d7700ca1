"""Catalogues: generated item text per domain, and loading a user's own table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs import Catalog
from envs.domains.ecommerce import ECOMMERCE
from envs.domains.music import MUSIC
from envs.domains.news import NEWS
from envs.domains.video import VIDEO

DOMAINS = [NEWS, ECOMMERCE, MUSIC, VIDEO]


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: d.name)
def test_generated_text_carries_the_hidden_topic(domain):
    catalog = Catalog.generate(domain, 2000, seed=0)
    assert len(catalog) == 2000 and len(set(catalog.texts[:200])) > 150
    for i in range(50):
        words = domain.topics[catalog.topic[i]].words
        assert any(word in catalog.texts[i] for word in words), catalog.texts[i]
    assert catalog.meta_features().shape[0] == 2000
    assert np.isfinite(catalog.meta_features()).all()


def test_generated_catalogue_is_deterministic_and_seeded():
    a, b, c = (Catalog.generate(NEWS, 500, seed=s) for s in (1, 1, 2))
    assert a.texts[:] == b.texts[:] and a.texts[:] != c.texts[:]
    assert np.array_equal(a.quality, b.quality)


def test_ecommerce_titles_show_brand_and_price():
    catalog = Catalog.generate(ECOMMERCE, 100, seed=0)
    for i in range(20):
        assert f"{catalog.attributes['price'][i]:.2f} EUR" in catalog.texts[i]


def test_large_catalogue_is_cheap_to_build():
    catalog = Catalog.generate(VIDEO, 100_000, seed=0)
    assert len(catalog.texts) == 100_000 and catalog.item_ids[99_999] == "vi0099999"
    with pytest.raises(IndexError):
        catalog.texts[100_000]


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_from_csv(tmp_path):
    path = write(
        tmp_path / "items.csv",
        "id,text,category,price\na,Red shoes,fashion,30\nb,Blue lamp,home,12.5\nc,Green hat,fashion,9\n",
    )
    catalog = Catalog.from_table(path)
    assert catalog.item_ids == ["a", "b", "c"] and catalog.texts[1] == "Blue lamp"
    assert catalog.category_names == ("fashion", "home") and catalog.categories.tolist() == [0, 1, 0]
    assert catalog.attributes["price"].tolist() == [30.0, 12.5, 9.0]


def test_from_jsonl(tmp_path):
    rows = [
        {"id": "x1", "text": "A song", "duration_seconds": 200},
        {"id": "x2", "text": "Another", "duration_seconds": 180},
    ]
    path = write(tmp_path / "items.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    catalog = Catalog.from_table(path, domain="music")
    assert len(catalog) == 2 and catalog.category_names == ("uncategorised",)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("a.csv", "id,text\n1,ok\n2,\n", r"a.csv, line 3: column 'text' is missing or empty"),
        ("b.csv", "id,text\n1,ok\n1,again\n", r"b.csv, line 3: duplicate id '1' \(first on line 2\)"),
        (
            "c.csv",
            "id,text,price\n1,ok,3\n2,fine,cheap\n",
            r"c.csv, line 3: column 'price' is 'cheap'; expected a finite number",
        ),
        ("d.csv", "id,text\n1,ok,extra\n", r"d.csv, line 2: 3 fields; expected 2 as in the header"),
        ("e.csv", "id,text\n", r"e.csv: no items"),
        ("f.jsonl", '{"id": "1", "text": "ok"}\n{"id": 2, "text": \n', r"f.jsonl, line 2: invalid JSON"),
        ("g.jsonl", '["id", "text"]\n', r"g.jsonl, line 1: expected a JSON object, got list"),
        ("h.csv", "name,text\nx,y\n", r"h.csv, line 2: column 'id' is missing or empty"),
        ("i.xml", "<items/>", r"unsupported format '.xml'; expected .csv or .jsonl"),
        ("j.csv", "id,text,price\n1,ok,nan\n", r"column 'price' is 'nan'"),
    ],
)
def test_malformed_tables_name_file_line_and_problem(tmp_path, name, content, match):
    with pytest.raises(ValueError, match=match):
        Catalog.from_table(write(tmp_path / name, content))


def test_missing_table_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Catalog.from_table(tmp_path / "nope.csv")


def test_table_catalogue_runs_in_an_env(tmp_path):
    import gymnasium as gym

    lines = ["id,text,category,length_words"] + [f"n{i},Headline {i},cat{i % 3},{300 + i}" for i in range(40)]
    catalog = Catalog.from_table(write(tmp_path / "news.csv", "\n".join(lines)), domain="news")
    env = gym.make("FeedbackRec/News-v0", catalog=catalog, num_candidates=10, slate_size=3)
    obs, _ = env.reset(seed=0)
    assert obs["candidates"].max() < 40
    env.step([0, 1, 2])
    with pytest.raises(ValueError, match=r"catalog lacks attribute\(s\) \['price'\]"):
        gym.make("FeedbackRec/Ecommerce-v0", catalog=catalog, num_candidates=10, slate_size=3)
