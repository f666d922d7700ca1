"""The simulation, written once and batched over ``B`` concurrent sessions.

:class:`Simulator` holds the world (catalogue, population, feedback channel) and the state of ``B``
sessions as arrays shaped ``(B, ...)``. The single-user environment is this core with ``B = 1``, the
vector environment the same core with ``B = N``; both are thin Gymnasium faces over it.

A step is two compiled passes — the user dynamics (:mod:`envs.dynamics`) and the feedback channel
(:mod:`envs.feedback`) — each reading uniforms from a stream keyed by one draw from the caller's seeded
``numpy.random.Generator`` (:mod:`envs.draws`).
Arrays handed out in observations are never written again by the simulator.
"""

from __future__ import annotations

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
    ITEM_DTYPE,
    USER_DTYPE,
    Dynamics,
    draw_candidates,
    item_utility,
    step,
    step_parallel,
    uniforms_per_session,
)
from envs.feedback import FEEDBACK_DTYPE, DelayTable, FeedbackChannel
from envs.responses import RESPONSES
from envs.signals import NUM_SIGNALS, VALUE_HIGH, VALUE_NEUTRAL, Signal, reward_mask
from envs.users import Population, UserParams

FEEDBACK_FIELDS = ("present", "kind", "item_index", "position", "value", "age")
"""Columns of the ``feedback`` observation: 1 for a real row, the signal kind, the item's catalogue
index, its slate position, the value, and the delay in steps between showing and arrival."""

MAX_STRIDES = 1024
PARALLEL_FROM = 256
"""Batches of at least this many sessions are stepped on all of numba's threads."""


