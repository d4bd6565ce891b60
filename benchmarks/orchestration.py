"""What hpsearch's orchestration costs per trial, against a plain Optuna loop, in one run.

A stub trainer (benchmarks/stub_trainer.py) reports 10 epochs at once, so only orchestration
is timed. Both sides use TPE + Hyperband, 2 worker processes and a fresh PostgreSQL database:

1. reference: two processes each running ``study.optimize(objective, n_trials=N/2)`` on a plain
   ``optuna.create_study(storage=URL)``; the objective suggests lr and weight decay, reports
   every epoch and prunes, as a hand-written loop would;
2. hpsearch: ``launch`` with the same space, sampler, pruner and trainer, through the local
   executor (budget lock, heartbeat, stale-trial checks, stop rules, provenance attributes);
   pg_stat_activity is sampled every 20 ms, grouped by each connection's application_name
   (``hpsearch:<host>:<pid>``), for the most connections a worker held at once;
3. at 10,000 trials: both studies are filled to 10,000 finished trials, then each side runs K
   more; the difference per trial is hpsearch's own overhead at that size (TPE and Hyperband
   themselves get slower with 10,000 trials on both sides).

With ``--proxy``, also through a gRPC storage proxy (``hpsearch proxy`` in its own process):
the plain loop's workers use Optuna's ``GrpcStorageProxy`` client, hpsearch's workers
``--worker-storage grpc://``, both against that one proxy.

Per-trial times come from the trials' own timestamps (first start to last completion over the
number of trials), so worker start-up is left out on both sides.

    python -m benchmarks.orchestration [--trials 200] [--big 10000] [--extra 40] [--proxy]
        [--admin-url postgresql+psycopg2://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

import optuna
import sqlalchemy

from storage.optuna_storage import application_name

_REFERENCE_APP = "optuna-reference"
_SPACE = {"lr": (1e-3, 1.0), "weight_decay": (1e-5, 1e-2)}
_PRUNER = {"name": "hyperband", "min_resource": 1, "max_resource": 10, "reduction_factor": 3}


def _spec(name: str, trials: int) -> dict[str, Any]:
    return {
        "name": name, "trainer": "benchmarks.stub_trainer",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": trials, "workers": 2},
        "space": {k: {"type": "float", "low": lo, "high": hi, "log": True}
                  for k, (lo, hi) in _SPACE.items()},
        "sampler": {"name": "tpe", "seed": 0}, "pruner": dict(_PRUNER),
    }


def _reference_worker(url: str, name: str, n_trials: int, seed: int,
                      proxy: tuple[str, int] | None = None) -> None:
    import warnings

    from benchmarks.stub_trainer import Config, train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=10, reduction_factor=3)
    storage: Any
    if proxy is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.GrpcStorageProxy(host=proxy[0], port=proxy[1])
    else:
        # Named like hpsearch's connections, so the connection sampler sees this side too.
        storage = sqlalchemy.make_url(url).update_query_dict(
            {"application_name": f"{_REFERENCE_APP}:{os.getpid()}"}).render_as_string(
            hide_password=False)
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)

    class Reporter:
        def __init__(self, trial: optuna.Trial) -> None:
            self.trial = trial

        def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
            self.trial.report(metrics["val_acc"], step=epoch)

        def should_stop(self) -> bool:
            return self.trial.should_prune()

    def objective(trial: optuna.Trial) -> float:
        lo, hi = _SPACE["lr"]
        wd_lo, wd_hi = _SPACE["weight_decay"]
        cfg = Config(lr=trial.suggest_float("lr", lo, hi, log=True),
                     weight_decay=trial.suggest_float("weight_decay", wd_lo, wd_hi, log=True))
        result = train(cfg, Reporter(trial))
        if result["stop_reason"] == "pruned":
            raise optuna.TrialPruned()
        return float(result["best_val_acc"])

    study.optimize(objective, n_trials=n_trials)


def per_trial_seconds(url: str, name: str, *, skip: int = 0) -> float:
    """Seconds per trial from the study's own timestamps (first start to last completion of
    the trials after the first ``skip``): process start-up and shutdown are left out, so both
    sides are compared on what each trial costs."""
    trials = [t for t in optuna.load_study(study_name=name, storage=url).get_trials()
              if t.state.is_finished() and t.datetime_start and t.datetime_complete][skip:]
    first = min(t.datetime_start for t in trials if t.datetime_start)
    last = max(t.datetime_complete for t in trials if t.datetime_complete)
    return (last - first).total_seconds() / len(trials)


def reference_seconds_per_trial(url: str, trials: int, name: str | None = None,
                                skip: int = 0, proxy: tuple[str, int] | None = None) -> float:
    """The plain loop on a new study, or (``name``) on an existing one after its first
    ``skip`` trials; its workers through the gRPC ``proxy`` if given."""
    if name is None:
        name = f"reference-{uuid.uuid4().hex[:6]}"
        optuna.create_study(study_name=name, storage=url, direction="maximize")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_reference_worker, args=(url, name, trials // 2, i, proxy))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return per_trial_seconds(url, name, skip=skip)


class _ConnectionSampler:
    """Polls pg_stat_activity for the most connections any one worker process held (hpsearch's
    and the reference's connections carry the process in their application_name). It runs
    during both sides' timed runs, so its own load is the same for both."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.engine = sqlalchemy.create_engine(admin_url, poolclass=sqlalchemy.pool.NullPool)
        self.database = database
        self.most: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def _run(self) -> None:
        query = sqlalchemy.text("SELECT application_name, count(*) FROM pg_stat_activity "
                                "WHERE datname = :db AND (application_name LIKE 'hpsearch:%' OR "
                                f"application_name LIKE '{_REFERENCE_APP}:%') "
                                "GROUP BY application_name")
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                for app, count in conn.execute(query, {"db": self.database}):
                    self.most[app] = max(self.most[app], int(count))
                conn.rollback()
                time.sleep(0.02)


def hpsearch_seconds_per_trial(url: str, name: str, trials: int,
                               proxy: tuple[str, int] | None = None) -> float:
    from search.run.launch import launch
    from search.study.study_spec import parse_spec
    from storage import open_storage

    spec = parse_spec(_spec(name, trials))
    result = launch(spec, open_storage(url), promote=False, emit=lambda line: None,
                    worker_storage_url=None if proxy is None else f"grpc://{proxy[0]}:{proxy[1]}")
    assert result.execution.trials_run == trials, result.execution
    return per_trial_seconds(url, name)


def fill_study(url: str, name: str, total: int, *, create: bool = False) -> float:
    """Add finished trials (values and up to 10 intermediate values each) until ``total``."""
    from benchmarks.stub_trainer import curve_height

    storage = optuna.storages.RDBStorage(url)
    if create:
        optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study = optuna.load_study(study_name=name, storage=storage)
    rng = random.Random(0)
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        k: optuna.distributions.FloatDistribution(lo, hi, log=True)
        for k, (lo, hi) in _SPACE.items()}
    start = time.perf_counter()
    missing = total - len(study.trials)
    for _ in range(missing):
        params = {k: 10 ** rng.uniform(math.log10(lo), math.log10(hi))
                  for k, (lo, hi) in _SPACE.items()}
        height = curve_height(params["lr"], params["weight_decay"])
        epochs = 10 if rng.random() < 0.3 else rng.choice((1, 3))
        values = {e: height * (1 - math.exp(-e / 3)) for e in range(1, epochs + 1)}
        study.add_trial(optuna.create_trial(
            params=params, distributions=dists, intermediate_values=values,
            state=optuna.trial.TrialState.COMPLETE if epochs == 10
            else optuna.trial.TrialState.PRUNED,
            value=max(values.values()) if epochs == 10 else None))
    return time.perf_counter() - start


