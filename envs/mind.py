"""MIND (the Microsoft News Dataset) read from a user's own copy: a news catalogue and the clicks it logged.

``news.tsv`` is tab-separated without a header: news_id, category, subcategory, title, abstract, url,
title_entities, abstract_entities. ``behaviors.tsv`` likewise: impression_id, user_id, time, history
(space-separated news ids the user clicked before) and impressions (``N1-1 N2-0``: news shown, 1 if
clicked). A malformed file fails with the file, the line and the column at fault.

- :func:`mind_catalog`: one item per article; its text is
  the title with the abstract as a body line, its category the hidden topic, ``length_words`` the words
  the file holds. Quality is the article's fitted click-through when behaviours are given: the log-odds
  of its shrunken click rate relative to the average (so the choice model's odds between articles follow
  the logged ones), else a seeded standard normal draw.
- :func:`mind_population`: one simulated user per logged user, whose topic affinities are their category
  preferences: the log-ratio of their category share of clicks to everyone's, in utility units. The
  absolute click level stays the simulator's: an average article in a category a user clicks as often as
  everyone does is as attractive as not clicking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.catalog import Catalog
from envs.config import SimConfig
from envs.users import Population, UserParams

NEWS_COLUMNS = (
    "news_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")
PRIOR_IMPRESSIONS = 20.0  # pseudo-impressions at the average click rate in each article's click-through
PRIOR_CLICKS = 5.0  # pseudo-clicks at everyone's category shares in each user's category shares
CLICK_TEMPERATURE = float(np.mean(UserParams().click_temperature))  # utility per unit of choice log-odds


@dataclass(frozen=True)
class Behaviors:
    """The clicks of ``behaviors.tsv``, as catalogue indices.

    Attributes:
        user_ids: ``(U,)`` str user ids in order of first appearance.
        shown_user, shown_item: ``(m,)`` int64 user and item of every impressed article.
        clicked: ``(m,)`` bool, whether it was clicked.
        history_user, history_item: ``(h,)`` int64 user and item of every past click in the histories.
    """

    user_ids: tuple[str, ...]
    shown_user: np.ndarray
    shown_item: np.ndarray
    clicked: np.ndarray
    history_user: np.ndarray
    history_item: np.ndarray


def mind_catalog(news_tsv: str | Path, behaviors_tsv: str | Path | None = None, seed: int = 0) -> Catalog:
    """The articles of ``news_tsv``; quality fitted to ``behaviors_tsv``'s clicks when given, else drawn
    from ``seed``."""
    path = Path(news_tsv)
    rows = _read_tsv(path, NEWS_COLUMNS)
    if not rows:
        raise ValueError(f"{path}: no articles; expected at least one line of {len(NEWS_COLUMNS)} fields")
    seen: dict[str, int] = {}
    for line, fields in rows:
        for column in ("news_id", "category", "title"):
            _require(path, line, NEWS_COLUMNS, column, fields)
        if fields[0] in seen:
            raise ValueError(f"{path}, line {line}: duplicate news_id {fields[0]!r} (first on line {seen[fields[0]]})")
        seen[fields[0]] = line
    names, topic = np.unique([fields[1] for _, fields in rows], return_inverse=True)
    topic = topic.astype(np.int32)
    if behaviors_tsv is None:
        quality = np.random.default_rng(seed).standard_normal(len(rows)).astype(np.float32)
    else:
        quality = click_quality(read_behaviors(behaviors_tsv, {i: k for k, i in enumerate(seen)}), len(rows))
    texts = [f"{f[3]}\n{f[4]}" if f[4] else f[3] for _, f in rows]
    return Catalog(
        domain="news",
        item_ids=list(seen),
        texts=texts,
        categories=topic,
        category_names=tuple(str(n) for n in names),
        attributes={"length_words": np.array([len(t.split()) for t in texts], dtype=np.float32)},
        topic=topic,
        secondary_topic=topic,
        secondary_weight=np.zeros(len(rows), np.float32),
        quality=quality,
        num_topics=len(names),
    )


def read_behaviors(path: str | Path, news_index: Mapping[str, int]) -> Behaviors:
    """Parse ``behaviors.tsv``; ``news_index`` maps news ids to catalogue indices."""
    path = Path(path)
    users: dict[str, int] = {}
    shown: list[tuple[int, int, bool]] = []
    history: list[tuple[int, int]] = []
    for line, fields in _read_tsv(path, BEHAVIOR_COLUMNS):
        _require(path, line, BEHAVIOR_COLUMNS, "user_id", fields)
        user = users.setdefault(fields[1], len(users))
        where = f"{path}, line {line}, column 4 (history)"
        history += [(user, _index(news_index, news, where)) for news in fields[3].split()]
        where = f"{path}, line {line}, column 5 (impressions)"
        shown += [(user, *_impression(news_index, token, where)) for token in fields[4].split()]
    if not shown:
        raise ValueError(f"{path}: no impressions; expected lines with impressions such as 'N1-1 N2-0'")
    impressions = np.array(shown, dtype=np.int64)
    past = np.array(history, dtype=np.int64).reshape(-1, 2)
    return Behaviors(tuple(users), impressions[:, 0], impressions[:, 1], impressions[:, 2] == 1, past[:, 0], past[:, 1])


def click_quality(behaviors: Behaviors, num_items: int) -> np.ndarray:
    """``(N,)`` float32 quality from click-through: ``(logit(ctr_i) − logit(ctr)) / quality_weight``, where
    ``ctr_i`` is the article's click rate shrunk toward the average ``ctr`` by :data:`PRIOR_IMPRESSIONS`
    (never-shown articles get 0), so that ``quality_weight · quality`` is its click log-odds advantage."""
    shown = np.bincount(behaviors.shown_item, minlength=num_items)
    clicks = np.bincount(behaviors.shown_item, behaviors.clicked, minlength=num_items)
    average = clicks.sum() / shown.sum()
    if not 0 < average < 1:
        raise ValueError(f"every impression was {'clicked' if average else 'skipped'}; expected clicks and skips")
    rate = (clicks + PRIOR_IMPRESSIONS * average) / (shown + PRIOR_IMPRESSIONS)
    log_odds = np.log(rate / (1 - rate)) - np.log(average / (1 - average))
    return (log_odds / SimConfig.quality_weight).astype(np.float32)


def mind_population(
    behaviors_tsv: str | Path, catalog: Catalog, seed: int = 0, params: UserParams | None = None
) -> Population:
    """One user per logged user (order: :attr:`Behaviors.user_ids`), with affinities from their
    category preferences: ``τ̄ · log(share_uc / share_c)`` of clicks (histories and impressions), shares
    smoothed by :data:`PRIOR_CLICKS`; traits the log cannot tell are drawn from ``seed``."""
    behaviors = read_behaviors(behaviors_tsv, {str(i): k for k, i in enumerate(catalog.item_ids)})
    user = np.concatenate([behaviors.history_user, behaviors.shown_user[behaviors.clicked]])
    item = np.concatenate([behaviors.history_item, behaviors.shown_item[behaviors.clicked]])
    num_users, num_topics = len(behaviors.user_ids), catalog.num_topics
    counts = np.bincount(user * num_topics + catalog.topic[item], minlength=num_users * num_topics)
    counts = counts.reshape(num_users, num_topics).astype(np.float64)
    everyone = (counts.sum(axis=0) + 1.0) / (counts.sum() + num_topics)
    share = (counts + PRIOR_CLICKS * everyone) / (counts.sum(axis=1, keepdims=True) + PRIOR_CLICKS)
    return Population.fitted(CLICK_TEMPERATURE * np.log(share / everyone), seed, params)


def _read_tsv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Non-blank lines as ``(line number, fields)``, each with exactly ``len(columns)`` fields."""
    if not path.is_file():
        raise FileNotFoundError(f"MIND file {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != len(columns):
                raise ValueError(
                    f"{path}, line {number}: {len(fields)} tab-separated fields; expected {len(columns)} "
                    f"({', '.join(columns)})"
                )
            rows.append((number, [x.strip() for x in fields]))
    return rows


def _require(path: Path, line: int, columns: tuple[str, ...], column: str, fields: list[str]) -> None:
    k = columns.index(column)
    if not fields[k]:
        raise ValueError(f"{path}, line {line}, column {k + 1} ({column}): empty; expected a value")


def _index(news_index: Mapping[str, int], news: str, where: str) -> int:
    if news not in news_index:
        raise ValueError(f"{where}: unknown news id {news!r}; expected an id listed in news.tsv")
    return news_index[news]


def _impression(news_index: Mapping[str, int], token: str, where: str) -> tuple[int, bool]:
    news, _, label = token.rpartition("-")
    if not news or label not in ("0", "1"):
        raise ValueError(
            f"{where}: {token!r}; expected news_id-1 (clicked) or news_id-0 (skipped) — MIND's unlabelled "
            f"test impressions cannot be fitted"
        )
    return _index(news_index, news, where), label == "1"
