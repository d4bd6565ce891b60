"""The round analysis, computed from a study's trials: what a person wrote by hand after round 2.

- comparison: the best trial against the previous round's best (or, without one, against the
  best of the study's enqueued baselines), as "previous -> current (+delta)";
- overfitting indicators: training accuracy near 100%, training loss near 0, the
  train-validation gap against the spec's limit;
- optimization analysis: whether the LR decayed before validation accuracy peaked, where the
  last milestone fell relative to the stopping epoch, epochs spent at tiny LRs;
- the top trials, ranked at a common fidelity (search/report/ranking.py: a pruned trial counts
  at the epoch it reached);
- what early stopping and pruning made moot: milestones never reached (so gamma and milestones
  did nothing), a patience so short that trials stopped at their first dip, trials pruned early;
- the next round: a search space narrowed around the top trials, each range with its reason,
  as a study spec ``hpsearch launch`` accepts. Narrowing needs evidence: a range narrows only
  around at least ``MIN_TRIALS_TO_NARROW`` ranked trials; a categorical choice is dropped only
  when ``MIN_LOSERS_TO_DROP`` or more trials tried it and none reached the top (a choice too
  few trials tried stays); a value every top trial shares keeps its neighbours (up to the
  nearest values other trials tried); gamma and milestones narrow only around top trials that
  trained past their first milestone (in the others they did nothing);
- parameter importances only from ``MIN_COMPLETE_FOR_IMPORTANCE`` completed trials or more.

Accuracies are fractions in the data and percentages in the text, as in the analysis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from search.report.pruning_check import check_pruning, decision_epoch
from search.report.ranking import Ranked, rank_trials
from search.study.study_spec import PATIENCE_FLOOR  # the floor of a rescaled patience
from storage.attrs import CONFIG_ATTR

__all__ = ["Comparison", "RoundAnalysis", "analyse", "compare", "importance_unavailable",
           "moot_notes", "next_round", "optimization_notes", "overfitting_notes"]

# (label, user attribute, kind): kind "pct" prints accuracies as percentages
_COMPARED = (
    ("Test Accuracy", "test_acc", "pct"),
    ("Training Accuracy", "best_train_acc", "pct"),
    ("Validation Accuracy", "best_val_acc", "pct"),
    ("Training Loss", "best_train_loss", "num"),
    ("Validation Loss", "best_val_loss", "num"),
    ("Early Stopping", "epochs_run", "epochs"),
)
NEAR_PERFECT_ACC = 0.99
NEAR_ZERO_LOSS = 0.01
TINY_LR_FRACTION = 0.01  # an LR below 1% of the starting LR barely moves the weights
TOP_K = 5
MIN_TRIALS_TO_NARROW = 3  # fewer ranked trials than this leave a range as searched
MIN_LOSERS_TO_DROP = 3  # trials at a choice, none in the top, before the choice is dropped
# fANOVA's ranking from a handful of trials is noise: 4 trials ranked batch size first in a
# study where it did not matter (issue 13)
MIN_COMPLETE_FOR_IMPORTANCE = 10


@dataclass(frozen=True)
class Comparison:
    label: str
    previous: float
    current: float
    kind: str

    @property
    def delta(self) -> float:
        return self.current - self.previous

    def line(self) -> str:
        if self.kind == "pct":
            return (f"{self.label}: {self.previous * 100:.2f}% -> {self.current * 100:.2f}% "
                    f"({self.delta * 100:+.2f}%)")
        if self.kind == "epochs":
            return (f"{self.label}: {self.previous:.0f} -> {self.current:.0f} epochs "
                    f"({self.delta:+.0f} epochs)")
        return f"{self.label}: {self.previous:.3f} -> {self.current:.3f} ({self.delta:+.3f})"


@dataclass(frozen=True)
class RoundAnalysis:
    best: FrozenTrial
    reference: FrozenTrial | None
    reference_label: str
    comparisons: tuple[Comparison, ...]
    overfitting: tuple[str, ...]
    optimization: tuple[str, ...]
    next_spec: dict[str, Any]
    next_reasons: tuple[str, ...]
    ranking: tuple[Ranked, ...] = ()  # every ranked trial, best first
    moot: tuple[str, ...] = ()
    importance_note: str | None = None  # why importances are not shown; None when they are


def compare(previous: FrozenTrial, current: FrozenTrial) -> list[Comparison]:
    out = []
    for label, key, kind in _COMPARED:
        a, b = previous.user_attrs.get(key), current.user_attrs.get(key)
        if isinstance(a, int | float) and isinstance(b, int | float):
            out.append(Comparison(label, float(a), float(b), kind))
    return out


def overfitting_notes(best: FrozenTrial, max_gap: float | None) -> list[str]:
    attrs = best.user_attrs
    notes = []
    train_acc, train_loss = attrs.get("best_train_acc"), attrs.get("best_train_loss")
    if isinstance(train_acc, int | float) and train_acc >= NEAR_PERFECT_ACC:
        notes.append(f"Training accuracy {train_acc * 100:.2f}% is near 100%: the model "
                     "memorises the training set")
    if isinstance(train_loss, int | float) and train_loss <= NEAR_ZERO_LOSS:
        notes.append(f"Training loss {train_loss:.3f} is near 0")
    gap = attrs.get("best_train_val_gap")
    if isinstance(gap, int | float):
        if max_gap is None:
            notes.append(f"Train-validation gap: {gap * 100:.2f} points")
        else:
            verdict = "over" if gap > max_gap else "within"
            notes.append(f"Train-validation gap: {gap * 100:.2f} points, {verdict} the limit of "
                         f"{max_gap * 100:.0f} points")
    val_loss, t_loss = attrs.get("best_val_loss"), attrs.get("best_train_loss")
    if isinstance(val_loss, int | float) and isinstance(t_loss, int | float) \
            and val_loss > 2 * max(t_loss, 1e-9):
        notes.append(f"Validation loss {val_loss:.3f} is more than twice the training loss "
                     f"{t_loss:.3f}")
    return notes


def optimization_notes(best: FrozenTrial) -> list[str]:
    attrs = best.user_attrs
    lrs: list[float] = list(attrs.get("lr_schedule") or [])
    config: Mapping[str, Any] = attrs.get("config") or {}
    epochs_run = attrs.get("epochs_run")
    best_epoch = attrs.get("best_epoch")
    notes = []
    if lrs and isinstance(best_epoch, int):
        first_decay = next((e for e, lr in enumerate(lrs, 1) if lr < lrs[0] * 0.999), None)
        if first_decay is None:
            notes.append(f"The LR never decayed; validation accuracy peaked at epoch {best_epoch}")
        elif first_decay <= best_epoch:
            notes.append(f"The LR first decayed at epoch {first_decay}, before validation "
                         f"accuracy peaked at epoch {best_epoch}: decay helped it keep "
                         "improving")
        else:
            notes.append(f"Validation accuracy peaked at epoch {best_epoch}, before the LR "
                         f"first decayed at epoch {first_decay}: it plateaued at the starting "
                         "LR")
        tiny = [e for e, lr in enumerate(lrs, 1) if lr <= lrs[0] * TINY_LR_FRACTION * 1.000001]
        wasted = [e for e in tiny if e > best_epoch]
        if tiny:
            notes.append(f"{len(tiny)} epochs ran at or below 1% of the starting LR "
                         f"({lrs[0]:.4g} -> {min(lrs):.4g}); {len(wasted)} of them after the "
                         f"best epoch, without improvement")
    milestones = list(config.get("milestones") or [])
    if milestones and isinstance(epochs_run, int) and config.get("schedule", "multistep") \
            == "multistep":
        last = milestones[-1]
        unused = [m for m in milestones if m >= epochs_run]
        if unused:
            notes.append(f"Training stopped at epoch {epochs_run}, before milestones {unused}: "
                         "those decays never happened")
        else:
            gap = epochs_run - last
            notes.append(f"The last milestone (epoch {last}) came {gap} epoch"
                         f"{'' if gap == 1 else 's'} before training stopped at epoch "
                         f"{epochs_run}")
    return notes


def next_round(spec: Mapping[str, Any], trials: Sequence[FrozenTrial], *,
               top_k: int = TOP_K) -> tuple[dict[str, Any], list[str]]:
    """A search space narrowed around the ``top_k`` best trials ranked at a common fidelity
    (completed and pruned, feasible), narrowing only where there is evidence."""
    maximize = spec.get("objective", {}).get("direction", "maximize") == "maximize"
    ranked = rank_trials(trials, maximize=maximize)
    finished = [r.trial for r in ranked if r.finished]
    if not finished:
        raise ValueError("no completed feasible trial to narrow the space around")
    top = [r.trial for r in ranked[:top_k]]
    space: dict[str, Any] = {}
    reasons: list[str] = []
    reached = [t for t in top if _reached_first_milestone(t) is not False]
    for name, p in spec["space"].items():
        if p["type"] == "categorical":
            choices, why = _keep_choices(name, p["choices"], ranked, len(top))
            space[name] = {"type": "categorical", "choices": choices}
            reasons.append(why)
            continue
        basis = reached if _decays_only(name, p, spec) else top
        if len(basis) < MIN_TRIALS_TO_NARROW:
            space[name] = dict(p)
            if basis is reached and len(reached) < len(top):
                reasons.append(f"{name}: kept as searched: {len(top) - len(reached)} of the top "
                               f"{len(top)} trials stopped before their first milestone, where "
                               f"it did nothing, leaving {len(reached)} to narrow around")
            else:
                reasons.append(f"{name}: kept as searched: {len(basis)} ranked trial"
                               f"{'' if len(basis) == 1 else 's'}, too few to narrow around "
                               f"(at least {MIN_TRIALS_TO_NARROW})")
            continue
        names = ([f"{name}_{i}" for i in range(1, p["count"] + 1)]
                 if p["type"] == "milestones" else [name])
        values = [float(t.params[n]) for t in basis for n in names if n in t.params]
        if p["type"] != "milestones" and len(set(values)) == 1:
            # One shared value (an enqueued default, say) says nothing about its neighbours:
            # the range keeps them, up to the nearest values other trials tried.
            tried = {float(r.trial.params[name]) for r in ranked if name in r.trial.params}
            low = max((v for v in tried if v < values[0]), default=float(p["low"]))
            high = min((v for v in tried if v > values[0]), default=float(p["high"]))
            if p["type"] == "int":
                low, high = math.floor(low), math.ceil(high)
            space[name] = dict(p, low=low, high=high)
            reasons.append(f"{name}: [{_fmt(low)}, {_fmt(high)}]: the top {len(basis)} trials "
                           f"all used {_fmt(values[0])}, so the range keeps its neighbours up to "
                           "the nearest values other trials tried (or the searched edge)")
            continue
        low, high, why = _narrow(values, p)
        entry = dict(p, low=low, high=high)
        if p["type"] == "int":
            entry.update(low=math.floor(low), high=math.ceil(high))
            if entry["low"] == entry["high"]:
                entry["high"] = entry["low"] + 1
        space[name] = entry
        if basis is reached and len(reached) < len(top):
            why += (f" (the {len(reached)} of the top {len(top)} that trained past their first "
                    "milestone)")
        reasons.append(f"{name}: [{_fmt(entry['low'])}, {_fmt(entry['high'])}] {why}")
    best = finished[0]
    baseline_params: dict[str, Any] = {}
    for name, p in spec["space"].items():
        if p["type"] == "milestones":
            baseline_params[name] = sorted(float(best.params[f"{name}_{i}"])
                                           for i in range(1, p["count"] + 1))
        else:
            baseline_params[name] = best.params[name]
    out = {k: v for k, v in spec.items() if k not in ("space", "baselines", "pins")}
    out["name"] = f"{spec['name']}-next"
    out["description"] = f"Narrowed around the top {len(top)} trials of {spec['name']!r}."
    out["space"] = space
    out["baselines"] = [{"name": f"{spec['name']}-best", "params": baseline_params}]
    return out, reasons


def _keep_choices(name: str, choices: Sequence[Any], ranked: Sequence[Ranked], k: int
                  ) -> tuple[list[Any], str]:
    """Drop a choice only when enough trials tried it and none made the top ``k``."""
    top = ranked[:k]
    used = [c for c in choices if any(r.trial.params.get(name) == c for r in top)]
    tried = {i: sum(1 for r in ranked if r.trial.params.get(name) == c)
             for i, c in enumerate(choices)}
    kept, thin, dropped = [], [], []
    for i, c in enumerate(choices):
        if c in used:
            kept.append(c)
        elif tried[i] >= MIN_LOSERS_TO_DROP:
            dropped.append(f"{c} ({tried[i]} trials)")
        else:
            kept.append(c)
            thin.append(f"{c} ({tried[i]} trial{'' if tried[i] == 1 else 's'})")
    why = f"{name}: {kept}: the top {k} trials used {_listed(used)}"
    if thin:
        why += f"; {_listed(thin)} kept: too few trials to rule out"
    if dropped:
        why += f"; {_listed(dropped)} dropped: none of those trials reached the top {k}"
    return kept, why


def _listed(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items) or "none"


def _decays_only(name: str, p: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Parameters that act only once training passes a milestone: the milestones and the
    decay factor of a multistep schedule."""
    if spec.get("config", {}).get("schedule", "multistep") != "multistep":
        return False
    return p["type"] == "milestones" or name == "gamma"


