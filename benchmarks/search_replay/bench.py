"""The side-by-side replay: every strategy, many repetitions, one table of figures.

Run through ``benchmarks/search_efficiency.py`` (see its ``--help``). Each (strategy,
repetition) is one simulated study of ``--workers`` asynchronous workers that spends
``--horizon`` full runs of compute; repetitions run in ``--jobs`` processes. The figures are
printed, and written to ``--out`` as ``results.md``, ``results.json`` and ``regret.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.search_replay.curves import early_rank_agreement
from benchmarks.search_replay.grid_space import GridSpace
from benchmarks.search_replay.metrics import (
    StrategySummary,
    median_ratio_interval,
    regret_curve,
    summarize,
)
from benchmarks.search_replay.peers import peers_available, replay_peer
from benchmarks.search_replay.plot import plot_regret
from benchmarks.search_replay.simulator import replay_strategy
from benchmarks.search_replay.strategies import (
    PeerStrategy,
    Strategy,
    candidate_strategies,
    standard_strategies,
)
from benchmarks.search_replay.synthetic import synthetic_table
from benchmarks.search_replay.trace import Trace
from benchmarks.search_table.table import Table, load_table

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
DEFAULT_TABLE = HERE.parent / "search_table" / "cifar10_w0125_e10.json.gz"
DEFAULT_OUT = HERE / "results"
RANDOM = "random"
DEFAULT = "hpsearch-default"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="search_efficiency.py",
        description="Replay search strategies against recorded learning curves and compare "
                    "the compute each needs to find a good configuration.")
    p.add_argument("--table", type=Path, default=DEFAULT_TABLE,
                   help="packed search table (default: %(default)s)")
    p.add_argument("--synthetic", action="store_true",
                   help="use a small made-up table instead (a smoke run)")
    p.add_argument("--reps", type=int, default=100,
                   help="repetitions per strategy (default %(default)s: at 30 the medians of "
                        "two equal strategies differed by half)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="folder for results.md, results.json and regret.png")
    p.add_argument("--workers", type=int, default=4, help="simulated asynchronous workers")
    p.add_argument("--budget", type=float, default=20.0,
                   help="the fixed budget for the regret column, in full runs")
    p.add_argument("--horizon", type=float, default=100.0,
                   help="compute each simulated study spends, in full runs")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="'within' this many points of the reference's holdout accuracy")
    p.add_argument("--reference", choices=("selectable", "best"), default="selectable",
                   help="what the target is measured from: the table's best configuration "
                        "('best'), or the lower of that and what trying every configuration "
                        "once and keeping the best by validation returns ('selectable', "
                        "default: a target that selection by validation can reach)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes running repetitions (default: all cores)")
    p.add_argument("--only", default="",
                   help="comma-separated strategy names to run (random and the default always run)")
    p.add_argument("--no-peers", action="store_true", help="leave out the Syne Tune peers")
    p.add_argument("--candidates", action="store_true",
                   help="also run the settings tried when choosing hpsearch's default")
    return p


# One table per process: loaded once, by the pool's initializer.
_GRID: GridSpace | None = None


def _load(table_path: str | None) -> Table:
    return synthetic_table() if table_path is None else load_table(table_path)


def _init_process(table_path: str | None) -> None:
    global _GRID
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    _GRID = GridSpace(_load(table_path))


@dataclass(frozen=True)
class _Task:
    strategy: Strategy
    repetition: int
    workers: int
    horizon_runs: float


def _run(task: _Task) -> Trace:
    assert _GRID is not None
    horizon = task.horizon_runs * _GRID.full_run_cpu_seconds
    if isinstance(task.strategy, PeerStrategy):
        return replay_peer(_GRID, task.strategy, repetition=task.repetition,
                           workers=task.workers, horizon_cpu_seconds=horizon)
    return replay_strategy(_GRID, task.strategy, repetition=task.repetition,
                           workers=task.workers, horizon_cpu_seconds=horizon)


def _run_all(tasks: Sequence[_Task], table_path: str | None, jobs: int) -> list[Trace]:
    if jobs <= 1:
        _init_process(table_path)
        return [_run(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                             initializer=_init_process, initargs=(table_path,)) as pool:
        return list(pool.map(_run, tasks, chunksize=1))


def _strategies(args: argparse.Namespace) -> tuple[list[Strategy], list[str]]:
    """The strategies to run, and a note for each one left out."""
    chosen: list[Strategy] = list(standard_strategies())
    if args.candidates:
        chosen += candidate_strategies()
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")} | {RANDOM, DEFAULT}
        chosen = [s for s in chosen if s.name in wanted]
    notes = []
    if args.no_peers:
        chosen = [s for s in chosen if not isinstance(s, PeerStrategy)]
    if not peers_available() and any(isinstance(s, PeerStrategy) for s in chosen):
        notes.append("peers skipped: Syne Tune is not installed (pip install -e '.[bench]')")
        chosen = [s for s in chosen if not isinstance(s, PeerStrategy)]
    return chosen, notes


def _fmt_runs(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.1f}"


def _table_lines(summaries: Sequence[StrategySummary], described: dict[str, str],
                 budget: float, tolerance: float, horizon: float) -> list[str]:
    rnd = next(s for s in summaries if s.name == RANDOM)
    head = (f"| strategy | runs to within {tolerance:g} pt: median [IQR] | reached | "
            f"vs random | regret at {budget:g} runs (pt): median [IQR] | mean | within "
            f"{tolerance:g} pt at {budget:g} runs | trials | completed | settings |")
    lines = [head, "|" + " --- |" * 10]
    for s in summaries:
        lo, hi = s.iqr_to_target
        rlo, rhi = s.iqr_regret
        lines.append(
            f"| {s.name} | {_fmt_runs(s.median_to_target)} [{_fmt_runs(lo)}, "
            f"{_fmt_runs(hi)}] | {s.reached}/{s.repetitions} | "
            f"{_times(s.median_to_target, rnd.median_to_target, horizon)}x | {s.median_regret:.2f} "
            f"[{rlo:.2f}, {rhi:.2f}] | {s.mean_regret:.2f} | "
            f"{s.at_target_at_budget}/{s.repetitions} | {s.trials:.0f} | "
            f"{s.completed:.0f} | {described[s.name]} |")
    return lines


def _times(a: float, b: float, horizon: float) -> str:
    """``a / b`` for the final line; a side that never got there within the horizon gives a
    bound (its compute is more than the horizon), both never gives n/a."""
    if math.isinf(a) and math.isinf(b):
        return "n/a"
    if math.isinf(a):
        return f">{horizon / b:.2f}"
    if math.isinf(b):
        return f"<{a / horizon:.2f}"
    return f"{a / b:.2f}"


def _best_peer(summaries: Sequence[StrategySummary], peers: set[str]
               ) -> StrategySummary | None:
    """The peer needing the least median compute; on a tie, the one whose slower quarter of
    repetitions needed less, then the one that got there more often."""
    peer = [s for s in summaries if s.name in peers]
    return min(peer, key=lambda s: (s.median_to_target, s.iqr_to_target[1], -s.reached,
                                    s.mean_regret)) if peer else None


def _final_line(summaries: Sequence[StrategySummary], best: StrategySummary | None,
                horizon: float) -> str:
    by = {s.name: s for s in summaries}
    default, rnd = by[DEFAULT].median_to_target, by[RANDOM].median_to_target
    if best is not None:
        p, name = _times(default, best.median_to_target, horizon), best.name
    else:
        p, name = "n/a", "none run"
    return (f"default: {_times(default, rnd, horizon)}x the compute of random search to "
            f"within 0.5 points; {p}x the best peer ({name})")


def _interval(lo: float, hi: float) -> str:
    def fmt(x: float) -> str:
        return "never" if math.isinf(x) else "n/a" if math.isnan(x) else f"{x:.2f}"

    verdict = ("holds 1: a tie within seed noise" if lo <= 1.0 <= hi else
               "below 1: less compute" if hi < 1.0 else "above 1: more compute")
    return f"[{fmt(lo)}, {fmt(hi)}] ({verdict})"


def _spread_line(summaries: Sequence[StrategySummary], best: StrategySummary | None) -> str:
    """How sure the final line's ratios are: a bootstrap over repetitions."""
    by = {s.name: s for s in summaries}
    default = by[DEFAULT].to_target
    parts = [f"default/random {_interval(*median_ratio_interval(default, by[RANDOM].to_target))}"]
    if best is not None:
        parts.append(f"default/{best.name} "
                     f"{_interval(*median_ratio_interval(default, best.to_target))}")
    return ("95% bootstrap intervals of the ratios of median compute, over repetitions: "
            + "; ".join(parts))


