"""When a tuned default applies: the regime a row was measured in against the run's.

A tuned-defaults row records the regime its measurement came from (the trainer declares what
that is: model width, data sizes, epoch budget, batch size, ...). A row applies to a run only
where the regimes match: every entry equal, except the trainer's ``regime_scaled`` entries
(epochs, data and batch sizes), which may differ by up to ``SCALE_TOLERANCE`` times. A learning
rate measured on 200 images for 3 epochs says nothing reliable about 45,000 images for 250.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["SCALE_TOLERANCE", "describe_regime", "regime_distance", "regime_mismatches"]

SCALE_TOLERANCE = 2.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value > 0 else None


def regime_mismatches(run: Mapping[str, Any], row: Mapping[str, Any],
                      scaled: Collection[str]) -> list[str]:
    """Why ``row``'s regime does not cover ``run``'s, one phrase per entry; empty: it does."""
    problems = []
    for name in sorted(set(run) | set(row)):
        here, there = run.get(name), row.get(name)
        a, b = _number(here), _number(there)
        if name in scaled and a is not None and b is not None:
            if max(a, b) / min(a, b) > SCALE_TOLERANCE:
                problems.append(f"{name} {here} here vs {there} (more than "
                                f"{SCALE_TOLERANCE:g}x apart)")
        elif here != there:
            problems.append(f"{name} {here} here vs {there}")
    return problems


def regime_distance(run: Mapping[str, Any], row: Mapping[str, Any],
                    scaled: Collection[str]) -> float:
    """How far apart two matching regimes are: the summed |log ratio| of the scaled entries."""
    total = 0.0
    for name in scaled:
        a, b = _number(run.get(name)), _number(row.get(name))
        if a is not None and b is not None:
            total += abs(math.log(a / b))
    return total


def describe_regime(regime: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(regime.items()))