def _stopped_at(t: FrozenTrial) -> int | None:
    run = t.user_attrs.get("epochs_run")
    if isinstance(run, int) and not isinstance(run, bool):
        return run
    return max(t.intermediate_values) if t.intermediate_values else None


def _first_milestone(t: FrozenTrial) -> int | None:
    config: Mapping[str, Any] = t.user_attrs.get(CONFIG_ATTR) or {}
    if config.get("schedule", "multistep") != "multistep":
        return None
    milestones = config.get("milestones")
    return int(min(milestones)) if isinstance(milestones, list | tuple) and milestones else None


def _reached_first_milestone(t: FrozenTrial) -> bool | None:
    """Whether ``t`` trained past its first milestone; None when its config does not say."""
    first, stopped = _first_milestone(t), _stopped_at(t)
    if first is None or stopped is None:
        return None
    return stopped > first


def moot_notes(spec: Mapping[str, Any], best: FrozenTrial, ranking: Sequence[Ranked], *,
               top_k: int = TOP_K) -> list[str]:
    """What early stopping and pruning made moot in this study."""
    notes = []
    config: Mapping[str, Any] = best.user_attrs.get(CONFIG_ATTR) or {}
    first, stopped = _first_milestone(best), _stopped_at(best)
    if first is not None and stopped is not None and stopped <= first:
        moot = [f"milestones {list(config['milestones'])}"]
        if "gamma" in config:
            moot.insert(0, f"gamma ({_fmt(float(config['gamma']))})")
        notes.append(f"The best trial ({best.number}) stopped at epoch {stopped}, before its "
                     f"first milestone (epoch {first}): its {' and '.join(moot)} did nothing")
    top = [r.trial for r in ranking[:top_k]]
    short = [t for t in top if _reached_first_milestone(t) is False]
    if short:
        notes.append(f"{len(short)} of the top {len(top)} trials stopped before their first "
                     "milestone, so gamma and milestones did nothing in them: the next round "
                     "does not narrow those around them")
    completed = [t for t in (r.trial for r in ranking) if t.state == TrialState.COMPLETE]
    early = [t for t in completed if t.user_attrs.get("stop_reason") == "early_stopped"]
    patience = sorted({int(c["patience"]) for t in completed
                       if isinstance(c := t.user_attrs.get(CONFIG_ATTR) or {}, Mapping)
                       and isinstance(c.get("patience"), int)})
    if patience and min(patience) < PATIENCE_FLOOR:
        notes.append(f"Early-stopping patience was {_listed(patience)} epoch"
                     f"{'' if patience == [1] else 's'} (under {PATIENCE_FLOOR}): {len(early)} "
                     f"of {len(completed)} completed trials stopped early, most likely at their "
                     "first plateau or dip, so their values measure early progress rather than "
                     "the schedule")
    elif completed and len(early) * 2 > len(completed):
        notes.append(f"{len(early)} of {len(completed)} completed trials stopped early "
                     f"(patience {_listed(patience) or '?'}): their schedules' later epochs "
                     "never ran")
    pruned = [r for r in ranking if r.trial.state == TrialState.PRUNED]
    if pruned:
        by_epoch: dict[int, int] = {}
        for r in pruned:
            by_epoch[r.reached] = by_epoch.get(r.reached, 0) + 1
        rungs = ", ".join(f"{n} at epoch {e}" for e, n in sorted(by_epoch.items()))
        notes.append(f"{len(pruned)} trials were pruned ({rungs}); they are ranked by their "
                     "value at those epochs, against the others' values at the same epochs")
    pruner = dict(spec.get("pruner") or {})
    decision = decision_epoch(str(pruner.pop("name", "none")), pruner)
    check = check_pruning([r.trial for r in ranking], decision=decision)
    if check.informative is False:
        notes.append(check.describe().replace("pruning check: ", "Pruning check: ", 1))
    return notes


