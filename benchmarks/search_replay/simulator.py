"""Replay an hpsearch study against a search table: hpsearch's own search code, a simulated
clock instead of training.

What runs is the product's: the spec is parsed by ``parse_spec``; every simulated worker opens
the study as ``search/run/worker.py`` does (``optuna.load_study`` on one shared storage, with
``build_sampler(spec.sampler, seed_offset=worker)`` and ``build_pruner(spec.pruner)``); each trial
asks its parameters through ``search.study.space.suggest``; the recorded curve is reported epoch
by epoch through the trainer's ``TrialReporter``, which asks the pruner after every epoch but
the last (as the trainers do: ``trainers/run_outcome.py``); a
completed trial's value is its best validation accuracy, and a pruned or diverged one is told
PRUNED, as ``search/trial/objective.py`` does. Only training is replaced: a suggestion is
snapped to its recorded run (``GridSpace.snap``; one of the configuration's recorded seeds,
drawn per trial) and each epoch takes its recorded CPU seconds on the simulated clock.

Workers are asynchronous: an event queue ordered by simulated time interleaves their epochs, so
when a worker reports epoch ``e`` and asks the pruner, the study holds exactly the epochs that
had finished by then, on every worker; a new trial's sampler sees the same. A worker starts its
next trial the moment its last one ends. The study stops when the workers have spent the
horizon's CPU seconds; trials still running then are cut (their unfinished epoch is not
charged).
"""

from __future__ import annotations

import heapq
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from benchmarks.search_replay.grid_space import GridSpace
from benchmarks.search_replay.strategies import OptunaStrategy, replay_spec, seeded
from benchmarks.search_replay.trace import EpochCharge, IncumbentStep, Trace, TrialRecord
from benchmarks.search_table.table import ConfigValues, Run
from search.study.model import StudySpec
from search.study.samplers import build_pruner, build_sampler
from search.study.space import suggest
from search.trial.reporter import TrialReporter

__all__ = ["PrunerWrapper", "Replay", "replay_strategy"]

# Wraps each worker's pruner (tests use it to watch what a pruning decision could see).
PrunerWrapper = Callable[[optuna.pruners.BasePruner], optuna.pruners.BasePruner]


@dataclass
class _Running:
    trial: optuna.Trial
    reporter: TrialReporter
    run: Run
    config: ConfigValues
    seed: int
    on_grid: bool
    worker: int
    start: float
    epoch_start: float
    epochs_done: int = 0


