"""The simulation, written once and batched over ``B`` concurrent sessions.

:class:`Simulator` holds the world (catalogue, population, feedback channel) and the state of ``B``
sessions as arrays shaped ``(B, ...)``. The single-user environment is this core with ``B = 1``, the
vector environment the same core with ``B = N``; both are thin Gymnasium faces over it.

A step is two compiled passes — the user dynamics (:mod:`envs.dynamics`) and the feedback channel
(:mod:`envs.feedback`) — each reading uniforms from a stream keyed by one draw from the caller's seeded
``numpy.random.Generator`` (:mod:`envs.draws`). The sessions' arrays are the fields of
:class:`~envs.dynamics.SessionState`, each an attribute of the simulator under its own name (``sim.user``,
``sim.mood``, ...; :attr:`Simulator.state` gathers them).
Arrays handed out in observations are never written again by the simulator.

The clock (:attr:`Simulator.clock`, :mod:`envs.clock`) counts the batched steps: one tick each, shared by every
session. With ``publish_rate > 0`` the catalogue is a pool of item slots (:mod:`envs.pool`): each step first
publishes the items of the next tick, then runs the kernel, which draws the next candidates from the live items;
:meth:`Simulator.take_published` hands out what was published.

Reward: a step's reward is the weighted feedback that arrived in it, ``Σ weight[kind] · (value − neutral[kind])``
over its records. Feedback held for an absent user is delivered when the user's next session starts (in that
start's feedback, :meth:`Simulator.start_sessions`); its reward is carried and paid with that session's first
step, so every delivered record's reward enters exactly one step's reward.
"""

from __future__ import annotations

import math
from enum import IntEnum
from operator import attrgetter
from typing import NamedTuple

import numpy as np
from gymnasium import spaces
from numba import njit

from envs.catalog import Catalog
from envs.choice import CHOICE_MODELS
from envs.config import SimConfig
from envs.domain import Domain
from envs.draws import draw_key, uniform
from envs.dynamics import (
    CANDIDATE_DRAWS,
    ITEM_DTYPE,
    LIVE_CANDIDATE_DRAWS,
    USER_DTYPE,
    DrawLayout,
    Dynamics,
    SessionState,
    StepBuffers,
    StepOutput,
    World,
    allocate,
    allocator,
    as_record,
    draw_next,
    item_utility,
    step,
    step_parallel,
)
from envs.expectation import DRAWS, expected_rewards
from envs.feedback import DelayTable, FeedbackChannel
from envs.pool import EMPTY_PUBLISHED, LIVE_DTYPE, ItemPool, Published
from envs.privacy import report_epsilon
from envs.responses import RESPONSES
from envs.signals import SIGNALS, RatingScale
from envs.users import Population, UserParams


class FeedbackColumn(IntEnum):
    """Columns of the ``feedback`` observation ``(F, C)``."""

    PRESENT = 0  # 1 for a real row, 0 for padding
    KIND = 1  # the signal kind
    ITEM_INDEX = 2  # the item's catalogue index
    POSITION = 3  # its slate position
    VALUE = 4  # the value
    AGE = 5  # the delay in steps between showing and arrival


FEEDBACK_FIELDS = tuple(column.name.lower() for column in FeedbackColumn)
"""The names of the ``feedback`` observation's columns, in order."""
_session_arrays = attrgetter(*SessionState._fields)
"""A simulator's session arrays as a plain tuple in :class:`~envs.dynamics.SessionState` order (the kernels'
form of the group)."""
OBSERVED = ("candidates", "candidate_age", "history", "feedback_obs")
"""The :class:`~envs.dynamics.SessionState` fields observations hand out views of (replaced, never written,
once handed out)."""

MAX_STRIDES = 1024
STATIC_MAX_AGE = 2**62
"""The highest ``candidate_age`` a static catalogue declares (every item is as old as the world)."""
PARALLEL_FROM = 256
"""Batches of at least this many sessions are stepped on all of numba's threads."""


