"""The Optuna objective: trial -> resolved trainer config -> train -> value.

Layers, later wins: trainer code defaults < spec ``config`` < a baseline's own ``config``
(carried in the trial's user attributes) < the trial's suggested parameters.
Every trial records what a person needs to read it: the resolved config, final metrics,
epochs run, why it stopped, and the code and library versions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import optuna

from search.provenance import code_version, library_versions
from search.reporter import TrialReporter
from search.space import suggest, to_config_changes
from search.spec import StudySpec
from search.trainer_registry import get_trainer

__all__ = ["BASELINE_ATTR", "CONFIG_ATTR", "OVERRIDES_ATTR", "Objective"]

log = logging.getLogger(__name__)

BASELINE_ATTR = "hps_baseline"
OVERRIDES_ATTR = "hps_config_overrides"
CONFIG_ATTR = "config"


class Objective:
    def __init__(self, spec: StudySpec, *,
                 on_trial_start: Callable[[optuna.Trial], None] | None = None) -> None:
        self.spec = spec
        self.entry = get_trainer(spec.trainer)
        self._on_trial_start = on_trial_start

    def resolve(self, params: dict[str, Any], overrides: dict[str, Any]) -> Any:
        base = {**self.spec.config, **overrides}
        epochs = int(base.get("epochs", self.spec.epochs()))
        return self.entry.build_config(base, to_config_changes(self.spec.space, params, epochs))

    def __call__(self, trial: optuna.Trial) -> float:
        if self._on_trial_start is not None:
            self._on_trial_start(trial)  # the trial exists: other workers may create theirs
        params = suggest(trial, self.spec.space)
        overrides = dict(trial.user_attrs.get(OVERRIDES_ATTR, {}))
        cfg = self.resolve(params, overrides)
        trial.set_user_attr(CONFIG_ATTR, cfg.resolved().to_dict())
        trial.set_user_attr("code_version", code_version())
        trial.set_user_attr("library_versions", library_versions())
        reporter = TrialReporter(trial, metric=self.spec.report_metric)
        try:
            result = self.entry.train(cfg, reporter)
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        for key, value in result.items():
            trial.set_user_attr(key, value)
        stop_reason = result["stop_reason"]
        if stop_reason == "pruned":
            raise optuna.TrialPruned(f"pruned at epoch {result['epochs_run']}")
        if stop_reason == "diverged":
            # Not a score: the sampler sees it as a pruned trial that got nowhere.
            raise optuna.TrialPruned(f"diverged at epoch {result['diverged_epoch']}")
        value = float(result[self.spec.metric])
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{self.spec.metric} is {value}")
        gap_key = "best_train_val_gap"
        if self.spec.max_train_val_gap is not None and gap_key in result:
            # Feasible when <= 0: the sampler steers away from overfitting configurations.
            trial.set_constraint("train_val_gap",
                                 float(result[gap_key]) - self.spec.max_train_val_gap)
        return value
