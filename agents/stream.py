"""Streaming evaluation: what a learner predicts, earns and loses while it learns under delayed feedback.

Policy evaluation (:mod:`agents.evaluation`) scores the final greedy policy. The delayed-feedback literature scores
the learner as it streams (Ktena et al., RecSys 2019; Yang et al., AAAI 2021: train on hour ``t``, test on hour
``t + 1``, then train on it): predictions for the impressions of the next window, made before the learner has
trained on them, against their eventual true labels. Here each step's shown items are predicted when they are
shown, before the learner observes the step (prequential: the model of the window's first step predicts that
step, and so on), and their eventual labels are the simulator's (:attr:`agents.base.Transition.eventual`), known at
once. Every ``every`` ticks (batched steps) a window closes and is scored per head:

- ``auc`` (ROC AUC), ``pr_auc`` (average precision) and ``nll`` (mean log loss) of the predicted probabilities,
  by :mod:`sklearn.metrics`, for ``click`` (the item is consumed: it sends any record) and ``purchase`` (it sends
  a purchase record, in domains that have one) — a head whose window holds one class only has no AUC there;
- ``rmse`` of the predicted stars over the items that will be rated (``rating``).

A learner speaks for the heads it has through ``predict(obs, action, sessions) -> {head: (n, k)}``, the predictions
for the shown items of the batch's rows ``sessions`` ``(n,)`` (None: all ``B``; see :func:`agents.base.of_sessions`;
the BERT agent reads them off what it computed to serve the batch) (the BERT agent: click and
rating; the linear bandits: click, or purchase under ``label.positive=purchase``, and rating from their rater
model); a learner without ``predict``, or a head it does not predict, has no metric (None in ``metrics.json``). The
mean over windows is ``stream_<metric>_<head>``; each window is a point of the TensorBoard curve
``stream/<metric>_<head>``. Masked slots (a repeat that showed nothing) are not scored.

Alongside, what the learner pays while it waits: ``online_reward_mean`` (the training env's reward per user-step)
and ``online_regret_mean`` (the expected reward the step's best slate would have earned beyond the shown one,
:func:`agents.oracle.regret`, per user-step). The regret solves the oracle's problem, which costs more than a step
of most learners, so it is measured on every ``regret_every``-th tick (a fixed stride: the same ticks for every
learner on the same run).

Both are measured on a sample of the sessions: each tick, ``regret_sessions`` sessions for the regret and
``stream_sessions`` for the predictions (``eval.regret_sessions``, ``eval.stream_sessions``; 128 by default, 0:
every session), drawn without replacement by a generator seeded by ``(seed, purpose, tick)`` — the same sessions
for every learner of a run's seed, and again after a resume from a checkpoint. A batch no larger than the sample
is measured whole, exactly as without sampling. ``online_regret_mean`` is then the mean over the sampled
user-steps; the windows' scores are over the sampled sessions' impressions (``online_reward_mean`` counts every
session: it costs nothing). At 1,024 sessions the sample cut the streaming evaluation's share of a LinUCB run's
loop from about 40% to 8-10%.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from agents.base import Transition
from agents.examples import slate_outcome
from agents.oracle import regret
from envs.signals import Signal
from models.features import bought

PROBABILITY_HEADS = ("click", "purchase")
"""Heads scored as probabilities of a binary eventual label."""
SCORES = ("auc", "pr_auc", "nll")
METRIC_NAMES = (*(f"stream_{s}_{h}" for h in PROBABILITY_HEADS for s in SCORES), "stream_rmse_rating")
ONLINE_NAMES = ("online_reward_mean", "online_regret_mean")
PURPOSES = ("regret", "stream")
"""What a session sample is drawn for; its index seeds the sample's generator (with the seed and the tick)."""


