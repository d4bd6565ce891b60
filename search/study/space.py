"""From a spec's search space to Optuna suggestions and back to trainer settings.

Milestones are searched as ``count`` fractions of the epoch budget (``milestones_1`` ...),
sorted into order and turned into epochs for the trial's own budget, so one space serves a
250-epoch study and its 8-epoch smoke test alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search.errors import SpecError
from search.study.model import BaselineSpec, ParamSpec, StudySpec

if TYPE_CHECKING:
    import optuna

    from search.study.trainers import TrainerEntry

__all__ = [
    "OutsideSpace",
    "baseline_to_optuna_params",
    "milestone_epochs",
    "milestones_fit",
    "representative_params",
    "rescale_epoch_fields",
    "suggest",
    "to_config_changes",
    "to_optuna_params",
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
    """Fractions of ``epochs`` as strictly increasing epochs. When the budget allows (at most
    ``epochs - 1`` of them) they are distinct epochs in [1, epochs - 1], each as near its
    fraction as the others leave room for: 0.51 and 0.53 of 8 epochs become 4 and 5, not one
    milestone (a milestone at the last epoch would decay nothing). A budget too small for them
    (which a spec refuses, ``milestones_fit``) merges duplicates within [1, epochs] instead."""
    if len(fractions) > epochs - 1:
        return tuple(sorted({min(epochs, max(1, round(f * epochs))) for f in fractions}))
    wanted = sorted(min(epochs - 1, max(1, round(f * epochs))) for f in fractions)
    for i in range(1, len(wanted)):  # push collisions up ...
        wanted[i] = max(wanted[i], wanted[i - 1] + 1)
    for i in reversed(range(len(wanted))):  # ... and back down below the last epoch
        ceiling = epochs - 1 if i == len(wanted) - 1 else wanted[i + 1] - 1
        wanted[i] = min(wanted[i], ceiling)
    return tuple(wanted)


def milestones_fit(count: int, epochs: int) -> str | None:
    """Why ``count`` distinct milestones cannot fit an ``epochs`` budget; None when they do."""
    if count <= epochs - 1:
        return None
    if epochs <= 1:
        return (f"{count} milestone(s) cannot fit a {epochs}-epoch budget (a milestone decays "
                "the LR after an epoch, before the last); raise epochs to at least "
                f"{count + 1} or drop milestones from the space")
    return (f"{count} distinct milestones do not fit a {epochs}-epoch budget (epochs 1 to "
            f"{epochs - 1}); lower the count to {epochs - 1} or raise epochs to at least "
            f"{count + 1}")


def to_config_changes(space: tuple[ParamSpec, ...], params: Mapping[str, Any], epochs: int
                      ) -> dict[str, Any]:
    changes = dict(params)
    for p in space:
        if p.type == "milestones":
            changes[p.name] = milestone_epochs(list(params[p.name]), epochs)
    return changes


class OutsideSpace(ValueError):
    """A set of values that cannot be a trial of the space; the message says which and why."""


def to_optuna_params(space: tuple[ParamSpec, ...], values: Mapping[str, Any], epochs: int
                     ) -> dict[str, Any]:
    """The exact Optuna parameters that reproduce ``values`` (trainer units: milestones as
    whole epochs of ``epochs``, or as fractions of it) in ``space``; raises OutsideSpace."""
    out: dict[str, Any] = {}
    for p in space:
        value = values.get(p.name)
        if value is None:
            raise OutsideSpace(f"{p.name}: no value")
        if p.type != "milestones":
            if (isinstance(value, bool) and p.type != "categorical") or not p.contains(value):
                raise OutsideSpace(f"{p.name}: {value!r} is outside the space {p.describe()}")
            out[p.name] = value
            continue
        if not isinstance(value, list | tuple):
            raise OutsideSpace(f"{p.name}: expected a list of {p.count} increasing whole "
                               f"epochs, got {value!r}")
        value = list(value)
        as_epochs = all(isinstance(m, int) and not isinstance(m, bool) for m in value)
        as_fractions = all(isinstance(m, float) and 0 < m < 1 for m in value)
        if not (as_epochs or as_fractions) or len(value) != p.count \
                or sorted(set(value)) != value:
            raise OutsideSpace(f"{p.name}: expected {p.count} increasing whole epochs, got "
                               f"{value!r}")
        fractions = [m / epochs for m in value] if as_epochs else value
        for name, frac, m in zip(p.optuna_names(), fractions, value, strict=True):
            if not p.contains(frac):
                raise OutsideSpace(f"{p.name}: milestone {m} is {frac:.3f} of {epochs} epochs, "
                                   f"outside the space {p.describe()}")
            out[name] = frac
        if as_epochs and milestone_epochs(fractions, epochs) != tuple(value):
            raise OutsideSpace(f"{p.name}: {value} does not survive the round trip through "
                               f"fractions of {epochs} epochs")
    return out


def baseline_to_optuna_params(spec: StudySpec, baseline: BaselineSpec) -> dict[str, Any]:
    """The exact Optuna parameters that make a trial reproduce ``baseline``."""
    try:
        return to_optuna_params(spec.space, baseline.params, spec.baseline_epochs(baseline))
    except OutsideSpace as exc:
        raise SpecError(f"baselines.{baseline.name}.params.{exc}; widen the space or fix the "
                        "baseline") from None


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


def rescale_epoch_fields(entry: TrainerEntry, layer: dict[str, Any], old_epochs: int,
                          new_epochs: int, notes: list[str], *,
                          source: str = "tuned default") -> None:
    """Fields counted in epochs keep their fraction of the budget (a patience of 1 measured in
    3 epochs never reaches a 250-epoch run as 1), within the trainer's floors."""
    if old_epochs == new_epochs:
        return
    for name in entry.info.epoch_fields:
        value: Any = layer.get(name)
        if value is None or isinstance(value, bool):
            continue
        if name == "milestones":
            scaled: Any = list(milestone_epochs([m / old_epochs for m in value], new_epochs))
        elif isinstance(value, int) and value > 0:
            floor = min(entry.info.epoch_floors.get(name, 1), new_epochs)
            scaled = max(floor, round(value * new_epochs / old_epochs))
        else:
            continue
        shown = list(value) if isinstance(value, list | tuple) else value
        if scaled != shown:
            notes.append(f"{name} {shown} -> {scaled}: the same fraction of {new_epochs} "
                         f"epochs as the {source}'s of its {old_epochs}")
            layer[name] = scaled
