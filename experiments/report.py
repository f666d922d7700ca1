"""Turn a sweep directory into ``report.md`` (mean ± 95% CI per cell, best per column in bold) and plots.

    python experiments/report.py multirun/feedback_vs_delay/2026-11-28_10-00-00

A cell is one combination of the swept settings other than ``seed``; each job's ``metrics.json`` is
one sample of it. Failed jobs (``failure.json``, or a result file that cannot be read) and unfinished
ones are counted in their cell's ``status`` column, and failed ones are listed with their error below
the table, so partial sweeps report what they have and a cell with missing seeds is never passed off
as complete. Plots: normalised score against delay, one line per feedback strategy and one panel per
agent (``score_vs_delay.png``), and training reward curves per agent from the TensorBoard logs
(``reward_curves.png``).

A sweep over ``label`` (strategies including ``vanilla`` and ``oracle``) and ``delay`` — ``experiment=delay_correction``
— also gets a *delay correction* section, per world (the other swept settings, e.g. ``study_env``), delay and label
strategy, over the seeds that the strategy, ``vanilla`` and ``oracle`` all finished (paired): the streaming AUC of the
strategy's positive (``stream_auc_purchase`` where the runs have it, else ``stream_auc_click``);
``R-AUC = (m − vanilla) / (oracle − vanilla)`` (Yang et al., AAAI 2021), with the same for PR-AUC, as the ratio of the
mean paired differences; its 95% interval a percentile bootstrap over seeds (:data:`BOOTSTRAP` resamples of the
common seeds with replacement, each the ratio of its mean differences, drawn from ``numpy.random.default_rng(0)``:
the same report every time; marked ``(no gap)`` where the 95% t-interval of ``oracle − vanilla`` holds 0); the paired
difference against ``vanilla`` (mean ± 95% t-interval over seeds); the online regret (``online_regret_mean``) and its
paired difference against ``vanilla``. Plots: R-AUC and online regret against delay, a line per strategy and a panel
per world (``r_auc_vs_delay.png``, ``regret_vs_delay.png``).

A sweep over ``feedback`` with ``explicit`` among its strategies gets a *power* section: per delay (and agent), the
paired difference of ``normalized_score`` between each other strategy and ``explicit`` over their common seeds, and
the seeds a paired two-sided t-test at 5% would need to detect a difference that large with 80% power, were the
per-seed spread what was measured (:func:`seeds_for_power`).
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
from scipy.stats import nct
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
DELAY_ORDER = ("none", "short", "realistic", "long", "very_long")
FLOOR, CEILING = "vanilla", "oracle"
"""The label strategies R-AUC is measured between (``conf/label/``)."""
BOOTSTRAP = 2000
"""Resamples of the seeds behind a ratio's interval."""


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


