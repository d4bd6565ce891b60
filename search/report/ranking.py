"""Trials ranked at a common fidelity: a pruned trial counts at the epoch it reached.

Ranking completed trials by their final value and leaving pruned ones out (or ranking every
trial by its last value) compares an 8-epoch value with a 2-epoch one. The rule here compares two
trials where both have a value:

- two trials that finished on their own (COMPLETE, early-stopped ones included) compare by their
  objective values: training ended by their own schedule or patience, so their value stands;
- otherwise they compare at the last epoch both reached (the pruned trial's last reported
  epoch, or the shorter of two pruned ones), each by the best value it had reported up to
  that epoch (the running best, as ``best_val_acc`` is);
- a pair with no value at a common epoch is not compared.

A trial's score is its wins minus its losses over all pairs (a Copeland count); ties go to the
trial that reached further, then to the better value. Among completed trials alone this is the
order of their final values, so a study without pruning ranks as before; a complete trial that
was behind two pruned ones at their rungs ranks below them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

__all__ = ["Ranked", "rank_trials"]


@dataclass(frozen=True)
class Ranked:
    trial: FrozenTrial
    reached: int  # the last epoch it reported (its epochs run when it reported none)
    value: float  # its objective value (finished) or its best reported value (pruned)
    score: int  # wins minus losses against every other ranked trial
    finished: bool  # COMPLETE: its value stands; PRUNED: it counts at ``reached``


@dataclass(frozen=True)
class _Curve:
    steps: tuple[int, ...]
    best: tuple[float, ...]  # the running best up to each step


def rank_trials(trials: Sequence[FrozenTrial], *, maximize: bool) -> list[Ranked]:
    """Feasible COMPLETE trials and PRUNED trials that reported a value, best first."""
    entries: list[tuple[FrozenTrial, _Curve, bool]] = []
    for t in trials:
        if t.constraints and any(v > 0 for v in t.constraints.values()):
            continue
        finished = t.state == TrialState.COMPLETE and t.value is not None \
            and math.isfinite(t.value)
        curve = _curve(t, maximize)
        if finished or (t.state == TrialState.PRUNED and curve.steps):
            entries.append((t, curve, finished))
    better = (lambda a, b: a > b) if maximize else (lambda a, b: a < b)
    scores = [0] * len(entries)
    for i, (a, ca, fa) in enumerate(entries):
        for j in range(i + 1, len(entries)):
            b, cb, fb = entries[j]
            va, vb = _pair_values(a, ca, fa, b, cb, fb)
            if va is None or vb is None or va == vb:
                continue
            won = better(va, vb)
            scores[i] += 1 if won else -1
            scores[j] += -1 if won else 1
    ranked = []
    for (t, curve, finished), score in zip(entries, scores, strict=True):
        value = float(t.value) if finished else curve.best[-1]  # type: ignore[arg-type]
        reached = curve.steps[-1] if curve.steps else int(t.user_attrs.get("epochs_run") or 0)
        ranked.append(Ranked(t, reached, value, score, finished))
    sign = 1.0 if maximize else -1.0
    ranked.sort(key=lambda r: (-r.score, -math.inf if r.finished else -r.reached,
                               -sign * r.value, r.trial.number))
    return ranked


def _pair_values(a: FrozenTrial, ca: _Curve, fa: bool, b: FrozenTrial, cb: _Curve, fb: bool
                 ) -> tuple[float | None, float | None]:
    if fa and fb:
        return float(a.value), float(b.value)  # type: ignore[arg-type]
    common = min(ca.steps[-1] if not fa and ca.steps else math.inf,
                 cb.steps[-1] if not fb and cb.steps else math.inf)
    if math.isinf(common):
        return None, None
    return _at(ca, int(common)), _at(cb, int(common))


def _curve(t: FrozenTrial, maximize: bool) -> _Curve:
    steps, best = [], []
    running: float | None = None
    for step in sorted(t.intermediate_values):
        v = t.intermediate_values[step]
        if not math.isfinite(v):
            continue
        running = v if running is None else (max(running, v) if maximize else min(running, v))
        steps.append(int(step))
        best.append(running)
    return _Curve(tuple(steps), tuple(best))


def _at(curve: _Curve, epoch: int) -> float | None:
    i = bisect.bisect_right(curve.steps, epoch)
    return curve.best[i - 1] if i else None
