"""Compare agents on one environment under the one evaluation protocol, and print the table.

    python experiments/compare.py +env=news                                  # every agent in conf/agent
    python experiments/compare.py +env=ecommerce train.steps=100000 '+agents=[random,oracle,linucb,ppo]'

Each agent runs through ``run.py``'s :func:`run` — same training budget, same evaluation seed and
episodes, random and oracle on the same seed for ``normalized_score`` — in its own sub-directory of the
Hydra output directory (``metrics.json``, ``tb/``, ``checkpoints/``). Prints a Markdown table (reward
mean ± 95% CI, normalized score, CTR, NDCG@k, regret, diversity, coverage, steps, wall time) and
writes it with every agent's metrics to ``comparison.json``. An agent that fails is reported in the
table and does not stop the others.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.run import run

log = logging.getLogger("feedbackrec")

REFERENCES = ("random", "oracle")
COLUMNS = (  # (header, metric, format)
    ("normalized", "normalized_score", "{:.2f}"),
    ("CTR", "ctr", "{:.3f}"),
    ("NDCG@k", "ndcg_at_k", "{:.3f}"),
    ("regret", "regret_mean", "{:.2f}"),
    ("diversity", "intra_list_diversity", "{:.2f}"),
    ("coverage", "coverage", "{:.2f}"),
    ("steps", "env_steps", "{:d}"),
    ("wall s", "wall_seconds", "{:.0f}"),
)


def agent_names(cfg: DictConfig) -> list[str]:
    """``cfg.agents`` when given, else every option of the ``agent`` group, references first."""
    if cfg.get("agents"):
        return list(cfg.agents)
    options = GlobalHydra.instance().config_loader().get_group_options("agent")
    return [*(name for name in REFERENCES if name in options), *(name for name in options if name not in REFERENCES)]


def compare(names: list[str], overrides: list[str], output_dir: Path) -> dict[str, dict]:
    """Run every agent in ``names`` with the command line's ``overrides``; returns name → metrics
    (``{"error": message}`` for an agent that failed)."""
    results = {}
    for name in names:
        log.info("agent %s", name)
        try:
            cfg = compose(config_name="config", overrides=[*overrides, f"agent={name}"])
            results[name] = run(cfg, output_dir / name)
        except Exception as error:  # one agent's failure must not hide the others' results
            log.exception("agent %s failed", name)
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    return results


def table(results: dict[str, dict]) -> str:
    """The results as a Markdown table, one row per agent."""
    header = ["agent", "reward (mean ± 95% CI)", *(title for title, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, metrics in results.items():
        if "error" in metrics:
            cells = [f"failed: {metrics['error']}", *[""] * len(COLUMNS)]
        else:
            reward = f"{metrics['episode_reward_mean']:.2f} ± {metrics['episode_reward_ci95']:.2f}"
            cells = [reward, *(_cell(metrics.get(key), form) for _, key, form in COLUMNS)]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def _cell(value, form: str) -> str:
    return "n/a" if value is None else form.format(value)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    skip = ("agent=", "agents=", "hydra.")
    overrides = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith(skip)]
    results = compare(agent_names(cfg), overrides, output_dir)
    text = table(results)
    print(text)
    (output_dir / "comparison.json").write_text(json.dumps({"table": text, "results": results}, indent=2))
    print(f"comparison written to {output_dir / 'comparison.json'}")


if __name__ == "__main__":
    main()
