"""Peer methods from Syne Tune, run by Syne Tune's own simulator on the same table.

Syne Tune (the ``bench`` extra: ``pip install -e '.[bench]'``) simulates tabulated benchmarks
with ``UserBlackboxBackend``, a ``SimulatorBackend`` that looks a trial's learning curve up in a
``Blackbox`` instead of training, and its ``Tuner`` with ``SimulatorCallback`` advances a
simulated clock. Its table format (``BlackboxTabular``) answers only configurations exactly on
the grid, with one learning-curve length for every configuration; the peers here search the
same continuous space as hpsearch's strategies instead, so a small backend subclass answers a
suggestion the way the hpsearch replay does: snapped to its recorded run, one recorded seed
drawn per trial, the curve cut where a diverged run stopped, each epoch's elapsed time its
recorded CPU seconds. Scheduling, stopping and the clock are Syne Tune's. The simulator's
message delays are set to zero and its tuner polls every 0.05 simulated seconds, so a worker
waits at most that long between trials (an epoch takes seconds).

What a peer would return is judged as for hpsearch (``trace.py``): its best trial among those
that trained every epoch, by best validation accuracy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.search_replay.grid_space import GridSpace
from benchmarks.search_replay.strategies import PeerStrategy
from benchmarks.search_replay.trace import EpochCharge, IncumbentStep, Trace, TrialRecord
from benchmarks.search_table.table import ConfigValues, Run

__all__ = ["PeerUnavailable", "peers_available", "replay_peer"]

_POLL_SECONDS = 0.05
_ELAPSED = "elapsed_time"
_METRIC = "val_acc"
_RESOURCE = "epoch"


class PeerUnavailable(RuntimeError):
    """Syne Tune is not installed; the message says how to install it."""


def peers_available() -> bool:
    try:
        import syne_tune  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class _Drawn:
    config: ConfigValues
    seed: int
    on_grid: bool
    run: Run


def _config_space(grid: GridSpace) -> dict[str, Any]:
    from syne_tune.config_space import choice, loguniform, uniform

    g = grid.table.header.grid
    return {"lr": loguniform(min(g.lrs), max(g.lrs)),
            "weight_decay": loguniform(min(g.weight_decays), max(g.weight_decays)),
            "batch_size": choice(sorted(g.batch_sizes)),
            "gamma": uniform(min(g.gammas), max(g.gammas))}


def _results(run: Run) -> list[dict[str, float]]:
    """One result per finished epoch: its validation accuracy and the CPU seconds the trial
    had spent by then."""
    out, elapsed = [], 0.0
    for e in run.epochs:
        elapsed += e.cpu_seconds
        out.append({_RESOURCE: e.epoch, _METRIC: e.val_acc, _ELAPSED: elapsed})
    return out


def _backend(grid: GridSpace, repetition: int) -> Any:
    """A ``UserBlackboxBackend`` answering from the table; ``drawn[trial_id]`` says what each
    trial got."""
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.blackbox_repository.blackbox import Blackbox
    from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
    from syne_tune.config_space import randint

    epochs = grid.table.header.grid.epochs

    class TableBlackbox(Blackbox):
        def __init__(self) -> None:
            super().__init__(configuration_space=_config_space(grid),
                             fidelity_space={_RESOURCE: randint(1, epochs)},
                             objectives_names=[_METRIC, _ELAPSED])

        @property
        def fidelity_values(self) -> np.ndarray:
            return np.arange(1, epochs + 1)

    class TableBackend(UserBlackboxBackend):
        def __init__(self) -> None:
            super().__init__(blackbox=TableBlackbox(), elapsed_time_attr=_ELAPSED,
                             simulator_config=SimulatorConfig(0.0, 0.0, 0.0, 0.0, 0.0),
                             tuner_sleep_time=_POLL_SECONDS)
            self.rng = random.Random(repetition)
            self.drawn: dict[int, _Drawn] = {}

        def _run_job_and_collect_results(self, trial_id: int, config: dict | None = None
                                         ) -> tuple[str, list[dict]]:
            from syne_tune.backend.trial_status import Status

            if config is None:
                config = self._trial_dict[trial_id].config
            if trial_id not in self.drawn:
                snapped, on_grid = grid.snap(config)
                seeds = grid.table.seeds(snapped)
                seed = seeds[self.rng.randrange(len(seeds))]
                self.drawn[trial_id] = _Drawn(snapped, seed, on_grid,
                                              grid.table.lookup(snapped, seed))
            return Status.completed, _results(self.drawn[trial_id].run)

    return TableBackend()


def _scheduler(strategy: PeerStrategy, grid: GridSpace, seed: int) -> Any:
    from syne_tune.optimizer.baselines import ASHA, BOHB

    factory: Any = {"syne_tune_asha": ASHA, "syne_tune_bohb": BOHB}[strategy.method]
    return factory(config_space=_config_space(grid), metric=_METRIC, do_minimize=False,
                   time_attr=_RESOURCE, max_t=grid.table.header.grid.epochs,
                   random_seed=seed, **dict(strategy.options))


def replay_peer(grid: GridSpace, strategy: PeerStrategy, *, repetition: int, workers: int,
                horizon_cpu_seconds: float) -> Trace:
    """One repetition of a Syne Tune method on ``grid``'s table, as a trace."""
    if not peers_available():
        raise PeerUnavailable("the peers need Syne Tune: pip install -e '.[bench]'")
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.constants import ST_TUNER_TIME
    from syne_tune.tuner_callback import TunerCallback
    from syne_tune.tuner_logger import TunerLogger

    class Silent(TunerLogger):
        """The tuner's console output (a banner, every trial, a status table), switched off:
        hundreds of simulated studies run in one benchmark."""

        def __getattribute__(self, name: str) -> Any:
            if name.startswith("print_"):
                return lambda *args, **kwargs: None
            return super().__getattribute__(name)

    seen: list[tuple[int, Mapping[str, Any]]] = []

    class Recorder(TunerCallback):
        def on_trial_result(self, trial: Any, status: str, result: dict[str, Any],
                            decision: str) -> None:
            seen.append((int(trial.trial_id), dict(result)))

    end = horizon_cpu_seconds / workers
    backend = _backend(grid, repetition)
    folder = tempfile.mkdtemp(prefix="syne-tune-replay-")
    old_folder = os.environ.get("SYNETUNE_FOLDER")
    os.environ["SYNETUNE_FOLDER"] = folder
    quiet = [logging.getLogger(n) for n in ("syne_tune", "syne_tune.tuner")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        np.random.seed(repetition)  # Syne Tune's simulator draws from numpy's global RNG
        tuner = Tuner(trial_backend=backend,
                      scheduler=_scheduler(strategy, grid, 1000 + repetition),
                      stop_criterion=StoppingCriterion(max_wallclock_time=end),
                      n_workers=workers, sleep_time=0, save_tuner=False,
                      callbacks=[SimulatorCallback(), Recorder()],
                      tuner_name=f"replay-{strategy.name}-{repetition}",
                      print_update_interval=1e9, results_update_interval=1e9,
                      output_logger=Silent())
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its summary print; pandas' and statsmodels' notes
            tuner.run()
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
        if old_folder is None:
            os.environ.pop("SYNETUNE_FOLDER", None)
        else:
            os.environ["SYNETUNE_FOLDER"] = old_folder
        shutil.rmtree(folder, ignore_errors=True)
    return _trace(grid, strategy.name, repetition, workers, horizon_cpu_seconds, end,
                  backend.drawn, [(t, r) for t, r in seen if float(r[ST_TUNER_TIME]) <= end],
                  ST_TUNER_TIME)


def _trace(grid: GridSpace, name: str, repetition: int, workers: int, horizon: float,
           end: float, drawn: Mapping[int, _Drawn],
           seen: list[tuple[int, Mapping[str, Any]]], time_key: str) -> Trace:
    epochs = grid.table.header.grid.epochs
    by_trial: dict[int, list[Mapping[str, Any]]] = {}
    for trial_id, result in seen:
        by_trial.setdefault(trial_id, []).append(result)
    charges: list[EpochCharge] = []
    trials: list[TrialRecord] = []
    completions: list[tuple[float, int, float]] = []  # (time, trial, best val)
    for trial_id in sorted(drawn):
        d = drawn[trial_id]
        results = sorted(by_trial.get(trial_id, []), key=lambda r: int(r[_RESOURCE]))
        times = [float(r[time_key]) for r in results]
        start = (times[0] - float(results[0][_ELAPSED])) if results else end
        if start > end:
            continue  # started after the horizon
        previous = start
        for r, t in zip(results, times, strict=True):
            e = int(r[_RESOURCE])
            charges.append(EpochCharge(trial=trial_id, epoch=e, worker=-1, start=previous,
                                       end=t, cpu_seconds=d.run.epochs[e - 1].cpu_seconds))
            previous = t
        best = max((float(r[_METRIC]) for r in results), default=None)
        done = len(results)
        if done == epochs:
            state = "complete"
            assert best is not None
            completions.append((times[-1], trial_id, best))
        elif done == len(d.run.epochs) and d.run.diverged:
            state = "diverged"
        elif done and times[-1] + _next_epoch(d.run, done) <= end:
            state = "pruned"  # the next epoch would have ended within the horizon
        else:
            state = "cut"
        trials.append(TrialRecord(number=trial_id, worker=-1, config=d.config, seed=d.seed,
                                   on_grid=d.on_grid, start=start,
                                   end=times[-1] if results and state != "cut" else None,
                                   epochs_run=done, state=state, best_val_acc=best))
    incumbents: list[IncumbentStep] = []
    best_val: float | None = None
    for t, trial_id, val in sorted(completions):
        if best_val is None or val > best_val:
            best_val = val
            config = drawn[trial_id].config
            incumbents.append(IncumbentStep(time=t, compute=workers * t, trial=trial_id,
                                            config=config, best_val_acc=val,
                                            worth=grid.worth[config]))
    return Trace(strategy=name, repetition=repetition, workers=workers,
                 horizon_cpu_seconds=horizon, charges=tuple(charges), trials=tuple(trials),
                 incumbents=tuple(incumbents))


def _next_epoch(run: Run, done: int) -> float:
    if done < len(run.epochs):
        return run.epochs[done].cpu_seconds
    return run.tail_cpu_seconds