class StepOutcome(NamedTuple):
    """What one batched step produced.

    Attributes:
        reward: ``(B,)`` float64 weighted feedback that arrived this step (on a session's first step, plus that
            delivered when it started).
        terminated: ``(B,)`` bool, the user left.
        truncated: ``(B,)`` bool, the session hit ``max_episode_steps``.
        feedback: arrived records (:data:`~envs.feedback.FEEDBACK_DTYPE`), ``env_index`` says where.
        utility: ``(B, k)`` float32 hidden utility of each shown item (0 for masked slots).
        masked: ``(B, k)`` bool, slots that showed nothing because they repeated an earlier item.
        impression_id: ``(B,)`` int64 id of each shown slate.
        choice: ``(B,)`` int64 position the user consumed, -1 for none.
    """

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    feedback: np.ndarray
    utility: np.ndarray
    masked: np.ndarray
    impression_id: np.ndarray
    choice: np.ndarray


class ChoiceProblem(NamedTuple):
    """What a session's next slate earns, as the simulator knows it (for the oracle; hidden from agents).

    Attributes:
        utility: ``(B, M)`` hidden utility of each candidate (``B``: the sessions it was asked for, all by default).
        reward: ``(B, M)`` expected reward of the feedback a consumption of each candidate sends
            (:func:`envs.expectation.expected_rewards`).
        no_click, temperature: ``(B,)`` each session's user's no-click utility in the choice (their own plus
            ``click_reluctance``) and choice temperature.
        choice_model: ``"mnl"`` or ``"cascade"``; position_bias: the cascade's examination decay.
        misclick_rate: chance the user takes a random slot instead.
        may_mask: whether a repeated slot shows nothing (``duplicates="mask"``), so slots may be left empty.
    """

    utility: np.ndarray
    reward: np.ndarray
    no_click: np.ndarray
    temperature: np.ndarray
    choice_model: str
    position_bias: float
    misclick_rate: float
    may_mask: bool


