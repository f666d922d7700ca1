"""Turn a sweep directory into ``report.md`` (mean ± 95% CI per cell, best per column in bold) and plots.

    python experiments/report.py multirun/feedback_vs_delay/2026-11-28_10-00-00

A cell is one combination of the swept settings other than ``seed``; each job's ``metrics.json`` is
one sample of it. Failed jobs (``failure.json``, or a result file that cannot be read) and unfinished
ones are counted in their cell's ``status`` column, and failed ones are listed with their error below
the table, so partial sweeps report what they have and a cell with missing seeds is never passed off
as complete. Plots: normalised score against delay, one line per feedback strategy and one panel per
agent (``score_vs_delay.png``), and training reward curves per agent from the TensorBoard logs
(``reward_curves.png``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import yaml
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

COLUMNS = (
    "normalized_score",
    "episode_reward_mean",
    "ctr",
    "rating_mean",
    "regret_mean",
    "ndcg_at_k",
    "coverage",
    "rating_rmse_honest",
    "spam_detection_auc",
)
LOWER_IS_BETTER = {"regret_mean", "rating_rmse_honest"}
DELAY_ORDER = ("none", "short", "realistic", "long")


def load_jobs(sweep: Path) -> list[dict]:
    """Every job under ``sweep``: its swept overrides and its metrics, failure or status.

    A job whose ``overrides.yaml``, ``metrics.json`` or ``failure.json`` cannot be read counts as
    failed, with the reason. YAML is read with the safe loader (no Python object tags).
    """
    jobs = []
    for config in sorted(sweep.rglob(".hydra/overrides.yaml")):
        directory = config.parent.parent
        job = {"dir": directory, "overrides": {}, "metrics": None, "error": None}
        try:
            listed = yaml.safe_load(config.read_text()) or []
            if not isinstance(listed, list):
                raise ValueError(f"overrides.yaml holds {type(listed).__name__}; expected a list of key=value")
            job["overrides"] = dict(str(o).split("=", 1) for o in listed if "=" in str(o))
            if (directory / "metrics.json").is_file():
                job["metrics"] = _read_object(directory / "metrics.json")
            elif (directory / "failure.json").is_file():
                failure = _read_object(directory / "failure.json")
                job["error"] = f"{failure.get('error', 'failure')}: {failure.get('message', '(no message)')}"
        except (OSError, ValueError, yaml.YAMLError) as error:
            job["error"] = f"unreadable job files: {error}"
        jobs.append(job)
    return jobs


def _read_object(path: Path) -> dict:
    """The JSON object in ``path``; ``ValueError`` naming the file when it is not one."""
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path.name} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds {type(data).__name__}; expected a JSON object")
    return data


def status(job: dict) -> str:
    """``"finished"``, ``"failed"`` or ``"unfinished"``."""
    return "finished" if job["metrics"] is not None else "failed" if job["error"] else "unfinished"


def cell_keys(jobs: list[dict]) -> list[str]:
    """The override keys that vary across jobs, ``seed`` excluded, in a stable order."""
    keys = sorted({k for job in jobs for k in job["overrides"]})
    varying = [k for k in keys if len({job["overrides"].get(k) for job in jobs}) > 1 and k != "seed"]
    return varying or [k for k in keys if k != "seed"][:1]


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN for a single sample: the interval is undefined)."""
    if len(values) < 2:
        return float(values[0]), math.nan
    return float(np.mean(values)), float(
        stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    )


def table(jobs: list[dict], keys: list[str]) -> tuple[list[str], dict]:
    """Markdown rows of every cell and the per-cell samples of the finished jobs.

    ``n`` counts finished jobs; ``status`` is ``ok`` or says how many of the cell's jobs failed or are
    unfinished (in bold). A cell without a finished job shows its status in place of the metrics; a cell with
    one finished job says its interval is undefined.
    """
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for job in jobs:
        cell = tuple(job["overrides"].get(k, "") for k in keys)
        counts[cell][status(job)] += 1
        if job["metrics"] is not None:
            for column in COLUMNS:
                if job["metrics"].get(column) is not None:
                    cells[cell][column].append(job["metrics"][column])
    summary = {cell: {c: mean_ci(v) for c, v in columns.items()} for cell, columns in cells.items() if columns}
    best = {}
    for column in COLUMNS:
        means = [s[column][0] for s in summary.values() if column in s]
        if means:
            best[column] = min(means) if column in LOWER_IS_BETTER else max(means)
    rows = [
        "| " + " | ".join([*keys, "n", "status", *COLUMNS]) + " |",
        "|" + "---|" * (len(keys) + 2 + len(COLUMNS)),
    ]
    for cell in sorted(counts, key=_cell_order):
        values = summary.get(cell, {})
        n = counts[cell]["finished"]
        problems = [f"{counts[cell][s]} {s}" for s in ("failed", "unfinished") if counts[cell][s]]
        state = f"**{', '.join(problems)}**" if problems else "ok"
        shown = []
        for column in COLUMNS:
            if column not in values:
                shown.append("n/a" if n else state)
                continue
            mean, ci = values[column]
            text = f"{mean:.3f} ± {ci:.3f}" if math.isfinite(ci) else f"{mean:.3f} (1 seed: CI undefined)"
            shown.append(f"**{text}**" if mean == best[column] else text)
        rows.append("| " + " | ".join([*cell, str(n), state, *shown]) + " |")
    return rows, summary


