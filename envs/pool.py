"""The live items of a world whose catalogue changes: item slots, publication, the catalogue view, what agents
are told, and the trending list the candidate generator reads.

With ``publish_rate > 0`` the catalogue is a ring of ``num_items`` slots (:mod:`envs.clock`): serial ``n`` lives in
slot ``n mod num_items``, is published at tick ``T(n)``, is offered while its age is at most the lifetime, and its
slot is taken by serial ``n + num_items`` once it has expired. A new item is a generated one, as in a static
catalogue: hidden topics, quality and attributes, and text written from its topics' vocabularies by the domain's
generator. Items are drawn in blocks of :data:`ITEM_BLOCK` serials, each from its own generator seeded by
``(population_seed, ITEM_STREAM, block)``, so an item is the same whatever the run that reaches it (and a checkpoint
need not store the pool: it is the clock's).

**What agents are told.** An item index (``obs["candidates"]``, feedback records' ``item_index``) names a slot.
When a slot gets a new item the environment says so in the same step: ``info["published"]`` (and
``env.unwrapped.published``) is a :class:`Published` listing the slots, ids and texts of the items published this
step, which appear among candidates from the next observation on. The catalogue view (``env.unwrapped.catalog``)
shows each slot's current item: ``texts[slot]``, ``item_ids[slot]``, ``categories``, ``attributes``,
``meta_features()`` rows, and ``published[slot]``, the tick its item was published. A feedback record is about its
slot's current item exactly when ``record["step_shown"] >= catalog.published[record["item_index"]]``; a record
that arrives after its slot was reused (one held for an absent user, say) is about the slot's earlier item.

**The candidate generator** (:func:`envs.dynamics.draw_live_candidates`) draws each session's ``M`` candidates from
the live items as a recommender's candidate generator would (:class:`CandidateMix`): ``M_p`` among the *trending*
items (the ``2 · M_p`` live items with the most consumptions, each consumption's weight halving every
``popularity_half_life`` ticks), ``M_f`` among the ``2 · M_f`` newest live items, and the rest uniformly among the
other live items; distinct within a row, never an expired item.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from envs.catalog import Catalog, ItemDraws
from envs.clock import Schedule
from envs.config import SimConfig
from envs.domain import Domain

ITEM_BLOCK = 1024
"""Serials drawn together from one generator."""
ITEM_STREAM = 3
"""The second word of an item block's seed, ``(population_seed, ITEM_STREAM, block)``."""
WINDOW_FACTOR = 2
"""Fresh candidates are drawn among ``WINDOW_FACTOR · M_f`` newest items, popular ones among the
``WINDOW_FACTOR · M_p`` trending ones."""
RESCALE_ABOVE = 1e150
"""Trending scores are kept in units that grow with time (so old consumptions need no decaying); they are rescaled
when the unit passes this."""
LIVE_DTYPE = np.dtype([("first", np.int64), ("end", np.int64), ("fresh", np.int64), ("trending", np.int64)])
"""The live window the kernel draws candidates from: serials ``first .. end − 1`` are live, ``fresh .. end − 1``
are the newest (the fresh window), and ``trending`` entries of the trending list are valid."""


class Published(NamedTuple):
    """Items published since the last step or reset: what a text-reading agent encodes as they appear.

    Attributes:
        items: ``(n,)`` int64 the slots (item indices) that hold a new item.
        item_ids: ``n`` ids of the new items (unique over the whole run).
        texts: ``n`` texts of the new items.
    """

    items: np.ndarray
    item_ids: list[str]
    texts: list[str]


EMPTY_PUBLISHED = Published(np.zeros(0, np.int64), [], [])


class CandidateMix(NamedTuple):
    """How many of the ``M`` candidates each source gives, and how large the fresh and trending pools are.

    Attributes:
        fresh: ``M_f = round(candidate_fresh · M)`` drawn among the ``fresh_window`` newest live items.
        popular: ``M_p = round(candidate_popular · M)`` drawn among the ``trending`` list's valid entries.
        fresh_window: ``WINDOW_FACTOR · M_f``.
        trending: ``WINDOW_FACTOR · M_p``, the length of the trending list.
    """

    fresh: int
    popular: int
    fresh_window: int
    trending: int

    @classmethod
    def of(cls, config: SimConfig) -> CandidateMix:
        m = config.num_candidates
        fresh = round(config.candidate_fresh * m)
        popular = min(round(config.candidate_popular * m), m - fresh)
        return cls(fresh, popular, WINDOW_FACTOR * fresh, WINDOW_FACTOR * popular)

    def live_needed(self, num_candidates: int) -> int:
        """The live items a row needs at least: the fresh window, then, outside it, room for a whole row besides
        every trending item (which the fresh and the uniform draws skip)."""
        return self.fresh_window + num_candidates + self.trending