def delay_runs(jobs: list[dict], keys: list[str]) -> dict[tuple, dict[str, dict[str, dict]]]:
    """``{(world, delay): {label: {seed: metrics}}}`` of the finished jobs; ``world`` is the text of ``study_env`` and
    the other swept settings that vary, but ``label`` and ``delay`` (e.g. ``study_env=ecommerce_purchase``)."""
    named = {k for job in jobs for k in job["overrides"] if k == "study_env"}
    others = sorted(named | set(keys) - {"label", "delay"})
    runs: dict[tuple, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for job in jobs:
        if job["metrics"] is not None:
            o = job["overrides"]
            world = " ".join(f"{k}={o.get(k, '')}" for k in others) or "all"
            runs[world, o.get("delay", "")][o.get("label", "")][o.get("seed", "0")] = job["metrics"]
    return runs


def positive_head(by_label: dict[str, dict[str, dict]]) -> str | None:
    """``purchase`` when the floor's runs have a streaming purchase AUC, else ``click`` when they have a click AUC."""
    floor = by_label.get(FLOOR, {}).values()
    for head in ("purchase", "click"):
        if floor and all(m.get(f"stream_auc_{head}") is not None for m in floor):
            return head
    return None


def paired(by_label: dict[str, dict[str, dict]], labels: tuple[str, ...], metric: str) -> np.ndarray:
    """``(len(labels), n)`` the ``metric`` of each of ``labels`` on the ``n`` seeds where all of them have it."""
    seeds = set.intersection(*(
        {s for s, m in by_label.get(label, {}).items() if m.get(metric) is not None} for label in labels
    ))  # fmt: skip
    ordered = sorted(seeds, key=lambda s: (len(s), s))
    return np.array([[by_label[label][s][metric] for s in ordered] for label in labels], float).reshape(len(labels), -1)


def ratio_interval(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """``R = mean(m − v) / mean(o − v)`` of ``values`` ``(3, n)`` (rows m, v, o; columns paired seeds) and its 95%
    percentile-bootstrap interval over seeds (NaN where undefined: no seeds, a single seed, no gap)."""
    m, v, o = values
    if not len(m) or np.mean(o - v) == 0:
        return math.nan, math.nan, math.nan
    point = float(np.mean(m - v) / np.mean(o - v))
    if len(m) < 2:
        return point, math.nan, math.nan
    draws = rng.integers(0, len(m), (BOOTSTRAP, len(m)))
    gap = (o - v)[draws].mean(1)
    ratios = (m - v)[draws].mean(1)[gap != 0] / gap[gap != 0]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def has_gap(gaps: np.ndarray) -> bool:
    """Whether the paired ``oracle − vanilla`` ``gaps`` ``(n,)`` have a 95% t-interval that excludes 0 (else a ratio
    over them says nothing: the report marks it ``(no gap)``)."""
    if len(gaps) < 2:
        return False
    mean, ci = mean_ci(list(gaps))
    return bool(abs(mean) > ci)


def _interval(point: float, low: float, high: float) -> str:
    if not math.isfinite(point):
        return "n/a"
    return f"{point:.2f} [{low:.2f}, {high:.2f}]" if math.isfinite(low) else f"{point:.2f} (CI undefined)"


def _mean_ci(values: np.ndarray, sign: str = "+") -> str:
    """Mean ± 95% t-interval of ``values`` ``(n,)``, signed (``sign="+"``) or not (``""``)."""
    if not len(values):
        return "n/a"
    mean, ci = mean_ci(list(values))
    return f"{mean:{sign}.4f} ± {ci:.4f}" if math.isfinite(ci) else f"{mean:{sign}.4f} (1 seed)"


def delay_correction(jobs: list[dict], keys: list[str]) -> tuple[list[str], dict]:
    """The delay-correction table (see the module docstring) and its figures for the plots: ``{world: {label:
    [(delay, r_auc, low, high, regret, regret_ci, gap)]}}`` (``gap``: whether oracle − vanilla has one)."""
    rng = np.random.default_rng(0)
    lines = [
        "| world | delay | label | n | AUC | R-AUC [95%] | ΔAUC vs vanilla | R-PR-AUC [95%] | online regret "
        "| Δregret vs vanilla |",
        "|" + "---|" * 10,
    ]
    figures: dict = defaultdict(lambda: defaultdict(list))
    runs = delay_runs(jobs, keys)
    for world, delay in sorted(runs, key=lambda c: (c[0], _cell_order((c[1],)))):
        by_label = runs[world, delay]
        head = positive_head(by_label)
        for label in sorted(by_label, key=lambda name: (name != CEILING, name != FLOOR, name)):
            row, auc = [world, delay, label], f"stream_auc_{head}"
            regret = paired(by_label, (label,), "online_regret_mean")[0]
            regret_mean, regret_ci = mean_ci(list(regret)) if len(regret) else (math.nan, math.nan)
            if head is None or CEILING not in by_label:
                lines.append("| " + " | ".join([*row, str(len(regret)), "n/a", "n/a", "n/a", "n/a",
                                                _mean_ci(regret, ""), "n/a"]) + " |")  # fmt: skip
                continue
            values = paired(by_label, (label, FLOOR, CEILING), auc)
            r_auc = ratio_interval(values, rng)
            r_pr = ratio_interval(paired(by_label, (label, FLOOR, CEILING), f"stream_pr_auc_{head}"), rng)
            regrets = paired(by_label, (label, FLOOR), "online_regret_mean")
            flag = "" if has_gap(values[2] - values[1]) else " (no gap)"
            mean_auc = f"{values[0].mean():.4f}" if values.size else "n/a"
            lines.append("| " + " | ".join([
                *row, str(values.shape[1]), mean_auc, _interval(*r_auc) + flag,
                _mean_ci(values[0] - values[1]), _interval(*r_pr), _mean_ci(regret, ""),
                _mean_ci(regrets[0] - regrets[1]),
            ]) + " |")  # fmt: skip
            figures[world][label].append((delay, *r_auc, regret_mean, regret_ci, not flag))
    return lines, figures


def plot_against_delay(figures: dict, path: Path, what: str) -> bool:
    """``what`` (``r_auc`` or ``regret``) against the delays swept, a line per label strategy (R-AUC: the corrections
    only, the floor and ceiling being 0 and 1 by definition, and only where oracle − vanilla has a gap), a panel per
    world."""
    if not figures:
        return False
    worlds = sorted(figures)
    present = {p[0] for world in figures.values() for points in world.values() for p in points}
    delays = [d for d in DELAY_ORDER if d in present]
    figure, axes = plt.subplots(1, len(worlds), figsize=(5.5 * len(worlds), 4), squeeze=False)
    for axis, world in zip(axes[0], worlds, strict=True):
        for label, points in sorted(figures[world].items()):
            if what == "r_auc" and label in (FLOOR, CEILING):
                continue
            points = sorted((delays.index(p[0]), *p[1:]) for p in points if p[0] in delays)
            x, point, low, high, regret, regret_ci, gap = (np.array(v, float) for v in zip(*points, strict=True))
            if what == "r_auc":
                keep = np.isfinite(point) & (gap > 0)  # a ratio over no gap says nothing
                spread = np.nan_to_num(np.array([point - low, high - point])[:, keep])
                axis.errorbar(x[keep], point[keep], yerr=spread, marker="o", capsize=3, label=label)
            else:
                axis.errorbar(x, regret, yerr=np.nan_to_num(regret_ci), marker="o", capsize=3, label=label)
        axis.set_xticks(range(len(delays)), delays, rotation=20)
        axis.set_title(world, fontsize=9)
        axis.set_xlabel("feedback delay")
        axis.grid(alpha=0.3)
        if what == "r_auc":
            axis.axhline(0.0, color="grey", lw=0.8)
            axis.axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[0][0].set_ylabel("R-AUC = (m − vanilla) / (oracle − vanilla)" if what == "r_auc" else "online regret / step")
    axes[0][-1].legend(title="label", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def seeds_for_power(differences: np.ndarray, power: float = 0.8, alpha: float = 0.05, most: int = 10_000) -> float:
    """The fewest seeds ``n`` at which a paired two-sided t-test at level ``alpha`` detects the mean of the paired
    ``differences`` ``(n0,)`` with probability ``power``, the true mean and spread being the measured ones: the power
    at ``n`` is ``P(|T| > t_{1−α/2, n−1})`` for ``T`` noncentral t with ``n − 1`` degrees of freedom and noncentrality
    ``√n · mean / sd`` (scipy's ``nct``). NaN when fewer than 2 differences or no spread; ``inf`` beyond ``most``."""
    if len(differences) < 2 or np.std(differences, ddof=1) == 0:
        return math.nan
    effect = abs(np.mean(differences)) / np.std(differences, ddof=1)
    for n in range(2, most + 1):
        critical = stats.t.ppf(1 - alpha / 2, n - 1)
        shift = effect * math.sqrt(n)
        if nct.sf(critical, n - 1, shift) + nct.cdf(-critical, n - 1, shift) >= power:
            return float(n)
    return math.inf


def feedback_power(jobs: list[dict], keys: list[str], baseline: str = "explicit") -> list[str]:
    """The power section (see the module docstring): a row per cell other than ``feedback`` and per strategy."""
    groups: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    others = [k for k in keys if k != "feedback"]
    for job in jobs:
        score = (job["metrics"] or {}).get("normalized_score")
        if score is not None:
            o = job["overrides"]
            groups[tuple(o.get(k, "") for k in others)][o.get("feedback", "")][o.get("seed", "0")] = score
    lines = [
        "| "
        + " | ".join([*others, "feedback", "n", f"Δ normalized_score vs {baseline}", "seeds for 80% power"])
        + " |",
        "|" + "---|" * (len(others) + 4),
    ]
    for cell in sorted(groups, key=_cell_order):
        for strategy in sorted(set(groups[cell]) - {baseline}):
            common = sorted(set(groups[cell][strategy]) & set(groups[cell].get(baseline, {})))
            differences = np.array([groups[cell][strategy][s] - groups[cell][baseline][s] for s in common])
            needed = seeds_for_power(differences)
            shown = "n/a" if math.isnan(needed) else "> 10,000" if math.isinf(needed) else f"{needed:.0f}"
            lines.append("| " + " | ".join([*cell, strategy, str(len(common)), _mean_ci(differences), shown]) + " |")
    return lines


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
    if any(job["overrides"].get("feedback") == "explicit" for job in jobs) and "feedback" in keys:
        lines += ["", "## Power: each feedback strategy against explicit", "", *feedback_power(jobs, keys)]
    if any({"label", "delay"} <= job["overrides"].keys() for job in jobs):
        correction, figures = delay_correction(jobs, keys)
        lines += ["", "## Delay correction", "", *correction]
        plots += [
            (f"{what}_vs_delay.png", plot_against_delay(figures, sweep / f"{what}_vs_delay.png", what))
            for what in ("r_auc", "regret")
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