def _compare_through_proxy(url: str, trials: int, repeat: int) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proxy = subprocess.Popen([sys.executable, "-m", "search", "proxy", "--storage", url,
                              "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None and "serving" in proxy.stdout.readline()
        address = ("127.0.0.1", port)
        refs, ours_runs = [], []
        for i in range(repeat):
            refs.append(reference_seconds_per_trial(url, trials, proxy=address))
            ours_runs.append(hpsearch_seconds_per_trial(url, f"proxied-{i}", trials,
                                                        proxy=address))
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    ref, ours = statistics.median(refs), statistics.median(ours_runs)
    print(f"through the gRPC proxy: plain optuna loop {1000 * ref:.1f} ms per trial "
          f"({', '.join(f'{1000 * r:.1f}' for r in refs)}), hpsearch {1000 * ours:.1f} ms "
          f"({', '.join(f'{1000 * r:.1f}' for r in ours_runs)})  ratio {ours / ref:.2f}x; "
          "workers hold no database connection")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.orchestration",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--extra", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--proxy", action="store_true",
                        help="also compare both sides through a gRPC storage proxy")
    parser.add_argument("--admin-url",
                        default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    admin = sqlalchemy.create_engine(args.admin_url, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.pool.NullPool)
    database = f"hpsearch_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
    url = admin.url.set(database=database).render_as_string(hide_password=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        print(f"PostgreSQL database {database}; TPE + Hyperband, 2 workers, stub trainer "
              f"(10 epochs)")
        # Alternate the two sides --repeat times: this machine's noise is larger than the
        # difference of a few milliseconds, so each side's median is compared.
        refs, ours_runs, most, ref_most = [], [], 0, 0
        for i in range(args.repeat):
            with _ConnectionSampler(args.admin_url, database) as ref_sampler:
                refs.append(reference_seconds_per_trial(url, args.trials))
            with _ConnectionSampler(args.admin_url, database) as sampler:
                ours_runs.append(hpsearch_seconds_per_trial(url, f"hpsearch-{i}", args.trials))
            # This process is the launcher (three launches, three storages): not a worker.
            launcher = application_name()
            most = max(most, *(n for app, n in sampler.most.items() if app != launcher))
            ref_most = max(ref_most, *ref_sampler.most.values())
        ref, ours = statistics.median(refs), statistics.median(ours_runs)
        print(f"plain optuna loop:         {1000 * ref:7.1f} ms per trial (median of "
              f"{args.repeat} x {args.trials} trials: "
              f"{', '.join(f'{1000 * r:.1f}' for r in refs)})")
        print(f"hpsearch launch:           {1000 * ours:7.1f} ms per trial ("
              f"{', '.join(f'{1000 * r:.1f}' for r in ours_runs)})  ratio {ours / ref:.2f}x "
              "(goal <= 1.1)")
        print(f"connections per worker:    at most {most} at once (goal <= 2; the plain "
              f"loop's workers: {ref_most})")
        if args.proxy:
            _compare_through_proxy(url, args.trials, args.repeat)
        if args.big <= 0:
            return 0
        filled = fill_study(url, "hpsearch-0", args.big)
        fill_study(url, "reference-big", args.big, create=True)
        print(f"filled both studies to {args.big} trials ({filled:.0f} s each)")
        # The first trials after the fill load 10,000 trials into each process's cache, on
        # both sides; per-trial time is taken over the trials after those.
        warm = args.big + args.extra // 5
        ref_big = reference_seconds_per_trial(url, args.extra, name="reference-big", skip=warm)
        from search.run.launch import launch
        from search.study.study_spec import parse_spec
        from storage import open_storage

        spec = parse_spec(_spec("hpsearch-0", args.big + args.extra))
        launch(spec, open_storage(url), promote=False, emit=lambda line: None)
        big = per_trial_seconds(url, "hpsearch-0", skip=warm)
        print(f"at {args.big} trials: plain optuna {1000 * ref_big:.1f} ms, hpsearch "
              f"{1000 * big:.1f} ms per trial (last {args.extra - args.extra // 5} of "
              f"{args.extra} trials each): hpsearch's own "
              f"overhead {1000 * (big - ref_big):.1f} ms per trial (goal < 100 ms), ratio "
              f"{big / ref_big:.2f}x")
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = :n"), {"n": database})
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}"'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
