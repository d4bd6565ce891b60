"""Step two: the four configurations, trained on the same seeds and scored on the holdout.

(a) the study's winner, its whole resolved config as the trial recorded it; (b) the default
``hpsearch train`` resolves afterwards for the winner's model and optimizer with the same data,
width and epochs (the promoted row, or whatever is in force if promotion was refused); (c) the
round-2 baseline exactly as the study ran it (its milestones rescaled as fractions of the
budget); (d) a reference recipe, OneCycle SGD with Nesterov momentum. Configurations that turn
out identical are trained once. The winner is compared with each by the promotion's own paired
rule (``search.tuning.promote.decide``): beyond the seed spread when the mean paired difference
exceeds the larger standard deviation over the seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.tuning_loop.study import DataSettings, StudyOutcome

__all__ = ["REFERENCE", "Comparison", "RowResult", "RowSpec", "build_rows", "compare",
           "measure_rows"]

# OneCycle SGD-Nesterov, the usual ResNet-18 CIFAR-10 recipe at batch 128: peak lr 0.1 reached
# after 30% of the steps (torch's OneCycleLR defaults: from peak/25 up, cosine down to
# peak/(25 * 1e4)), momentum 0.9, weight decay 5e-4, no early stopping (a one-cycle run
# improves late; the holdout is still scored with the best-validation weights).
REFERENCE: Mapping[str, Any] = {
    "optimizer": "nesterov", "schedule": "onecycle", "lr": 0.1, "momentum": 0.9,
    "weight_decay": 5e-4, "batch_size": 128, "pct_start": 0.3, "milestones": [],
    "label_smoothing": 0.0, "warmup_epochs": 0}


@dataclass(frozen=True)
class RowSpec:
    key: str  # "a" .. "d"
    label: str  # "study winner (trial 7)"
    source: str  # where the config comes from, in a sentence
    config: Mapping[str, Any]  # the trainer's whole config (JSON-ready); the seed is replaced


@dataclass(frozen=True)
class RowResult:
    row: RowSpec
    seeds: tuple[int, ...]
    holdout: tuple[float, ...]  # test_acc per seed (nan: the run reported none)
    best_val: tuple[float, ...]  # best_val_acc per seed
    stop_reasons: tuple[str, ...]
    same_as: str | None  # the key of the row whose identical config was trained instead

    @property
    def mean(self) -> float:
        return statistics.mean(self.holdout)

    @property
    def std(self) -> float:
        return statistics.stdev(self.holdout) if len(self.holdout) >= 2 else 0.0


@dataclass(frozen=True)
class Comparison:
    other: str  # the row key the winner is compared with
    mean_difference: float  # winner minus other, mean over paired seeds
    spread: float  # the larger std of the two over the seeds
    beyond: bool  # mean_difference > spread: the promotion rule's "beats"
    reason: str  # the rule's sentence with the numbers


def _json_ready(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def _identity(config: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in _json_ready(config).items() if k != "seed"},
                      sort_keys=True, default=str)


def build_rows(outcome: StudyOutcome, data: DataSettings, *, storage: str,
               reference_lr: float) -> list[RowSpec]:
    import search
    from search.study.trainers import get_trainer
    from search.tuning.resolve import resolve_config

    winner = _json_ready(outcome.winner_config)
    rows = [RowSpec("a", f"study winner (trial {outcome.best_trial})",
                    f"trial {outcome.best_trial}'s resolved config ({outcome.metric} "
                    f"{outcome.best_value:.4f} in the study)", winner)]

    shared = {**data.overrides(), "epochs": data.epochs}
    resolution = search.resolve_config(
        trainer=outcome.trainer, model=winner.get("model"), optimizer=winner.get("optimizer"),
        overrides=shared, storage=storage)
    row_id = resolution.tuned_row_id
    promoted_row = outcome.promotion.row_id if outcome.promotion is not None else None
    if row_id is not None and row_id == promoted_row:
        label = f"promoted default (row {row_id})"
        what = f"tuned row {row_id}, promoted by this study"
    elif row_id is not None:
        label, what = (f"default in force (row {row_id})",
                       f"tuned row {row_id}, in force (this study's winner was not promoted)")
    else:
        label, what = ("default in force (code defaults)",
                       "the code defaults (no tuned row for this regime; the winner was not "
                       "promoted)")
    notes = f"; {'; '.join(resolution.notes)}" if resolution.notes else ""
    rows.append(RowSpec("b", label, f"hpsearch train's resolution for {winner.get('model')}/"
                        f"{winner.get('optimizer')} with the same data, width and epochs: "
                        f"{what}{notes}", _json_ready(resolution.config.to_dict())))

    ran = outcome.baseline_trial
    rows.append(RowSpec(
        "c", f"{outcome.baseline_name} baseline "
             f"({'trial ' + str(ran) if ran is not None else 'not run by the study'})",
        f"the spec's {outcome.baseline_name!r} baseline " + (
            f"as the study ran it (trial {ran})" if ran is not None else
            "resolved as the study would have run it (a stop rule ended the study first)"),
        _json_ready(outcome.baseline_config)))

    recipe = {**REFERENCE, "lr": reference_lr, "patience": data.epochs}
    entry = get_trainer(outcome.trainer)
    reference = resolve_config(entry, explicit={**shared, **recipe}, tuned=None).config
    rows.append(RowSpec("d", "reference: OneCycle SGD-Nesterov",
                        f"OneCycle (peak lr {reference_lr:g} at {REFERENCE['pct_start']:.0%} of "
                        "the steps), SGD with Nesterov momentum 0.9, weight decay "
                        f"{REFERENCE['weight_decay']:g}, batch {REFERENCE['batch_size']}, no "
                        "early stopping", _json_ready(reference.to_dict())))
    return rows


def measure_rows(rows: Sequence[RowSpec], *, trainer: str, seeds: Sequence[int], workers: int,
                 emit: Callable[[str], None]) -> list[RowResult]:
    """Every row on every seed, identical configs once, ``workers`` runs at a time."""
    from search.tuning.remeasure import Job, JobResult, run_jobs

    first_with: dict[str, str] = {}
    for row in rows:
        first_with.setdefault(_identity(row.config), row.key)
    jobs = [Job(f"({row.key}) {row.label}", trainer, {**row.config, "seed": s, "checkpoint_dir":
                                                        None}, s)
            for row in rows if first_with[_identity(row.config)] == row.key for s in seeds]

    def describe(done: JobResult) -> str:
        r = done.result
        test = r.get("test_acc")
        shown = f"{test:.4f}" if isinstance(test, int | float) else "none"
        return f": holdout {shown}, best_val_acc {r.get('best_val_acc', math.nan):.4f}"

    results = run_jobs(jobs, workers=workers, emit=emit, describe=describe)
    by_key: dict[str, list[JobResult]] = {}
    for done in results:
        by_key.setdefault(done.job.label.split(")")[0].lstrip("("), []).append(done)
    out = []
    for row in rows:
        source = first_with[_identity(row.config)]
        done_runs = sorted(by_key[source], key=lambda d: d.job.seed)
        out.append(RowResult(
            row=row, seeds=tuple(d.job.seed for d in done_runs),
            holdout=tuple(_number(d.result.get("test_acc")) for d in done_runs),
            best_val=tuple(_number(d.result.get("best_val_acc")) for d in done_runs),
            stop_reasons=tuple(str(d.result.get("stop_reason", "?")) for d in done_runs),
            same_as=None if source == row.key else source))
    return out


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def compare(winner: RowResult, other: RowResult) -> Comparison:
    from search.tuning.promote import decide

    verdict = decide(winner.holdout, other.holdout, higher_is_better=True,
                     incumbent_label=f"({other.row.key}) {other.row.label}")
    return Comparison(other.row.key, verdict.mean_difference, verdict.spread, verdict.promoted,
                      verdict.reason)
