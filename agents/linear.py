"""The linear reward model shared by LinUCB and linear Thompson sampling, learned under delayed feedback.

An item ``v`` (its ``candidate_features`` row, ``(d,)``) shown to a user summed up by ``u = [p, s, l]``
``(3d,)`` — engagement profile, this session's consumption, latest consumed item; see
:mod:`agents.context` — is described by ``x = [1, v, p ⊙ v, s ⊙ v, l ⊙ v]`` ``(1 + 4d,)``: item effects,
and how much the item resembles the user's taste, their session and their very last pick. The model is
ridge regression of an item's label on ``x``, kept as sufficient statistics ``A = λI + Σ x xᵀ`` and ``b = Σ r x``:
its arrived credit (:mod:`agents.credit`) when the label strategy's positive is ``consumption`` (the default), or
whether it was bought (1 from its first purchase record with a value > 0, else 0) when it is ``purchase`` — then
the model is a linear probability model of the conversion, and the bandits rank candidates by it.

Delays follow the label strategy (:mod:`agents.labels`), as they do for the BERT agent. A copy of a shown item
enters the statistics when it becomes trainable: ``A += w x xᵀ`` and ``b += w c x``, with ``c`` the credit
that had arrived for it by then (its label; 0 for a negative copy) and ``w`` the strategy's weight (the model's
probability of a positive is ``clip(x·θ, 0, 1)``, its positives the items with a record of the positive signal);
a *live* copy is corrected in place afterwards, each later record adding ``w c x`` (its change of the label).
Under the ``oracle`` strategy the labels are those of the eventual records, given when the slate is shown; the
arrived records then only update the user context. For least squares, live labels are exactly "label, and
correct later": once all feedback is in, the statistics equal those of an oracle that knew the final labels.
Impressions are remembered for ``feedback_window`` slates; credit arriving later than that (e.g. waiting for the
user's next session) is dropped and counted as ``stale_records``.
"""

from __future__ import annotations

import numpy as np

from agents.base import Task, Transition, of_sessions, top_k
from agents.context import PARTS, UserContext
from agents.credit import FeedbackAgent, record_credit
from agents.examples import LIVE, SILENT, ExampleLog
from agents.labels import POSITIVES, Immediate, LabelStrategy
from agents.persistence import Counters
from agents.rater_feedback import RaterFeedback
from models.replay import first_occurrences


