"""Stable-Baselines3 ``MultiInputPolicy`` parts that respect what a slate is: a set of candidates.

SB3's stock heads are dense layers over the flattened features, so "candidate 7 looks good" must be
learned separately for every slot and every candidate position, and independent categorical heads
repeat candidates. Here every candidate is scored by the same small network from its own features
(:class:`CandidateExtractor` + :class:`CandidateScores`), and:

- actor-critic algorithms (PPO, A2C) draw the slate from a Plackett–Luce distribution — ``k``
  candidates without replacement, each with probability ``∝ exp(score)`` among those left — so
  duplicates are masked out of the distribution itself, and the log-probabilities PPO ratios use are
  exact (:class:`SlatePolicy`);
- DQN's Q-value of "candidate ``i`` leads the slate" is that candidate's score
  (:class:`CandidateQPolicy`).
"""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import MultiInputPolicy as DQNMultiInputPolicy
from stable_baselines3.dqn.policies import QNetwork
from torch import nn

from agents.context import PARTS


class CandidateExtractor(BaseFeaturesExtractor):
    """Encodes each candidate with one small network shared by all candidates.

    Candidate ``i`` enters as ``[v_i, p ⊙ v_i, s ⊙ v_i, l ⊙ v_i]`` ``(4d,)`` — its ``candidate_features``
    row and its products with the user context ``[p, s, l]`` ``(3d,)`` (engagement profile, session,
    latest consumed item; :mod:`agents.context`) — and leaves as a ``code``-wide vector. Output
    ``(B, M * code + 3d)``: the codes in candidate order, then the user context (for the value network).

    Args:
        observation_space: ``Dict`` with ``candidate_features`` ``(M, d)`` and ``user_context`` ``(3d,)``.
        hidden: width of the shared network's hidden layer.
        code: per-candidate output width.
    """

    def __init__(self, observation_space: spaces.Dict, hidden: int = 32, code: int = 4) -> None:
        self.num_candidates, d = observation_space["candidate_features"].shape
        self.code = code
        super().__init__(observation_space, self.num_candidates * code + PARTS * d)
        self.encode = nn.Sequential(nn.Linear((PARTS + 1) * d, hidden), nn.ReLU(), nn.Linear(hidden, code))

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        items, user = observations["candidate_features"], observations["user_context"]
        parts = user[:, None, :].chunk(PARTS, dim=-1)
        codes = self.encode(th.cat([items, *(part * items for part in parts)], dim=-1))
        return th.cat([codes.flatten(1), user], dim=1)


class CandidateScores(nn.Module):
    """One score per candidate ``(B, M)`` from the first ``M * code`` features ``(B, M * code + ...)``,
    by a linear map shared across candidates."""

    def __init__(self, num_candidates: int, code: int) -> None:
        super().__init__()
        self.num_candidates, self.code = num_candidates, code
        self.score = nn.Linear(code, 1)

    def forward(self, features: th.Tensor) -> th.Tensor:
        codes = features[:, : self.num_candidates * self.code].reshape(-1, self.num_candidates, self.code)
        return self.score(codes).squeeze(-1)


class PlackettLuce(Distribution):
    """Slates of ``k`` distinct candidates ``(B, k)`` drawn one slot at a time without replacement,
    ``P(a_j = i) ∝ exp(score_i)`` over the candidates not yet shown; parameters: scores ``(B, M)``.

    Sampling is Gumbel-top-k (exact for this distribution, from torch's generator, which SB3 seeds); the
    mode is the top ``k``. No closed-form entropy: SB3 then uses ``-log_prob`` as its estimate.
    """

    def __init__(self, slate_size: int, num_candidates: int, code: int) -> None:
        super().__init__()
        self.slate_size, self.num_candidates, self.code = slate_size, num_candidates, code

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        return CandidateScores(self.num_candidates, self.code)

    def proba_distribution(self, scores: th.Tensor) -> PlackettLuce:
        self.scores = scores
        return self

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """``(B,)`` log-probability of slates ``(B, k)`` (a ``(B,)`` action is a slate of one)."""
        slates = actions.long().reshape(len(self.scores), -1)
        chosen = self.scores.gather(1, slates)
        shown = th.zeros_like(self.scores, dtype=th.bool)
        total = th.zeros(len(self.scores), device=self.scores.device)
        for slot in range(slates.shape[1]):
            total = total + chosen[:, slot] - th.logsumexp(self.scores.masked_fill(shown, -th.inf), dim=1)
            shown = shown.scatter(1, slates[:, slot : slot + 1], True)
        return total

    def entropy(self) -> None:
        return None

    def sample(self) -> th.Tensor:
        gumbel = -th.log(-th.log(th.rand_like(self.scores).clamp_min(1e-12)))
        return th.topk(self.scores + gumbel, self.slate_size, dim=1).indices

    def mode(self) -> th.Tensor:
        return th.topk(self.scores, self.slate_size, dim=1).indices

    def actions_from_params(self, scores: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return self.proba_distribution(scores).get_actions(deterministic=deterministic)

    def log_prob_from_params(self, scores: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        actions = self.actions_from_params(scores)
        return actions, self.log_prob(actions)


class SlatePolicy(MultiInputActorCriticPolicy):
    """SB3's ``MultiInputPolicy`` for PPO/A2C with a Plackett–Luce slate head over candidate scores.

    Requires :class:`CandidateExtractor`. ``net_arch`` (a list) sizes the value network only: the
    policy head reads the candidate codes directly. A ``Discrete`` action space is a slate of one.
    """

    def __init__(self, observation_space, action_space, lr_schedule, net_arch: list[int] | None = None, **kwargs):
        value_layers = [64, 64] if net_arch is None else list(net_arch)
        super().__init__(observation_space, action_space, lr_schedule, {"pi": [], "vf": value_layers}, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        k = len(self.action_space.nvec) if isinstance(self.action_space, spaces.MultiDiscrete) else 1
        extractor = self.features_extractor
        self.action_dist = PlackettLuce(k, extractor.num_candidates, extractor.code)
        self.action_net = self.action_dist.proba_distribution_net(self.mlp_extractor.latent_dim_pi)
        if self.ortho_init:
            self.action_net.apply(lambda module: self.init_weights(module, gain=0.01))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        return self.action_dist.proba_distribution(self.action_net(latent_pi))


class CandidateQPolicy(DQNMultiInputPolicy):
    """SB3's DQN ``MultiInputPolicy`` whose Q-value for action ``i`` is candidate ``i``'s score
    (:class:`CandidateScores` over :class:`CandidateExtractor` codes); ``net_arch`` is unused."""

    def make_q_net(self) -> QNetwork:
        network = super().make_q_net()
        extractor = network.features_extractor
        network.q_net = CandidateScores(extractor.num_candidates, extractor.code).to(self.device)
        return network
