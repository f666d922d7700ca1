"""The simulation, written once and batched over ``B`` concurrent sessions.

:class:`Simulator` holds the world (catalogue, population, feedback channel) and the state of ``B``
sessions as arrays shaped ``(B, ...)``. The single-user environment is this core with ``B = 1``, the
vector environment the same core with ``B = N``; both are thin Gymnasium faces over it.

One step, for every session at once: look up the slate's items, mask repeated slots, compute each
item's hidden utility for the user, let the choice model pick a slot (or none), turn a consumption into
the domain's implicit signals and, rarely, a rating with review text, hand those records to the feedback
channel, collect the records due now, score them into the reward, evolve the user (fatigue, interest
drift, mood, time budget), and draw the next candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from envs.catalog import Catalog
from envs.choice import make_choice_model
from envs.config import SimConfig
from envs.domain import Domain, sigmoid, write_opinion
from envs.feedback import EMPTY_FEEDBACK, FEEDBACK_DTYPE, DelayTable, FeedbackChannel
from envs.signals import NUM_SIGNALS, VALUE_NEUTRAL, Signal
from envs.users import Population, UserParams

FEEDBACK_FIELDS = ("present", "kind", "item_index", "position", "value", "age")
"""Columns of the ``feedback`` observation: 1 for a real row, the signal kind, the item's catalogue
index, its slate position, the value, and the delay in steps between showing and arrival."""

MAX_STRIDES = 1024


@dataclass(frozen=True)
class StepOutcome:
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
    """

    def __init__(
        self,
        domain: Domain,
        config: SimConfig,
        num_envs: int = 1,
        catalog: Catalog | None = None,
        item_features: str | np.ndarray | None = "meta",
        max_episode_steps: int | None = None,
    ) -> None:
        self.domain, self.config, self.num_envs = domain, config, num_envs
        self.catalog = catalog or Catalog.generate(domain, config.num_items, seed=config.population_seed)
        n_items, m = self.catalog.num_items, config.num_candidates
        if m > n_items:
            raise ValueError(f"num_candidates={m} exceeds the catalog's {n_items} items")
        if config.num_users < num_envs:
            raise ValueError(f"num_users={config.num_users} is below num_envs={num_envs}; each session needs its own user")
        self.max_episode_steps = max_episode_steps
        self.features = _resolve_features(item_features, self.catalog)
        params = UserParams(mean_rating_propensity=config.rating_propensity, spam_fraction=config.spam_fraction)
        self.population = Population(config.num_users, self.catalog.num_topics, config.population_seed, params)
        self.choice_model = make_choice_model(config.choice_model, config.position_bias)
        delays = {} if config.delays == "none" else (config.delays or domain.default_delays)
        self.channel = FeedbackChannel(
            DelayTable.parse(delays, config.delay_scale, config.max_delay), config.privacy_epsilon
        )
        weights = {**domain.reward_weights, **(config.reward_weights or {})}
        self.reward_weight = np.zeros(NUM_SIGNALS)
        for name, w in weights.items():
            self.reward_weight[Signal.parse(name)] = w
        layout_rng = np.random.default_rng([config.population_seed, 1])
        self._order = layout_rng.permutation(n_items)
        self._strides = _coprime_strides(n_items, layout_rng)
        self._signals = np.array(domain.implicit_signals, dtype=np.int16)
        self.observation_space, self.action_space = self._spaces()
        self._allocate()

    # ------------------------------------------------------------------ spaces and state

    def _spaces(self) -> tuple[spaces.Dict, spaces.MultiDiscrete]:
        c, n_items = self.config, self.catalog.num_items
        obs = {
            "candidates": spaces.Box(0, n_items - 1, (c.num_candidates,), np.int64),
            "history": spaces.Box(-1, n_items - 1, (c.history_length,), np.int64),
            "feedback": spaces.Box(-np.inf, np.inf, (c.feedback_length, len(FEEDBACK_FIELDS)), np.float32),
            "user_id": spaces.Box(0, c.num_users - 1, (1,), np.int64),
        }
        if self.features is not None:
            obs["candidate_features"] = spaces.Box(
                -np.inf, np.inf, (c.num_candidates, self.features.shape[1]), np.float32
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
        self.feedback_obs = np.zeros((b, c.feedback_length, len(FEEDBACK_FIELDS)), np.float32)
        self.env_of_user = np.full(c.num_users, -1, np.int64)
        self.clock = 0
        self._next_session = 0
        self._next_impression = 0

    def reset_world(self) -> None:
        """A fresh world: drift undone, no sessions, no pending feedback, clock at 0."""
        self.population.restore()
        self.channel.clear()
        self._allocate()

    # ------------------------------------------------------------------ sessions

    def start_sessions(self, envs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """End whatever runs in ``envs`` ``(n,)`` and start new sessions there with users who are
        not active elsewhere. Returns the feedback that waited for those users."""
        self.end_sessions(envs)
        users = self._draw_free_users(len(envs), rng)
        pop = self.population
        self.user[envs] = users
        self.env_of_user[users] = envs
        self.session[envs] = self._next_session + np.arange(len(envs))
        self._next_session += len(envs)
        self.steps[envs] = 0
        self.interests[envs] = pop.interests[users]
        self.fatigue[envs] = 0.0
        self.mood[envs] = 1.0
        self.budget[envs] = pop.patience[users]
        self.history[envs] = -1
        self.candidates[envs] = self._draw_candidates(len(envs), rng)
        waiting = self.channel.take_backlog(users, envs, self.clock)
        self.feedback_obs[envs] = 0.0
        self._write_feedback_obs(waiting)
        return waiting

    def end_sessions(self, envs: np.ndarray) -> None:
        """Write the drifted interests of ``envs``' users back to the population; mark them away."""
        active = envs[self.session[envs] >= 0]
        users = self.user[active]
        self.population.interests[users] = self.interests[active]
        self.env_of_user[users] = -1
        self.session[active] = -1

    def _draw_free_users(self, n: int, rng: np.random.Generator) -> np.ndarray:
        users = rng.integers(self.config.num_users, size=n)
        while True:
            taken = self.env_of_user[users] >= 0
            _, first = np.unique(users, return_index=True)
            repeated = np.ones(n, bool)
            repeated[first] = False
            clash = taken | repeated
            if not clash.any():
                return users
            users[clash] = rng.integers(self.config.num_users, size=int(clash.sum()))

    def _draw_candidates(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, M)`` distinct catalogue indices per row, O(M) per row whatever the catalogue size:
        an arithmetic progression with a random start and a stride coprime to ``N`` over a fixed random
        permutation of the catalogue."""
        n_items = self.catalog.num_items
        start = rng.integers(n_items, size=(n, 1))
        stride = self._strides[rng.integers(len(self._strides), size=(n, 1))]
        return self._order[(start + stride * np.arange(self.config.num_candidates)) % n_items]

    # ------------------------------------------------------------------ the step

    def utility(self, items: np.ndarray) -> np.ndarray:
        """Hidden utility ``(B, j)`` float32 of catalogue items ``(B, j)`` for each session's user now."""
        cat, c = self.catalog, self.config
        rows = np.arange(self.num_envs)[:, None]
        topic, second, w = cat.topic[items], cat.secondary_topic[items], cat.secondary_weight[items]
        affinity = (1 - w) * self.interests[rows, topic] + w * self.interests[rows, second]
        fatigue = (1 - w) * self.fatigue[rows, topic] + w * self.fatigue[rows, second]
        return affinity + c.quality_weight * cat.quality[items] - c.fatigue_weight * fatigue

    def candidate_utility(self) -> np.ndarray:
        """``(B, M)`` hidden utility of the current candidates: for the oracle and for metrics only."""
        return self.utility(self.candidates)

    def step(self, actions: np.ndarray, rng: np.random.Generator) -> StepOutcome:
        """Advance every session by one slate. ``actions``: ``(B, k)`` validated candidate indices."""
        c, pop = self.config, self.population
        items = np.take_along_axis(self.candidates, actions, axis=1)
        masked = _repeated_slots(actions)
        if masked.any() and c.duplicates == "error":
            b, j = np.argwhere(masked)[0]
            raise ValueError(
                f"slate {actions[b].tolist()} repeats candidate {actions[b, j]} at position {j} "
                f"(sub-env {b}); duplicates='error' requires distinct slate entries"
            )
        utility = self.utility(items)
        users = self.user
        offered = np.where(masked, -np.inf, utility)
        choice = self.choice_model.choose(offered, pop.no_click_utility[users], pop.click_temperature[users], rng)
        choice = self._misclick(choice, masked, rng)
        impressions = self._next_impression + np.arange(self.num_envs)
        self._next_impression += self.num_envs
        consumers = np.flatnonzero(choice >= 0)
        consumed = items[consumers, choice[consumers]]
        liked = utility[consumers, choice[consumers]] - pop.no_click_utility[users[consumers]]
        satisfaction = sigmoid(1.5 * liked + rng.normal(0.0, 0.3, len(consumers))).astype(np.float32)
        attrs = {name: column[consumed] for name, column in self.catalog.attributes.items()}
        response = self.domain.respond(satisfaction, attrs, rng)
        records = self._records(consumers, consumed, choice[consumers], impressions, response, satisfaction, rng)
        self.channel.submit(records, self.clock, rng)
        arrived = self.channel.collect(self.clock, self.session, self.env_of_user)
        reward = self._reward(arrived)
        self._evolve(consumers, consumed, satisfaction, response.engagement)
        terminated = (self.budget <= 0) | (self.mood < pop.leave_threshold[users])
        truncated = ~terminated & (
            self.steps >= self.max_episode_steps if self.max_episode_steps else np.zeros(self.num_envs, bool)
        )
        self.clock += 1
        self.candidates = self._draw_candidates(self.num_envs, rng)
        self.feedback_obs = np.zeros_like(self.feedback_obs)
        self._write_feedback_obs(arrived)
        return StepOutcome(
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            feedback=arrived,
            utility=np.where(masked, np.float32(0), utility),
            masked=masked,
            impression_id=impressions,
            choice=choice,
        )

    def _misclick(self, choice: np.ndarray, masked: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """With probability ``misclick_rate`` the user clicks a uniformly random slot (none if empty)."""
        slips = np.flatnonzero(rng.random(self.num_envs) < self.config.misclick_rate)
        if len(slips):
            slot = rng.integers(masked.shape[1], size=len(slips))
            choice = choice.copy()
            choice[slips] = np.where(masked[slips, slot], -1, slot)
        return choice

    def _records(self, consumers, items, positions, impressions, response, satisfaction, rng) -> np.ndarray:
        """Feedback records ``(E,)`` for ``C`` consumptions: every implicit signal of the domain, plus a
        rating (and sometimes review text) from users who bother to rate."""
        c, pop, n = self.config, self.population, len(consumers)
        if n == 0:
            return EMPTY_FEEDBACK
        users = self.user[consumers]
        rates = response.explicit_allowed & (rng.random(n) < pop.rating_propensity[users])
        raters = np.flatnonzero(rates)
        stars = np.clip(
            np.rint(1 + 4 * satisfaction[raters] + pop.rating_bias[users[raters]] + rng.normal(0, c.rating_noise, len(raters))),
            1,
            5,
        )
        spam = pop.spam[users[raters]]
        stars[spam] = rng.integers(1, 6, size=int(spam.sum()))
        writers = raters[rng.random(len(raters)) < 0.5] if self.domain.text_signal is not None else raters[:0]

        rows = np.concatenate([np.tile(np.arange(n), len(self._signals)), raters, writers])
        kinds = np.concatenate([
            np.repeat(self._signals, n),
            np.full(len(raters), Signal.RATING, np.int16),
            np.full(len(writers), self.domain.text_signal or 0, np.int16),
        ])
        values = np.concatenate([*(response.signals[Signal(k)] for k in self._signals), stars, np.ones(len(writers))])
        records = np.empty(len(rows), FEEDBACK_DTYPE)
        records["impression_id"] = impressions[consumers[rows]]
        records["user_id"] = users[rows]
        records["env_index"] = consumers[rows]
        records["session_id"] = self.session[consumers[rows]]
        records["item_index"] = items[rows]
        records["position"] = positions[rows]
        records["kind"] = kinds
        records["value"] = values
        records["step_shown"] = self.clock
        records["step_arrived"] = -1
        if len(writers):
            star_of = dict(zip(raters.tolist(), stars.tolist(), strict=True))
            phrasing = rng.integers(0, 1 << 15, size=len(writers))
            texts = [write_opinion(self.domain.noun, int(star_of[w]), int(p)) for w, p in zip(writers.tolist(), phrasing.tolist(), strict=True)]
            records["text"][len(rows) - len(writers):] = texts
        return records

    def _reward(self, arrived: np.ndarray) -> np.ndarray:
        kinds = arrived["kind"]
        gain = self.reward_weight[kinds] * (arrived["value"] - VALUE_NEUTRAL[kinds])
        return np.bincount(arrived["env_index"], weights=gain, minlength=self.num_envs)

    def _evolve(self, consumers, items, satisfaction, engagement) -> None:
        """Fatigue decays and builds on consumed topics; interests drift toward liked topics and away
        from disliked ones; mood follows satisfaction; time budget is spent."""
        c, cat = self.config, self.catalog
        self.steps += 1
        self.fatigue *= c.fatigue_decay
        outcome = np.full(self.num_envs, 0.2, np.float32)
        outcome[consumers] = 2.0 * satisfaction
        self.mood = 0.85 * self.mood + 0.15 * outcome
        spent = np.ones(self.num_envs, np.float32)
        spent[consumers] += engagement
        self.budget -= spent
        if len(consumers) == 0:
            return
        w = cat.secondary_weight[items]
        primary, second = cat.topic[items], cat.secondary_topic[items]
        self.fatigue[consumers, primary] += 1 - w
        self.fatigue[consumers, second] += w
        drift = c.drift_rate * (2 * satisfaction - 1)
        self.interests[consumers, primary] = np.clip(self.interests[consumers, primary] + drift * (1 - w), -4, 4)
        self.interests[consumers, second] = np.clip(self.interests[consumers, second] + drift * w, -4, 4)
        self.history[consumers, :-1] = self.history[consumers, 1:]
        self.history[consumers, -1] = items

    # ------------------------------------------------------------------ observations

    def _write_feedback_obs(self, records: np.ndarray) -> None:
        """Put up to ``feedback_length`` arrived records per session into ``feedback_obs``."""
        if not len(records):
            return
        env = records["env_index"]
        order = np.argsort(env, kind="stable")
        env = env[order]
        rank = np.arange(len(env)) - np.searchsorted(env, env, side="left")
        keep = rank < self.config.feedback_length
        r = records[order[keep]]
        self.feedback_obs[env[keep], rank[keep]] = np.column_stack([
            np.ones(len(r)), r["kind"], r["item_index"], r["position"], r["value"], r["step_arrived"] - r["step_shown"]
        ])

    def observation(self, rows: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """Observation arrays ``(len(rows), ...)`` for the given sessions; never aliases internal state."""
        obs = {
            "candidates": self.candidates[rows],
            "history": self.history[rows].copy(),
            "feedback": self.feedback_obs[rows],
            "user_id": self.user[rows, None].copy(),
        }
        if self.features is not None:
            obs["candidate_features"] = self.features[obs["candidates"]]
        if isinstance(rows, slice):
            obs["candidates"] = obs["candidates"].copy()
            obs["feedback"] = obs["feedback"].copy()
        return obs


def _repeated_slots(actions: np.ndarray) -> np.ndarray:
    """``(B, k)`` True where a slot repeats a candidate shown in an earlier slot of the same slate."""
    same = actions[:, :, None] == actions[:, None, :]
    return np.tril(same, k=-1).any(axis=2)


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
    features = np.asarray(item_features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != catalog.num_items:
        raise ValueError(
            f"item_features has shape {features.shape}; expected ({catalog.num_items}, d) for this catalog"
        )
    if not np.isfinite(features).all():
        raise ValueError("item_features contains NaN or inf; expected finite values")
    return features