class ItemPool:
    """The item slots of a churning world and everything that changes with them.

    Args:
        domain: writes the new items (a generated domain: topics, templates, attributes).
        config: ``num_items`` slots, ``publish_rate``, ``item_lifetime``, the candidate mix,
            ``popularity_half_life``, ``population_seed``.
        item_dtype: the kernel's item record (:data:`envs.dynamics.ITEM_DTYPE`).
        attribute_names: the attribute columns the kernel reads, in order.

    Attributes:
        schedule: the publication schedule (:class:`envs.clock.Schedule`).
        mix: the candidate mix.
        serial: ``(S,)`` int64 the serial of each slot's item.
        items: ``(S,)`` the kernel's item records (``published``: each item's publication tick).
        attrs: ``(S, A)`` float32 the kernel's attribute matrix.
        catalog: the catalogue view (its columns are the slots').
        meta: ``(S, d)`` float32 each slot's meta features (category one-hot, standardised log attributes with
            the initial items' mean and spread), the rows of ``catalog.meta_features()``.
        window: ``(1,)`` :data:`LIVE_DTYPE` the live window of the current tick.
        trending: ``(K,)`` int64 slots of the trending list (the first ``window["trending"]`` entries are valid).
        in_trending: ``(S,)`` bool whether a slot is on the trending list.
        score: ``(S,)`` float64 consumptions per slot, each weighing ``exp(λ · (tick − reference))``.
    """

    def __init__(self, domain: Domain, config: SimConfig, item_dtype: np.dtype, attribute_names: tuple[str, ...]):
        if not domain.templates or not domain.topics:
            raise ValueError(
                f"publish_rate={config.publish_rate} but the {domain.name!r} world has no item generator (no "
                "topics or templates: its items come from data); expected publish_rate=0"
            )
        self.domain, self.seed = domain, config.population_seed
        self.attribute_names = attribute_names
        self.schedule = Schedule.of(config.num_items, config.publish_rate, config.item_lifetime)
        self.mix = CandidateMix.of(config)
        needed = self.mix.live_needed(config.num_candidates)
        if self.schedule.fewest_live < needed:
            raise ValueError(
                f"publish_rate={config.publish_rate:g} with an item lifetime of {self.schedule.lifetime} ticks keeps "
                f"as few as {self.schedule.fewest_live} items live; num_candidates={config.num_candidates} with "
                f"candidate_fresh={config.candidate_fresh} and candidate_popular={config.candidate_popular} needs "
                f"at least {needed}; expected a higher publish_rate, a longer item_lifetime or fewer candidates"
            )
        self.decay = math.log(2.0) / config.popularity_half_life  # λ of the trending scores, per tick
        n = config.num_items
        self.serial = np.arange(n, dtype=np.int64)
        self.items = np.zeros(n, item_dtype)
        self._blocks: dict[int, ItemDraws] = {}
        first = self._draws(0, n)
        self.columns = first  # the slots' columns, rewritten in place as items are published
        self._stats = _log_stats(first.attributes)
        self.meta = _meta_rows(first, len(domain.topics), self._stats)
        self.attrs = np.empty((n, len(attribute_names)), np.float32)
        self._write(self.serial, first)
        self.catalog = Catalog.of_draws(
            domain, first, self.serial, published=self.items["published"], _meta=[self.meta]
        )
        self.window = np.zeros(1, LIVE_DTYPE)
        self.trending = np.zeros(self.mix.trending, np.int64)
        self.in_trending = np.zeros(n, bool)
        self.score = np.zeros(n)
        self.reference = 0  # the tick at which a consumption weighs 1 in ``score``
        self._tick = 0
        self._set_window(0)

    # ------------------------------------------------------------------ time

    def advance(self, tick: int) -> np.ndarray:
        """Publish the items of ``tick`` (one tick after the last), drop expired items from the trending list and
        set the live window for ``tick``; returns the slots that got a new item ``(n,)``."""
        published = self._publish(self.schedule.published_by(self._tick), self.schedule.published_by(tick))
        self._tick = tick
        self._set_window(tick)
        return published

    def consumed(self, choice: np.ndarray, actions: np.ndarray, candidates: np.ndarray, tick: int) -> None:
        """Count this tick's consumptions (``choice`` ``(B,)`` slot of each slate consumed, -1 for none, of the
        slates ``actions`` ``(B, k)`` over ``candidates`` ``(B, M)``) toward the trending list."""
        weight = math.exp(self.decay * (tick - self.reference))
        if weight > RESCALE_ABOVE:
            self.score /= weight
            self.reference, weight = tick, 1.0
        _count_consumptions(
            choice, actions, candidates, weight, self.score, self.trending, self.in_trending, self.window, self.serial
        )

    def reset(self, tick: int = 0) -> np.ndarray:
        """Back to ``tick`` with no consumptions (the items live then: at 0 the initial ones); returns the slots
        whose item changed."""
        end = self.schedule.published_by(tick)
        serials = np.arange(end - len(self.serial), end, dtype=np.int64)
        wanted = np.empty_like(serials)
        wanted[serials % len(self.serial)] = serials
        changed = np.flatnonzero(self.serial != wanted)
        self._tick = tick
        if len(changed):
            self._rewrite(end - len(self.serial), end)
        self._forget_consumptions(tick)
        self._set_window(tick)
        return changed

    def state_dict(self) -> dict[str, np.ndarray]:
        """What the clock does not tell: the trending scores and list (a checkpoint's ``pool_*`` arrays)."""
        return {
            "score": self.score.copy(),
            "trending": self.trending[: self.window[0]["trending"]].copy(),
            "reference": np.array([self.reference], np.int64),
        }

    def load_state_dict(self, state: dict[str, np.ndarray], tick: int) -> None:
        """The pool at ``tick`` with the saved trending state (shapes must match this pool's)."""
        trending = np.asarray(state["trending"], np.int64)
        if np.shape(state["score"]) != self.score.shape or len(trending) > len(self.trending):
            raise ValueError(
                f"saved pool state has {np.shape(state['score'])} scores and {len(trending)} trending items; "
                f"expected ({len(self.score)},) and at most {len(self.trending)}"
            )
        end = self.schedule.published_by(tick)
        self._tick = tick
        self._rewrite(end - len(self.serial), end)
        self._forget_consumptions(int(state["reference"][0]))
        self.score[:] = state["score"]
        self.trending[: len(trending)] = trending
        self.in_trending[trending] = True
        self.window["trending"] = len(trending)
        self._set_window(tick)

    def _forget_consumptions(self, reference: int) -> None:
        self.score[:] = 0.0
        self.in_trending[:] = False
        self.window["trending"] = 0
        self.reference = reference

    # ------------------------------------------------------------------ what agents see

    def published(self, slots: np.ndarray) -> Published:
        """The :class:`Published` of the current items of ``slots``."""
        if len(slots) == 0:
            return EMPTY_PUBLISHED
        slots = np.asarray(slots, np.int64)
        ids, texts = self.catalog.item_ids, self.catalog.texts
        return Published(slots, [ids[int(s)] for s in slots], [texts[int(s)] for s in slots])

    # ------------------------------------------------------------------ slots

    def _publish(self, start: int, end: int) -> np.ndarray:
        """Write serials ``start .. end − 1`` into their slots; returns the slots."""
        if end <= start:
            return np.zeros(0, np.int64)
        self._rewrite(start, end)
        return np.arange(start, end, dtype=np.int64) % len(self.serial)

    def _rewrite(self, start: int, end: int) -> None:
        """Put serials ``start .. end − 1`` into their slots, block by block; the slots leave the trending list."""
        for first, last, draws in self._pieces(start, end):
            serials = np.arange(first, last, dtype=np.int64)
            slots = serials % len(self.serial)
            self.score[slots] = 0.0
            self.in_trending[slots] = False
            self._write(serials, draws)
        _drop_stale(self.trending, self.in_trending, self.window, self.serial, self.schedule.live(self._tick)[0])

    def _write(self, serials: np.ndarray, draws: ItemDraws) -> None:
        """Write the items ``draws`` (one per serial) into the slots of ``serials``: kernel records, catalogue
        columns and meta rows."""
        slots = serials % len(self.serial)
        self.serial[slots] = serials
        items = self.items
        items["topic"][slots], items["second"][slots] = draws.topic, draws.secondary
        items["weight"][slots], items["quality"][slots] = draws.secondary_weight, draws.quality
        items["published"][slots] = self.schedule.ticks_of(serials)
        columns = self.columns
        if columns is not draws:
            for name in ("topic", "secondary", "quality", "template", "words", "secondary_weight"):
                getattr(columns, name)[slots] = getattr(draws, name)
            for name, values in draws.attributes.items():
                columns.attributes[name][slots] = values
            self.meta[slots] = _meta_rows(draws, len(self.domain.topics), self._stats)
        for a, name in enumerate(self.attribute_names):
            self.attrs[slots, a] = draws.attributes[name]

    def _pieces(self, start: int, end: int):
        """``(first, last, draws)`` for the serials ``start .. end − 1``, one piece per block they fall in."""
        first = start
        while first < end:
            block = first // ITEM_BLOCK
            last = min(end, (block + 1) * ITEM_BLOCK)
            offset = block * ITEM_BLOCK
            yield first, last, _take(self._block(block), slice(first - offset, last - offset))
            first = last

    def _draws(self, start: int, end: int) -> ItemDraws:
        """The items of serials ``start .. end − 1``."""
        return _concat([draws for _, _, draws in self._pieces(start, end)])

    def _block(self, block: int) -> ItemDraws:
        """The items of serials ``block · ITEM_BLOCK`` on (the last few blocks are kept)."""
        if block not in self._blocks:
            if len(self._blocks) >= 4:
                del self._blocks[min(self._blocks)]
            rng = np.random.default_rng([self.seed, ITEM_STREAM, block])
            self._blocks[block] = ItemDraws.draw(self.domain, ITEM_BLOCK, rng)
        return self._blocks[block]

    def _set_window(self, tick: int) -> None:
        first, end = self.schedule.live(tick)
        _drop_stale(self.trending, self.in_trending, self.window, self.serial, first)
        window = self.window[0]
        window["first"], window["end"] = first, end
        window["fresh"] = max(end - self.mix.fresh_window, first)


