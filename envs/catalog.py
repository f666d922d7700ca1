"""The item catalogue: text the recommender reads, categories and attributes, and hidden truth.

A :class:`Catalog` is column-oriented. Columns visible to agents: ``item_ids``, ``texts``, ``categories``
(+ ``category_names``), numeric ``attributes`` and ``published`` (the tick each item was published). Hidden columns,
used only by the simulator and its oracle: each item's primary topic, a secondary topic with its weight, and quality.
A static catalogue never changes; in a world whose items come and go (:mod:`envs.pool`) the catalogue is a view of
the item slots: every column shows each slot's current item.

Catalogues come from :meth:`Catalog.generate` (our own text generator, per domain), from your own data
through :meth:`Catalog.from_table` (CSV, JSONL or Parquet), from a copy of MIND through
:func:`envs.mind.mind_catalog`, or fitted to MovieLens (:mod:`envs.domains.movielens`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from envs.domain import Domain


@dataclass(frozen=True, eq=False)
class Catalog:
    """Items of one domain (or, in a world with item churn, its item slots); every column has length
    ``num_items``.

    Attributes:
        domain: "news", "ecommerce", "music", "video" or a custom name.
        item_ids: ``(N,)`` unique string ids.
        texts: ``(N,)`` item text (title, optionally with a body line).
        categories: ``(N,)`` int32 codes into ``category_names``.
        category_names: the category vocabulary.
        attributes: name → ``(N,)`` float32, e.g. ``price`` (currency units), ``duration_seconds``,
            ``length_words``.
        topic: ``(N,)`` int32 hidden primary topic in ``[0, num_topics)``.
        secondary_topic: ``(N,)`` int32 hidden secondary topic.
        secondary_weight: ``(N,)`` float32 in [0, 1): share of the secondary topic in the item.
        quality: ``(N,)`` float32 hidden quality, roughly standard normal.
        num_topics: number of hidden topics.
        published: ``(N,)`` int64 the tick each item was published (0 for every item of a static catalogue).
    """

    domain: str
    item_ids: Sequence[str]
    texts: Sequence[str]
    categories: np.ndarray
    category_names: tuple[str, ...]
    attributes: Mapping[str, np.ndarray]
    topic: np.ndarray
    secondary_topic: np.ndarray
    secondary_weight: np.ndarray
    quality: np.ndarray
    num_topics: int
    published: np.ndarray | None = None
    _meta: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if n == 0:
            raise ValueError(f"catalog {self.domain!r} is empty; expected at least one item")
        if self.published is None:
            object.__setattr__(self, "published", np.zeros(n, np.int64))
        columns = {
            "texts": self.texts,
            "categories": self.categories,
            "topic": self.topic,
            "secondary_topic": self.secondary_topic,
            "secondary_weight": self.secondary_weight,
            "quality": self.quality,
            "published": self.published,
            **{f"attributes[{k!r}]": v for k, v in self.attributes.items()},
        }
        for name, column in columns.items():
            if len(column) != n:
                raise ValueError(f"catalog column {name} has {len(column)} rows; expected {n}")
        if self.num_topics < 1 or self.topic.max() >= self.num_topics:
            raise ValueError(f"catalog topics must lie in [0, {self.num_topics})")

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def meta_features(self) -> np.ndarray:
        """``(N, d)`` float32 agent-visible features: category one-hot, then standardised log attributes."""
        if not self._meta:
            onehot = np.zeros((self.num_items, len(self.category_names)), dtype=np.float32)
            onehot[np.arange(self.num_items), self.categories] = 1.0
            numeric = [np.log1p(np.maximum(v, 0.0)) for v in self.attributes.values()]
            numeric = [(v - v.mean()) / (v.std() + 1e-6) for v in numeric]
            self._meta.append(np.column_stack([onehot, *numeric]).astype(np.float32))
        return self._meta[0]

    @classmethod
    def generate(cls, domain: Domain, num_items: int, seed: int = 0) -> Catalog:
        """A synthetic catalogue whose item text is written from the domain's topic vocabularies."""
        if int(num_items) != num_items or num_items < 1:
            raise ValueError(f"num_items must be an integer >= 1, got {num_items!r}")
        return cls.of_draws(domain, ItemDraws.draw(domain, num_items, np.random.default_rng(seed)))

    @classmethod
    def of_draws(cls, domain: Domain, items: ItemDraws, serials: np.ndarray | None = None, **extra) -> Catalog:
        """The catalogue of generated ``items`` (ids from ``serials`` ``(n,)`` when given, see
        :class:`_GeneratedIds`); ``extra`` sets further fields."""
        return cls(
            domain=domain.name,
            item_ids=_GeneratedIds(domain.name[:2], len(items.topic), serials),
            texts=_GeneratedTexts(domain, items),
            categories=items.topic,
            category_names=tuple(t.name for t in domain.topics),
            attributes=items.attributes,
            topic=items.topic,
            secondary_topic=items.secondary,
            secondary_weight=items.secondary_weight,
            quality=items.quality,
            num_topics=len(domain.topics),
            **extra,
        )

    @classmethod
    def from_table(cls, path: str | Path, domain: str = "custom", seed: int = 0) -> Catalog:
        """Bring your own items: ``id,text[,category,<numeric attributes>...]`` from a ``.csv``, ``.jsonl``
        or ``.parquet`` file (Parquet needs pyarrow).

        One row per item: a unique ``id``, the ``text`` the recommender reads, an optional ``category``
        (it becomes the visible category and the hidden topic), and numeric columns as attributes (those
        the domain's responses read must be among them: ``length_words`` for news, ``price`` for
        e-commerce, ``duration_seconds`` for music and video). Quality and secondary topics are drawn from
        ``seed``. A malformed file raises ``ValueError`` naming the file, the line (for Parquet: the row,
        counted from 1) and the problem.
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"catalog file {path} is a directory; expected a .csv, .jsonl or .parquet file")
        if not path.is_file():
            raise FileNotFoundError(f"catalog file {path} does not exist")
        suffix = path.suffix.lower()
        readers = {".csv": _read_csv, ".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".parquet": _read_parquet}
        if suffix not in readers:
            raise ValueError(
                f"catalog file {path}: unsupported format {suffix!r}; expected .csv or .jsonl (text) or .parquet"
            )
        try:
            rows = readers[suffix](path)
        except UnicodeDecodeError:
            raise ValueError(_encoding_problem(path)) from None
        return _catalog_from_rows(path, rows, domain, seed)


@dataclass(frozen=True)
class ItemDraws:
    """Generated items, ``(n,)`` per column: hidden truth, attributes and the choices their text is written from.

    Attributes:
        topic, secondary: int32 primary and secondary topic.
        quality: float32 hidden quality.
        attributes: name → float32 the domain's attributes.
        template: int16 text template; words: ``(n, 4)`` int32 slot-word choices (:meth:`Domain.write_text`).
        secondary_weight: float32 share of the secondary topic.
    """

    topic: np.ndarray
    secondary: np.ndarray
    quality: np.ndarray
    attributes: dict[str, np.ndarray]
    template: np.ndarray
    words: np.ndarray
    secondary_weight: np.ndarray

    @classmethod
    def draw(cls, domain: Domain, n: int, rng: np.random.Generator) -> ItemDraws:
        """``n`` items of ``domain`` drawn from ``rng``: topics, quality, attributes, text choices, weights."""
        num_topics = len(domain.topics)
        topic = rng.integers(num_topics, size=n, dtype=np.int32)
        secondary = ((topic + rng.integers(1, num_topics, size=n, dtype=np.int32)) % num_topics).astype(np.int32)
        quality = rng.standard_normal(n).astype(np.float32)
        attributes = domain.attributes(topic, quality, rng)
        template = rng.integers(len(domain.templates), size=n, dtype=np.int16)
        words = rng.integers(0, 1 << 15, size=(n, 4), dtype=np.int32)
        weight = rng.uniform(0.1, 0.4, n).astype(np.float32)
        return cls(topic, secondary, quality, attributes, template, words, weight)


class _GeneratedIds(Sequence[str]):
    """Ids ``"<prefix>000042"`` made on demand, so a million-item catalogue costs no strings; with ``serials``
    ``(n,)``, item ``i``'s id is made from ``serials[i]`` (a slot shows its current item's id)."""

    def __init__(self, prefix: str, n: int, serials: np.ndarray | None = None) -> None:
        self._prefix, self._n, self._serials = prefix, n, serials

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"item index {i} out of range for {self._n} items")
        i %= self._n
        return f"{self._prefix}{i if self._serials is None else int(self._serials[i]):07d}"


class _GeneratedTexts(Sequence[str]):
    """Item texts written on demand from the items' drawn template and word choices (deterministic; a slot of a
    churning world shows its current item's text, its columns being rewritten in place)."""

    def __init__(self, domain: Domain, items: ItemDraws) -> None:
        self._domain, self._items = domain, items

    def __len__(self) -> int:
        return len(self._items.topic)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"item index {i} out of range for {n} items")
        i %= n
        items = self._items
        attrs = {k: float(v[i]) for k, v in items.attributes.items()}
        return self._domain.write_text(
            int(items.template[i]), int(items.topic[i]), int(items.secondary[i]), items.words[i], attrs
        )