class StepOutcome(NamedTuple):
    """What one batched step produced.

    Attributes:
        reward: ``(B,)`` float64 weighted feedback that arrived this step.
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


class Simulator:
    """``num_envs`` concurrent sessions of one domain's world.

    Args:
        domain: the domain (news, ecommerce, music, video or your own).
        config: validated world settings.
        num_envs: ``B``, sessions simulated at once.
        catalog: items to recommend; generated from ``config`` when None.
        item_features: ``"meta"``, an ``(num_items, d)`` array, or None (no feature observation).
        max_episode_steps: truncate sessions after this many steps (None: never).
        population: the users; drawn from ``config`` when None (a fitted one for real-data worlds).
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
        self.catalog = catalog or Catalog.generate(domain, config.num_items, seed=config.population_seed)
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
            UserParams(mean_rating_propensity=config.rating_propensity, spam_fraction=config.spam_fraction),
        )
        if len(self.population) != config.num_users or self.population.interests.shape[1] != self.catalog.num_topics:
            raise ValueError(
                f"population has {len(self.population)} users over {self.population.interests.shape[1]} topics; "
                f"expected num_users={config.num_users} over the catalog's {self.catalog.num_topics} topics"
            )
        delays = {} if config.delays == "none" else (config.delays or domain.default_delays)
        self.channel = FeedbackChannel(
            DelayTable.parse(delays, config.delay_scale, config.max_delay), config.privacy_epsilon
        )
        self.reward_weight = _reward_weights(domain, config)
        dynamics = Dynamics(
            CHOICE_MODELS[config.choice_model],
            config.position_bias,
            config.misclick_rate,
            config.rating_noise,
            config.quality_weight,
            config.fatigue_weight,
            config.fatigue_decay,
            config.drift_rate,
            max_episode_steps or 0,
            -1 if domain.text_signal is None else int(domain.text_signal),
            RESPONSES[domain.response],
        )
        self._world = (
            _item_records(self.catalog),
            _attribute_matrix(domain, self.catalog),
            _user_records(self.population),
            np.array(domain.implicit_signals, dtype=np.int16),
        )
        self._strides = _coprime_strides(n_items, np.random.default_rng([config.population_seed, 1]))
        self._params = dynamics.as_array()
        self._stride = uniforms_per_session(dynamics.choice_model, config.slate_size)
        self._kernel = step_parallel if num_envs >= PARALLEL_FROM else step
        self.observation_space, self.action_space = self._spaces()
        self._allocate()

    # ------------------------------------------------------------------ spaces and state

    def _spaces(self) -> tuple[spaces.Dict, spaces.MultiDiscrete]:
        c, n_items = self.config, self.catalog.num_items
        feedback_high = np.array(
            [1, NUM_SIGNALS - 1, n_items - 1, c.slate_size - 1, VALUE_HIGH.max(), 2**31], np.float32
        )
        obs = {
            "candidates": spaces.Box(0, n_items - 1, (c.num_candidates,), np.int64),
            "history": spaces.Box(-1, n_items - 1, (c.history_length,), np.int64),
            "feedback": spaces.Box(
                0.0, np.broadcast_to(feedback_high, (c.feedback_length, len(FEEDBACK_FIELDS))), dtype=np.float32
            ),
            "user_id": spaces.Box(0, c.num_users - 1, (1,), np.int64),
        }
        if self.features is not None:
            low, high = self.features.min(axis=0), self.features.max(axis=0)
            shape = (c.num_candidates, self.features.shape[1])
            obs["candidate_features"] = spaces.Box(
                np.broadcast_to(low, shape), np.broadcast_to(high, shape), dtype=np.float32
            )
        return spaces.Dict(obs), spaces.MultiDiscrete([c.num_candidates] * c.slate_size)

    def _allocate(self) -> None:
        b, c, t = self.num_envs, self.config, self.catalog.num_topics
        self.user = np.zeros(b, np.int64)
        self.session = np.full(b, -1, np.int64)
        self.steps = np.zeros(b, np.int64)
        self.interests = np.zeros((b, t), np.float32)
        self.fatigue = np.zeros((b, t), np.float32)
        self.mood = np.ones(b, np.float32)
        self.budget = np.zeros(b, np.float32)
        self.history = np.full((b, c.history_length), -1, np.int64)
        self.candidates = np.zeros((b, c.num_candidates), np.int64)
        self.progression = np.zeros((b, 2), np.int64)  # (start, stride) behind each row of candidates
        self.feedback_obs = np.zeros((b, c.feedback_length, len(FEEDBACK_FIELDS)), np.float32)
        self.env_of_user = np.full(c.num_users, -1, np.int64)
        self.clock = 0
        self._next_session = 0
        self._next_impression = 0
        slots = len(self.domain.implicit_signals) + 2  # implicit signals, a rating and its text
        self._records = np.empty((b, slots), FEEDBACK_DTYPE)
        self._emitted, self._filled = np.zeros(b, np.int64), np.zeros(b, np.int64)
        self._scratch = np.empty((b, max(c.slate_size, slots)))
        self._reward_sink = np.zeros(b)  # where the reward of feedback released at a session start goes
        self._handed_out = False

    def reset_world(self) -> None:
        """A fresh world: drift undone, no sessions, no pending feedback, clock at 0."""
        self.population.restore()
        self.channel.clear()
        self._allocate()

    _STATE = (
        "user",
        "session",
        "steps",
        "interests",
        "fatigue",
        "mood",
        "budget",
        "history",
        "candidates",
        "feedback_obs",
        "env_of_user",
    )

    def state_dict(self) -> dict[str, np.ndarray]:
        """The whole mutable world as named arrays (for checkpoints; saved without pickle)."""
        state = {name: getattr(self, name).copy() for name in self._STATE}
        state["counters"] = np.array([self.clock, self._next_session, self._next_impression], np.int64)
        state["population_interests"] = self.population.interests.copy()
        state.update({f"channel_{k}": v for k, v in self.channel.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned; shapes must match this world's."""
        for name in self._STATE:
            current = getattr(self, name)
            value = np.asarray(state[name])
            if value.shape != current.shape:
                raise ValueError(f"saved simulator state {name!r} has shape {value.shape}; expected {current.shape}")
            setattr(self, name, value.astype(current.dtype, copy=True))
        self.clock, self._next_session, self._next_impression = (int(x) for x in state["counters"])
        self.progression = _progression_of(self.candidates, self.catalog.num_items)
        self.population.interests[:] = state["population_interests"]
        self.channel.load_state_dict(
            {k.removeprefix("channel_"): v for k, v in state.items() if k.startswith("channel_")}
        )
        self._handed_out = True

    # ------------------------------------------------------------------ sessions

    def start_sessions(self, envs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """End whatever runs in ``envs`` ``(n,)`` and start new sessions there with users who are
        not active elsewhere (uniform among the free ones). Returns the feedback that waited for those users."""
        if self._handed_out:
            self.candidates, self.history = self.candidates.copy(), self.history.copy()
            self.feedback_obs = self.feedback_obs.copy()
        users = np.empty(len(envs), np.int64)
        pop = self.population
        _restart(
            envs,
            users,
            self._next_session,
            (pop.interests, pop.patience),
            (
                self.user,
                self.env_of_user,
                self.session,
                self.steps,
                self.interests,
                self.fatigue,
                self.mood,
                self.budget,
                self.history,
            ),
            (self.candidates, self.progression, self.feedback_obs),
            self.catalog.num_items,
            self._strides,
            draw_key(rng),
        )
        self._next_session += len(envs)
        waiting = self.channel.release(users, self.env_of_user, self.clock)
        _score(waiting, self.reward_weight, VALUE_NEUTRAL, self._reward_sink, self.feedback_obs, self._filled)
        return waiting

    def end_sessions(self, envs: np.ndarray) -> None:
        """Write the drifted interests of ``envs``' users back to the population; mark them away."""
        _end(envs, self.user, self.session, self.interests, self.env_of_user, self.population.interests)

    # ------------------------------------------------------------------ the step

    def candidate_utility(self) -> np.ndarray:
        """``(B, M)`` hidden utility of the current candidates: for the oracle and for metrics only
        (the kernel's own :func:`envs.dynamics.item_utility`)."""
        out = np.empty(self.candidates.shape, np.float32)
        _utilities(self.candidates, self.interests, self.fatigue, self._world[0], self._params, out)
        return out

    def step(self, actions: np.ndarray, rng: np.random.Generator) -> StepOutcome:
        """Advance every session by one slate. ``actions``: ``(B, k)`` validated candidate indices."""
        b, k = actions.shape
        if self.config.duplicates == "error":
            _refuse_repeats(actions)
        utility, masked = np.empty((b, k), np.float32), np.empty((b, k), bool)
        choice, ended = np.empty(b, np.int64), np.empty((b, 2), bool)
        next_candidates, next_history = (
            np.empty(self.candidates.shape, np.int64),
            np.empty(self.history.shape, np.int64),
        )
        state = (self.session, self.steps, self.interests, self.fatigue, self.mood, self.budget, self.history)
        out = (utility, masked, choice, ended, next_history, self._records, self._emitted, self._scratch)
        self._kernel(
            draw_key(rng),
            self._stride,
            actions,
            self.progression,
            next_candidates,
            self._strides,
            self._world,
            self.user,
            state,
            self._params,
            self.clock,
            self._next_impression,
            out,
        )
        impressions = np.arange(self._next_impression, self._next_impression + b)
        self._next_impression += b
        fresh = self._records.reshape(-1)[: _compact(self._records, self._emitted)]
        arrived = self.channel.advance(fresh, self.clock, rng, self.session, self.env_of_user)
        reward = np.zeros(b)
        self.feedback_obs = np.zeros(self.feedback_obs.shape, np.float32)
        _score(arrived, self.reward_weight, VALUE_NEUTRAL, reward, self.feedback_obs, self._filled)
        self.clock += 1
        self.candidates, self.history = next_candidates, next_history
        self._handed_out = False
        return StepOutcome(reward, ended[:, 0], ended[:, 1], arrived, utility, masked, impressions, choice)

    # ------------------------------------------------------------------ observations

    def observation(self, rows: np.ndarray | slice | int = slice(None)) -> dict[str, np.ndarray]:
        """Observation arrays ``(len(rows), ...)`` for the given sessions (one session's, unbatched, for
        an int)."""
        self._handed_out |= not isinstance(rows, np.ndarray)  # views of the live arrays went out
        obs = {
            "candidates": self.candidates[rows],
            "history": self.history[rows],
            "feedback": self.feedback_obs[rows],
            "user_id": self.user[rows, None].copy(),
        }
        if self.features is not None:
            obs["candidate_features"] = self.features.take(obs["candidates"], axis=0)  # 3x faster than [...]
        return obs


@njit(cache=True)
def _score(records, weight, neutral, reward, feedback_obs, filled):
    """Add each record's ``weight * (value - neutral)`` to its env's reward and put up to
    ``feedback_length`` records per env into ``feedback_obs`` ``(B, L, 6)`` (after the rows already
    ``filled`` ``(B,)``, which it overwrites: scratch)."""
    filled[:] = 0
    for r in range(records.shape[0]):
        env, kind, value = records[r]["env_index"], records[r]["kind"], records[r]["value"]
        reward[env] += weight[kind] * (value - neutral[kind])
        row = filled[env]
        if row < feedback_obs.shape[1]:
            feedback_obs[env, row, 0] = 1.0
            feedback_obs[env, row, 1] = kind
            feedback_obs[env, row, 2] = records[r]["item_index"]
            feedback_obs[env, row, 3] = records[r]["position"]
            feedback_obs[env, row, 4] = value
            feedback_obs[env, row, 5] = records[r]["step_arrived"] - records[r]["step_shown"]
            filled[env] = row + 1


@njit(cache=True)
def _compact(records, emitted):
    """Move the ``emitted[b]`` records of each session's row of ``records`` ``(B, slots)`` to the front of
    the flat array, in session order; returns their count."""
    flat = records.reshape(-1)
    n = 0
    for b in range(records.shape[0]):
        for s in range(emitted[b]):
            flat[n] = records[b, s]
            n += 1
    return n


@njit(cache=True)
def _restart(envs, users, first_session, population, state, observed, num_items, strides, key):
    """End the sessions in ``envs`` (as :func:`_end`) and start new ones there: the user of ``envs[r]``
    is drawn uniformly among those not active (written to ``users[r]``), and starts with interests from
    the population, no fatigue, full mood, a time budget of their patience, no history, new candidates
    and no feedback rows. Stream positions: ``2r, 2r + 1`` the candidates of restart ``r``, then the
    user draws (rejection sampling: redrawn while the user is active)."""
    interests, patience = population
    user, env_of_user, session, steps, current, fatigue, mood, budget, history = state
    candidates, progression, feedback_obs = observed
    _end(envs, user, session, current, env_of_user, interests)
    position = 2 * envs.shape[0]
    for r in range(envs.shape[0]):
        env, usr = envs[r], -1
        while usr < 0 or env_of_user[usr] >= 0:
            a, position = uniform(key, position)
            usr = int(a * env_of_user.shape[0])
        users[r] = usr
        user[env], env_of_user[usr], session[env], steps[env] = usr, env, first_session + r, 0
        current[env] = interests[usr]
        fatigue[env] = 0.0
        mood[env], budget[env] = 1.0, patience[usr]
        history[env] = -1
        feedback_obs[env] = 0.0
        draw_candidates(candidates, progression, env, num_items, strides, key, 2 * r)


@njit(cache=True)
def _end(envs, user, session, interests, env_of_user, population_interests):
    """Write back the interests of the users active in ``envs`` and mark them away."""
    for env in envs:
        if session[env] >= 0:
            population_interests[user[env]] = interests[env]
            env_of_user[user[env]] = -1
            session[env] = -1


@njit(cache=True)
def _utilities(candidates, interests, fatigue, items, params, out):
    p = params[0]
    for b in range(candidates.shape[0]):
        for j in range(candidates.shape[1]):
            out[b, j] = item_utility(interests, fatigue, b, items[candidates[b, j]], p)


def _refuse_repeats(actions: np.ndarray) -> None:
    same = np.tril(actions[:, :, None] == actions[:, None, :], k=-1).any(axis=2)
    if same.any():
        b, j = np.argwhere(same)[0]
        raise ValueError(
            f"slate {actions[b].tolist()} repeats candidate {actions[b, j]} at position {j} "
            f"(sub-env {b}); duplicates='error' requires distinct slate entries"
        )


def _reward_weights(domain: Domain, config: SimConfig) -> np.ndarray:
    """``(NUM_SIGNALS,)`` reward per unit of each signal: the domain's weights, replaced by the config's where
    given, zero outside ``config.reward_signals``."""
    weights = np.zeros(NUM_SIGNALS)
    for name, w in {**domain.reward_weights, **(config.reward_weights or {})}.items():
        weights[Signal.parse(name)] = w
    return weights * reward_mask(config.reward_signals)


def _item_records(catalog: Catalog) -> np.ndarray:
    items = np.empty(catalog.num_items, ITEM_DTYPE)
    items["topic"], items["second"] = catalog.topic, catalog.secondary_topic
    items["weight"], items["quality"] = catalog.secondary_weight, catalog.quality
    return items


def _user_records(population: Population) -> np.ndarray:
    people = np.empty(len(population), USER_DTYPE)
    people["no_click"], people["temperature"] = population.no_click_utility, population.click_temperature
    people["leave"], people["rating_bias"] = population.leave_threshold, population.rating_bias
    people["rating_propensity"], people["spam"] = population.rating_propensity, population.spam
    return people


def _attribute_matrix(domain: Domain, catalog: Catalog) -> np.ndarray:
    missing = [a for a in domain.attribute_names if a not in catalog.attributes]
    if missing:
        raise ValueError(
            f"catalog lacks attribute(s) {missing} that the {domain.name} domain's responses need; "
            f"expected columns {list(domain.attribute_names)}"
        )
    return np.column_stack([catalog.attributes[a] for a in domain.attribute_names]).astype(np.float32)


def _progression_of(candidates: np.ndarray, num_items: int) -> np.ndarray:
    """``(B, 2)`` the (start, stride) of each row of ``candidates`` ``(B, M)`` (see
    :func:`envs.dynamics.draw_candidates`)."""
    stride = (candidates[:, 1] - candidates[:, 0]) % num_items if candidates.shape[1] > 1 else 1
    return np.column_stack([candidates[:, 0], np.broadcast_to(stride, len(candidates))]).astype(np.int64)


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