def _take(draws: ItemDraws, rows: slice | np.ndarray) -> ItemDraws:
    return ItemDraws(
        draws.topic[rows],
        draws.secondary[rows],
        draws.quality[rows],
        {name: values[rows] for name, values in draws.attributes.items()},
        draws.template[rows],
        draws.words[rows],
        draws.secondary_weight[rows],
    )


def _concat(parts: list[ItemDraws]) -> ItemDraws:
    return ItemDraws(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("topic", "secondary", "quality")),
        {name: np.concatenate([p.attributes[name] for p in parts]) for name in parts[0].attributes},
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("template", "words", "secondary_weight")),
    )


def _log_stats(attributes: dict[str, np.ndarray]) -> list[tuple[np.float32, np.float32]]:
    """Per attribute, the mean and spread (+1e-6) of ``log1p(max(v, 0))``, as :meth:`Catalog.meta_features`."""
    stats = []
    for values in attributes.values():
        logs = np.log1p(np.maximum(values, 0.0))
        stats.append((logs.mean(), logs.std() + 1e-6))
    return stats


def _meta_rows(draws: ItemDraws, num_categories: int, stats) -> np.ndarray:
    """``(n, d)`` float32 meta features of ``draws`` (category one-hot, standardised log attributes)."""
    onehot = np.zeros((len(draws.topic), num_categories), np.float32)
    onehot[np.arange(len(draws.topic)), draws.topic] = 1.0
    numeric = [
        (np.log1p(np.maximum(v, 0.0)) - mean) / spread
        for v, (mean, spread) in zip(draws.attributes.values(), stats, strict=True)
    ]
    return np.column_stack([onehot, *numeric]).astype(np.float32)


