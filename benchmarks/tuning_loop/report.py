"""Step three: the results as a printed table, a Markdown file and a JSON file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.tuning_loop.rows import Comparison, RowResult
from benchmarks.tuning_loop.study import DataSettings, StudyOutcome

__all__ = ["Budget", "Results", "render_markdown", "render_text", "to_json", "write_outputs"]

_SHOWN = ("optimizer", "schedule", "lr", "weight_decay", "batch_size", "gamma", "milestones",
          "pct_start", "patience", "epochs")


@dataclass(frozen=True)
class Budget:
    trials: int
    workers: int
    seeds: tuple[int, ...]
    runs_measured: int  # trainer runs of step two (identical configs trained once)
    table_threads: int  # torch threads per run of step two (the study's runs have 1 each)
    study_seconds: float
    measure_seconds: float
    wall_seconds: float
    cpu_seconds: float  # this process and its finished children


@dataclass(frozen=True)
class Results:
    outcome: StudyOutcome
    data: DataSettings
    rows: tuple[RowResult, ...]
    comparisons: tuple[Comparison, ...]
    budget: Budget
    machine: Mapping[str, Any]


def _recipe(config: Mapping[str, Any]) -> str:
    parts = []
    for name in _SHOWN:
        value = config.get(name)
        if name == "milestones" and config.get("schedule") != "multistep":
            continue
        if name in ("gamma",) and config.get("schedule") not in ("multistep", "step"):
            continue
        if name == "pct_start" and config.get("schedule") != "onecycle":
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else value
        parts.append(f"{name} {shown}")
    return ", ".join(parts)


def budget_line(r: Results) -> str:
    d, b = r.data, r.budget
    promotion = r.outcome.promotion
    return (f"budget: study {b.trials} trials x up to {d.epochs} epochs on {b.workers} workers "
            f"(1 thread each), promotion on {len(promotion.seeds) if promotion else 0} "
            f"seeds; then {b.runs_measured} runs of {d.epochs} epochs for the table "
            f"({b.table_threads} thread{'s' if b.table_threads > 1 else ''} each); ResNet-18 "
            f"width {d.width:g}; {d.pool_size - d.val_size:,} training + {d.val_size:,} "
            f"validation images (pool {d.pool_size:,}), holdout {d.holdout_size:,}; wall "
            f"{b.wall_seconds:.0f} s (study and promotion {b.study_seconds:.0f} s, table "
            f"{b.measure_seconds:.0f} s), CPU {b.cpu_seconds:.0f} s")


def machine_line(m: Mapping[str, Any]) -> str:
    return (f"machine: {m.get('cpu_model')}, {m.get('cpu_count')} cores "
            f"({m.get('usable_cpus')} usable), torch {m.get('torch')}, Python {m.get('python')}, "
            f"{m.get('platform')}")


def promotion_text(r: Results) -> str:
    p = r.outcome.promotion
    return f"promotion: {p.line}" if p is not None else "promotion: none (the study ran no trial)"


def _cells(row: RowResult, by_key: Mapping[str, Comparison]) -> tuple[str, ...]:
    c = by_key.get(row.row.key)
    same = f" (= {row.same_as})" if row.same_as else ""
    per_seed = " ".join(f"{v:.4f}" for v in row.holdout)
    diff = "-" if c is None else f"{c.mean_difference:+.4f}"
    beyond = "-" if c is None else f"{'yes' if c.beyond else 'no'} (spread {c.spread:.4f})"
    return (f"({row.row.key}) {row.row.label}{same}", f"{row.mean:.4f} +- {row.std:.4f}",
            per_seed, diff, beyond)


_HEAD = ("config", "holdout mean +- std", "per seed", "winner - this", "beyond seed spread")


def render_text(r: Results) -> str:
    by_key = {c.other: c for c in r.comparisons}
    table = [_HEAD, *(_cells(row, by_key) for row in r.rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEAD))]
    seeds = ", ".join(str(s) for s in r.budget.seeds)
    lines = [f"tuning loop on real data: holdout accuracy ({r.data.holdout_size:,} images the "
             f"study never saw), seeds {seeds}"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
              for line in table]
    lines.append("")
    for row in r.rows:
        lines.append(f"({row.row.key}) {_recipe(row.row.config)}; {row.row.source}")
    lines.append("")
    for c in r.comparisons:
        lines.append(f"winner vs ({c.other}): {c.reason}")
    o = r.outcome
    lines += ["", f"study: {o.study_name} in {o.storage}; best trial {o.best_trial} "
              f"{o.metric} {o.best_value:.4f}; trials by state "
              f"{', '.join(f'{k} {v}' for k, v in sorted(o.counts.items()))}"]
    if o.rescaled:
        lines.append(f"spec {o.rescaled}")
    lines += [promotion_text(r), budget_line(r), machine_line(r.machine)]
    return "\n".join(lines)


def render_markdown(r: Results) -> str:
    by_key = {c.other: c for c in r.comparisons}
    seeds = ", ".join(str(s) for s in r.budget.seeds)
    out = ["# Tuning loop on real data", "",
           f"Holdout accuracy ({r.data.holdout_size:,} images never seen by selection) over "
           f"seeds {seeds}.", "", "| " + " | ".join(_HEAD) + " |",
           "|" + " --- |" * len(_HEAD)]
    out += ["| " + " | ".join(_cells(row, by_key)).replace("+-", "±") + " |" for row in r.rows]
    out += ["", "## Configurations", ""]
    out += [f"- ({row.row.key}) {row.row.label}: {_recipe(row.row.config)}; {row.row.source}"
            for row in r.rows]
    out += ["", "## Paired comparisons", ""]
    out += [f"- winner vs ({c.other}): {c.reason}" for c in r.comparisons]
    o = r.outcome
    out += ["", "## Study, promotion, budget, machine", "",
            f"- study `{o.study_name}`: best trial {o.best_trial}, {o.metric} "
            f"{o.best_value:.4f}; trials by state "
            f"{', '.join(f'{k} {v}' for k, v in sorted(o.counts.items()))}"]
    if o.rescaled:
        out.append(f"- spec {o.rescaled}")
    out += [f"- {promotion_text(r)}", f"- {budget_line(r)}", f"- {machine_line(r.machine)}", ""]
    return "\n".join(out)


def to_json(r: Results) -> dict[str, Any]:
    o, d, b = r.outcome, r.data, r.budget
    return {
        "rows": [{"key": x.row.key, "label": x.row.label, "source": x.row.source,
                  "config": dict(x.row.config), "seeds": list(x.seeds),
                  "holdout_acc": list(x.holdout), "best_val_acc": list(x.best_val),
                  "stop_reasons": list(x.stop_reasons), "mean": x.mean, "std": x.std,
                  "same_as": x.same_as} for x in r.rows],
        "comparisons": [{"winner_vs": c.other, "mean_difference": c.mean_difference,
                         "spread": c.spread, "beyond_seed_spread": c.beyond,
                         "reason": c.reason} for c in r.comparisons],
        "study": {"name": o.study_name, "storage": o.storage, "metric": o.metric,
                  "best_trial": o.best_trial, "best_value": o.best_value,
                  "counts": dict(o.counts), "rescaled": o.rescaled,
                  "baseline": {"name": o.baseline_name, "trial": o.baseline_trial}},
        "promotion": None if o.promotion is None else {
            "promoted": o.promotion.promoted, "line": o.promotion.line,
            "incumbent": o.promotion.incumbent, "seeds": list(o.promotion.seeds),
            "values": list(o.promotion.values),
            "incumbent_values": list(o.promotion.incumbent_values),
            "row_id": o.promotion.row_id},
        "data": {"pool": str(d.pool_dir), "holdout": str(d.holdout_dir),
                 "pool_size": d.pool_size, "val_size": d.val_size,
                 "holdout_size": d.holdout_size, "num_classes": d.num_classes,
                 "width": d.width, "epochs": d.epochs},
        "budget": {"trials": b.trials, "workers": b.workers, "seeds": list(b.seeds),
                   "runs_measured": b.runs_measured, "table_threads": b.table_threads,
                   "study_seconds": b.study_seconds,
                   "measure_seconds": b.measure_seconds, "wall_seconds": b.wall_seconds,
                   "cpu_seconds": b.cpu_seconds, "line": budget_line(r)},
        "machine": dict(r.machine),
    }


def write_outputs(r: Results, out: Path) -> Sequence[Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "tuning_loop.md", out / "tuning_loop.json"
    md.write_text(render_markdown(r))
    js.write_text(json.dumps(to_json(r), indent=1) + "\n")
    return md, js
