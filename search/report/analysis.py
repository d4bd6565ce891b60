"""The round analysis, computed from a study's trials: what a person wrote by hand after round 2.

- comparison: the best trial against the previous round's best (or, without one, against the
  best of the study's enqueued baselines), as "previous -> current (+delta)";
- overfitting indicators: training accuracy near 100%, training loss near 0, the
  train-validation gap against the spec's limit;
- optimization analysis: whether the LR decayed before validation accuracy peaked, where the
  last milestone fell relative to the stopping epoch, epochs spent at tiny LRs;
- the next round: a search space narrowed around the top trials, each range with its reason,
  as a study spec ``hpsearch launch`` accepts.

Accuracies are fractions in the data and percentages in the text, as in the analysis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

__all__ = ["Comparison", "RoundAnalysis", "analyse", "compare", "next_round",
           "optimization_notes", "overfitting_notes"]

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
    """A narrowed search space around the ``top_k`` best completed feasible trials."""
    maximize = spec.get("objective", {}).get("direction", "maximize") == "maximize"
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
            and all(v <= 0 for v in t.constraints.values())]
    done.sort(key=lambda t: float(t.value), reverse=maximize)  # type: ignore[arg-type]
    top = done[:top_k]
    if not top:
        raise ValueError("no completed feasible trial to narrow the space around")
    space: dict[str, Any] = {}
    reasons: list[str] = []
    for name, p in spec["space"].items():
        if p["type"] == "categorical":
            used = [c for c in p["choices"] if any(t.params.get(name) == c for t in top)]
            space[name] = {"type": "categorical", "choices": used}
            reasons.append(f"{name}: {used} are the values the top {len(top)} trials used")
            continue
        names = ([f"{name}_{i}" for i in range(1, p["count"] + 1)]
                 if p["type"] == "milestones" else [name])
        values = [float(t.params[n]) for t in top for n in names if n in t.params]
        low, high, why = _narrow(values, p)
        entry = dict(p, low=low, high=high)
        if p["type"] == "int":
            entry.update(low=math.floor(low), high=math.ceil(high))
            if entry["low"] == entry["high"]:
                entry["high"] = entry["low"] + 1
        space[name] = entry
        reasons.append(f"{name}: [{_fmt(entry['low'])}, {_fmt(entry['high'])}] {why}")
    best = top[0]
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
    return RoundAnalysis(
        best=best, reference=reference, reference_label=label,
        comparisons=tuple(compare(reference, best)) if reference is not None else (),
        overfitting=tuple(overfitting_notes(best, max_gap)),
        optimization=tuple(optimization_notes(best)),
        next_spec=next_spec, next_reasons=tuple(reasons))
