"""The item catalogue: text the recommender reads, categories and attributes, and hidden truth.

A :class:`Catalog` is immutable and column-oriented. Columns visible to agents: ``item_ids``, ``texts``,
``categories`` (+ ``category_names``) and numeric ``attributes``. Hidden columns, used only by the
simulator and its oracle: each item's primary topic, a secondary topic with its weight, and quality.

Catalogues come from :meth:`Catalog.generate` (our own text generator, per domain) or from a file through
:meth:`Catalog.from_table`.
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
    """Items of one domain; every column has length ``num_items``.

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
    _meta: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if n == 0:
            raise ValueError(f"catalog {self.domain!r} is empty; expected at least one item")
        columns = {
            "texts": self.texts,
            "categories": self.categories,
            "topic": self.topic,
            "secondary_topic": self.secondary_topic,
            "secondary_weight": self.secondary_weight,
            "quality": self.quality,
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
        rng = np.random.default_rng(seed)
        num_topics = len(domain.topics)
        topic = rng.integers(num_topics, size=num_items, dtype=np.int32)
        secondary = (topic + rng.integers(1, num_topics, size=num_items, dtype=np.int32)) % num_topics
        quality = rng.standard_normal(num_items).astype(np.float32)
        attributes = domain.attributes(topic, quality, rng)
        return cls(
            domain=domain.name,
            item_ids=_GeneratedIds(domain.name[:2], num_items),
            texts=_GeneratedTexts(domain, topic, secondary, attributes, rng),
            categories=topic,
            category_names=tuple(t.name for t in domain.topics),
            attributes=attributes,
            topic=topic,
            secondary_topic=secondary.astype(np.int32),
            secondary_weight=rng.uniform(0.1, 0.4, num_items).astype(np.float32),
            quality=quality,
            num_topics=num_topics,
        )

    @classmethod
    def from_table(cls, path: str | Path, domain: str = "custom", seed: int = 0) -> Catalog:
        """Load ``id,text[,category,<numeric attributes>...]`` from a ``.csv`` or ``.jsonl`` file.

        The category (if any) becomes the hidden topic; quality is drawn from ``seed``. A malformed file
        raises ``ValueError`` naming the file, the line and the problem.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"catalog file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            rows = _read_csv(path)
        elif suffix in (".jsonl", ".ndjson"):
            rows = _read_jsonl(path)
        else:
            raise ValueError(f"catalog file {path}: unsupported format {suffix!r}; expected .csv or .jsonl")
        return _catalog_from_rows(path, rows, domain, seed)


class _GeneratedIds(Sequence[str]):
    """Ids ``"<prefix>000042"`` made on demand, so a million-item catalogue costs no strings."""

    def __init__(self, prefix: str, n: int) -> None:
        self._prefix, self._n = prefix, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"item index {i} out of range for {self._n} items")
        return f"{self._prefix}{i % self._n:07d}"


class _GeneratedTexts(Sequence[str]):
    """Item texts written on demand from pre-drawn template and word choices (deterministic)."""

    def __init__(self, domain: Domain, topic, secondary, attributes, rng: np.random.Generator) -> None:
        n = len(topic)
        self._domain, self._topic, self._secondary, self._attributes = domain, topic, secondary, attributes
        self._template = rng.integers(len(domain.templates), size=n, dtype=np.int16)
        self._words = rng.integers(0, 1 << 15, size=(n, 4), dtype=np.int32)

    def __len__(self) -> int:
        return len(self._topic)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"item index {i} out of range for {n} items")
        i %= n
        attrs = {k: float(v[i]) for k, v in self._attributes.items()}
        return self._domain.write_text(
            int(self._template[i]), int(self._topic[i]), int(self._secondary[i]), self._words[i], attrs
        )


def _read_csv(path: Path) -> list[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = []
        for row in reader:
            if None in row:
                raise ValueError(
                    f"{path}, line {reader.line_num}: {len(header) + len(row[None])} fields; "
                    f"expected {len(header)} as in the header"
                )
            rows.append((reader.line_num, row))
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


def _catalog_from_rows(path: Path, rows: list[tuple[int, dict]], domain: str, seed: int) -> Catalog:
    if not rows:
        raise ValueError(f"{path}: no items; expected at least one row with id and text")
    ids, texts, categories, numeric = [], [], [], {}
    seen: dict[str, int] = {}
    for line, row in rows:
        for column in ("id", "text"):
            value = row.get(column)
            if value is None or str(value).strip() == "":
                raise ValueError(f"{path}, line {line}: column {column!r} is missing or empty")
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
            raise ValueError(f"{path}: column {column!r} is missing on some lines; expected it on every line")
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
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{path}, line {line}: column {column!r} is {value!r}; expected a finite number")
    return number
