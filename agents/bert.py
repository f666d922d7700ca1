"""The BERT recommender: reads item text with a pretrained encoder, fine-tuned online from feedback.

One batched step, top to bottom:

- ``act``: each user's state is this session's consumed items (from the observation) and their
  remembered engagements with feedback features (across sessions); each candidate brings its BERT
  embedding and what its own feedback says so far; the network scores the ``M`` candidates by expected
  reward and the slate takes ``k`` distinct ones (top-k with ε-greedy or softmax exploration,
  optionally MMR re-ranking for diversity).
- ``observe``: the shown slates enter the replay; every arrived feedback record is joined to its
  impression by ``impression_id``, so late feedback trains the example it belongs to, and is counted
  for its item; review text is read for sentiment; the reward per unit of each feedback kind is learnt
  from the step rewards.
- ``update``: a minibatch of impressions that the label strategy allows, AdamW on the head losses with
  gradient clipping, now and then a step of the sentiment head, and in ``lora``/``full`` mode the item
  table refreshed on schedule. Label strategies for implicit negatives under delay: ``wait`` uses an
  impression only once ``label_window`` steps have passed, so its silence has become a trustworthy
  "not consumed" and its late feedback is in (unbiased, but the freshest data waits); ``immediate``
  uses it at once, silence counting as a negative that is corrected in place when a late positive
  arrives (fresh, but biased toward negatives meanwhile).

Fine-tuning modes: ``head`` (BERT frozen, item embeddings from the on-disk cache — the fast default),
``lora`` (LoRA adapters on BERT's attention via ``peft``), ``full`` (all BERT weights).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import peft
import torch
from safetensors.torch import load_file, save_file

from agents.base import Agent, Task
from envs.feedback import as_records, opinion_text
from envs.signals import Signal
from models.encoder import TextEncoder, catalog_embeddings, default_device
from models.features import (
    ITEM_STATS,
    NUM_FEATURES,
    ItemStats,
    RewardWeights,
    TextSentiment,
    engagement_features,
    item_seconds,
    slate_labels,
)
from models.network import FUSIONS, HEADS, RecommenderNet, UserBatch, expected_reward, head_losses, predicted_stars
from models.replay import Engagements, FeedbackReplay

FINETUNE_MODES = ("head", "lora", "full")
LABEL_STRATEGIES = ("wait", "immediate")
EXPLORATIONS = ("epsilon", "softmax")
LORA_TARGETS = ("query", "key", "value")
RATING_EVAL_EVERY = 100
"""Updates between two measurements of the held-out rating error."""
EXPLICIT_EVERY = 5
"""Updates between two refreshes of the global mean rating and two steps of the sentiment head."""
SENTIMENT_BATCH = 64
RATING_BATCH = 64
"""Rated impressions per step of the rating head (ratings are rare: a random minibatch holds about one)."""
IMPLICIT_HEADS = tuple(h for h in HEADS if h != "rating")


@dataclass(frozen=True)
class BertSettings:
    """Settings of :class:`BertAgent` (Hydra: ``conf/agent/bert.yaml``); validated on construction.

    Attributes:
        encoder: ``"minilm"`` (real all-MiniLM-L6-v2), ``"tiny"`` (random test BERT) or a model directory.
        cache_dir: embedding cache directory (None: ``FEEDBACKREC_CACHE_DIR`` or the user cache dir).
        fusion: ``"concat"``, ``"weighted"`` or ``"multitask"`` (see :mod:`models.network`).
        fusion_weights: fixed per-source weights for ``weighted`` (None: learnt).
        finetune: ``"head"``, ``"lora"`` or ``"full"``.
        label_strategy: ``"wait"`` or ``"immediate"``; label_window: steps ``wait`` waits.
        exploration: ``"epsilon"`` (a slot is a uniform random candidate with probability ``epsilon``)
            or ``"softmax"`` (Plackett-Luce sampling at ``temperature`` on row-standardised scores).
        mmr_lambda: None, or MMR's relevance weight in [0, 1] (1 - λ penalises text similarity).
        lr, weight_decay: AdamW of the network; encoder_lr: of the fine-tuned BERT weights.
        batch_size: impressions per minibatch; buffer_size: impressions kept in the replay.
        update_every: environment steps between updates; grad_clip: max gradient norm.
        dim, hidden: network widths; memory_size: engagements remembered per user.
        lora_rank, lora_alpha: LoRA adapters; refresh_every: updates between item-table refreshes.
        loss_weights: head name → weight of its loss.
        holdout_fraction: share of impressions held out to measure rating error (never trained on).
        device: ``"cpu"``, ``"cuda"``, ... (None: the GPU when present).
        cpu_threads: torch intra-op threads when on the CPU (a process-wide setting: the agent's small
            matrices run fastest on one thread, and many threads stall on a shared machine); None
            leaves torch's default.
    """

    encoder: str = "minilm"
    cache_dir: str | None = None
    fusion: str = "multitask"
    fusion_weights: Mapping[str, float] | None = None
    finetune: str = "head"
    label_strategy: str = "wait"
    label_window: int = 10
    exploration: str = "epsilon"
    epsilon: float = 0.1
    temperature: float = 0.3
    mmr_lambda: float | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    encoder_lr: float = 1e-4
    batch_size: int = 256
    buffer_size: int = 50_000
    update_every: int = 1
    grad_clip: float = 1.0
    dim: int = 32
    hidden: int = 64
    memory_size: int = 32
    lora_rank: int = 8
    lora_alpha: float = 16.0
    refresh_every: int = 200
    loss_weights: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(HEADS, 1.0))
    holdout_fraction: float = 0.1
    device: str | None = None
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        for name, allowed in (
            ("fusion", FUSIONS),
            ("finetune", FINETUNE_MODES),
            ("label_strategy", LABEL_STRATEGIES),
            ("exploration", EXPLORATIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {allowed}")
        for name in ("lr", "encoder_lr", "temperature", "grad_clip", "lora_alpha"):
            _require(name, getattr(self, name), lambda v: v > 0, "a number > 0")
        for name in (
            "batch_size",
            "buffer_size",
            "update_every",
            "dim",
            "hidden",
            "memory_size",
            "lora_rank",
            "refresh_every",
        ):
            _require(name, getattr(self, name), lambda v: v > 0 and float(v).is_integer(), "an integer > 0")
        _require("label_window", self.label_window, lambda v: v >= 0 and float(v).is_integer(), "an integer >= 0")
        _require("weight_decay", self.weight_decay, lambda v: v >= 0, "a number >= 0")
        _require("epsilon", self.epsilon, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        _require("holdout_fraction", self.holdout_fraction, lambda v: 0 <= v < 1, "a number in [0, 1)")
        if self.cpu_threads is not None:
            _require(
                "cpu_threads", self.cpu_threads, lambda v: v > 0 and float(v).is_integer(), "None or an integer > 0"
            )
        if self.mmr_lambda is not None:
            _require("mmr_lambda", self.mmr_lambda, lambda v: 0 <= v <= 1, "None or a number in [0, 1]")
        unknown = sorted(set(self.loss_weights) - set(HEADS))
        if unknown:
            raise ValueError(f"loss_weights has unknown head(s) {unknown}; expected some of {HEADS}")
        for head, weight in self.loss_weights.items():
            _require(f"loss_weights[{head!r}]", weight, lambda v: v >= 0, "a number >= 0")

    @classmethod
    def of(cls, settings: Mapping[str, object]) -> BertSettings:
        """Build from keyword settings; an unknown name is named in the error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown BertAgent setting(s) {unknown}; expected some of {sorted(known)}")
        return cls(**settings)  # type: ignore[arg-type]


