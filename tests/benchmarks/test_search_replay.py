"""The replay simulator on a tiny made-up table whose curves, costs and best are known: pruning
decisions see only finished epochs, compute is charged as recorded, random search finds the best.
The full replay (benchmarks/search_efficiency.py) is a benchmark, not a test."""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

import optuna
import pytest

from benchmarks.search_replay.grid_space import GridSpace
from benchmarks.search_replay.metrics import quantile, summarize
from benchmarks.search_replay.simulator import Replay, replay_strategy
from benchmarks.search_replay.strategies import (
    OptunaStrategy,
    PeerStrategy,
    hpsearch_default,
    replay_spec,
)
from benchmarks.search_replay.synthetic import SYNTHETIC_BEST, synthetic_table
from benchmarks.search_replay.trace import Trace
from benchmarks.search_table.table import ConfigValues, table_from_dict
from search.study.study_spec import parse_spec

DIVERGING = ConfigValues(lr=1.0, weight_decay=1e-4, batch_size=64, gamma=0.1)
PRUNING = OptunaStrategy("sh", {"name": "random"},
                         {"name": "successive_halving", "min_resource": 1,
                          "reduction_factor": 2})


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def grid() -> GridSpace:
    # Epochs cost 1 s (batch 64) or 2 s (batch 128), so the workers' epochs interleave.
    return GridSpace(synthetic_table(diverging=DIVERGING,
                                     extra_seed_configs=(SYNTHETIC_BEST,)))


class _Watcher(optuna.pruners.BasePruner):
    """Records, at every pruning decision, the simulated time and every value the study
    holds, then lets the wrapped pruner decide."""

    def __init__(self, inner: optuna.pruners.BasePruner, log: list[Any],
                 clock: list[Replay]) -> None:
        self.inner, self.log, self.clock = inner, log, clock

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        seen = {(t.number, step) for t in study.get_trials(deepcopy=False)
                for step in t.intermediate_values}
        self.log.append((self.clock[0].now, trial.number, seen))
        return self.inner.prune(study, trial)


def _watched_replay(grid: GridSpace, strategy: OptunaStrategy, *, horizon_runs: float
                    ) -> tuple[Trace, list[Any], Replay]:
    log: list[Any] = []
    holder: list[Replay] = []
    replay = Replay(grid, replay_spec(grid.table, strategy), strategy=strategy.name,
                    repetition=0, workers=4,
                    horizon_cpu_seconds=horizon_runs * grid.full_run_cpu_seconds,
                    sampler_seed=7, wrap_pruner=lambda p: _Watcher(p, log, holder))
    holder.append(replay)
    return replay.run(), log, replay


def test_pruning_sees_only_finished_work(grid: GridSpace) -> None:
    trace, log, _ = _watched_replay(grid, PRUNING, horizon_runs=15)
    ended = {(c.trial, c.epoch): c for c in trace.charges}
    assert len(log) > 20
    overlapped = 0
    for now, _number, seen in log:
        for key in seen:
            assert ended[key].end <= now, f"epoch {key} ends at {ended[key].end}, after {now}"
        finished = {k for k, c in ended.items() if c.end < now and c.epoch <= len(
            grid.table.lookup(_config(trace, k[0]), _seed(trace, k[0])).epochs)}
        assert finished <= seen, f"finished epochs hidden from the pruner: {finished - seen}"
        overlapped += any(c.start < now < c.end for c in trace.charges)
    assert overlapped > len(log) // 2  # other workers were mid-epoch at most decisions
    assert any(r.state == "pruned" for r in trace.trials)


def _config(trace: Trace, number: int) -> ConfigValues:
    return next(r.config for r in trace.trials if r.number == number)


def _seed(trace: Trace, number: int) -> int:
    return next(r.seed for r in trace.trials if r.number == number)


def test_compute_is_charged_as_recorded(grid: GridSpace) -> None:
    horizon = 15 * grid.full_run_cpu_seconds
    trace = replay_strategy(grid, PRUNING, repetition=1, workers=4,
                            horizon_cpu_seconds=horizon)
    by_worker: dict[int, list[Any]] = {}
    for c in trace.charges:
        assert c.end - c.start == pytest.approx(c.cpu_seconds)
        by_worker.setdefault(c.worker, []).append(c)
    for charges in by_worker.values():  # each worker busy from 0, epoch after epoch
        charges.sort(key=lambda c: c.start)
        assert charges[0].start == 0.0
        for a, b in itertools.pairwise(charges):
            assert b.start == pytest.approx(a.end)
        assert sum(c.cpu_seconds for c in charges) == pytest.approx(charges[-1].end)
        assert charges[-1].end <= horizon / 4
    # The clock's total: every worker busy to the horizon, less the epochs cut off there.
    assert trace.charged_cpu_seconds <= horizon
    assert trace.charged_cpu_seconds > horizon - 4 * 2.0
    states = set()
    for record in trace.trials:
        run = grid.table.lookup(record.config, record.seed)
        mine = [c for c in trace.charges if c.trial == record.number]
        expected = sum(e.cpu_seconds for e in run.epochs[:record.epochs_run])
        if record.state == "diverged":
            expected += run.tail_cpu_seconds
        assert sum(c.cpu_seconds for c in mine) == pytest.approx(expected)
        if record.state == "pruned":
            assert record.epochs_run < len(run.epochs)
            assert len(mine) == record.epochs_run  # only the epochs it ran
        states.add(record.state)
    assert {"pruned", "complete", "cut"} <= states