def _read_csv(path: Path) -> list[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = []
        try:
            header = reader.fieldnames or []
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise ValueError(f"{path}, line 1: header repeats column(s) {repeated}; expected each column once")
            for row in reader:
                if None in row:
                    raise ValueError(
                        f"{path}, line {reader.line_num}: {len(header) + len(row[None])} fields; "
                        f"expected {len(header)} as in the header"
                    )
                rows.append((reader.line_num, row))
        except csv.Error as error:  # NUL bytes, oversized fields, bad quoting
            raise ValueError(f"{path}, line {reader.line_num}: unreadable CSV ({error})") from None
    if not header:
        raise ValueError(f"{path}, line 1: no header; expected columns id,text[,category,...]")
    return rows


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
            rows.append((number, row))
    return rows


def _read_parquet(path: Path) -> list[tuple[int, dict]]:
    """Rows of a Parquet file, numbered from 1 (reported as the "line" in errors)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            f"reading the Parquet file {path} needs pyarrow; install it with: pip install pyarrow"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None
    return list(enumerate(table.to_pylist(), start=1))


def _catalog_from_rows(path: Path, rows: list[tuple[int, dict]], domain: str, seed: int) -> Catalog:
    if not rows:
        raise ValueError(f"{path}: no items; expected at least one row with id and text")
    ids, texts, categories, numeric = [], [], [], {}
    seen: dict[str, int] = {}
    for line, row in rows:
        for column in ("id", "text"):
            value = row.get(column)
            if value is None or str(value).strip() == "":
                hint = "" if column in row else f" (the row has columns {sorted(row)})"
                raise ValueError(f"{path}, line {line}: column {column!r} is missing or empty{hint}")
        for column in ("id", "text", "category"):
            if isinstance(row.get(column), (dict, list, bool)):
                raise ValueError(f"{path}, line {line}: column {column!r} is {row[column]!r}; expected a string")
        item_id = str(row["id"])
        if item_id in seen:
            raise ValueError(f"{path}, line {line}: duplicate id {item_id!r} (first on line {seen[item_id]})")
        seen[item_id] = line
        ids.append(item_id)
        texts.append(str(row["text"]))
        categories.append(str(row.get("category") or "uncategorised"))
        for column, value in row.items():
            if column in ("id", "text", "category"):
                continue
            numeric.setdefault(column, []).append(_parse_number(path, line, column, value))
    for column, values in numeric.items():
        if len(values) != len(ids):
            line = next(line for line, row in rows if column not in row)
            raise ValueError(f"{path}, line {line}: column {column!r} is missing; expected it on every line")
    names, codes = np.unique(np.array(categories), return_inverse=True)
    rng = np.random.default_rng(seed)
    n, num_topics = len(ids), len(names)
    secondary = (codes + rng.integers(1, max(num_topics, 2), size=n)) % num_topics
    return Catalog(
        domain=domain,
        item_ids=ids,
        texts=texts,
        categories=codes.astype(np.int32),
        category_names=tuple(str(x) for x in names),
        attributes={k: np.asarray(v, dtype=np.float32) for k, v in numeric.items()},
        topic=codes.astype(np.int32),
        secondary_topic=secondary.astype(np.int32),
        secondary_weight=(rng.uniform(0.1, 0.4, n) * (num_topics > 1)).astype(np.float32),
        quality=rng.standard_normal(n).astype(np.float32),
        num_topics=num_topics,
    )


def _parse_number(path: Path, line: int, column: str, value: object) -> float:
    try:
        number = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{path}, line {line}: column {column!r} is {value!r}; expected a finite number")
    return number


def _encoding_problem(path: Path) -> str:
    """Where ``path`` stops being UTF-8: the message of a catalogue file in another encoding."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        return (
            f"{path}, line {line}: byte {data[error.start]:#04x} at column {column} is not UTF-8; "
            f"expected a UTF-8 text file (re-save it as UTF-8)"
        )
    return f"{path}: not UTF-8; expected a UTF-8 text file"
