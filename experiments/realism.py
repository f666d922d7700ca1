"""Realism report: a world fitted to real data against the held-out data, and the generated domains' defaults.

    python experiments/realism.py +env=movielens     # MovieLens vs its held-out ratings, then the generated domains
    python experiments/realism.py                    # the generated domains only

A Hydra entry point composing ``conf/`` like ``experiments/run.py``; it reads ``env.*`` (``+env=movielens``
sets the catalogue and population; ``env.num_items`` and ``env.population_seed`` apply) and ``seed``.
Writes ``report.md`` and PNG plots into the run's output directory and prints the report.

For MovieLens, three simulations of the fitted world, each user in their own session, run side by side:

- **Ratings.** Every held-out (user, movie) pair is replayed: the user is shown that one movie and made to
  watch it (one-slot slates, ``misclick_rate=1``), rates it (``rating_propensity=1``), with fatigue and
  interest drift off, so each simulated rating is the fitted world's answer to a real pair. Compared: the
  star histogram (total-variation distance; target ≤ 0.05) and each user's mean rating.
- **Consumption.** MovieLens holds no impressions, so the exposure that produced its popularity is
  estimated from the training fold and replayed by a logging policy: each movie is shown in proportion to
  its training count (+1) divided by how strongly the simulated users are drawn to it (the choice model's
  mean weight ``exp(x / τ)``), so exposure times choice gives back the training popularity. The simulated
  users then choose what to watch with the simulator's own choice model, each as many times as they have
  held-out ratings. Compared: the item popularity curve (Gini; target: within 0.05 of the real one) and
  the genre share of consumption.
- The same consumption under uniform exposure (random slates) shows how much popularity the choice model
  produces by itself.

For the generated domains, random and oracle slates over each domain's defaults give the click-through
rate, ratings per consumed item and session length; then each calibrated figure of their versions (e-commerce
funnel and session length against OTTO, music skips against Spotify's skip challenge, news clicks per list against
MIND) next to its public reference, under random slates (:data:`CALIBRATION`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import hydra
import matplotlib
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from scipy.stats import ks_2samp

import envs
import experiments.config  # noqa: F401  (registers the env schema that conf/ composes with)
from agents.base import Task
from agents.oracle import OracleAgent
from agents.random import RandomAgent
from envs.domains.movielens import HALF_STARS, MovieLensWorld, load_world
from envs.fit import WHOLE_STARS, star_index, total_variation
from envs.ratings import HELD_OUT, TRAIN
from envs.signals import RatingScale, Signal

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the headless backend

log = logging.getLogger("feedbackrec.realism")

MOVIELENS = "FeedbackRec/MovieLens-"  # every version: -v0 rates in whole stars, -v1 in the data's half stars
TV_TARGET, GINI_TARGET = 0.05, 0.05
DOMAIN_EPISODES = 500  # sessions per generated domain and policy
MAX_STEPS_PER_QUOTA = 20  # a consumption simulation stops after this many steps per item of the largest quota


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)
    sections = []
    if cfg.env.id.startswith(MOVIELENS):
        sections.append(movielens_section(cfg, out))
    sections.append(domain_section(cfg.seed))
    sections.append(calibration_section(cfg.seed))
    report = "\n\n".join(["# Realism report", *sections]) + "\n"
    (out / "report.md").write_text(report, encoding="utf-8")
    print(report)
    log.info("wrote %s", out / "report.md")


# ---------------------------------------------------------------------------------------------- MovieLens


def movielens_section(cfg: DictConfig, out: Path) -> str:
    """Simulate the fitted world against its held-out fold; plots into ``out``; returns Markdown."""
    kwargs = OmegaConf.to_container(cfg.env, resolve=True)  # "id" included: the world_env's id
    scale = kwargs.get("rating_scale")
    world = load_world(kwargs.pop("ratings", None), WHOLE_STARS if scale is None else RatingScale.parse(scale))
    kwargs["num_users"] = world.table.num_users  # every real user once
    num_items = kwargs.get("num_items", 2000)
    real = held_out_pairs(world, num_items, kwargs.get("population_seed", 0))
    quota = np.bincount(real["user"], minlength=world.table.num_users)
    simulated = replay_ratings(kwargs, real, quota, cfg.seed)
    exposure = logging_exposure(world, kwargs, real["train_item"])
    consumed = simulate_consumption(kwargs, quota, exposure, cfg.seed)
    uniform = simulate_consumption(kwargs, quota, None, cfg.seed)
    catalog = world.catalog(num_items)
    figures = {
        "rating_histogram.png": plot_ratings(real["stars"], simulated, world.fit.scale),
        "user_mean_rating.png": plot_user_means(real, simulated),
        "popularity_curve.png": plot_popularity(real["item"], consumed, uniform, num_items),
        "genre_share.png": plot_genres(world.genre_names, catalog, real["item"], consumed),
    }
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=120, bbox_inches="tight")
        plt.close(figure)
    return movielens_markdown(world, catalog, real, simulated, consumed, uniform)


def held_out_pairs(world: MovieLensWorld, num_items: int, population_seed: int) -> dict[str, np.ndarray]:
    """The held-out ratings of catalogue movies, per simulated user (each copies one real user).

    Returns ``user`` (simulated user), ``item`` (catalogue index), ``stars`` (on the fit's scale: 1..5, or the
    data's half stars), each ``(n,)``, sorted by user; and ``train_item`` ``(m,)``, the catalogue items of the
    training ratings."""
    table = world.table
    item_of_movie = np.full(table.num_movies, -1)
    item_of_movie[world.by_popularity[:num_items]] = np.arange(num_items)
    simulated_user = np.empty(table.num_users, np.int64)
    simulated_user[world.population_rows(table.num_users, population_seed)] = np.arange(table.num_users)
    items = item_of_movie[table.movie]
    keep = (world.fold == HELD_OUT) & (items >= 0)
    users = simulated_user[table.user[keep]]
    order = np.argsort(users, kind="stable")
    train = (world.fold == TRAIN) & (items >= 0)
    return {
        "user": users[order],
        "item": items[keep][order],
        "stars": (table.rating if world.fit.scale == HALF_STARS else table.stars())[keep][order],
        "train_item": items[train],
    }


def logging_exposure(world: MovieLensWorld, kwargs: dict, train_items: np.ndarray) -> np.ndarray:
    """``(N,)`` how often the logging policy shows each catalogue item: its training-fold count (+1) over
    its mean choice weight ``exp(x_ui / τ_u)`` across the simulated users, so that exposure times the
    choice model's preference reproduces the training popularity."""
    num_items = kwargs.get("num_items", 2000)
    population = world_env(kwargs).unwrapped.sim.population
    real_users = world.population_rows(kwargs["num_users"], kwargs.get("population_seed", 0))
    movies = world.by_popularity[:num_items]
    x = world.fit.latent(np.repeat(real_users, num_items), np.tile(movies, len(real_users)))
    weight = np.exp(x.reshape(len(real_users), num_items) / population.click_temperature[:, None]).mean(axis=0)
    exposure = (np.bincount(train_items, minlength=num_items) + 1.0) / weight
    return exposure / exposure.sum()


def world_env(kwargs: dict, **overrides) -> gym.vector.VectorEnv:
    """The MovieLens vector env with one session per user, every movie a candidate, no delays."""
    settings = {**kwargs, "num_candidates": kwargs.get("num_items", 2000), "delays": "none", **overrides}
    return gym.make_vec(
        settings.pop("id"),
        num_envs=settings["num_users"],
        vectorization_mode="vector_entry_point",
        item_features=None,
        **settings,
    )


def replay_ratings(kwargs: dict, real: dict, quota: np.ndarray, seed: int) -> np.ndarray:
    """``(n,)`` simulated stars of the held-out pairs in ``real``, by forced one-movie viewings."""
    env = world_env(kwargs, slate_size=1, misclick_rate=1.0, rating_propensity=1.0, fatigue_weight=0.0, drift_rate=0.0)
    start = np.cumsum(quota) - quota

    def show_next(obs, left, positions):
        users = obs["user_id"][:, 0]
        done = quota[users] - left[users]
        items = real["item"][np.minimum(start[users] + done, len(real["item"]) - 1)]
        return positions[np.arange(len(users)), items][:, None]

    users, _, stars = drive(env, quota, show_next, seed)
    order = np.argsort(users, kind="stable")  # consumption order within a user is the replay order
    return stars[order]


def simulate_consumption(kwargs: dict, quota: np.ndarray, exposure: np.ndarray | None, seed: int) -> np.ndarray:
    """``(c,)`` catalogue items the simulated users chose, ``quota[user]`` each, from slates drawn in
    proportion to ``exposure`` ``(N,)`` (None: uniformly)."""
    env = world_env(kwargs)
    rng = np.random.default_rng([seed, 7])
    k = env.unwrapped.config.slate_size
    cumulative = None if exposure is None else np.cumsum(exposure)

    def expose(obs, left, positions):
        batch, m = obs["candidates"].shape
        if cumulative is None:
            return rng.integers(m, size=(batch, k))
        items = np.minimum(np.searchsorted(cumulative, rng.random((batch, k)) * cumulative[-1]), m - 1)
        return np.take_along_axis(positions, items, axis=1)

    return drive(env, quota, expose, seed)[1]


def drive(env, quota: np.ndarray, choose, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step ``env`` (one session per user) until every user consumed ``quota[user]`` items.

    ``choose(obs, left, positions)`` returns slates ``(B, k)``; ``left`` ``(U,)`` is what each user still
    has to consume, ``positions`` ``(B, N)`` the slot of each catalogue item among the candidates.
    Returns the counted consumptions' user, catalogue item and rating (0 when not rated), ``(c,)`` each."""
    obs, _ = env.reset(seed=seed)
    left = quota.copy()
    users, items, stars = [], [], []
    for _ in range(MAX_STEPS_PER_QUOTA * max(int(quota.max()), 1)):
        if not left.any():
            break
        who, candidates = obs["user_id"][:, 0], obs["candidates"]
        positions = np.empty_like(candidates)
        np.put_along_axis(positions, candidates, np.arange(candidates.shape[1])[None, :], axis=1)
        slates = choose(obs, left, positions)
        obs, _, _, _, info = env.step(slates)
        rows = np.flatnonzero((info["choice"] >= 0) & (left[who] > 0))
        rated = np.zeros(len(who))
        feedback = env.unwrapped.delivered.arrived
        rating = feedback["kind"] == Signal.RATING
        rated[feedback["env_index"][rating]] = feedback["value"][rating]
        users.append(who[rows])
        items.append(candidates[rows, slates[rows, info["choice"][rows]]])
        stars.append(rated[rows])
        left[who[rows]] -= 1
    if left.any():
        log.warning("%d users did not reach their quota (%d items missing)", (left > 0).sum(), left.sum())
    return np.concatenate(users), np.concatenate(items), np.concatenate(stars)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of ``counts`` ``(N,)`` (0: every item equally popular, → 1: one item takes all)."""
    c = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(c)
    return float((2.0 * np.arange(1, n + 1) @ c) / (n * c.sum()) - (n + 1) / n)


def star_histogram(stars: np.ndarray, scale: RatingScale = WHOLE_STARS) -> np.ndarray:
    """``(V,)`` share of each star value of ``scale`` (1..5 whole stars: ``(5,)``)."""
    return np.bincount(star_index(stars, scale), minlength=scale.values)[: scale.values] / len(stars)


def genre_shares(catalog, items: np.ndarray) -> np.ndarray:
    """``(T,)`` share of consumption per genre, splitting each movie over its two genres by weight."""
    w = catalog.secondary_weight[items]
    t = catalog.num_topics
    shares = np.bincount(catalog.topic[items], 1 - w, t) + np.bincount(catalog.secondary_topic[items], w, t)
    return shares / shares.sum()


def user_means(users: np.ndarray, stars: np.ndarray) -> np.ndarray:
    """Mean rating of each user present in ``users``."""
    totals, counts = np.bincount(users, stars), np.bincount(users)
    return totals[counts > 0] / counts[counts > 0]


def plot_ratings(real: np.ndarray, simulated: np.ndarray, scale: RatingScale):
    figure, ax = plt.subplots(figsize=(5, 3.5))
    stars, width = scale.stars(), 0.4 * scale.step
    ax.bar(stars - width / 2, star_histogram(real, scale), width, label="real (held out)")
    ax.bar(stars + width / 2, star_histogram(simulated, scale), width, label="simulated")
    ax.set(xlabel="stars", ylabel="share of ratings", title="Rating histogram")
    ax.legend()
    return figure


def plot_user_means(real: dict, simulated: np.ndarray):
    figure, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(1, 5, 33)
    ax.hist(user_means(real["user"], real["stars"]), bins, alpha=0.6, label="real (held out)")
    ax.hist(user_means(real["user"], simulated), bins, alpha=0.6, label="simulated")
    ax.set(xlabel="user's mean rating", ylabel="users", title="Per-user mean rating")
    ax.legend()
    return figure


def plot_popularity(real: np.ndarray, consumed: np.ndarray, uniform: np.ndarray, num_items: int):
    figure, ax = plt.subplots(figsize=(5, 3.5))
    for items, label in ((real, "real (held out)"), (consumed, "simulated"), (uniform, "simulated, uniform")):
        counts = np.sort(np.bincount(items, minlength=num_items))
        share = np.r_[0.0, np.cumsum(counts) / counts.sum()]
        ax.plot(np.linspace(0, 1, num_items + 1), share, label=f"{label} (Gini {gini(counts):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="share of movies (least consumed first)", ylabel="share of consumption", title="Popularity")
    ax.legend(fontsize=8)
    return figure


def plot_genres(genres: tuple[str, ...], catalog, real: np.ndarray, consumed: np.ndarray):
    figure, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(catalog.num_topics)
    ax.bar(x - 0.2, genre_shares(catalog, real), 0.4, label="real (held out)")
    ax.bar(x + 0.2, genre_shares(catalog, consumed), 0.4, label="simulated")
    ax.set_xticks(x, genres, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="share of consumption", title="Genre share of consumption")
    ax.legend()
    return figure


def movielens_markdown(world, catalog, real, simulated, consumed, uniform) -> str:
    n, scale = catalog.num_items, world.fit.scale
    tv = total_variation(star_histogram(real["stars"], scale), star_histogram(simulated, scale))
    counts = {name: np.bincount(items, minlength=n) for name, items in (("real", real["item"]), ("sim", consumed))}
    real_gini, sim_gini = gini(counts["real"]), gini(counts["sim"])
    uniform_gini = gini(np.bincount(uniform, minlength=n))
    ks = ks_2samp(user_means(real["user"], real["stars"]), user_means(real["user"], simulated))
    genre_tv = total_variation(genre_shares(catalog, real["item"]), genre_shares(catalog, consumed))
    fit = world.fit
    rows = [
        ("rating histogram, total variation", f"{tv:.3f}", f"≤ {TV_TARGET}", _verdict(tv <= TV_TARGET)),
        ("popularity Gini, real (held out)", f"{real_gini:.3f}", "", ""),
        (
            "popularity Gini, simulated",
            f"{sim_gini:.3f}",
            f"{real_gini:.3f} ± {GINI_TARGET}",
            _verdict(abs(sim_gini - real_gini) <= GINI_TARGET),
        ),
        ("popularity Gini, simulated under uniform exposure", f"{uniform_gini:.3f}", "(for contrast)", ""),
        ("per-user mean rating, Kolmogorov–Smirnov distance", f"{ks.statistic:.3f}", "", ""),
        ("genre share of consumption, total variation", f"{genre_tv:.3f}", "", ""),
    ]
    table = "\n".join(["| measure | value | target | |", "|---|---|---|---|", *(f"| {' | '.join(r)} |" for r in rows)])
    real_hist, sim_hist = star_histogram(real["stars"], scale), star_histogram(simulated, scale)
    stars = "\n".join(
        [
            "| stars | " + " | ".join(f"{s:g}" for s in scale.stars()) + " |",
            "|---" * (scale.values + 1) + "|",
            "| real | " + " | ".join(f"{p:.3f}" for p in real_hist) + " |",
            "| simulated | " + " | ".join(f"{p:.3f}" for p in sim_hist) + " |",
        ]
    )
    return f"""## MovieLens ({world.table.source})

{world.table.num_users} users, {world.table.num_movies} movies, {len(world.table)} ratings; catalogue: the {n}
most-rated movies; held-out fold: {len(real["stars"])} ratings of them. Fit: dispersion {fit.dispersion:.3f},
rating noise {fit.rating_noise:.3f} stars, {fit.sweeps} alternating sweeps.

{table}

{stars}

![rating histogram](rating_histogram.png) ![per-user mean rating](user_mean_rating.png)

![popularity curve](popularity_curve.png)

![genre share](genre_share.png)"""


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


# ---------------------------------------------------------------------------------------------- generated


def domain_section(seed: int) -> str:
    """CTR, ratings per consumed item and session length of each generated domain's defaults."""
    rows = []
    for name in (d.title for d in envs.DOMAINS.values() if d.world is None):
        for label, make_agent in (("random", RandomAgent), ("oracle", OracleAgent)):
            stats = session_statistics(f"FeedbackRec/{name}-v0", make_agent, seed)
            rows.append(f"| {name} | {label} | {stats[0]:.3f} | {stats[1]:.3f} | {stats[2]:.1f} |")
    header = ["| domain | slates | CTR | ratings per consumed item | session length (steps) |", "|---|---|---|---|---|"]
    return f"""## Generated domains: default behaviour

Each domain with its default settings (`gym.make_vec(id)`: {envs.SimConfig().num_items} items,
{envs.SimConfig().num_candidates} candidates, slates of {envs.SimConfig().slate_size}, no delays), the first
session of {DOMAIN_EPISODES} users, random or oracle slates. CTR: share of slates with a click; ratings per
consumed item: explicit ratings over clicks; session length: steps until the user left.

{chr(10).join([*header, *rows])}"""


def session_statistics(env_id: str, make_agent, seed: int) -> tuple[float, float, float]:
    """``(ctr, ratings per consumed item, mean session length)`` over the first session of each sub-env."""
    env = gym.make_vec(env_id, num_envs=DOMAIN_EPISODES, vectorization_mode="vector_entry_point", delays="none")
    agent = make_agent(Task.of(env), seed=seed)
    obs, _ = env.reset(seed=seed)
    agent.attach(env)
    active = np.ones(env.num_envs, bool)
    lengths = np.zeros(env.num_envs)
    clicks = ratings = 0
    while active.any():
        slates = agent.check_slates(np.asarray(agent.act(obs, explore=False)), env.num_envs)
        obs, _, terminated, truncated, info = env.step(slates)
        feedback = env.unwrapped.delivered.arrived
        rated = (feedback["kind"] == Signal.RATING) & active[feedback["env_index"]]
        clicks += int((info["choice"][active] >= 0).sum())
        ratings += int(rated.sum())
        lengths += active
        active &= ~(terminated | truncated)
    return clicks / lengths.sum(), ratings / max(clicks, 1), float(lengths.mean())


# ---------------------------------------------------------------------------------------------- calibration

CALIBRATION_SESSIONS = 2000  # first sessions of this many users per world, random slates, no delays
MIND_LIST = 37  # headlines per MIND impression list: 5,843,444 shown in MIND-small's train impressions (≈37 each)
CALIBRATION_TOLERANCE = 0.25  # relative


class Reference(NamedTuple):
    """A public figure a default world is calibrated to."""

    measure: str
    value: float
    source: str


CALIBRATION = {
    "Ecommerce": (
        Reference("clicks → carts", 16.9 / 194.7, "OTTO RecSys dataset: 194.7M clicks, 16.9M carts, 5.1M orders"),
        Reference("clicks → orders", 5.1 / 194.7, "OTTO RecSys dataset"),
        Reference("events per session", 16.8, "OTTO RecSys dataset: 12.9M sessions, 216.7M events"),
    ),
    "Music": (Reference("plays skipped", 0.5, "Spotify Sequential Skip Prediction Challenge: about half"),),
    "News": (
        Reference(
            f"clicks per session of {MIND_LIST}-headline lists",
            1.5,
            "MIND (Wu et al., ACL 2020): about 1.5 clicks per impression list of about 37 headlines",
        ),
    ),
}
"""Per generated domain: the figures of public data its latest version is calibrated to."""


def calibration_section(seed: int) -> str:
    """Each calibrated figure of the generated domains, by version, against its public reference."""
    rows = []
    for title, references in CALIBRATION.items():
        domain = next(d for d in envs.DOMAINS.values() if d.title == title)
        for version in domain.versions:
            env_id = f"FeedbackRec/{title}-v{version.number}"
            measured = calibration_figures(title, env_id, seed)
            for reference in references:
                value = measured[reference.measure]
                error = value / reference.value - 1
                verdict = _verdict(abs(error) <= CALIBRATION_TOLERANCE)
                rows.append(
                    f"| {env_id} | {reference.measure} | {value:.3f} | {reference.value:.3f} | {error:+.0%} | "
                    f"{verdict} | {reference.source} |"
                )
    header = [
        "| world | measure | simulated | reference | error | ±25% | reference's source |",
        "|---|---|---|---|---|---|---|",
    ]
    return f"""## Calibration to public data

Logging policy: uniformly random slates (the defaults' {envs.SimConfig().num_candidates} candidates and slates of
{envs.SimConfig().slate_size}, except news: lists of {MIND_LIST} headlines, all candidates shown, as MIND's impression
lists), the first session of {CALIBRATION_SESSIONS} users, no delays. Funnel rates are counts of the signal over
clicks (plays); events are clicks, carts and orders; a session of the simulator is one visit. The ``-v0`` rows show
the world before its calibration.

{chr(10).join([*header, *rows])}"""


def calibration_figures(title: str, env_id: str, seed: int) -> dict[str, float]:
    """The calibrated measures of one world (see :data:`CALIBRATION`) under random slates."""
    sizes = {"num_candidates": MIND_LIST, "slate_size": MIND_LIST} if title == "News" else {}
    counts, sessions = first_session_counts(env_id, seed, **sizes)
    clicks = counts[Signal.CLICK] + counts[Signal.PLAY]
    carts, orders = counts[Signal.ADD_TO_CART], counts[Signal.PURCHASE]
    return {
        "clicks → carts": carts / max(clicks, 1),
        "clicks → orders": orders / max(clicks, 1),
        "events per session": (clicks + carts + orders) / sessions,
        "plays skipped": counts[Signal.SKIP] / max(clicks, 1),
        f"clicks per session of {MIND_LIST}-headline lists": clicks / sessions,
    }


def first_session_counts(env_id: str, seed: int, **kwargs) -> tuple[np.ndarray, int]:
    """``(counts, sessions)``: per signal kind ``(S,)`` the positive records of the first session of each of
    :data:`CALIBRATION_SESSIONS` users under uniformly random slates, and the number of sessions."""
    env = gym.make_vec(
        env_id, num_envs=CALIBRATION_SESSIONS, vectorization_mode="vector_entry_point", delays="none", **kwargs
    )
    agent = RandomAgent(Task.of(env), seed=seed)
    obs, _ = env.reset(seed=seed)
    active = np.ones(env.num_envs, bool)
    counts = np.zeros(envs.signals.SIGNALS.count, np.int64)
    while active.any():
        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
        feedback = env.unwrapped.delivered.arrived
        mine = active[feedback["env_index"]] & (feedback["value"] > 0)
        counts += np.bincount(feedback["kind"][mine], minlength=len(counts)).astype(np.int64)
        active &= ~(terminated | truncated)
    return counts, env.num_envs


if __name__ == "__main__":
    main()