def importance_unavailable(trials: Sequence[FrozenTrial]) -> str | None:
    """Why parameter importances are not shown; None when there are enough trials."""
    complete = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    if complete < MIN_COMPLETE_FOR_IMPORTANCE:
        return (f"not computed: {complete} completed trial{'' if complete == 1 else 's'}, "
                f"fewer than the {MIN_COMPLETE_FOR_IMPORTANCE} needed to tell a parameter's "
                "effect from noise")
    return None


def _narrow(values: list[float], p: Mapping[str, Any]) -> tuple[float, float, str]:
    old_low, old_high = float(p["low"]), float(p["high"])
    lo, hi = min(values), max(values)
    edge = []
    if p.get("log"):
        low, high = lo / 1.5, hi * 1.5  # half a step of x1.5 around the top trials
        margin = "x/÷1.5 around"
    else:
        span = max(hi - lo, 0.1 * (old_high - old_low))
        low, high = lo - 0.25 * span, hi + 0.25 * span
        margin = "25% of their span around"
    if p["type"] == "milestones":  # fractions of the budget must stay inside (0, 1)
        low, high = max(low, 0.01), min(high, 0.99)
    if lo <= old_low * (1.0001 if old_low >= 0 else 0.9999):
        edge.append("the best trials sit at the lower edge, so the range extends below it")
    else:
        low = max(low, old_low)
    if hi >= old_high * (0.9999 if old_high >= 0 else 1.0001):
        edge.append("the best trials sit at the upper edge, so the range extends above it")
    else:
        high = min(high, old_high)
    if p.get("log"):
        low = max(low, 1e-12)
    # Three significant digits, rounded outwards so every top trial stays inside.
    low, high = _round_sig(low, math.floor), _round_sig(high, math.ceil)
    why = f"{margin} the top trials' {_fmt(lo)}..{_fmt(hi)}"
    if edge:
        why += "; " + "; ".join(edge)
    return low, high, why


