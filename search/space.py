"""From a spec's search space to Optuna suggestions and back to trainer settings.

Milestones are searched as ``count`` fractions of the epoch budget (``milestones_1`` ...),
sorted into order and turned into epochs for the trial's own budget, so one space serves a
250-epoch study and its 8-epoch smoke test alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search.errors import SpecError

if TYPE_CHECKING:
    import optuna

    from search.spec import BaselineSpec, ParamSpec, StudySpec

__all__ = [
    "baseline_to_optuna_params",
    "milestone_epochs",
    "representative_params",
    "suggest",
    "to_config_changes",
]


def suggest(trial: optuna.Trial, space: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Ask ``trial`` for every parameter; milestones come back as a sorted list of fractions."""
    params: dict[str, Any] = {}
    for p in space:
        if p.type == "categorical":
            params[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.type == "milestones":
            assert p.low is not None and p.high is not None
            params[p.name] = sorted(trial.suggest_float(n, p.low, p.high)
                                    for n in p.optuna_names())
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            params[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log,
                                               step=int(p.step or 1))
        else:
            assert p.low is not None and p.high is not None
            params[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
    return params


def milestone_epochs(fractions: list[float], epochs: int) -> tuple[int, ...]:
    """Fractions of ``epochs`` as strictly increasing epochs >= 1 (duplicates merge)."""
    return tuple(sorted({min(epochs, max(1, round(f * epochs))) for f in fractions}))


def to_config_changes(space: tuple[ParamSpec, ...], params: Mapping[str, Any], epochs: int
                      ) -> dict[str, Any]:
    changes = dict(params)
    for p in space:
        if p.type == "milestones":
            changes[p.name] = milestone_epochs(list(params[p.name]), epochs)
    return changes


def baseline_to_optuna_params(spec: StudySpec, baseline: BaselineSpec) -> dict[str, Any]:
    """The exact Optuna parameters that make a trial reproduce ``baseline``."""
    epochs = spec.baseline_epochs(baseline)
    out: dict[str, Any] = {}
    for p in spec.space:
        value = baseline.params[p.name]
        where = f"baselines.{baseline.name}.params.{p.name}"
        if p.type == "milestones":
            # Whole epochs (as people write them) or fractions of the budget (after --epochs).
            as_epochs = isinstance(value, list) and all(isinstance(m, int) for m in value)
            as_fractions = isinstance(value, list) and all(
                isinstance(m, float) and 0 < m < 1 for m in value)
            if (not (as_epochs or as_fractions) or len(value) != p.count
                    or sorted(set(value)) != value):
                raise SpecError(f"{where}: expected {p.count} increasing whole epochs, got "
                                f"{value!r}")
            fractions = [m / epochs for m in value] if as_epochs else list(value)
            for name, frac, m in zip(p.optuna_names(), fractions, value, strict=True):
                if not p.contains(frac):
                    raise SpecError(f"{where}: milestone {m} is {frac:.3f} of {epochs} epochs, "
                                    f"outside the space {p.describe()}; widen the space")
                out[name] = frac
            if as_epochs and milestone_epochs(fractions, epochs) != tuple(value):
                raise SpecError(f"{where}: {value} does not survive the round trip through "
                                f"fractions of {epochs} epochs")
            continue
        if not p.contains(value):
            raise SpecError(f"{where}: {value!r} is outside the space {p.describe()}; widen the "
                            "space or fix the baseline")
        out[p.name] = value
    return out


def representative_params(space: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Some valid value for every parameter, to validate a config before any trial runs."""
    out: dict[str, Any] = {}
    for p in space:
        if p.type == "categorical":
            out[p.name] = p.choices[0]
            continue
        assert p.low is not None and p.high is not None
        if p.type == "milestones":
            out[p.name] = [p.low + (p.high - p.low) * (i + 1) / (p.count + 1)
                           for i in range(p.count)]
        else:
            out[p.name] = int(p.low) if p.type == "int" else p.low
    return out