def interactions(user: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``x`` ``(B, J, 1 + 4d)`` float64 for user summaries ``(B, 3d)`` and item features ``(B, J, d)``."""
    parts = np.split(user[:, None, :], PARTS, axis=-1)
    return np.concatenate([np.ones((*items.shape[:2], 1)), items, *(part * items for part in parts)], axis=-1)


class FoldedInteractions:
    """The interaction features ``x`` of :func:`interactions` for user summaries ``(B, 3d)`` and item features
    ``(B, J, d)``, kept folded: ``x = [1, g_0 ⊙ v, g_1 ⊙ v, g_2 ⊙ v, g_3 ⊙ v]`` with each user's gains
    ``g = [1, p, s, l]`` ``(B, 4, d)``, so products with ``x`` cost ``d``-sized work per candidate and no ``x`` is
    built."""

    def __init__(self, user: np.ndarray, items: np.ndarray) -> None:
        parts = user.reshape(len(user), PARTS, -1).astype(np.float64)
        self.gains = np.concatenate([np.ones_like(parts[:, :1]), parts], axis=1)
        self.items = items.astype(np.float64)

    def dot(self, theta: np.ndarray) -> np.ndarray:
        """``x·θ`` ``(B, J)`` for a weight vector ``θ`` ``(1 + 4d,)``, or one per row ``(B, 1 + 4d)``: ``θ`` folds onto
        each user's item weights ``w = Σ_a g_a ⊙ θ_a`` ``(B, d)``, so that ``x·θ = θ_0 + v·w``."""
        folded = (self.gains * theta[..., 1:].reshape(*theta.shape[:-1], PARTS + 1, -1)).sum(-2)
        return theta[..., :1] + np.matmul(self.items, folded[..., None])[..., 0]

    def quadratic(self, matrix: np.ndarray) -> np.ndarray:
        """``xᵀ S x`` ``(B, J)`` for a symmetric ``S`` ``(1 + 4d, 1 + 4d)``: with ``S``'s blocks ``S_ab`` ``(d, d)``
        over ``x``'s blocks and its first row ``s_a``, each user's ``Q = Σ_ab diag(g_a) S_ab diag(g_b)`` ``(d, d)`` and
        ``h = Σ_a g_a ⊙ s_a`` ``(d,)`` give ``xᵀ S x = S_00 + 2 v·h + vᵀ Q v`` (``O(B·16·d² + B·J·d²)`` instead of
        ``O(B·J·(4d)²)``)."""
        gains, v = self.gains, self.items
        n, d = gains.shape[1:]
        by_column = matrix[1:, 1:].reshape(n * d, n, d).transpose(2, 1, 0)  # [j, b, (a, i)] = S_ab[i, j]
        half = np.matmul(gains.transpose(2, 0, 1), by_column).reshape(d, len(gains), n, d)  # [j, u, a, i]
        quadratic = np.einsum("uai,juai->uij", gains, half)  # one small matmul per column j, then Σ_a g_a ⊙ ·
        linear = (gains * matrix[0, 1:].reshape(n, d)).sum(-2)
        return matrix[0, 0] + 2.0 * np.matmul(v, linear[..., None])[..., 0] + (np.matmul(v, quadratic) * v).sum(-1)


class ImpressionLog:
    """The last ``capacity`` slates, by impression id: who saw them ``(3d,)``, what was shown ``(k,)``, when, the
    credit that has arrived for each shown item ``(k,)`` (``touched``: whether any record has), and the summed
    weight of its live copies in the statistics ``(k,)``."""

    def __init__(self, capacity: int, user_dim: int, slate_size: int) -> None:
        self.ids = np.full(capacity, -1, np.int64)
        self.users = np.zeros((capacity, user_dim), np.float32)
        self.items = np.zeros((capacity, slate_size), np.int64)
        self.step = np.zeros(capacity, np.int64)
        self.credit = np.zeros((capacity, slate_size))
        self.touched = np.zeros((capacity, slate_size), bool)
        self.live_weight = np.zeros((capacity, slate_size))

    def add(self, ids: np.ndarray, users: np.ndarray, items: np.ndarray, step: int) -> None:
        """Remember impressions ``ids`` ``(B,)`` shown at ``step`` with user summaries ``(B, 3d)`` and items
        ``(B, k)``."""
        rows = ids % len(self.ids)
        self.ids[rows], self.users[rows], self.items[rows], self.step[rows] = ids, users, items, step
        self.credit[rows], self.touched[rows], self.live_weight[rows] = 0.0, False, 0.0

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The row ``(E,)`` of each impression ``ids`` ``(E,)``, -1 where it is no longer remembered."""
        rows = ids % len(self.ids)
        return np.where(self.ids[rows] == ids, rows, -1)

    def held(self, ids: np.ndarray) -> np.ndarray:
        return self.rows_of(ids) >= 0

    def state_dict(self) -> dict[str, np.ndarray]:
        names = ("ids", "users", "items", "step", "credit", "touched", "live_weight")
        return {name: getattr(self, name) for name in names}

    def load_state_dict(self, state) -> None:
        for name, value in state.items():
            getattr(self, name)[...] = value


class RidgeRegression:
    """Weighted ridge regression kept as sufficient statistics: ``A = λI + Σ w x xᵀ`` ``(D, D)`` and
    ``b = Σ w y x`` ``(D,)``; :meth:`solve` refreshes ``θ = A⁻¹ b`` and the covariance ``A⁻¹``."""

    def __init__(self, size: int, ridge: float) -> None:
        self.gram, self.target = ridge * np.eye(size), np.zeros(size)
        self.solve()

    def add(self, x: np.ndarray, weight: np.ndarray, label: np.ndarray) -> None:
        """Add examples ``x`` ``(n, D)`` with weights ``(n,)`` and labels ``(n,)``."""
        self.gram += (x * weight[:, None]).T @ x
        self.correct(x, weight * label)

    def correct(self, x: np.ndarray, change: np.ndarray) -> None:
        """Add ``change`` ``(n,)`` (weight × label change) to the labels of examples ``x`` ``(n, D)`` already in."""
        self.target += change @ x

    def solve(self) -> None:
        self.covariance = np.linalg.inv(self.gram)
        self.theta = self.covariance @ self.target

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"gram": self.gram, "target": self.target}

    def load_state_dict(self, state) -> None:
        self.gram, self.target = np.array(state["gram"]), np.array(state["target"])
        self.solve()


class LinearBandit(FeedbackAgent):
    """Base of the linear bandits: the model above; subclasses choose how to score (:meth:`scores`).

    Args:
        ridge: ``λ`` > 0, the prior precision.
        label: the label strategy (default :class:`agents.labels.Immediate`).
        feedback_window: impressions remembered for crediting late feedback (and copies waiting to be
            trainable: up to four per impression).
        update_every: batched steps between solves of the regression (``O(D³)`` each).
        rater_model: ``"naive"`` or ``"reliability"`` (:mod:`agents.rater_feedback`): whether arrived records are
            credited as they come, or with ratings de-biased and shrunk by their rater's reliability and private
            reports replaced by their estimates. Either way the rater model predicts the ratings.
        private_estimate: ``"posterior"`` or ``"unbiased"``, the estimate of a private report under
            ``reliability`` (:mod:`agents.private_feedback`).

    Attributes:
        model: the :class:`RidgeRegression`, solved by :meth:`update`.
    """

    def __init__(
        self,
        task: Task,
        seed: int = 0,
        ridge: float = 1.0,
        label: LabelStrategy | None = None,
        feedback_window: int = 16384,
        update_every: int = 1,
        rater_model: str = "naive",
        private_estimate: str = "posterior",
    ) -> None:
        if not ridge > 0:
            raise ValueError(f"ridge={ridge!r}; expected a number > 0")
        for name, value in (("feedback_window", feedback_window), ("update_every", update_every)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}={value!r}; expected an integer >= 1")
        super().__init__(task, seed)
        self.label = Immediate() if label is None else label
        if not isinstance(self.label, LabelStrategy):
            raise TypeError(f"label={label!r}; expected an agents.labels.LabelStrategy (e.g. Immediate())")
        self.update_every = int(update_every)
        self.ridge, self.feedback_window = ridge, int(feedback_window)
        self.context = UserContext(task)
        self.model = RidgeRegression(1 + (PARTS + 1) * self.context.dim, ridge)
        self.impressions = ImpressionLog(self.feedback_window, PARTS * self.context.dim, task.slate_size)
        self.label.check_domain(task.domain)
        self.examples = ExampleLog(self.label, 4 * self.feedback_window, learns=POSITIVES)
        self.clock, self.stale = 0, 0
        num_users = int(task.observation_space["user_id"].high.max()) + 1
        self.raters = RaterFeedback(rater_model, num_users, task.catalog.num_items, private_estimate)

    def attach(self, env) -> None:
        super().attach(env)
        self.raters.attach(env)

    def credit(self, transition: Transition) -> tuple[np.ndarray, np.ndarray]:
        """The arrived records ``(E,)`` as the rater model has them credited, and the reward each carries ``(E,)``;
        their ratings are logged in the rater model."""
        records, _ = super().credit(transition)
        self.raters.observe(records)
        records = self.raters.credit_records(records)
        return records, record_credit(records, self.weights)

    @property
    def theta(self) -> np.ndarray:
        return self.model.theta

    @property
    def covariance(self) -> np.ndarray:
        return self.model.covariance

    def candidates(self, obs: dict[str, np.ndarray]) -> FoldedInteractions:
        """``x`` of every candidate ``(B, M)`` for its session's user, folded."""
        return FoldedInteractions(self.context.describe(obs), obs["candidate_features"])

    def scores(self, obs: dict[str, np.ndarray], explore: bool) -> np.ndarray:
        """``(B, M)`` how good each candidate looks; greedy ``x·θ`` when not exploring."""
        return self.candidates(obs).dot(self.theta)

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        return top_k(self.scores(obs, explore), self.task.slate_size)

    def observe(self, transition: Transition) -> None:
        """Remember the shown slates, credit the arrived records, add the copies that become trainable."""
        obs = transition.obs
        ids = np.asarray(transition.info["impression_id"], np.int64)
        shown = np.take_along_axis(obs["candidates"], transition.action, axis=1)
        self.impressions.add(ids, self.context.describe(obs), shown, self.clock)
        self.examples.shown(ids, self.clock)
        records, reward = self.credit(transition)
        self.context.remember(records, reward)
        if self.label.eventual:
            self._credit(transition.eventual, record_credit(transition.eventual, self.weights))
        else:
            self._credit(records, reward)
        self._ingest(self.examples.due(self.clock))
        self.clock += 1

    def items_published(self, published) -> None:
        """Forget the features remembered for the slots' earlier items (the next observation of a slot records
        its new item's); the regression is over features, so it carries over to new items."""
        self.context.features[published.items] = 0.0

    def _credit(self, records: np.ndarray, reward: np.ndarray) -> None:
        """Add arrived ``records``' labels to their shown items — their ``reward`` ``(E,)`` under ``consumption``,
        1 for a shown item's first purchase under ``purchase`` — correcting the live copies already in the
        statistics; a shown item's first positive schedules the strategy's positive copies."""
        log = self.impressions
        rows = log.rows_of(records["impression_id"].astype(np.int64))
        self.stale += int((rows < 0).sum())
        known = rows >= 0
        rows, pos, reward = rows[known], records["position"][known].astype(np.int64), reward[known]
        positive = self.label.positive_records(records[known])
        first = np.zeros(len(rows), bool)
        first[positive] = ~log.touched[rows[positive], pos[positive]] & first_occurrences(
            rows[positive] * log.items.shape[1] + pos[positive]
        )
        log.touched[rows[positive], pos[positive]] = True
        label = reward if self.label.positive == "consumption" else first.astype(np.float64)
        np.add.at(log.credit, (rows, pos), label)
        self.model.correct(self._x(rows, pos), log.live_weight[rows, pos] * label)
        rows, pos = rows[first], pos[first]
        self.examples.positives(log.ids[rows], pos, self.clock - log.step[rows], self.clock)

    def _ingest(self, chosen: np.ndarray) -> None:
        """Add the copies ``chosen`` (example indices) to the regression: each covered item labelled with its
        credit so far (0 in a negative copy), weighted by the strategy; live ones are remembered for later
        corrections."""
        ex, log, k = self.examples, self.impressions, self.task.slate_size
        rows = log.rows_of(ex.ref[chosen])
        chosen, rows = chosen[rows >= 0], rows[rows >= 0]
        row, pos = np.nonzero((ex.slot[chosen, None] < 0) | (ex.slot[chosen, None] == np.arange(k)))
        x = self._x(rows[row], pos)
        silent = ex.as_of[chosen][row] == SILENT
        probability, positive = np.zeros((len(chosen), k)), np.zeros((len(chosen), k), bool)
        probability[row, pos] = np.clip(x @ self.theta, 0.0, 1.0)
        positive[row, pos] = log.touched[rows[row], pos] & ~silent
        weight = self.examples.weights(chosen, probability, positive)[row, pos]
        self.model.add(x, weight, np.where(silent, 0.0, log.credit[rows[row], pos]))
        live = ex.as_of[chosen][row] == LIVE
        np.add.at(log.live_weight, (rows[row][live], pos[live]), weight[live])

    def predict(
        self, obs: dict[str, np.ndarray], action: np.ndarray, sessions: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """For the batch's rows ``sessions`` ``(n,)`` (None: all ``B``; :func:`agents.base.of_sessions`), the
        probability ``(n, k)`` that each shown item of slates ``action`` ``(B, k)`` is a positive: the ridge
        mean ``x·θ`` of its label through the clipped identity link, calibrated by the label strategy; keyed
        ``click`` under ``consumption`` (the model regresses credit, so this ranks items as the model does but is
        calibrated only where a consumption's credit is about 1), ``purchase`` under ``purchase`` (a linear
        probability model of the conversion); and ``rating`` ``(B, k)``, the stars the rater model predicts
        (:meth:`agents.raters.Raters.predict`)."""
        obs, action = of_sessions(obs, action, sessions)
        items = np.take_along_axis(obs["candidate_features"], action[..., None], axis=1)
        mean = FoldedInteractions(self.context.describe(obs), items).dot(self.theta)
        head = "click" if self.label.positive == "consumption" else "purchase"
        shown = np.take_along_axis(obs["candidates"], action, axis=1)
        users = np.broadcast_to(obs["user_id"][:, :1], shown.shape)
        return {
            head: self.label.calibrate(np.clip(mean, 1e-6, 1.0 - 1e-6)),
            "rating": self.raters.raters.predict(users, shown),
        }

    def spam_scores(self) -> np.ndarray | None:
        """``(num_users,)`` the rater model's spam scores (NaN for users not rated yet), None under ``naive``."""
        return self.raters.spam_scores()

    def _x(self, rows: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """``x`` ``(n, D)`` of the shown items ``(rows, pos)`` ``(n,)`` of the impression log."""
        log = self.impressions
        items = self.context.features[log.items[rows, pos]]
        return interactions(log.users[rows], items[:, None, :])[:, 0]

    def update(self) -> dict[str, float]:
        """Solve the ridge regression; returns ``stale`` (credit dropped so far) for logging."""
        self.model.solve()
        return {"stale_records": float(self.stale), "theta_norm": float(np.linalg.norm(self.theta))}

    def hyperparameters(self) -> dict:
        return {
            "ridge": self.ridge,
            "feedback_window": self.feedback_window,
            "label": self.label.describe(),
            "rater_model": self.raters.model,
            "private_estimate": self.raters.private_estimate,
        }

    def components(self) -> dict:
        return {
            "context": self.context,
            "model": self.model,
            "impressions": self.impressions,
            "examples": self.examples,
            "raters": self.raters,
            "counters": Counters(self, ("clock", "stale")),
        }