@njit(cache=True)
def _count_consumptions(choice, actions, candidates, weight, score, trending, in_trending, window, serial):
    """Add ``weight`` to the score of each consumed slot and keep the trending list the highest-scoring consumed
    items: a consumed item not on a full list replaces the list's lowest entry if it scores more. ``window`` is
    already the next tick's: an item that expired with this tick is not counted (it must not become a candidate)."""
    w = window[0]
    for b in range(choice.shape[0]):
        if choice[b] < 0:
            continue
        slot = candidates[b, actions[b, choice[b]]]
        if serial[slot] < w.first:
            continue
        score[slot] += weight
        if in_trending[slot] or trending.shape[0] == 0:
            continue
        if w.trending < trending.shape[0]:
            trending[w.trending] = slot
            in_trending[slot] = True
            w.trending += 1
            continue
        lowest = 0
        for e in range(1, trending.shape[0]):
            if score[trending[e]] < score[trending[lowest]]:
                lowest = e
        if score[slot] > score[trending[lowest]]:
            in_trending[trending[lowest]] = False
            trending[lowest] = slot
            in_trending[slot] = True


@njit(cache=True)
def _drop_stale(trending, in_trending, window, serial, first):
    """Remove from the trending list the slots whose item is no longer live (serial below ``first``) or was
    replaced, keeping the others in order."""
    w = window[0]
    kept = 0
    for e in range(w.trending):
        slot = trending[e]
        if serial[slot] >= first and in_trending[slot]:
            trending[kept] = slot
            kept += 1
        else:
            in_trending[slot] = False
    w.trending = kept