def session_sample(size: int, batch: int, seed: int, purpose: str, tick: int) -> np.ndarray | None:
    """``(size,)`` increasing indices of ``size`` of ``batch`` sessions, drawn without replacement by a generator
    seeded by ``(seed, purpose, tick)``; None (every session) when ``size`` is 0 or at least ``batch``."""
    if not size or size >= batch:
        return None
    rng = np.random.default_rng([seed, PURPOSES.index(purpose), tick])
    return np.sort(rng.choice(batch, size, replace=False))


def eventual_labels(
    transition: Transition, slate_size: int, sessions: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The eventual labels ``(B, k)`` of the transition's shown items (``(n, k)`` of ``sessions`` ``(n,)``, increasing
    indices of the batch, alone): ``click`` and ``purchase`` (bool) and ``rating`` (stars, NaN where the item will not
    be rated)."""
    ids = np.asarray(transition.info["impression_id"], np.int64)
    ids = ids if sessions is None else ids[sessions]
    values, known = slate_outcome(ids, transition.eventual, slate_size)
    return {
        "click": known.any(-1),
        "purchase": bought(values, known),
        "rating": np.where(known[..., Signal.RATING], values[..., Signal.RATING], np.nan),
    }


def window_scores(predicted: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The scores of one window: for each probability head in ``predicted`` ``(n,)`` with labels ``(n,)`` bool,
    ``auc`` and ``pr_auc`` (when both classes occur) and ``nll``; for ``rating``, ``rmse`` over the labelled
    (non-NaN) items. Keys ``<score>_<head>``."""
    out = {}
    for head in PROBABILITY_HEADS:
        if head not in predicted or not len(labels[head]):
            continue
        p, y = np.clip(predicted[head], 1e-7, 1 - 1e-7), labels[head]
        out[f"nll_{head}"] = float(log_loss(y, p, labels=[False, True]))
        if y.any() and not y.all():
            out[f"auc_{head}"] = float(roc_auc_score(y, p))
            out[f"pr_auc_{head}"] = float(average_precision_score(y, p))
    if "rating" in predicted:
        rated = ~np.isnan(labels["rating"])
        if rated.any():
            out["rmse_rating"] = float(np.sqrt(np.mean((predicted["rating"][rated] - labels["rating"][rated]) ** 2)))
    return out