def test_a_diverged_run_is_charged_its_tail_and_never_returned() -> None:
    small = GridSpace(synthetic_table(lrs=(0.1, 1.0), weight_decays=(1e-4,),
                                      batch_sizes=(64,), gammas=(0.1,),
                                      best=ConfigValues(0.1, 1e-4, 64, 0.1),
                                      diverging=ConfigValues(1.0, 1e-4, 64, 0.1)))
    trace = replay_strategy(small, OptunaStrategy("r", {"name": "random"}, {"name": "none"}),
                            repetition=0, workers=2,
                            horizon_cpu_seconds=10 * small.full_run_cpu_seconds)
    diverged = [r for r in trace.trials if r.state == "diverged"]
    assert diverged and all(r.epochs_run == 1 for r in diverged)
    for r in diverged:
        tail = [c for c in trace.charges if c.trial == r.number and c.epoch == 2]
        assert [c.cpu_seconds for c in tail] == [0.5]
    assert {s.config.lr for s in trace.incumbents} == {0.1}


def test_the_reference_is_what_selection_by_validation_can_return() -> None:
    # A table whose best configuration by holdout is second by validation.
    blob_runs = []
    for lr, val, holdout in ((0.01, 0.5, 0.6), (0.1, 0.7, 0.8), (1.0, 0.75, 0.7)):
        run = synthetic_table(lrs=(lr,), weight_decays=(1e-4,), batch_sizes=(64,),
                              gammas=(0.1,)).runs[0]
        d = _as_dict(run)
        d["epochs"][-1]["val_acc"] = d["best_val_acc"] = val
        d["holdout_acc"] = holdout
        blob_runs.append(d)
    blob = _blob([0.01, 0.1, 1.0], blob_runs)
    grid = GridSpace(table_from_dict(blob))
    assert grid.best == (ConfigValues(0.1, 1e-4, 64, 0.1), 0.8)
    assert grid.exhaustive_pick == (ConfigValues(1.0, 1e-4, 64, 0.1), 0.7)
    assert grid.reference("best") == 0.8 and grid.reference("selectable") == 0.7


def test_random_search_finds_the_known_best(grid: GridSpace) -> None:
    strategy = OptunaStrategy("random", {"name": "random"}, {"name": "none"})
    trace = replay_strategy(grid, strategy, repetition=3, workers=4,
                            horizon_cpu_seconds=80 * grid.full_run_cpu_seconds)
    assert grid.best[0] == SYNTHETIC_BEST
    assert trace.incumbents[-1].config == SYNTHETIC_BEST
    assert trace.compute_to_reach(grid.best[1]) is not None
    # The incumbent is the study's own best trial.
    values = [s.best_val_acc for s in trace.incumbents]
    assert values == sorted(values)


def test_incumbent_is_optunas_best_trial(grid: GridSpace) -> None:
    trace, _, replay = _watched_replay(grid, PRUNING, horizon_runs=10)
    best = replay.studies[0].best_trial
    assert trace.incumbents[-1].trial == best.number
    assert trace.incumbents[-1].best_val_acc == best.value


def test_snapping_uses_log_distance_and_neighbours_for_missing_points() -> None:
    table = synthetic_table()
    grid = GridSpace(table)
    config, on_grid = grid.snap({"lr": 0.04, "weight_decay": 3.5e-4, "batch_size": 128,
                                 "gamma": 0.29})
    assert on_grid
    assert config == ConfigValues(0.1, 1e-3, 128, 0.1)  # log(0.04) is nearer log(0.1)
    blob = _blob([0.01, 0.1, 1.0], [_as_dict(table.lookup(ConfigValues(lr, 1e-4, 64, 0.1), 0))
                                    for lr in (0.01, 1.0)])
    partial = GridSpace(table_from_dict(blob))
    config, on_grid = partial.snap({"lr": 0.2, "weight_decay": 1e-4, "batch_size": 64,
                                    "gamma": 0.1})
    assert not on_grid and config.lr == 1.0