def _require(name: str, value: object, ok, expected: str) -> None:
    valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and ok(value)
    if not valid:
        raise ValueError(f"{name}={value!r}; expected {expected}")


class BertAgent(Agent):
    """A text-reading recommender fine-tuned online from delayed explicit and implicit feedback.

    Args:
        task: the environment's spaces and catalogue.
        seed: seeds every random draw of the agent (numpy and torch).
        **settings: see :class:`BertSettings`.
    """

    def __init__(self, task: Task, seed: int = 0, **settings) -> None:
        super().__init__(task, seed)
        self.settings = s = BertSettings.of(settings)
        self.update_every = s.update_every
        self.device = torch.device(s.device) if s.device else default_device()
        if self.device.type == "cpu" and s.cpu_threads is not None:
            torch.set_num_threads(s.cpu_threads)
        catalog = task.catalog
        self.texts = list(catalog.texts)
        self.item_seconds = item_seconds(catalog)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = TextEncoder.load(s.encoder, self.device)
            vectors = catalog_embeddings(catalog, self.encoder, s.cache_dir)
            self._prepare_encoder()
            self.net = RecommenderNet(
                torch.as_tensor(vectors),
                torch.as_tensor(_attribute_matrix(catalog)),
                NUM_FEATURES,
                len(ITEM_STATS),
                s.fusion,
                s.dim,
                s.hidden,
                s.fusion_weights,
            ).to(self.device)
            self.sentiment = TextSentiment(self.encoder.encode, self.encoder.dim, device=self.device)
        groups = [{"params": list(self.net.parameters()), "lr": s.lr}]
        if self._encoder_parameters():
            groups.append({"params": self._encoder_parameters(), "lr": s.encoder_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=s.weight_decay)
        num_users = int(task.observation_space["user_id"].high.max()) + 1
        history = task.observation_space["history"].shape[0]
        self.replay = FeedbackReplay(s.buffer_size, task.slate_size, history, s.memory_size, num_users, len(ITEM_STATS))
        self.rewards = RewardWeights()
        self.item_stats = ItemStats(catalog.num_items)
        self.clock, self.updates, self.unmatched = 0, 0, 0
        self.global_rating = 3.0
        self.rating_report: dict[str, float] = {}

    # ------------------------------------------------------------------ setup

    def _prepare_encoder(self) -> None:
        """Freeze BERT (``head``), wrap it with LoRA adapters (``lora``) or leave it all trainable (``full``)."""
        s = self.settings
        self.encoder.requires_grad_(s.finetune == "full")
        if s.finetune == "lora":
            config = peft.LoraConfig(
                r=s.lora_rank, lora_alpha=s.lora_alpha, target_modules=list(LORA_TARGETS), lora_dropout=0.0
            )
            self.encoder.model = peft.get_peft_model(self.encoder.model, config)

    def _encoder_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

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

    # ------------------------------------------------------------------ acting

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        """Slates ``(B, k)`` of distinct candidate indices, best first."""
        candidates = obs["candidates"]
        scores = self.score(candidates, obs["history"], obs["user_id"][:, 0])
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
        memory = self.replay.engagements(self.replay.user_memory[users])
        stats = self.item_stats.features(items, self.rewards.weights)
        batch = self._user_batch(items, stats, history, memory, np.full((len(users), 1), self.clock))
        with torch.inference_mode():
            return expected_reward(self.net(batch)).cpu().numpy()

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
        """Store the shown slates, join the arrived feedback to its impressions, count it per item, learn
        reward weights. Held-out impressions count nowhere but in the replay."""
        action = self.check_slates(np.asarray(transition.action), len(transition.action))
        obs = transition.obs
        items = np.take_along_axis(obs["candidates"], action, axis=1)
        holdout = self.rng.random(len(action)) < self.settings.holdout_fraction
        stats = self.item_stats.features(items, self.rewards.weights)
        users, ids = obs["user_id"][:, 0], transition.info["impression_id"]
        self.replay.add(ids, users, items, obs["history"], self.clock, holdout, stats)
        self.item_stats.count_shown(items[~holdout])
        records = transition.arrived_feedback()
        texts = np.array([opinion_text(t) for t in records["text_id"].tolist()], dtype=object)
        rows = self.replay.join(records, self.sentiment.ids(texts))
        self.unmatched += int((rows < 0).sum())
        self.item_stats.count_feedback(records[(rows >= 0) & ~self.replay.holdout[rows]])
        self.rewards.observe(as_records(transition.info["feedback"]), np.asarray(transition.reward, np.float64))
        self.clock += 1

    # ------------------------------------------------------------------ learning

    def update(self) -> dict[str, float]:
        """One AdamW minibatch step on the implicit heads' losses (and, every few updates, one step of the
        rating head on rated impressions and one of the sentiment head); the losses, or {} while the
        replay holds fewer than ``batch_size`` trainable impressions."""
        s = self.settings
        window = s.label_window if s.label_strategy == "wait" else 0
        rows = self.replay.trainable(self.clock, window)
        if len(rows) < s.batch_size:
            return {}
        rows = self.rng.choice(rows, s.batch_size, replace=False)
        batch, labels = self._training_batch(rows)
        fresh = self._fresh_item_vectors(batch.items) if s.finetune != "head" else None
        self.net.track_labels(labels)
        losses = head_losses(self.net(batch, fresh), labels, self.net.value_scale().item(), self.global_rating)
        total = sum(s.loss_weights.get(h, 1.0) * losses[h] for h in IMPLICIT_HEADS)
        self._step(total)
        self.updates += 1
        stats = {"loss": total.item(), **{f"{h}_loss": losses[h].item() for h in IMPLICIT_HEADS}}
        if (self.updates - 1) % EXPLICIT_EVERY == 0:
            stats.update(self._learn_from_ratings())
        if s.finetune != "head" and self.updates % s.refresh_every == 0:
            self.refresh_item_table()
        if (self.updates - 1) % RATING_EVAL_EVERY == 0:
            self.rating_report = self.rating_errors()
        return {**stats, **self.rating_report}

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
        self.optimizer.step()

    def _training_batch(self, rows: np.ndarray) -> tuple[UserBatch, dict[str, torch.Tensor]]:
        r = self.replay
        memory = r.engagements(r.memory[rows])
        batch = self._user_batch(r.items[rows], r.item_stats[rows], r.history[rows], memory, r.step[rows][:, None])
        labels = slate_labels(r.values[rows], r.arrived[rows], self.item_seconds[r.items[rows]], self.rewards.weights)
        return batch, {k: torch.as_tensor(v, device=self.device) for k, v in labels.items()}

    def _fresh_item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Differentiable text embeddings ``(N, K, D)`` of ``items``, each distinct item encoded once."""
        unique, inverse = torch.unique(items, return_inverse=True)
        vectors = self.encoder.embed([self.texts[i] for i in unique.tolist()])
        return vectors[inverse]

    def refresh_item_table(self) -> None:
        """Re-encode the catalogue with the fine-tuned encoder into the network's item table."""
        self.net.set_item_vectors(torch.as_tensor(self.encoder.encode(self.texts), device=self.device))

    def _learn_from_ratings(self) -> dict[str, float]:
        """From the ratings of trainable impressions: the global mean rating, one step of the rating head
        on a minibatch of rated impressions, and one of the sentiment head on the (text, rating) pairs."""
        r = self.replay
        rated = np.argwhere(r.arrived[:, :, Signal.RATING] & ~r.holdout[:, None] & (r.serial >= 0)[:, None])
        if not len(rated):
            return {}
        self.global_rating = float(r.values[rated[:, 0], rated[:, 1], Signal.RATING].mean())
        rows = np.unique(rated[:, 0])
        rows = self.rng.choice(rows, min(RATING_BATCH, len(rows)), replace=False)
        batch, labels = self._training_batch(rows)
        rating = head_losses(self.net(batch), labels, self.net.value_scale().item(), self.global_rating)["rating"]
        self._step(self.settings.loss_weights.get("rating", 1.0) * rating)
        stats = {"rating_loss": rating.item()}
        pairs = rated[r.text[rated[:, 0], rated[:, 1]] >= 0]
        if len(pairs):
            pick = pairs[self.rng.choice(len(pairs), min(SENTIMENT_BATCH, len(pairs)), replace=False)]
            rows, pos = pick[:, 0], pick[:, 1]
            stats["sentiment_loss"] = self.sentiment.fit(r.text[rows, pos], r.values[rows, pos, Signal.RATING])
        return stats

    def rating_errors(self) -> dict[str, float]:
        """Root mean squared error (stars) of predicted ratings on held-out impressions, next to the error
        of predicting the global mean rating; {} before any held-out rating has arrived."""
        pairs = self.replay.rated_holdout(Signal.RATING)
        if not len(pairs):
            return {}
        rows, inverse = np.unique(pairs[:, 0], return_inverse=True)
        batch, _ = self._training_batch(rows)
        with torch.inference_mode():
            stars = predicted_stars(self.net(batch), self.global_rating).cpu().numpy()
        predicted = stars[inverse, pairs[:, 1]]
        truth = self.replay.values[pairs[:, 0], pairs[:, 1], Signal.RATING]
        return {
            "rating_rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
            "rating_rmse_global_mean": float(np.sqrt(np.mean((self.global_rating - truth) ** 2))),
            "rating_holdout_count": float(len(truth)),
        }

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | Path) -> None:
        """Write settings, weights (safetensors), optimiser state, replay and memory into ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / "settings.json").write_text(json.dumps(asdict(self.settings), indent=2, default=dict))
        save_file({k: v.contiguous() for k, v in self._weights().items()}, path / "model.safetensors")
        torch.save(
            {"net": self.optimizer.state_dict(), "sentiment": self.sentiment.optimizer.state_dict()},
            path / "optimizer.pt",
        )
        arrays = {f"replay.{k}": v for k, v in self.replay.state().items()}
        arrays |= {f"rewards.{k}": v for k, v in self.rewards.state().items()}
        arrays |= {f"items.{k}": v for k, v in self.item_stats.state().items()}
        arrays["sentiment.vectors"] = self.sentiment.vectors
        arrays["counters"] = np.array([self.clock, self.updates, self.unmatched])
        np.savez(path / "state.npz", **arrays)
        extra = {
            "texts": list(self.sentiment.ids_of),
            "rng": self.rng.bit_generator.state,
            "global_rating": self.global_rating,
        }
        (path / "state.json").write_text(json.dumps(extra))

    def load(self, directory: str | Path) -> None:
        """Restore what :meth:`save` wrote; the settings that shape the model must match."""
        path = Path(directory)
        saved = json.loads((path / "settings.json").read_text())
        mine = json.loads(json.dumps(asdict(self.settings), default=dict))
        differ = sorted(
            k
            for k in ("encoder", "fusion", "finetune", "dim", "hidden", "memory_size", "lora_rank")
            if saved.get(k) != mine[k]
        )
        if differ:
            theirs, ours = [saved.get(k) for k in differ], [mine[k] for k in differ]
            raise ValueError(f"checkpoint {path} has different settings {differ}: {theirs}, this agent {ours}")
        self._load_weights(load_file(path / "model.safetensors", device=str(self.device)))
        optimizers = torch.load(path / "optimizer.pt", weights_only=True, map_location=self.device)
        self.optimizer.load_state_dict(optimizers["net"])
        self.sentiment.optimizer.load_state_dict(optimizers["sentiment"])
        with np.load(path / "state.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        self.replay.restore(_part(arrays, "replay."))
        self.rewards.restore(_part(arrays, "rewards."))
        self.item_stats.restore(_part(arrays, "items."))
        self.clock, self.updates, self.unmatched = (int(x) for x in arrays["counters"])
        extra = json.loads((path / "state.json").read_text())
        self.sentiment.restore(extra["texts"], arrays["sentiment.vectors"])
        self.rng.bit_generator.state = extra["rng"]
        self.global_rating = extra["global_rating"]

    def _weights(self) -> dict[str, torch.Tensor]:
        weights = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        weights |= {f"sentiment.{k}": v for k, v in self.sentiment.head.state_dict().items()}
        weights |= {f"encoder.{n}": p.detach() for n, p in self.encoder.named_parameters() if p.requires_grad}
        return weights

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(_part(weights, "net."))
        self.sentiment.head.load_state_dict(_part(weights, "sentiment."))
        encoder = _part(weights, "encoder.")
        missing = {n for n, p in self.encoder.named_parameters() if p.requires_grad} - set(encoder)
        if missing:
            raise ValueError(f"checkpoint lacks fine-tuned encoder weights {sorted(missing)[:3]}...")
        self.encoder.load_state_dict(encoder, strict=False)


def build_slates(
    scores: np.ndarray,
    k: int,
    rng: np.random.Generator,
    epsilon: float = 0.0,
    temperature: float | None = None,
    similarity: np.ndarray | None = None,
    mmr_lambda: float | None = None,
) -> np.ndarray:
    """Slates ``(B, k)`` of distinct candidates chosen slot by slot from ``scores`` ``(B, M)``.

    Each slot takes the best remaining candidate by relevance, where relevance is the score, plus Gumbel
    noise times ``temperature`` on row-standardised scores when given (softmax / Plackett-Luce
    sampling), and with ``mmr_lambda`` the MMR trade-off ``λ · relevance − (1 − λ) · max similarity``
    ``(B, M, M)`` to the items already in the slate (relevance min-max scaled per row). With probability
    ``epsilon`` a slot instead takes a uniformly random remaining candidate.
    """
    batch, m = scores.shape
    relevance = scores.astype(np.float64)
    if temperature is not None:
        spread = relevance.std(axis=1, keepdims=True) + 1e-9
        relevance = (relevance - relevance.mean(axis=1, keepdims=True)) / spread
        relevance = relevance - temperature * np.log(-np.log(rng.random(relevance.shape)))
    if mmr_lambda is not None:
        low, high = relevance.min(axis=1, keepdims=True), relevance.max(axis=1, keepdims=True)
        relevance = mmr_lambda * (relevance - low) / np.maximum(high - low, 1e-9)
    rows = np.arange(batch)
    taken = np.zeros((batch, m), bool)
    closest = np.zeros((batch, m))
    slates = np.zeros((batch, k), np.int64)
    for slot in range(k):
        value = relevance - (1.0 - mmr_lambda) * closest if mmr_lambda is not None and slot else relevance.copy()
        value[taken] = -np.inf
        pick = value.argmax(axis=1)
        if epsilon > 0:
            wild = rng.random(batch) < epsilon
            noise = np.where(taken, -1.0, rng.random((batch, m)))
            pick = np.where(wild, noise.argmax(axis=1), pick)
        slates[:, slot] = pick
        taken[rows, pick] = True
        if similarity is not None:
            closest = np.maximum(closest, similarity[rows, pick])
    return slates


def _part(mapping: Mapping[str, object], prefix: str) -> dict[str, object]:
    """The entries of ``mapping`` whose key starts with ``prefix``, without it."""
    return {k.removeprefix(prefix): v for k, v in mapping.items() if k.startswith(prefix)}


def _attribute_matrix(catalog) -> np.ndarray:
    """``(num_items, A)`` float32 standardised ``log1p`` of the catalogue's numeric attributes."""
    columns = [np.log1p(np.maximum(np.asarray(v, np.float64), 0.0)) for v in catalog.attributes.values()]
    columns = [(c - c.mean()) / (c.std() + 1e-6) for c in columns]
    return np.column_stack(columns).astype(np.float32) if columns else np.zeros((catalog.num_items, 0), np.float32)