def _round_sig(v: float, direction: Any, digits: int = 3) -> float:
    if v == 0 or not math.isfinite(v):
        return v
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(v))))
    # round first: 0.2 * 1.5 is 0.30000000000000004, which must not ceil to 0.301
    return float(direction(round(v * scale, 6)) / scale)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def analyse(spec: Mapping[str, Any], trials: Sequence[FrozenTrial], best: FrozenTrial,
            previous_best: FrozenTrial | None) -> RoundAnalysis:
    max_gap = spec.get("success", {}).get("max_train_val_gap")
    reference, label = previous_best, "previous round's best"
    if reference is None:
        baselines = [t for t in trials if t.user_attrs.get("hps_baseline")
                     and t.state == TrialState.COMPLETE and t.number != best.number]
        if baselines:
            maximize = spec.get("objective", {}).get("direction", "maximize") == "maximize"
            reference = sorted(baselines, key=lambda t: float(t.value or 0.0),
                               reverse=maximize)[0]
            label = f"baseline {reference.user_attrs['hps_baseline']!r} (trial {reference.number})"
    next_spec, reasons = next_round(spec, trials)
    maximize = spec.get("objective", {}).get("direction", "maximize") == "maximize"
    ranking = tuple(rank_trials(trials, maximize=maximize))
    return RoundAnalysis(
        best=best, reference=reference, reference_label=label,
        comparisons=tuple(compare(reference, best)) if reference is not None else (),
        overfitting=tuple(overfitting_notes(best, max_gap)),
        optimization=tuple(optimization_notes(best)),
        next_spec=next_spec, next_reasons=tuple(reasons), ranking=ranking,
        moot=tuple(moot_notes(spec, best, ranking)),
        importance_note=importance_unavailable(trials))