def _blob(lrs: list[float], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A table over ``lrs`` (weight decay 1e-4, batch 64, gamma 0.1) holding ``runs``."""
    return {"format": "hpsearch-search-table/1", "header": {
        "identity": {"grid": {"lrs": lrs, "weight_decays": [1e-4], "batch_sizes": [64],
                              "gammas": [0.1], "milestone_fractions": [], "epochs": 4,
                              "width": 0.125},
                     "seeds": {"base": [0], "extra": [], "extra_configs": []},
                     "sizes": {}, "trainer_settings": {}, "data": {}},
        "machine": {}, "recording": {}}, "runs": runs}


def _as_dict(run: Any) -> dict[str, Any]:
    return {"config": run.config.as_dict(), "seed": run.seed, "milestones": [2],
            "epochs": [{"epoch": e.epoch, "val_acc": e.val_acc, "val_loss": e.val_loss,
                        "train_acc": e.train_acc, "train_loss": e.train_loss, "lr": e.lr,
                        "wall_seconds": e.wall_seconds, "cpu_seconds": e.cpu_seconds}
                       for e in run.epochs],
            "stop_reason": run.stop_reason, "diverged_epoch": run.diverged_epoch,
            "best_val_acc": run.best_val_acc, "best_epoch": run.best_epoch,
            "holdout_acc": run.holdout_acc, "holdout_loss": run.holdout_loss,
            "run_cpu_seconds": run.run_cpu_seconds, "run_wall_seconds": run.run_wall_seconds,
            "tail_cpu_seconds": run.tail_cpu_seconds}


def test_the_default_strategy_is_what_a_spec_without_sampler_and_pruner_gets() -> None:
    table = synthetic_table()
    spec = replay_spec(table, hpsearch_default())
    bare = parse_spec({"name": "x", "trainer": "cifar", "config": {"epochs": spec.epochs()},
                       "space": {"lr": {"type": "float", "low": 0.01, "high": 0.1}}})
    assert (spec.sampler, spec.pruner) == (bare.sampler, bare.pruner)


def test_quantiles_and_summary_count_never_as_worst(grid: GridSpace) -> None:
    assert quantile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert quantile([1.0, math.inf, math.inf], 0.5) == math.inf
    assert quantile([1.0, 2.0, math.inf, math.inf], 0.25) == pytest.approx(1.75)
    trace = replay_strategy(grid, OptunaStrategy("r", {"name": "random"}, {"name": "none"}),
                            repetition=0, workers=4,
                            horizon_cpu_seconds=2 * grid.full_run_cpu_seconds)
    s = summarize("r", [trace], grid, budget_runs=1.0, target=grid.best[1])
    assert s.repetitions == 1 and len(s.to_target) == 1
    assert s.at_target_at_budget == (s.regret_at_budget[0] == 0)


def test_the_benchmark_ends_with_its_one_line(tmp_path: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.search_replay.bench import main

    assert main(["--synthetic", "--reps", "2", "--jobs", "1", "--horizon", "10",
                 "--budget", "5", "--only", "random,hpsearch-default",
                 "--out", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    number = r"([<>]?\d+\.\d\d|n/a)"
    assert re.fullmatch(rf"default: {number}x the compute of random search to within "
                        rf"0\.5 points; {number}x the best peer \(.+\)", last), last
    assert (tmp_path / "regret.png").stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["reps"] == 2
    assert [s["name"] for s in results["strategies"]] == ["random", "hpsearch-default"]
    assert all(len(s["runs_to_target"]) == len(s["regret_at_budget"]) == 2
               for s in results["strategies"])


def test_a_peer_runs_on_the_same_table(grid: GridSpace) -> None:
    pytest.importorskip("syne_tune")
    from benchmarks.search_replay.peers import replay_peer

    horizon = 10 * grid.full_run_cpu_seconds
    trace = replay_peer(grid, PeerStrategy("asha", "syne_tune_asha",
                                           {"grace_period": 1, "reduction_factor": 3}),
                        repetition=0, workers=4, horizon_cpu_seconds=horizon)
    assert trace.trials and trace.incumbents
    assert all(c.end <= horizon / 4 + 1e-9 for c in trace.charges)
    assert any(r.state == "pruned" for r in trace.trials)
    for record in trace.trials:
        run = grid.table.lookup(record.config, record.seed)
        mine = sorted(c.epoch for c in trace.charges if c.trial == record.number)
        assert mine == list(range(1, record.epochs_run + 1))
        assert record.epochs_run <= len(run.epochs)