def _curve_lines(grid: GridSpace) -> list[str]:
    agreement = early_rank_agreement(grid)
    if not agreement:
        return []
    top = agreement[0].top
    return [
        "what a pruner sees at each epoch (seed-0 runs): rank correlation of validation "
        "accuracy with the configuration's worth, and how many of the "
        f"{top} best configurations are in the top third",
        "| epoch | " + " | ".join(str(a.epoch) for a in agreement) + " |",
        "|" + " --- |" * (len(agreement) + 1),
        "| Spearman | " + " | ".join(f"{a.spearman:.2f}" for a in agreement) + " |",
        f"| top {top} kept | " + " | ".join(str(a.top_kept) for a in agreement) + " |",
    ]


def _exhaustive_line(grid: GridSpace) -> str:
    pick, worth = grid.exhaustive_pick
    return (f"every configuration once, best by validation: {pick.label()}, holdout accuracy "
            f"{100 * worth:.2f}% (regret {100 * (grid.best[1] - worth):.2f} points)")


def _target_line(grid: GridSpace, reference: str, tolerance: float, target: float) -> str:
    if reference == "best" or grid.reference("selectable") == grid.best[1]:
        return (f"target: holdout accuracy >= {100 * target:.2f}%, within {tolerance:g} points "
                "of the table's best")
    return (f"target: holdout accuracy >= {100 * target:.2f}%, within {tolerance:g} points of "
            "what trying every configuration once returns: validation ranks the table's best "
            "below it, so no strategy that selects by validation can count on returning the "
            "best (--reference best measures from the best regardless)")


