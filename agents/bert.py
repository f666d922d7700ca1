"""The BERT recommender: reads item text with a pretrained encoder, fine-tuned online from feedback.

One batched step, top to bottom:

- ``act``: each user's state is this session's consumed items (from the observation) and their remembered
  engagements with feedback features (across sessions); each candidate brings its BERT embedding and what its
  own feedback says so far; the network scores the ``M`` candidates by expected reward and the slate takes
  ``k`` distinct ones (:func:`agents.slates.build_slates`: exploration, optional MMR).
- ``observe``: the shown slates enter the replay and the label strategy schedules their training copies
  (:mod:`agents.labels`); every arrived feedback record is joined to its impression by ``impression_id``, so
  late feedback trains the example it belongs to, and is counted for its item; review text is read for
  sentiment; the reward per unit of each feedback kind is learnt from the step rewards.
- ``update``: a minibatch of the copies the label strategy makes trainable, labelled as of the step the
  strategy says, weighted as it says; AdamW on the head losses with gradient clipping; every few updates a step
  of the rating and sentiment heads; in ``lora``/``full`` mode the item table refreshed on schedule; now and
  then the held-out rating error (:mod:`agents.rating_report`).

The parts: settings (:mod:`agents.bert_settings`), text encoder and fine-tuning mode (:mod:`models.text_tower`),
network (:mod:`models.network`), replay (:mod:`models.replay`), training examples (:mod:`agents.examples`),
feedback features (:mod:`models.features`), slates (:mod:`agents.slates`).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import torch

from agents.base import Agent, Task, of_sessions
from agents.bert_settings import BertSettings
from agents.examples import SILENT, EventualLabels, ExampleLog
from agents.labels import POSITIVES, LabelStrategy, Wait
from agents.persistence import Counters
from agents.rater_feedback import RaterFeedback, rating_head_loss
from agents.rating_report import held_out_rating_errors
from agents.slates import build_slates
from envs.feedback import EMPTY_FEEDBACK, opinion_text
from envs.registry import get_domain
from envs.signals import Signal
from models.encoder import default_device
from models.features import (
    ITEM_STATS,
    ItemStats,
    RewardWeights,
    TextSentiment,
    engagement_features,
    feature_names,
    item_seconds,
    slate_labels,
)
from models.network import HEADS, RecommenderNet, UserBatch, expected_reward, head_losses, predicted_stars
from models.replay import Engagements, FeedbackReplay, first_occurrences
from models.text_tower import TextTower

RATING_EVAL_EVERY = 100
"""Updates between two measurements of the held-out rating error."""
EXPLICIT_EVERY = 5
"""Updates between two refreshes of the global mean rating and two steps of the rating and sentiment heads."""
SENTIMENT_BATCH = 64
RATING_BATCH = 64
"""Rated impressions per step of the rating head (ratings are rare: a random minibatch holds about one)."""
IMPLICIT_HEADS = tuple(h for h in HEADS if h != "rating")


class BertAgent(Agent):
    """A text-reading recommender fine-tuned online from delayed explicit and implicit feedback.

    Args:
        task: the environment's spaces and catalogue.
        seed: seeds every random draw of the agent (numpy and torch).
        label: the label strategy (default :class:`agents.labels.Wait`).
        **settings: see :class:`agents.bert_settings.BertSettings`.
    """

    def __init__(self, task: Task, seed: int = 0, label: LabelStrategy | None = None, **settings) -> None:
        super().__init__(task, seed)
        self.settings = s = BertSettings.of(settings)
        self.label = Wait() if label is None else label
        if not isinstance(self.label, LabelStrategy):
            raise TypeError(f"label={label!r}; expected an agents.labels.LabelStrategy (e.g. Wait(window=10))")
        self.update_every = s.update_every
        self.device = torch.device(s.device) if s.device else default_device()
        self._hold_threads()
        catalog = task.catalog
        self.item_seconds = item_seconds(catalog)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.text = TextTower(
                s.encoder, catalog, s.finetune, self.device, s.cache_dir, s.lora_rank, s.lora_alpha, s.adalora_steps
            )
            self.net = RecommenderNet(
                torch.as_tensor(self.text.pretrained_vectors),
                torch.as_tensor(_attribute_matrix(catalog)),
                len(feature_names()),
                len(ITEM_STATS),
                s.fusion,
                s.dim,
                s.hidden,
                s.fusion_weights,
                purchases=Signal.PURCHASE in get_domain(task.domain).implicit_signals,
            ).to(self.device)
            self.sentiment = TextSentiment(self.text.encoder.encode, self.text.dim, device=self.device)
        groups = [{"params": list(self.net.parameters()), "lr": s.lr}]
        if self.text.trains:
            groups.append({"params": self.text.parameters(), "lr": s.encoder_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=s.weight_decay)
        num_users = int(task.observation_space["user_id"].high.max()) + 1
        history = task.observation_space["history"].shape[0]
        self.replay = FeedbackReplay(s.buffer_size, task.slate_size, history, s.memory_size, num_users, len(ITEM_STATS))
        self.label.check_domain(task.domain)
        self.examples = ExampleLog(self.label, 2 * s.buffer_size, learns=POSITIVES)
        self.positive_head = "click" if self.label.positive == "consumption" else "purchase"
        self.eventual = EventualLabels(s.buffer_size, task.slate_size) if self.label.eventual else None
        self.rewards = RewardWeights()
        self.item_stats = ItemStats(catalog.num_items)
        self.raters = RaterFeedback(s.rater_model, num_users, catalog.num_items, s.private_estimate)
        self.clock, self.updates, self.unmatched = 0, 0, 0
        self._served: tuple[np.ndarray, int, torch.Tensor] | None = None  # what act last scored (see _shown_outputs)
        self.owed, self.trained_through = 0.0, 0  # examples owed to training; impressions counted into it
        self.released = EMPTY_FEEDBACK  # records released at the last session starts: their reward is paid next
        self.global_rating = 3.0
        self.rating_report: dict[str, float] = {}

    @property
    def encoder(self):
        """The BERT encoder (:class:`models.encoder.TextEncoder`, LoRA-wrapped in ``lora`` mode)."""
        return self.text.encoder

    def attach(self, env) -> None:
        """Check the env's slate size; its impression ids start a new id space."""
        base = env.unwrapped
        space = getattr(base, "single_action_space", base.action_space)
        if len(space.nvec) != self.task.slate_size:
            raise ValueError(
                f"BertAgent was built for slate_size={self.task.slate_size}, but the environment shows slates "
                f"of size {len(space.nvec)}"
            )
        self.replay.new_epoch()
        self.raters.attach(env)
        self.catalog = base.catalog  # the served world's items (a churning world's new items are read from it)

    def items_published(self, published) -> None:
        """New items in the slots ``published.items``: their texts are encoded (through the on-disk cache, or by
        the fine-tuned encoder) into the item table with their attributes and reading times, and the slots'
        learnt bias and feedback statistics are forgotten."""
        items = np.asarray(published.items, np.int64)
        vectors = self.text.replace(items, list(published.texts))
        self.item_seconds[items] = item_seconds(self.catalog)[items]
        index = torch.as_tensor(items, device=self.device)
        attributes = torch.as_tensor(_attribute_matrix(self.catalog)[items], device=self.device)
        self.net.replace_items(index, torch.as_tensor(vectors, device=self.device), attributes)
        self.item_stats.forget(items)
        self.raters.forget_items(items)

    # ------------------------------------------------------------------ acting

    def _hold_threads(self) -> None:
        """Keep torch's intra-op threads at ``cpu_threads`` on the CPU. Called before each batch of work: the
        simulator's numba kernels run on OpenMP, whose launches set the process's OpenMP thread count, and torch's
        pool followed it (after an env step torch ran on every core beside the env's threads: a minibatch step of
        256 measured 29-38 ms on one thread against 140-294 ms on two, on the loaded 2-core machine)."""
        threads = self.settings.cpu_threads
        if self.device.type == "cpu" and threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        """Slates ``(B, k)`` of distinct candidate indices, best first."""
        self._hold_threads()
        candidates = obs["candidates"]
        outputs = self._heads(candidates, obs["history"], obs["user_id"][:, 0])
        self._served = candidates, self.clock, outputs
        scores = self._expected_reward(outputs)
        s = self.settings
        similarity = None
        if s.mmr_lambda is not None:
            table = self.net.match_table[torch.as_tensor(candidates, device=self.device)]
            similarity = (table @ table.transpose(1, 2)).cpu().numpy()
        slates = build_slates(
            scores,
            self.task.slate_size,
            self.rng,
            epsilon=s.epsilon if explore and s.exploration == "epsilon" else 0.0,
            temperature=s.temperature if explore and s.exploration == "softmax" else None,
            similarity=similarity,
            mmr_lambda=s.mmr_lambda,
        )
        return self.check_slates(slates, len(candidates))

    def score(self, items: np.ndarray, history: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Expected reward ``(B, M)`` of showing ``items`` ``(B, M)`` to ``users`` ``(B,)`` now."""
        return self._expected_reward(self._heads(items, history, users))

    def _expected_reward(self, outputs: torch.Tensor) -> np.ndarray:
        calibrate = self.label.calibrate if self.positive_head == "click" else None
        return expected_reward(outputs, calibrate).cpu().numpy()

    def predict(
        self, obs: dict[str, np.ndarray], action: np.ndarray, sessions: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """For the batch's rows ``sessions`` ``(n,)`` (None: all ``B``), the shown items of slates ``action``
        ``(B, k)``: ``click`` ``(n, k)`` the probability of consumption, ``purchase`` ``(n, k)`` that of a purchase
        (the label strategy's positive calibrated by it) and ``rating`` ``(n, k)`` the predicted stars."""
        outputs = self._shown_outputs(obs, action, sessions)
        probability = {h: torch.sigmoid(outputs[..., HEADS.index(h)]) for h in ("click", "purchase")}
        probability[self.positive_head] = self.label.calibrate(probability[self.positive_head])
        stars = predicted_stars(outputs, self.global_rating).cpu().numpy()
        users = obs["user_id"][:, 0] if sessions is None else obs["user_id"][sessions, 0]
        stars = self.raters.personalise(users, stars)
        return {**{h: p.cpu().numpy() for h, p in probability.items()}, "rating": stars}

    def _shown_outputs(
        self, obs: dict[str, np.ndarray], action: np.ndarray, sessions: np.ndarray | None
    ) -> torch.Tensor:
        """The network's outputs ``(n, k, len(HEADS))`` for the items of slates ``action`` ``(B, k)`` of the batch's
        rows ``sessions`` ``(n,)`` (None: all): read from those :meth:`act` computed for ``obs``'s candidates when it
        served this very observation since the last :meth:`observe` (the streaming evaluation predicts every tick's
        shown items; scoring them again costs about half of serving), else computed."""
        served = self._served
        reuse = served is not None and served[0] is obs["candidates"] and served[1] == self.clock
        obs, action = of_sessions(obs, action, sessions)
        if reuse:
            outputs = served[2] if sessions is None else served[2][torch.as_tensor(sessions, device=self.device)]
            index = torch.as_tensor(action, device=self.device)[..., None].expand(-1, -1, outputs.shape[-1])
            return outputs.gather(1, index)
        items = np.take_along_axis(obs["candidates"], action, axis=1)
        return self._heads(items, obs["history"], obs["user_id"][:, 0])

    @torch.inference_mode()
    def _heads(self, items: np.ndarray, history: np.ndarray, users: np.ndarray) -> torch.Tensor:
        """The network's outputs ``(B, M, len(HEADS))`` for ``items`` ``(B, M)`` shown to ``users`` ``(B,)`` now."""
        memory = self.replay.engagements(self.replay.user_memory[users])
        stats = self.item_stats.features(items, self.rewards.weights)
        return self.net(self._user_batch(items, stats, history, memory, np.full((len(users), 1), self.clock)))

    def _user_batch(self, items, stats, history, memory: Engagements, now: np.ndarray) -> UserBatch:
        features = engagement_features(
            memory.values,
            memory.arrived,
            memory.valid,
            self.sentiment.stars(memory.text),
            self.item_seconds[memory.items],
            now - memory.step,
            self.global_rating,
        )
        arrays = (items, stats, history, memory.items, features, memory.valid)
        return UserBatch(*(torch.as_tensor(a, device=self.device) for a in arrays))

    # ------------------------------------------------------------------ observing

    def observe(self, transition) -> None:
        """Store the shown slates and schedule their training copies, join the arrived feedback to its
        impressions, count it per item, learn reward weights. Held-out impressions count nowhere but in the
        replay."""
        action = self.check_slates(np.asarray(transition.action), len(transition.action))
        obs = transition.obs
        items = np.take_along_axis(obs["candidates"], action, axis=1)
        holdout = self.rng.random(len(action)) < self.settings.holdout_fraction
        stats = self.item_stats.features(items, self.rewards.weights)
        users, ids = obs["user_id"][:, 0], transition.info["impression_id"]
        serials = self.replay.add(ids, users, items, obs["history"], self.clock, holdout, stats)
        self.examples.shown(serials, self.clock)
        if self.eventual is not None:
            self.eventual.record(serials, np.asarray(ids, np.int64), transition.eventual)
        self.item_stats.count_shown(items[~holdout])
        records = transition.arrived_feedback()
        rows, first = self.replay.join(records, self._text_ids(records["text_id"]), self.clock)
        self.unmatched += int((rows < 0).sum())
        first = self._first_positives(records, rows, first)
        positive = rows[first]
        self.examples.positives(
            self.replay.serial[positive],
            records["position"][first].astype(np.int64),
            self.clock - self.replay.step[positive],
            self.clock,
        )
        training = records[(rows >= 0) & ~self.replay.holdout[rows]]
        self.item_stats.count_feedback(self.raters.credit_records(training))
        self.raters.observe(training)
        paid = np.concatenate([self.released, transition.feedback])  # the records whose reward this step pays
        self.rewards.observe(paid, np.asarray(transition.reward, np.float64))
        self.released = transition.released.copy()
        self.clock += 1

    def _first_positives(self, records: np.ndarray, rows: np.ndarray, first: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: the arrived ``records`` that are their shown item's first positive of the label strategy:
        under ``consumption`` its first record (``first``, from the join), under ``purchase`` its purchase record
        with a value > 0 (a shown item is bought once)."""
        if self.label.positive == "consumption":
            return first
        bought = self.label.positive_records(records) & (rows >= 0)
        bought[bought] = first_occurrences(rows[bought] * self.task.slate_size + records["position"][bought])
        return bought

    def _text_ids(self, text_id: np.ndarray) -> np.ndarray:
        """``(n,)`` the sentiment reader's ids of the records' review/comment texts, -1 where there is none."""
        ids = np.full(len(text_id), -1, np.int32)
        written = np.flatnonzero(text_id >= 0)
        if len(written):
            texts = np.array([opinion_text(t) for t in text_id[written].tolist()], dtype=object)
            ids[written] = self.sentiment.ids(texts)
        return ids

    # ------------------------------------------------------------------ learning

    def update(self) -> dict[str, float]:
        """As many AdamW minibatch steps as the impressions observed since the last call call for
        (``replay_ratio`` examples each, ``batch_size`` a step); the last step's losses, or {} when no step ran
        (fewer than ``batch_size`` copies trainable, or not enough new impressions yet)."""
        self._hold_threads()
        s = self.settings
        trainable = self.examples.trainable(self.observed, self.replay.trainable)
        if len(trainable) < s.batch_size:
            self.owed = 0.0  # nothing to learn from yet: impressions that wait for their window are not owed
            return {}
        self.owed += s.replay_ratio * (self.replay.added - self.trained_through)
        self.trained_through = self.replay.added
        stats: dict[str, float] = {}
        while self.owed >= s.batch_size:
            self.owed -= s.batch_size
            stats = self._step_once(self.rng.choice(trainable, s.batch_size, replace=False))
        return {**stats, **self.rating_report} if stats else {}

    def _step_once(self, chosen: np.ndarray) -> dict[str, float]:
        """One minibatch step on examples ``chosen``, and the cadences counted in steps: every few steps one of
        the rating and sentiment heads, the item table's refresh, the held-out rating error."""
        s = self.settings
        stats = self._learn_from_examples(chosen)
        self.updates += 1
        if (self.updates - 1) % EXPLICIT_EVERY == 0:
            stats.update(self._learn_from_ratings())
        if self.text.trains and self.updates % s.refresh_every == 0:
            self.refresh_item_table()
        if (self.updates - 1) % RATING_EVAL_EVERY == 0:
            self.rating_report = self.rating_errors()
        return stats

    @property
    def observed(self) -> int:
        """The last step whose feedback the agent has observed (-1 before any)."""
        return self.clock - 1

    def _learn_from_examples(self, chosen: np.ndarray) -> dict[str, float]:
        """One step on the implicit heads from examples ``chosen`` ``(n,)`` of the example log: labels as of
        each example's ``as_of`` (the eventual ones under the ``oracle`` strategy), on the shown items it covers,
        weighted by the label strategy."""
        ex, k = self.examples, self.task.slate_size
        rows = self.replay.row_of(ex.ref[chosen])
        covered = (ex.slot[chosen, None] < 0) | (ex.slot[chosen, None] == np.arange(k))
        if self.eventual is None:
            values, arrived = self.replay.values[rows], self._arrived_as_of(rows, ex.as_of[chosen])
        else:
            values, arrived = self.eventual.labels(ex.ref[chosen])
        batch, labels = self._training_batch(rows, arrived, covered, values)
        fresh, encoded = None, None
        if self.text.trains and self.updates % self.settings.text_every == 0:
            fresh, encoded = self.text.fresh_vectors(batch.items, self.rng, self.settings.text_items)
        self.net.track_labels(labels)
        outputs = self.net(batch, fresh)
        probability = torch.sigmoid(outputs[..., HEADS.index(self.positive_head)]).detach().cpu().numpy()
        weights = self.examples.weights(chosen, probability, self.label.positive_items(values, arrived) & covered)
        weights = torch.as_tensor(weights, dtype=torch.float32, device=self.device)
        losses = head_losses(outputs, labels, self.net.value_scale().item(), self.global_rating, weights)
        total = sum(self.settings.loss_weights.get(h, 1.0) * losses[h] for h in IMPLICIT_HEADS)
        self._step(total)
        if encoded is not None:
            self.text.stepped()
            self.net.set_item_vectors(torch.as_tensor(self.text.vectors[encoded], device=self.device), encoded)
        return {"loss": total.item(), **{f"{h}_loss": losses[h].item() for h in IMPLICIT_HEADS}}

    def _arrived_as_of(self, rows: np.ndarray, as_of: np.ndarray) -> np.ndarray:
        """``(n, k, S)`` the feedback of replay ``rows`` that labels copies read as of ``as_of`` ``(n,)``. A negative
        copy (:data:`agents.examples.SILENT`) is silent in the positive signal: in everything under
        ``consumption``, in the purchase alone under ``purchase`` (its other signals as of now)."""
        if self.label.positive == "consumption":
            return self.replay.arrived_by(rows, np.minimum(as_of, self.observed))
        arrived = self.replay.arrived_by(
            rows, np.where(as_of == SILENT, self.observed, np.minimum(as_of, self.observed))
        )
        arrived[as_of == SILENT, :, Signal.PURCHASE] = False
        return arrived

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
        self.optimizer.step()

    def _training_batch(
        self, rows: np.ndarray, arrived: np.ndarray, covered: np.ndarray | None = None, values: np.ndarray | None = None
    ) -> tuple[UserBatch, dict[str, torch.Tensor]]:
        """The network input of replay ``rows`` ``(n,)`` and their labels from the ``arrived`` ``(n, k, S)``
        feedback (its ``values``, by default the replay's); with ``covered`` ``(n, k)``, items outside it are masked
        out of every label."""
        r = self.replay
        memory = r.engagements(r.memory[rows])
        batch = self._user_batch(r.items[rows], r.item_stats[rows], r.history[rows], memory, r.step[rows][:, None])
        values = r.values[rows] if values is None else values
        labels = slate_labels(values, arrived, self.item_seconds[r.items[rows]], self.rewards.weights)
        labels = self.raters.labels(labels, values, arrived, self.rewards.weights)
        if covered is not None:
            labels = {k: v & covered if k.endswith("_mask") else v for k, v in labels.items()}
        return batch, {k: torch.as_tensor(v, device=self.device) for k, v in labels.items()}

    def refresh_item_table(self) -> None:
        """Re-encode the catalogue with the fine-tuned encoder into the network's item table."""
        self.net.set_item_vectors(torch.as_tensor(self.text.encode_all(), device=self.device))

    def _learn_from_ratings(self) -> dict[str, float]:
        """From the ratings of trainable impressions: the global mean rating, one step of the rating head
        on a minibatch of rated impressions, and one of the sentiment head on the (text, rating) pairs."""
        r = self.replay
        rated = np.argwhere((r.arrived_at[:, :, Signal.RATING] >= 0) & ~r.holdout[:, None] & (r.serial >= 0)[:, None])
        rated = rated[r.values[rated[:, 0], rated[:, 1], Signal.RATING] > 0]  # a private "not rated" is no rating
        if not len(rated):
            return {}
        mean = self.raters.mean_rating
        self.global_rating = float(r.values[rated[:, 0], rated[:, 1], Signal.RATING].mean()) if mean is None else mean
        rows = np.unique(rated[:, 0])
        rows = self.rng.choice(rows, min(RATING_BATCH, len(rows)), replace=False)
        batch, labels = self._training_batch(rows, r.arrived_at[rows] >= 0)
        labels, weights = self.raters.rating_labels(labels, r.user[rows])
        rating = rating_head_loss(self.net(batch), labels, self.global_rating, weights, self.settings.rating_loss)
        self._step(self.settings.loss_weights.get("rating", 1.0) * rating)
        stats = {"rating_loss": rating.item()}
        pairs = rated[r.text[rated[:, 0], rated[:, 1]] >= 0]
        if len(pairs):
            pick = pairs[self.rng.choice(len(pairs), min(SENTIMENT_BATCH, len(pairs)), replace=False)]
            rows, pos = pick[:, 0], pick[:, 1]
            stats["sentiment_loss"] = self.sentiment.fit(r.text[rows, pos], r.values[rows, pos, Signal.RATING])
        return stats

    def rating_errors(self) -> dict[str, float]:
        """Held-out rating error (see :func:`agents.rating_report.held_out_rating_errors`)."""
        return held_out_rating_errors(self.replay, self._predicted_stars, self.global_rating)

    def _predicted_stars(self, rows: np.ndarray) -> np.ndarray:
        batch, _ = self._training_batch(rows, self.replay.arrived_at[rows] >= 0)
        with torch.inference_mode():
            stars = predicted_stars(self.net(batch), self.global_rating).cpu().numpy()
        return self.raters.personalise(self.replay.user[rows], stars)

    def spam_scores(self) -> np.ndarray | None:
        """``(num_users,)`` the rater model's spam scores (NaN for users not rated yet), None under ``naive``."""
        return self.raters.spam_scores()

    # ------------------------------------------------------------------ persistence

    def hyperparameters(self) -> dict:
        """The settings (but where it runs and caches) and the label strategy."""
        where = ("device", "cache_dir", "cpu_threads")
        settings = {k: v for k, v in asdict(self.settings).items() if k not in where}
        return json.loads(json.dumps({**settings, "label": self.label.describe()}, default=dict))

    def components(self) -> dict:
        """Everything :meth:`save` writes (see :class:`agents.base.Agent`)."""
        return {
            "net": self.net,
            "text": self.text,
            "sentiment": self.sentiment,
            "optimizer": self.optimizer,
            "replay": self.replay,
            "examples": self.examples,
            **({} if self.eventual is None else {"eventual": self.eventual}),
            "rewards": self.rewards,
            "item_stats": self.item_stats,
            "raters": self.raters,
            "counters": Counters(
                self, ("clock", "updates", "unmatched", "global_rating", "released", "owed", "trained_through")
            ),
        }


def _attribute_matrix(catalog) -> np.ndarray:
    """``(num_items, A)`` float32 standardised ``log1p`` of the catalogue's numeric attributes."""
    columns = [np.log1p(np.maximum(np.asarray(v, np.float64), 0.0)) for v in catalog.attributes.values()]
    columns = [(c - c.mean()) / (c.std() + 1e-6) for c in columns]
    return np.column_stack(columns).astype(np.float32) if columns else np.zeros((catalog.num_items, 0), np.float32)