class Replay:
    """One simulated study. ``now`` is the simulated clock while it runs."""

    def __init__(self, grid: GridSpace, spec: StudySpec, *, strategy: str, repetition: int,
                 workers: int, horizon_cpu_seconds: float, sampler_seed: int,
                 max_trials: int | None = None, wrap_pruner: PrunerWrapper | None = None
                 ) -> None:
        self.grid = grid
        self.spec = spec
        self.strategy = strategy
        self.repetition = repetition
        self.workers = workers
        self.horizon = horizon_cpu_seconds
        self.max_trials = max_trials
        self.now = 0.0
        self._rng = random.Random(repetition)  # which recorded seed each trial gets
        storage = optuna.storages.InMemoryStorage()
        name = f"{spec.name}-{repetition}"
        optuna.create_study(study_name=name, storage=storage,
                            direction=optuna.study.StudyDirection[spec.direction.upper()])
        sampler_spec = seeded(spec.sampler, sampler_seed)
        self.studies: list[optuna.Study] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for w in range(workers):
                pruner = build_pruner(spec.pruner)
                self.studies.append(optuna.load_study(
                    study_name=name, storage=storage,
                    sampler=build_sampler(sampler_spec, seed_offset=w),
                    pruner=wrap_pruner(pruner) if wrap_pruner is not None else pruner))
        self._events: list[tuple[float, int, int]] = []  # (time, sequence, worker)
        self._seq = 0
        self._running: dict[int, _Running] = {}
        self._idle_since: dict[int, float] = {}
        self._charges: list[EpochCharge] = []
        self._trials: list[TrialRecord] = []
        self._incumbents: list[IncumbentStep] = []
        self._best: float | None = None
        self._started = 0

    def compute(self, t: float) -> float:
        """CPU seconds the workers have spent by simulated time ``t``."""
        return sum(self._idle_since.get(w, t) for w in range(self.workers))

    def run(self) -> Trace:
        end = self.horizon / self.workers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for w in range(self.workers):
                self._start(w, 0.0)
            while self._events:
                t, _, w = heapq.heappop(self._events)
                if t > end:
                    break
                self.now = t
                self._advance(self._running[w], t)
        for r in self._running.values():
            self._record(r, None, "cut", None)
        return Trace(strategy=self.strategy, repetition=self.repetition, workers=self.workers,
                     horizon_cpu_seconds=self.horizon, charges=tuple(self._charges),
                     trials=tuple(sorted(self._trials, key=lambda r: r.number)),
                     incumbents=tuple(self._incumbents))

    def _push(self, t: float, worker: int) -> None:
        heapq.heappush(self._events, (t, self._seq, worker))
        self._seq += 1

    def _start(self, worker: int, t: float) -> None:
        if self.max_trials is not None and self._started >= self.max_trials:
            self._idle_since[worker] = t
            return
        self._started += 1
        trial = self.studies[worker].ask()
        params = suggest(trial, self.spec.space)
        config, on_grid = self.grid.snap(params)
        seeds = self.grid.table.seeds(config)
        seed = seeds[self._rng.randrange(len(seeds))]
        run = self.grid.table.lookup(config, seed)
        reporter = TrialReporter(trial, metric=self.spec.report_metric)
        r = _Running(trial, reporter, run, config, seed, on_grid, worker, start=t, epoch_start=t)
        self._running[worker] = r
        self._schedule(r, t)

    def _schedule(self, r: _Running, t: float) -> None:
        """The end of ``r``'s next epoch, or of the epoch it diverges in."""
        r.epoch_start = t
        if r.epochs_done < len(r.run.epochs):
            self._push(t + r.run.epochs[r.epochs_done].cpu_seconds, r.worker)
        else:  # a diverged run: the part of the epoch it trained before stopping
            self._push(t + r.run.tail_cpu_seconds, r.worker)

    def _advance(self, r: _Running, t: float) -> None:
        run = r.run
        if r.epochs_done == len(run.epochs):  # the diverging epoch ended the run
            self._charge(r, len(run.epochs) + 1, run.tail_cpu_seconds, t)
            self._finish(r, t, "diverged", TrialState.PRUNED)
            return
        epoch = run.epochs[r.epochs_done]
        r.epochs_done += 1
        self._charge(r, epoch.epoch, epoch.cpu_seconds, t)
        r.reporter.report(epoch.epoch, {"val_acc": epoch.val_acc})
        if r.epochs_done == len(run.epochs) and not run.diverged:
            self._finish(r, t, "complete", TrialState.COMPLETE)
        elif r.reporter.should_stop():
            self._finish(r, t, "pruned", TrialState.PRUNED)
        else:
            self._schedule(r, t)

    def _charge(self, r: _Running, epoch: int, cpu: float, t: float) -> None:
        self._charges.append(EpochCharge(trial=r.trial.number, epoch=epoch, worker=r.worker,
                                         start=r.epoch_start, end=t, cpu_seconds=cpu))

    def _finish(self, r: _Running, t: float, state: str, optuna_state: TrialState) -> None:
        study = self.studies[r.worker]
        best_val = max(r.run.val_acc[:r.epochs_done], default=None)
        if optuna_state == TrialState.COMPLETE:
            assert best_val is not None
            study.tell(r.trial, best_val)
            if self._best is None or best_val > self._best:
                self._best = best_val
                self._incumbents.append(IncumbentStep(
                    time=t, compute=self.compute(t), trial=r.trial.number, config=r.config,
                    best_val_acc=best_val, worth=self.grid.worth[r.config]))
        else:
            study.tell(r.trial, state=TrialState.PRUNED)
        self._record(r, t, state, best_val)
        del self._running[r.worker]
        self._start(r.worker, t)

    def _record(self, r: _Running, end: float | None, state: str,
                best_val: float | None) -> None:
        self._trials.append(TrialRecord(
            number=r.trial.number, worker=r.worker, config=r.config, seed=r.seed,
            on_grid=r.on_grid, start=r.start, end=end, epochs_run=r.epochs_done, state=state,
            best_val_acc=best_val))


def replay_strategy(grid: GridSpace, strategy: OptunaStrategy, *, repetition: int,
                    workers: int, horizon_cpu_seconds: float, max_trials: int | None = None,
                    wrap_pruner: PrunerWrapper | None = None) -> Trace:
    """One repetition of ``strategy``; the same repetition number gives every strategy the
    same sampler seed and the same draws of recorded seeds."""
    spec = replay_spec(grid.table, strategy, workers=workers)
    return Replay(grid, spec, strategy=strategy.name, repetition=repetition, workers=workers,
                  horizon_cpu_seconds=horizon_cpu_seconds, sampler_seed=1000 + repetition,
                  max_trials=max_trials, wrap_pruner=wrap_pruner).run()