def _describe_table(table: Table, source: str, grid: GridSpace) -> list[str]:
    rec = table.header.recording
    best, worth = grid.best
    complete = "complete" if rec.get("complete") else "PARTIAL"
    return [
        f"table: {source} ({complete}: {len(table.runs)} runs of {rec.get('expected_runs')}, "
        f"{len(table.configs)} configurations)",
        f"best configuration: {best.label()}, holdout accuracy {100 * worth:.2f}% "
        f"(mean over its {len(table.seeds(best))} seed(s))",
        _exhaustive_line(grid),
        f"one full run: {grid.full_run_cpu_seconds:.1f} CPU seconds "
        f"({table.header.grid.epochs} epochs, mean over the table)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    table_path = None if args.synthetic else str(args.table)
    if table_path is not None and not Path(table_path).exists():
        print(f"no table at {table_path}; pack one with python -m benchmarks.search_table.pack "
              "(or --allow-incomplete while it records), or pass --table or --synthetic")
        return 2
    table = _load(table_path)
    grid = GridSpace(table)
    strategies, notes = _strategies(args)
    described = {s.name: s.describe(table) for s in strategies}
    tasks = [_Task(s, rep, args.workers, args.horizon)
             for s in sorted(strategies, key=lambda s: not isinstance(s, PeerStrategy))
             for rep in range(args.reps)]
    traces = _run_all(tasks, table_path, args.jobs)
    by_name: dict[str, list[Trace]] = {}
    for t in traces:
        by_name.setdefault(t.strategy, []).append(t)
    target = grid.reference(args.reference) - args.tolerance / 100.0
    summaries = [summarize(s.name, by_name[s.name], grid, budget_runs=args.budget,
                           target=target) for s in strategies]
    wall = time.perf_counter() - started

    lines = _describe_table(table, "synthetic" if table_path is None else table_path, grid)
    lines.append(_target_line(grid, args.reference, args.tolerance, target))
    lines.append(f"{args.reps} repetitions x {len(strategies)} strategies, {args.workers} "
                 f"asynchronous workers, each study spends {args.horizon:g} full runs; "
                 f"{wall:.0f} s wall on {args.jobs} process(es)")
    lines += notes
    off = sum(s.off_grid for s in summaries)
    if off:
        lines.append(f"{off} suggestions fell on grid points the table lacks and were "
                     "answered by the nearest recorded configuration")
    lines.append("")
    lines += _table_lines(summaries, described, args.budget, args.tolerance, args.horizon)
    lines.append("")
    lines += _curve_lines(grid)
    lines.append("")
    best_peer = _best_peer(summaries, {s.name for s in strategies
                                       if isinstance(s, PeerStrategy)})
    final = _final_line(summaries, best_peer, args.horizon)
    lines.append(_spread_line(summaries, best_peer))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join([*lines, final]) + "\n")
    (args.out / "results.json").write_text(json.dumps(_json(summaries, described, args, wall,
                                                            grid), indent=1) + "\n")
    step = max(args.horizon / 160, 0.05)
    xs = [i * step for i in range(int(args.horizon / step) + 1)]
    plot_regret({s.name: regret_curve(by_name[s.name], grid, xs) for s in strategies}, xs,
                args.out / "regret.png", budget_runs=args.budget,
                target_regret=100 * (grid.best[1] - target),
                xlabel=f"compute (full {table.header.grid.epochs}-epoch runs of CPU time, "
                       "all workers)",
                title=f"{lines[0]}\n{args.reps} repetitions, {args.workers} workers: median "
                      "and interquartile range")
    lines.append(f"wrote {args.out / 'results.md'}, results.json and regret.png")
    print("\n".join(lines))
    print(final)
    return 0


def _json(summaries: Sequence[StrategySummary], described: dict[str, str],
          args: argparse.Namespace, wall: float, grid: GridSpace) -> dict[str, Any]:
    def num(x: float) -> float | None:
        return None if math.isinf(x) else round(x, 4)

    return {
        "settings": {"reps": args.reps, "workers": args.workers, "budget_runs": args.budget,
                     "horizon_runs": args.horizon, "tolerance_points": args.tolerance,
                     "reference": args.reference,
                     "target_holdout": grid.reference(args.reference) - args.tolerance / 100,
                     "jobs": args.jobs, "wall_seconds": round(wall, 1)},
        "table": {"runs": len(grid.table.runs), "configs": len(grid.table.configs),
                  "best": grid.best[0].as_dict(), "best_holdout": grid.best[1],
                  "full_run_cpu_seconds": grid.full_run_cpu_seconds,
                  "recording": dict(grid.table.header.recording)},
        "strategies": [{"name": s.name, "settings": described[s.name],
                        "runs_to_target": [num(x) for x in s.to_target],
                        "regret_at_budget": [round(x, 4) for x in s.regret_at_budget],
                        "trials": s.trials, "completed": s.completed}
                       for s in summaries],
    }
