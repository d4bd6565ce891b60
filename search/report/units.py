"""A trial's parameters in the units a person uses: milestones as the epochs they fell on.

Optuna stores a milestone as a fraction of the epoch budget (``milestones_1`` = 0.5138); what
the trainer ran is an epoch, recorded in the trial's config. Two fractions can land on one
epoch (0.5138 and 0.5266 of 8 epochs both round to 4): that epoch is shown once, with a note
saying so and what ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from search.study.space import milestone_epochs
from storage.attrs import CONFIG_ATTR

__all__ = ["ShownParams", "shown_params"]


@dataclass(frozen=True)
class ShownParams:
    values: tuple[tuple[str, str], ...]  # (name, value as shown), in the space's order
    notes: tuple[str, ...]

    def line(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values)


def shown_params(t: FrozenTrial, space: Mapping[str, Mapping[str, Any]],
                 default_epochs: int | None = None) -> ShownParams:
    config: Mapping[str, Any] = t.user_attrs.get(CONFIG_ATTR) or {}
    epochs = config.get("epochs", default_epochs)
    values: list[tuple[str, str]] = []
    notes: list[str] = []
    if not space:  # a study without hpsearch's space: Optuna's parameters as they are
        return ShownParams(tuple((k, _short(v)) for k, v in t.params.items()), ())
    for name, p in space.items():
        if p.get("type") == "milestones":
            fractions = [float(t.params[f"{name}_{i}"]) for i in range(1, int(p["count"]) + 1)
                         if f"{name}_{i}" in t.params]
            if not fractions:
                continue
            shown, note = _milestones(name, sorted(fractions), config.get(name), epochs)
            values.append((name, shown))
            notes.extend(note)
        elif name in t.params:
            values.append((name, _short(t.params[name])))
    return ShownParams(tuple(values), tuple(notes))


def _milestones(name: str, fractions: list[float], ran: Any, epochs: Any
                ) -> tuple[str, list[str]]:
    fracs = ", ".join(f"{f:.4g}" for f in fractions)
    if not isinstance(epochs, int) or epochs <= 0:
        return f"[{fracs}] of the epoch budget", []
    actual = ([int(m) for m in ran] if isinstance(ran, list | tuple) and ran
              else list(milestone_epochs(fractions, epochs)))
    shown = f"epochs {actual} of {epochs}"
    landed: dict[int, list[float]] = {}
    for f in fractions:
        landed.setdefault(min(epochs, max(1, round(f * epochs))), []).append(f)
    notes = []
    for epoch, group in sorted(landed.items()):
        if len(group) < 2:
            continue
        both = " and ".join(f"{f:.4g}" for f in group)
        if len(actual) < len(fractions):
            notes.append(f"{name}: fractions {both} of {epochs} epochs both land on epoch "
                         f"{epoch}, so they were one milestone")
        else:
            notes.append(f"{name}: fractions {both} of {epochs} epochs both round to epoch "
                         f"{epoch}; they ran as distinct milestones {actual}")
    return shown, notes


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