def _one_line(text: str) -> str:
    """``text`` fit for one Markdown table cell: whitespace runs (newlines too) as one space, ``|`` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _cell_order(cell: tuple) -> tuple:
    return tuple(DELAY_ORDER.index(v) if v in DELAY_ORDER else 0 for v in cell) + cell


def plot_score_vs_delay(summary: dict, keys: list[str], path: Path) -> bool:
    """Normalised score against delay, a line per feedback strategy, a panel per agent."""
    if "delay" not in keys or "feedback" not in keys:
        return False
    agents = sorted({cell[keys.index("agent")] for cell in summary}) if "agent" in keys else [""]
    figure, axes = plt.subplots(1, len(agents), figsize=(5 * len(agents), 4), squeeze=False, sharey=True)
    for axis, agent in zip(axes[0], agents, strict=True):
        for strategy in sorted({cell[keys.index("feedback")] for cell in summary}):
            points = [
                (DELAY_ORDER.index(cell[keys.index("delay")]), *values["normalized_score"])
                for cell, values in summary.items()
                if "normalized_score" in values
                and cell[keys.index("feedback")] == strategy
                and (not agent or cell[keys.index("agent")] == agent)
                and cell[keys.index("delay")] in DELAY_ORDER
            ]
            if points:
                x, mean, ci = (np.array(v) for v in zip(*sorted(points), strict=True))
                axis.errorbar(x, mean, yerr=ci, marker="o", capsize=3, label=strategy)
        axis.set_xticks(range(len(DELAY_ORDER)), DELAY_ORDER)
        axis.set_title(agent or "all agents")
        axis.set_xlabel("feedback delay")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalized score (random 0, oracle 1)")
    axes[0][-1].legend(title="feedback", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def plot_reward_curves(jobs: list[dict], path: Path) -> bool:
    """``rollout/ep_rew_mean`` over training steps, averaged per agent across its jobs."""
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for job in jobs:
        tb = job["dir"] / "tb"
        if not tb.is_dir():
            continue
        events = EventAccumulator(str(tb), size_guidance={"scalars": 0})
        events.Reload()
        if "rollout/ep_rew_mean" in events.Tags().get("scalars", []):
            points = events.Scalars("rollout/ep_rew_mean")
            curves[job["overrides"].get("agent", "agent")].append(
                (np.array([p.step for p in points]), np.array([p.value for p in points]))
            )
    if not curves:
        return False
    figure, axis = plt.subplots(figsize=(6, 4))
    for agent, runs in sorted(curves.items()):
        grid = np.linspace(0, min(r[0].max() for r in runs), 50)
        mean = np.mean([np.interp(grid, steps, values) for steps, values in runs], axis=0)
        axis.plot(grid, mean, label=f"{agent} ({len(runs)} runs)")
    axis.set_xlabel("user-steps")
    axis.set_ylabel("training episode reward (rollout/ep_rew_mean)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def report(sweep: Path) -> Path:
    """Write ``report.md`` and the plots into ``sweep``; returns the report's path."""
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep} does not exist")
    jobs = load_jobs(sweep)
    if not jobs:
        raise ValueError(f"{sweep} holds no Hydra jobs (no */.hydra/overrides.yaml); expected a multirun directory")
    keys = cell_keys(jobs)
    rows, summary = table(jobs, keys)
    done = sum(status(job) == "finished" for job in jobs)
    failed = [job for job in jobs if status(job) == "failed"]
    lines = [
        f"# Sweep report: `{sweep}`",
        "",
        f"{len(jobs)} jobs: {done} finished, {len(failed)} failed, "
        f"{len(jobs) - done - len(failed)} unfinished. Cells: mean ± 95% CI over seeds; best per column in bold.",
        "",
        *rows,
    ]
    if failed:
        lines += ["", "## Failed jobs", "", "| job | overrides | error |", "|---|---|---|"]
        lines += [
            f"| `{j['dir'].name}` | {_one_line(' '.join(f'{k}={v}' for k, v in j['overrides'].items()))} "
            f"| {_one_line(j['error'])} |"
            for j in failed
        ]
    plots = [
        ("score_vs_delay.png", plot_score_vs_delay(summary, keys, sweep / "score_vs_delay.png")),
        ("reward_curves.png", plot_reward_curves(jobs, sweep / "reward_curves.png")),
    ]
    lines += ["", *(f"![{name}]({name})" for name, made in plots if made)]
    path = sweep / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="a Hydra multirun directory")
    args = parser.parse_args()
    try:
        path = report(args.sweep)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(path.read_text())


if __name__ == "__main__":
    main()