class StreamingEvaluation:
    """Scores a learner as it streams (see the module docstring); the loop calls :meth:`before_step` with each
    slate before the env steps and :meth:`after_step` with the transition before the agent observes it.

    Args:
        every: ticks per scored window (0: no streaming scores).
        regret_every: ticks between two measurements of the regret (0: none).
        log: a TensorBoard ``SummaryWriter`` for the ``stream/*`` curves, or None.
        regret_sessions, stream_sessions: sessions sampled each tick for the regret and for the predictions (0:
            every session).
        seed: the seed of the samples (the run's).
    """

    def __init__(
        self,
        every: int,
        regret_every: int = 1,
        log=None,
        regret_sessions: int = 128,
        stream_sessions: int = 128,
        seed: int = 0,
    ) -> None:
        settings = {
            "eval.stream_every": (every, "ticks; 0: off"),
            "eval.regret_every": (regret_every, "ticks; 0: off"),
            "eval.regret_sessions": (regret_sessions, "sessions a tick; 0: all"),
            "eval.stream_sessions": (stream_sessions, "sessions a tick; 0: all"),
            "seed": (seed, "the run's seed"),
        }
        for name, (value, meaning) in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name}={value!r}; expected an integer >= 0 ({meaning})")
        self.every, self.regret_every, self.log = int(every), int(regret_every), log
        self.sizes = {"regret": int(regret_sessions), "stream": int(stream_sessions)}
        self.seed = int(seed)
        self.ticks, self.user_steps, self.reward, self.regret, self.regret_steps = 0, 0, 0.0, 0.0, 0
        self.windows: dict[str, list[float]] = {}  # score name -> its value in each window
        self._predicted: dict[str, list[np.ndarray]] = {}  # head -> the open window's predictions, per tick
        self._labels: dict[str, list[np.ndarray]] = {}  # head -> their eventual labels

    def sample(self, purpose: str, batch: int) -> np.ndarray | None:
        """The sessions of this tick's sample for ``purpose`` (:func:`session_sample`; None: all ``batch``)."""
        return session_sample(self.sizes[purpose], batch, self.seed, purpose, self.ticks)

    def before_step(self, env, action: np.ndarray) -> None:
        """Measure the regret of slates ``action`` ``(B, k)`` in vector ``env``'s current state, on the sampled
        ticks and sessions."""
        if self.regret_every and self.ticks % self.regret_every == 0:
            action = np.asarray(action)
            sessions = self.sample("regret", len(action))
            shown = action if sessions is None else action[sessions]
            paid = regret(env.unwrapped.sim.choice_problem(sessions), shown)
            self.regret, self.regret_steps = self.regret + float(paid.sum()), self.regret_steps + len(paid)

    def after_step(self, agent, transition: Transition) -> None:
        """Count the step's reward; hold the agent's predictions for the shown items of the sampled sessions
        (before it observes them) with their eventual labels; close the window every ``every`` ticks."""
        sessions = self.sample("stream", len(transition.reward))
        self.ticks += 1
        self.user_steps += len(transition.reward)
        self.reward += float(np.sum(transition.reward))
        predict = getattr(agent, "predict", None)
        if not self.every or predict is None:
            return
        action = np.asarray(transition.action)
        shown = ~np.asarray(transition.info["masked_positions"], bool)
        shown = shown if sessions is None else shown[sessions]
        labels = eventual_labels(transition, action.shape[1], sessions)
        for head, values in predict(transition.obs, action, sessions).items():
            self._predicted.setdefault(head, []).append(np.asarray(values, np.float64)[shown])
            self._labels.setdefault(head, []).append(labels[head][shown])
        if self.ticks % self.every == 0:
            self._close_window()

    def _close_window(self) -> None:
        predicted, labels = (
            {h: np.concatenate(v) for h, v in held.items()} for held in (self._predicted, self._labels)
        )
        self._predicted, self._labels = {}, {}
        for name, value in window_scores(predicted, labels).items():
            self.windows.setdefault(name, []).append(value)
            if self.log is not None:
                self.log.add_scalar(f"stream/{name}", value, self.user_steps)

    def summary(self) -> dict[str, float | None]:
        """``stream_<score>_<head>`` (mean over the windows; None where never scored), ``online_reward_mean`` and
        ``online_regret_mean`` (None before any step, or when the regret is off)."""
        out: dict[str, float | None] = {}
        for name in METRIC_NAMES:
            values = self.windows.get(name.removeprefix("stream_"), [])
            out[name] = float(np.mean(values)) if values else None
        out["online_reward_mean"] = self.reward / self.user_steps if self.user_steps else None
        out["online_regret_mean"] = self.regret / self.regret_steps if self.regret_steps else None
        return out

    def state_dict(self) -> dict:
        """Counters, window scores and the open window's predictions (for checkpoints)."""
        return {
            "counters": [self.ticks, self.user_steps, self.reward, self.regret, self.regret_steps],
            "windows": self.windows,
            "predicted": {head: np.concatenate(parts) for head, parts in self._predicted.items()},
            "labels": {head: np.concatenate(parts) for head, parts in self._labels.items()},
        }

    def load_state_dict(self, state: Mapping) -> None:
        ticks, user_steps, reward, paid, regret_steps = state["counters"]
        self.ticks, self.user_steps, self.regret_steps = int(ticks), int(user_steps), int(regret_steps)
        self.reward, self.regret = float(reward), float(paid)
        self.windows = {name: [float(v) for v in values] for name, values in state["windows"].items()}
        self._predicted = {head: [np.asarray(values)] for head, values in state["predicted"].items()}
        self._labels = {head: [np.asarray(values)] for head, values in state["labels"].items()}