class Simulator:
    """``num_envs`` concurrent sessions of one domain's world.

    Args:
        domain: the domain (news, ecommerce, music, video or your own).
        config: validated world settings.
        num_envs: ``B``, sessions simulated at once.
        catalog: items to recommend; generated from ``config`` when None (it must be None with item churn: new
            items are the domain's generated ones).
        item_features: ``"meta"``, an ``(num_items, d)`` array (refused with item churn: it could not describe
            items published later), or None (no feature observation).
        max_episode_steps: truncate sessions after this many steps (None: never).
        population: the users; drawn from ``config`` when None (a fitted one for real-data worlds).

    Attributes:
        user, session, steps, candidates, ...: each field of :class:`~envs.dynamics.SessionState` (see
            :attr:`state`), the arrays of the ``B`` sessions.
        world: the :class:`~envs.dynamics.World` the kernels read.
        draws: the :class:`~envs.dynamics.DrawLayout` of a session's step.
        dims: the sizes of the kernel's dimensions (:data:`envs.dynamics.DIMENSIONS`).
        clock: ticks since the world started (one per step, :mod:`envs.clock`).
        pool: the item pool (:class:`envs.pool.ItemPool`) of a churning world, None for a static catalogue.
        rating_scale: the stars users rate with (:class:`envs.signals.RatingScale`).
    """

    def __init__(
        self,
        domain: Domain,
        config: SimConfig,
        num_envs: int = 1,
        catalog: Catalog | None = None,
        item_features: str | np.ndarray | None = "meta",
        max_episode_steps: int | None = None,
        population: Population | None = None,
    ) -> None:
        self.domain, self.config, self.num_envs = domain, config, num_envs
        if catalog is not None and not isinstance(catalog, Catalog):
            raise TypeError(f"catalog={catalog!r}; expected an envs.Catalog (e.g. Catalog.from_table(path)) or None")
        _refuse_fixed_items(config, catalog, item_features)
        self.pool = ItemPool(domain, config, ITEM_DTYPE, domain.attribute_names) if config.churns else None
        self.catalog = (
            self.pool.catalog
            if self.pool
            else catalog or Catalog.generate(domain, config.num_items, seed=config.population_seed)
        )
        n_items, m = self.catalog.num_items, config.num_candidates
        if m > n_items:
            raise ValueError(f"num_candidates={m} exceeds the catalog's {n_items} items")
        if n_items * (m + 1) >= 2**53:
            raise ValueError(
                f"num_candidates={m} with {n_items} items is too large; expected num_items · (num_candidates + 1) "
                "< 2^53 (candidates are drawn in double-precision arithmetic)"
            )
        if config.num_users < num_envs:
            raise ValueError(
                f"num_users={config.num_users} is below num_envs={num_envs}; each session needs its own user"
            )
        self.features = _resolve_features(item_features, self.catalog)
        self.population = population or Population(
            config.num_users,
            self.catalog.num_topics,
            config.population_seed,
            UserParams(
                mean_patience=config.patience,
                mean_rating_propensity=config.rating_propensity,
                spam_fraction=config.spam_fraction,
                rating_bias_spread=config.rating_bias_spread,
            ),
        )
        if len(self.population) != config.num_users or self.population.interests.shape[1] != self.catalog.num_topics:
            raise ValueError(
                f"population has {len(self.population)} users over {self.population.interests.shape[1]} topics; "
                f"expected num_users={config.num_users} over the catalog's {self.catalog.num_topics} topics"
            )
        delays = {} if config.delays == "none" else (config.delays or domain.default_delays)
        self.channel = FeedbackChannel(DelayTable.parse(delays, config.delay_scale, config.max_delay))
        self.reward_weight = _reward_weights(domain, config)
        self.neutral = SIGNALS.neutral.copy()  # (S,) the value of each signal that earns no reward
        response = RESPONSES[domain.response]
        scale = RatingScale.parse(config.rating_scale) if config.rating_scale is not None else domain.rating_scale
        self.rating_scale = scale
        mix = self.pool.mix if self.pool else None
        reports = len(domain.implicit_signals) + 1  # an item's private reports: its implicit signals, its rating
        dynamics = Dynamics(
            choice_model=CHOICE_MODELS[config.choice_model],
            position_bias=config.position_bias,
            misclick_rate=config.misclick_rate,
            rating_noise=config.rating_noise,
            rating_heaping=config.rating_heaping,
            quality_weight=config.quality_weight,
            fatigue_weight=config.fatigue_weight,
            fatigue_decay=config.fatigue_decay,
            drift_rate=config.drift_rate,
            click_reluctance=config.click_reluctance,
            max_episode_steps=max_episode_steps or 0,
            text_kind=-1 if domain.text_signal is None else int(domain.text_signal),
            response=response.number,
            report_epsilon=report_epsilon(config.privacy_epsilon, reports) if config.privacy_epsilon else 0.0,
            rating_low=scale.low,
            rating_high=scale.high,
            rating_step=scale.step,
            rating_values=scale.values,
            freshness=_freshness(config.freshness_half_life, self.population),
            churn=int(config.churns),
            fresh=mix.fresh if mix else 0,
            popular=mix.popular if mix else 0,
            candidate_draws=LIVE_CANDIDATE_DRAWS if config.churns else CANDIDATE_DRAWS,
        )
        self.world = World(
            items=self.pool.items if self.pool else _item_records(self.catalog),
            attrs=self.pool.attrs if self.pool else _attribute_matrix(domain, self.catalog),
            response=response.constants(domain.response, domain.response_params, config.response_params),
            people=_user_records(self.population),
            signals=np.array(domain.implicit_signals, dtype=np.int16),
            strides=_coprime_strides(n_items, np.random.default_rng([config.population_seed, 1])),
            binary=SIGNALS.binary.copy(),
            low=SIGNALS.low.astype(np.float64),
            high=SIGNALS.high.astype(np.float64),
            window=self.pool.window if self.pool else np.zeros(1, LIVE_DTYPE),
            trending=self.pool.trending if self.pool else np.zeros(0, np.int64),
            in_trending=self.pool.in_trending if self.pool else np.zeros(0, np.bool_),
        )
        self._world = tuple(self.world)  # the kernels' form of each group (see envs.dynamics)
        self._params = as_record(dynamics)
        private = config.privacy_epsilon is not None
        slots = len(domain.implicit_signals) + 2  # records of a shown item: implicit signals, a rating, its text
        self.draws = DrawLayout.of(
            dynamics.choice_model,
            config.slate_size,
            response.draws,
            slots if private else 0,
            dynamics.candidate_draws,
        )
        self._draws = as_record(self.draws)
        self._kernel = step_parallel if num_envs >= PARALLEL_FROM else step
        records = config.slate_size * slots if private else slots  # under privacy, every shown item reports
        self.dims = {
            "B": num_envs,
            "U": config.num_users,
            "T": self.catalog.num_topics,
            "L": config.history_length,
            "M": m,
            "k": config.slate_size,
            "F": config.feedback_length,
            "C": len(FeedbackColumn),
            "R": records,
            "V": max(config.slate_size, slots),
        }
        self._new_output = allocator(StepOutput, self.dims)
        self.observation_space, self.action_space = self._spaces()
        self._allocate()

    # ------------------------------------------------------------------ spaces and state

    def _spaces(self) -> tuple[spaces.Dict, spaces.MultiDiscrete]:
        c, n_items = self.config, self.catalog.num_items
        highest = {
            FeedbackColumn.PRESENT: 1,
            FeedbackColumn.KIND: SIGNALS.count - 1,
            FeedbackColumn.ITEM_INDEX: n_items - 1,
            FeedbackColumn.POSITION: c.slate_size - 1,
            FeedbackColumn.VALUE: np.inf,  # a declared range bounds private reports' inputs, not every value
            FeedbackColumn.AGE: 2**31,
        }
        feedback_high = np.array([highest[column] for column in FeedbackColumn], np.float32)
        feedback_low = np.zeros(len(FeedbackColumn), np.float32)
        feedback_low[FeedbackColumn.VALUE] = -np.inf if c.privacy_epsilon is not None else 0.0  # Laplace noise
        oldest = self.pool.schedule.lifetime if self.pool else STATIC_MAX_AGE
        obs = {
            "candidates": spaces.Box(0, n_items - 1, (c.num_candidates,), np.int64),
            "candidate_age": spaces.Box(0, oldest, (c.num_candidates,), np.int64),
            "history": spaces.Box(-1, n_items - 1, (c.history_length,), np.int64),
            "feedback": spaces.Box(
                np.broadcast_to(feedback_low, (c.feedback_length, len(FEEDBACK_FIELDS))),
                np.broadcast_to(feedback_high, (c.feedback_length, len(FEEDBACK_FIELDS))),
                dtype=np.float32,
            ),
            "user_id": spaces.Box(0, c.num_users - 1, (1,), np.int64),
        }
        if self.features is not None:
            low, high = self._feature_bounds()
            shape = (c.num_candidates, len(low))
            obs["candidate_features"] = spaces.Box(
                np.broadcast_to(low, shape), np.broadcast_to(high, shape), dtype=np.float32
            )
        return spaces.Dict(obs), spaces.MultiDiscrete([c.num_candidates] * c.slate_size)

    def _feature_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(d,)`` bounds of each candidate feature column: those of the features in a static catalogue; with churn
        (meta features of items to come), 0..1 for the category one-hot and the age column (``candidate_age`` over
        the lifetime, last), unbounded for the standardised attributes."""
        if self.pool is None:
            return self.features.min(axis=0), self.features.max(axis=0)
        low, high = np.zeros(self.features.shape[1] + 1, np.float32), np.ones(self.features.shape[1] + 1, np.float32)
        numeric = slice(len(self.catalog.category_names), self.features.shape[1])
        low[numeric], high[numeric] = -np.inf, np.inf
        return low, high

    def _allocate(self) -> None:
        for name, array in allocate(SessionState, self.dims)._asdict().items():
            setattr(self, name, array)
        self.buffers = allocate(StepBuffers, self.dims)
        self._buffers = tuple(self.buffers)
        self._records = self.buffers.records.reshape(-1)  # a step's records, compacted to the front
        self.step_records = self._records[:0]
        self.clock = 0
        self._next_session = 0
        self._next_impression = 0
        self._handed_out = False
        self._published: list[np.ndarray] = []  # slots published since the last take_published

    @property
    def state(self) -> SessionState:
        """The sessions' arrays, by name (the attributes of the same names, not copies)."""
        return SessionState._make(_session_arrays(self))

    def reset_world(self, start_tick: int = 0) -> None:
        """A fresh world: drift undone, no sessions, no pending feedback, the clock at ``start_tick`` and the items
        live then in their slots (those whose item changes are handed out by the next :meth:`take_published`). A
        churning world started at tick ``T`` holds the items a world started at 0 holds at ``T``: an evaluation
        can start where training stopped, among items the learner has not met."""
        if isinstance(start_tick, bool) or not isinstance(start_tick, (int, np.integer)) or start_tick < 0:
            raise ValueError(f"start_tick={start_tick!r}; expected an integer >= 0 (a tick of the world clock)")
        self.population.restore()
        self.channel.clear()
        self._allocate()
        self.clock = int(start_tick)
        if self.pool:
            self._published.append(self.pool.reset(self.clock))

    def take_published(self) -> Published:
        """The items published since the last call (slots whose item changed, with their current items), or
        :data:`envs.pool.EMPTY_PUBLISHED`."""
        slots = [s for s in self._published if len(s)]
        self._published = []
        if not slots:
            return EMPTY_PUBLISHED
        return self.pool.published(np.unique(np.concatenate(slots)))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The whole mutable world as named arrays (for checkpoints; saved without pickle): every field of
        :attr:`state`, ``counters``, ``population_interests`` and the channel's arrays (``channel_*``)."""
        state = {name: getattr(self, name).copy() for name in SessionState._fields}
        state["counters"] = np.array([self.clock, self._next_session, self._next_impression], np.int64)
        state["population_interests"] = self.population.interests.copy()
        state.update({f"channel_{k}": v for k, v in self.channel.state_dict().items()})
        if self.pool:
            state.update({f"pool_{k}": v for k, v in self.pool.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned; shapes must match this world's."""
        missing = [name for name in SessionState._fields if name not in state]
        if missing:
            raise ValueError(
                f"saved simulator state lacks {missing}; expected every field of SessionState "
                f"{list(SessionState._fields)} (a checkpoint of an older version cannot be resumed)"
            )
        loaded = {}
        for name in SessionState._fields:
            current, value = getattr(self, name), np.asarray(state[name])
            if value.shape != current.shape:
                raise ValueError(f"saved simulator state {name!r} has shape {value.shape}; expected {current.shape}")
            loaded[name] = value.astype(current.dtype, copy=True)
        for name, value in loaded.items():
            setattr(self, name, value)
        self.clock, self._next_session, self._next_impression = (int(x) for x in state["counters"])
        self.population.interests[:] = state["population_interests"]
        self.channel.load_state_dict(
            {k.removeprefix("channel_"): v for k, v in state.items() if k.startswith("channel_")}
        )
        if self.pool:
            saved = {k.removeprefix("pool_"): v for k, v in state.items() if k.startswith("pool_")}
            if set(saved) != set(self.pool.state_dict()):
                raise ValueError(
                    f"saved simulator state has pool arrays {sorted(saved)}; expected "
                    f"{sorted(self.pool.state_dict())} (a checkpoint of a world without item churn?)"
                )
            self.pool.load_state_dict(saved, self.clock)
        self._published = []  # what a restored agent knew at the checkpoint is the restored pool
        self._handed_out = True

    # ------------------------------------------------------------------ sessions

    def start_sessions(self, envs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """End whatever runs in ``envs`` ``(n,)`` and start new sessions there with users who are
        not active elsewhere (uniform among the free ones). Returns the feedback that waited for those users:
        it is in the new sessions' first observation, and its reward is carried (:attr:`carried`) into their
        first step's reward."""
        if self._handed_out:
            for name in OBSERVED:
                setattr(self, name, getattr(self, name).copy())
        users = np.empty(len(envs), np.int64)
        state = _session_arrays(self)
        _restart(
            envs, users, self._next_session, self._world, state, self.population.interests, draw_key(rng),
            self._params, self.clock,
        )  # fmt: skip
        self._next_session += len(envs)
        waiting = self.channel.release(users, self.env_of_user, self.clock)
        _score(waiting, self.reward_weight, self.neutral, self.carried, self.feedback_obs, self.buffers.filled)
        return waiting

    def end_sessions(self, envs: np.ndarray) -> None:
        """Write the drifted interests of ``envs``' users back to the population; mark them away."""
        _end(envs, _session_arrays(self), self.population.interests)

    # ------------------------------------------------------------------ the step

    def choice_problem(self, sessions: np.ndarray | None = None) -> ChoiceProblem:
        """Everything that sets the expected reward of a slate this step, for the oracle only (hidden state): of
        every session, or of ``sessions`` ``(n,)`` (indices of the batch; its rows in that order)."""
        rows = self._rows(sessions)
        reward = np.empty((len(rows), self.candidates.shape[1]))
        expected_rewards(
            self._world, _session_arrays(self), self._params, self._draws, self.reward_weight, self.neutral,
            DRAWS, self.clock, rows, reward,
        )  # fmt: skip
        people = self.world.people[self.user[rows]]
        c = self.config
        return ChoiceProblem(
            utility=self.candidate_utility(rows),
            reward=reward,
            no_click=(people["no_click"] + np.float32(c.click_reluctance)).astype(np.float64),
            temperature=people["temperature"].astype(np.float64),
            choice_model=c.choice_model,
            position_bias=c.position_bias,
            misclick_rate=c.misclick_rate,
            may_mask=c.duplicates == "mask",
        )

    def candidate_utility(self, sessions: np.ndarray | None = None) -> np.ndarray:
        """``(B, M)`` hidden utility of the current candidates (``(n, M)`` of ``sessions`` ``(n,)`` alone): for the
        oracle and for metrics only (the kernel's own :func:`envs.dynamics.item_utility`)."""
        rows = self._rows(sessions)
        out = np.empty((len(rows), self.candidates.shape[1]), np.float32)
        _utilities(self._world, _session_arrays(self), self._params, self.clock, rows, out)
        return out

    def _rows(self, sessions: np.ndarray | None) -> np.ndarray:
        """``sessions`` as int64 indices of the batch (every session for None); refused when out of range."""
        batch = len(self.candidates)
        if sessions is None:
            return np.arange(batch)
        rows = np.asarray(sessions)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or ((rows < 0) | (rows >= batch)).any():
            raise ValueError(f"sessions={sessions!r}; expected a 1-d array of integer indices in [0, {batch})")
        return rows.astype(np.int64)

    def step(self, actions: np.ndarray, rng: np.random.Generator) -> StepOutcome:
        """Advance every session by one slate. ``actions``: ``(B, k)`` validated candidate indices.

        The reward of each session is that of the feedback arriving now, plus, on a session's first step, the
        reward carried from the feedback delivered when it started (see :meth:`start_sessions`)."""
        b = actions.shape[0]
        if self.config.duplicates == "error":
            _refuse_repeats(actions)
        if self.pool:
            self._published.append(self.pool.advance(self.clock + 1))  # before the kernel draws from it
        out = self._new_output()
        emitted = self._kernel(
            draw_key(rng),
            actions,
            self._world,
            _session_arrays(self),
            tuple(out),
            self._buffers,
            self._params,
            self._draws,
            self.clock,
            self._next_impression,
        )
        self._next_impression += b
        self.step_records = self._records[:emitted]  # every record this step generated (see eventual_feedback)
        arrived = self.channel.advance(self._records[:emitted], self.clock, rng, self.session, self.env_of_user)
        reward, self.carried = self.carried, np.zeros(b)  # the reward carried from the start is paid now
        self.feedback_obs = np.zeros(self.feedback_obs.shape, np.float32)
        _score(arrived, self.reward_weight, self.neutral, reward, self.feedback_obs, self.buffers.filled)
        if self.pool:
            self.pool.consumed(out.choice, actions, self.candidates, self.clock)
        self.clock += 1
        self.candidates, self.history = out.next_candidates, out.next_history
        self.candidate_age = out.next_candidate_age
        self._handed_out = False
        return StepOutcome(
            reward=reward,
            terminated=out.terminated,
            truncated=out.truncated,
            feedback=arrived,
            utility=out.utility,
            masked=out.masked,
            impression_id=out.impression_id,
            choice=out.choice,
        )

    # ------------------------------------------------------------------ observations

    def observation(self, rows: np.ndarray | slice | int = slice(None)) -> dict[str, np.ndarray]:
        """Observation arrays ``(len(rows), ...)`` for the given sessions (one session's, unbatched, for
        an int)."""
        self._handed_out |= not isinstance(rows, np.ndarray)  # views of the live arrays went out
        obs = {
            "candidates": self.candidates[rows],
            "candidate_age": self.candidate_age[rows],
            "history": self.history[rows],
            "feedback": self.feedback_obs[rows],
            "user_id": self.user[rows, None].copy(),
        }
        if self.features is not None:
            obs["candidate_features"] = self.features.take(obs["candidates"], axis=0)  # 3x faster than [...]
            if self.pool:  # the age, over the lifetime, as the last column
                age = obs["candidate_age"] / max(self.pool.schedule.lifetime, 1)
                obs["candidate_features"] = np.concatenate(
                    [obs["candidate_features"], age[..., None].astype(np.float32)], axis=-1
                )
        return obs


@njit(cache=True)
def _score(records, weight, neutral, reward, feedback_obs, filled):
    """Add each record's ``weight * (value - neutral)`` to its env's ``reward`` ``(B,)`` and put up to ``F``
    records per env into ``feedback_obs`` ``(B, F, C)`` (its rows from the first on; ``filled`` ``(B,)`` is
    scratch)."""
    filled[:] = 0
    for r in range(records.shape[0]):
        env, kind, value = records[r]["env_index"], records[r]["kind"], records[r]["value"]
        reward[env] += weight[kind] * (value - neutral[kind])
        row = filled[env]
        if row < feedback_obs.shape[1]:
            feedback_obs[env, row, FeedbackColumn.PRESENT] = 1.0
            feedback_obs[env, row, FeedbackColumn.KIND] = kind
            feedback_obs[env, row, FeedbackColumn.ITEM_INDEX] = records[r]["item_index"]
            feedback_obs[env, row, FeedbackColumn.POSITION] = records[r]["position"]
            feedback_obs[env, row, FeedbackColumn.VALUE] = value
            feedback_obs[env, row, FeedbackColumn.AGE] = records[r]["step_arrived"] - records[r]["step_shown"]
            filled[env] = row + 1


@njit(cache=True)
def _restart(envs, users, first_session, world, state, population_interests, key, params, tick):
    """End the sessions in ``envs`` (as :func:`_end`) and start new ones there: the user of ``envs[r]``
    is drawn uniformly among those not active (written to ``users[r]``), and starts with interests from
    the population, no fatigue, full mood, a time budget of their patience, no history, new candidates (for
    ``tick``) and no feedback rows (the reward ``carried`` into the session's first step is kept: it may hold
    feedback delivered at an earlier start that no step has paid yet). ``world``, ``state``: a
    :class:`~envs.dynamics.World` and :class:`~envs.dynamics.SessionState` as tuples; ``params``: the
    :class:`~envs.dynamics.Dynamics` record. Stream positions: ``candidate_draws · r`` on, the candidates of restart
    ``r``; after all of those, the user draws (rejection sampling: redrawn while the user is active)."""
    world, state = World(*world), SessionState(*state)
    p = params[0]
    _end(envs, state, population_interests)
    env_of_user = state.env_of_user
    position = p.candidate_draws * envs.shape[0]
    for r in range(envs.shape[0]):
        env, usr = envs[r], -1
        while usr < 0 or env_of_user[usr] >= 0:
            a, position = uniform(key, position)
            usr = int(a * env_of_user.shape[0])
        users[r] = usr
        state.user[env], env_of_user[usr], state.session[env], state.steps[env] = usr, env, first_session + r, 0
        state.interests[env] = population_interests[usr]
        state.fatigue[env] = 0.0
        state.mood[env], state.budget[env] = 1.0, world.people[usr].patience
        state.history[env] = -1
        state.feedback_obs[env] = 0.0
        draw_next(state.candidates, state.candidate_age, env, state, world, p, key, p.candidate_draws * r, tick)


@njit(cache=True)
def _end(envs, state, population_interests):
    """Write back the interests of the users active in ``envs`` and mark them away (``state``: a
    :class:`~envs.dynamics.SessionState`, or its tuple)."""
    state = SessionState(*state)
    for env in envs:
        if state.session[env] >= 0:
            population_interests[state.user[env]] = state.interests[env]
            state.env_of_user[state.user[env]] = -1
            state.session[env] = -1


@njit(cache=True)
def _utilities(world, state, params, tick, sessions, out):
    """``out`` ``(n, M)``: the hidden utility of the candidates of each of ``sessions`` ``(n,)`` at ``tick``
    (``world``, ``state``: tuples of a :class:`~envs.dynamics.World` and a :class:`~envs.dynamics.SessionState`)."""
    world, state = World(*world), SessionState(*state)
    p = params[0]
    for i in range(len(sessions)):
        b = sessions[i]
        for j in range(state.candidates.shape[1]):
            item = world.items[state.candidates[b, j]]
            out[i, j] = item_utility(state.interests, state.fatigue, b, item, p, tick)


def _refuse_repeats(actions: np.ndarray) -> None:
    same = np.tril(actions[:, :, None] == actions[:, None, :], k=-1).any(axis=2)
    if same.any():
        b, j = np.argwhere(same)[0]
        raise ValueError(
            f"slate {actions[b].tolist()} repeats candidate {actions[b, j]} at position {j} "
            f"(sub-env {b}); duplicates='error' requires distinct slate entries"
        )


def _reward_weights(domain: Domain, config: SimConfig) -> np.ndarray:
    """``(S,)`` reward per unit of each signal of the signal table: the domain's weights, replaced by the config's
    where given, zero outside ``config.reward_signals``."""
    weights = np.zeros(SIGNALS.count)
    for name, w in {**domain.reward_weights, **(config.reward_weights or {})}.items():
        weights[SIGNALS.parse(name)] = w
    return weights * SIGNALS.reward_mask(config.reward_signals)


def _item_records(catalog: Catalog) -> np.ndarray:
    items = np.empty(catalog.num_items, ITEM_DTYPE)
    items["topic"], items["second"] = catalog.topic, catalog.secondary_topic
    items["weight"], items["quality"] = catalog.secondary_weight, catalog.quality
    items["published"] = catalog.published
    return items


def _freshness(half_life: float | None, population: Population) -> float:
    """Utility an item loses per tick of age: ``ln 2 · τ̄ / half_life`` (``τ̄`` the mean choice temperature), so the
    choice weight ``exp(u / τ̄)`` halves every half-life; 0 without a half-life."""
    if half_life is None:
        return 0.0
    return math.log(2.0) * float(population.click_temperature.mean()) / half_life


def _refuse_fixed_items(config: SimConfig, catalog: Catalog | None, item_features) -> None:
    """With item churn, the items are the domain's generated ones and their features change with them."""
    if not config.churns:
        return
    if catalog is not None:
        raise ValueError(
            f"publish_rate={config.publish_rate} with a catalog of your own; expected catalog=None (a churning world "
            "publishes the domain's generated items) or publish_rate=0"
        )
    if item_features is not None and not isinstance(item_features, str):
        raise ValueError(
            f"publish_rate={config.publish_rate} with a fixed item_features array of shape {np.shape(item_features)}: "
            "it cannot describe items published later; expected item_features='meta' or None (and encode the "
            "texts of info['published'] as they appear)"
        )


def _user_records(population: Population) -> np.ndarray:
    people = np.empty(len(population), USER_DTYPE)
    people["no_click"], people["temperature"] = population.no_click_utility, population.click_temperature
    people["leave"], people["rating_bias"] = population.leave_threshold, population.rating_bias
    people["rating_propensity"], people["spam"] = population.rating_propensity, population.spam
    people["patience"] = population.patience
    return people


def _attribute_matrix(domain: Domain, catalog: Catalog) -> np.ndarray:
    missing = [a for a in domain.attribute_names if a not in catalog.attributes]
    if missing:
        raise ValueError(
            f"catalog lacks attribute(s) {missing} that the {domain.name} domain's responses need; "
            f"expected columns {list(domain.attribute_names)}"
        )
    return np.column_stack([catalog.attributes[a] for a in domain.attribute_names]).astype(np.float32)


def _coprime_strides(n: int, rng: np.random.Generator) -> np.ndarray:
    if n == 1:
        return np.ones(1, np.int64)
    strides = np.arange(1, n, dtype=np.int64)
    strides = strides[np.gcd(strides, n) == 1]
    return rng.choice(strides, size=min(len(strides), MAX_STRIDES), replace=False)


def _resolve_features(item_features: str | np.ndarray | None, catalog: Catalog) -> np.ndarray | None:
    if item_features is None:
        return None
    if isinstance(item_features, str):
        if item_features != "meta":
            raise ValueError(f"item_features={item_features!r}; expected 'meta', None or a (num_items, d) array")
        return catalog.meta_features()
    try:
        features = np.asarray(item_features, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"item_features could not be read as numbers ({error}); expected a (num_items, d) float array"
        ) from None
    if features.ndim != 2 or features.shape[0] != catalog.num_items:
        raise ValueError(
            f"item_features has shape {features.shape}; expected ({catalog.num_items}, d) for this catalog"
        )
    if not np.isfinite(features).all():
        raise ValueError("item_features contains NaN or inf; expected finite values")
    return features
