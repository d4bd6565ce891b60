"""The ``hpsearch`` command. Known errors become one line on stderr and exit code 2;
``--debug`` shows the traceback instead."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import yaml

from search.errors import SpecError

__all__ = ["main"]

_EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    import optuna

    from search.errors import HpsearchError
    from storage import StorageError

    optuna.logging.set_verbosity(optuna.logging.DEBUG if args.debug else optuna.logging.WARNING)
    try:
        return int(args.func(args))
    except (HpsearchError, StorageError) as exc:
        if args.debug:
            raise
        print(f"hpsearch: error: {exc}", file=sys.stderr)
        return _EXIT_ERROR
    except KeyboardInterrupt:
        print("hpsearch: interrupted; running trials were marked FAIL", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hpsearch status X | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpsearch", description="Hyperparameter search for "
                                     "PyTorch vision training on Optuna.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    storage_help = "database URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db)"

    p = sub.add_parser("launch", help="create or join a study and run workers until its budget "
                                      "is spent")
    p.add_argument("spec", help="study spec YAML, e.g. examples/quickstart.yaml")
    p.add_argument("--storage", help=storage_help)
    p.add_argument("--study-name", help="override the spec's study name")
    p.add_argument("--trials", type=int, help="override the trial budget")
    p.add_argument("--workers", type=int, help="override the number of local workers")
    p.add_argument("--epochs", type=int, help="rescale the study to this epoch budget "
                   "(patience, baselines and pruner resources scale with it)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a fixed trainer setting, e.g. --set dataset=train.tar.gz")
    p.set_defaults(func=_cmd_launch)

    p.add_argument("--warm-start", metavar="STUDY",
                   help="import the finished trials of an earlier round into the new study")
    p.add_argument("--no-promote", action="store_true",
                   help="do not promote the winner into the tuned defaults at the end")
    p.add_argument("--extra-seeds", type=int, default=2,
                   help="seeds the winner is re-measured on before promotion (default 2)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local worker processes (default) or Ray tasks anywhere in a cluster")
    p.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT from a cluster "
                                     "node, ray://HOST:10001 from anywhere else (default: "
                                     "start a local Ray instance)")
    p.add_argument("--checkpoint-dir", help="per-trial checkpoints under this directory, which "
                                            "every worker must see; a retried trial resumes "
                                            "there (overrides fault_tolerance.checkpoint_dir)")
    p.add_argument("--artifact-store", help="upload per-trial checkpoints to this Optuna "
                                            "artifact store (directory, file://, s3://BUCKET, "
                                            "gs://BUCKET) for workers without a shared "
                                            "filesystem (overrides fault_tolerance."
                                            "artifact_store)")
    p.add_argument("--worker-storage", metavar="URL",
                   help="where the workers reach the study, if not at --storage: "
                        "grpc://HOST:PORT for a gRPC proxy started by hpsearch proxy (the "
                        "workers then hold no database connection)")
    p.add_argument("--threads-per-worker", type=int, metavar="N",
                   help="torch CPU threads of each local worker (default: this machine's cores "
                        "divided by --workers; lower it when other launchers or jobs share the "
                        "machine, since oversubscribed cores slow training many times over)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPUs each Ray worker reserves; fractional packs trials on one GPU")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPUs each Ray worker reserves (default 1)")

    p = sub.add_parser("worker", help="join a study from this machine as one worker (no Ray): "
                                      "for clusters managed by something else")
    p.add_argument("study", help="study name (created by hpsearch launch)")
    p.add_argument("--storage", help=storage_help + "; or grpc://HOST:PORT, a gRPC proxy "
                                                    "started by hpsearch proxy")
    p.add_argument("--index", type=int, default=0,
                   help="worker index: seeds the sampler differently per worker (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("proxy", help="serve the study database to workers over Optuna's gRPC "
                                     "storage proxy, so they hold no database connection")
    p.add_argument("--storage", help=storage_help)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=13000, help="port to listen on (default 13000)")
    p.add_argument("--threads", type=int, default=16,
                   help="calls served at once; each may hold one database connection "
                        "(default 16)")
    p.set_defaults(func=_cmd_proxy)

    p = sub.add_parser("status", help="trial counts, best trial and progress of a study")
    p.add_argument("study", help="study name")
    p.add_argument("--storage", help=storage_help)
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="keep printing progress every SECONDS until the budget is done")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("dashboard", help="optuna-dashboard on the same storage (no "
                                         "authentication: binds to 127.0.0.1 by default)")
    p.add_argument("--storage", help=storage_help)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=_cmd_dashboard)

    p = sub.add_parser("report", help="HTML + Markdown report with plots and the round "
                                      "analysis, and the next round's spec")
    p.add_argument("study")
    p.add_argument("--previous", metavar="STUDY", help="the previous round to compare against")
    p.add_argument("--out", required=True, help="directory for report.html, report.md, "
                                                "next_round.yaml and the plots")
    p.add_argument("--storage", help=storage_help)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("studies", help="list the studies in a storage")
    p.add_argument("--storage", help=storage_help)
    p.set_defaults(func=_cmd_studies)

    db = sub.add_parser("db", help="hpsearch's own tables").add_subparsers(dest="db_command",
                                                                          required=True)
    p = db.add_parser("upgrade", help="create or migrate hpsearch's tables (never Optuna's)")
    p.add_argument("--storage", help=storage_help)
    p.set_defaults(func=_cmd_db_upgrade)
    p = db.add_parser("current", help="print the schema revision of hpsearch's tables")
    p.add_argument("--storage", help=storage_help)
    p.set_defaults(func=_cmd_db_current)

    from search.cli.tuning_commands import add_commands

    add_commands(sub, _parse_overrides)
    return parser


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set {item!r} is not KEY=VALUE; e.g. --set dataset=train.tar.gz")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _cmd_launch(args: argparse.Namespace) -> int:
    from search.report.progress import format_config
    from search.run.launch import launch
    from search.study.study_spec import load_spec, with_overrides
    from storage import redact, resolve_storage_url

    spec = with_overrides(
        load_spec(args.spec), name=args.study_name, trials=args.trials, workers=args.workers,
        epochs=args.epochs, config=_parse_overrides(args.overrides),
        checkpoint_dir=args.checkpoint_dir, artifact_store=args.artifact_store)
    url = resolve_storage_url(args.storage)
    emit, progress = _line_printers()
    executor: Any = None
    if args.executor == "ray":
        from search.run.ray_executor import RayExecutor

        if args.threads_per_worker is not None:
            raise SpecError("--threads-per-worker is for local workers; a Ray worker uses "
                            "--cpus-per-trial threads")

        executor = RayExecutor(spec.workers, address=args.address,
                               gpus_per_trial=args.gpus_per_trial,
                               cpus_per_trial=args.cpus_per_trial)
    else:
        if args.address or args.gpus_per_trial:
            raise SpecError("--address and --gpus-per-trial need --executor ray")
        if args.threads_per_worker is not None:
            if args.threads_per_worker < 1:
                raise SpecError(f"--threads-per-worker {args.threads_per_worker} must be at "
                                "least 1, e.g. --threads-per-worker 1")
            from search.run.local_executor import LocalExecutor

            executor = LocalExecutor(spec.workers, threads_per_worker=args.threads_per_worker)
    result = launch(spec, url, emit=emit, progress=progress, progress_every_s=1.0
                    if sys.stdout.isatty() else 15.0, warm_start=args.warm_start,
                    promote=not args.no_promote, extra_seeds=args.extra_seeds,
                    executor=executor, worker_storage_url=args.worker_storage)
    emit("")
    print(f"finished in {result.seconds:.1f}s: {result.execution.trials_run} trials run by this "
          "launcher")
    for line in result.execution.errors:
        print(f"warning: {line}")
    best = result.best
    if spec.multi_objective:
        _print_pareto(result.study, spec.metrics)
    elif best is None:
        print("no feasible completed trial yet: nothing to report as best")
    else:
        target = ""
        if spec.target is not None and best.value is not None:
            verdict = "reached" if _reached(spec, best.value) else "not reached"
            target = f" (target {spec.target}: {verdict})"
        print(f"best trial {best.number}: {spec.metric} = {best.value:.4f}{target}")
        if "best_train_val_gap" in best.user_attrs:
            print(f"train-validation gap {best.user_attrs['best_train_val_gap']:.4f}"
                  + (f" (limit {spec.max_train_val_gap})" if spec.max_train_val_gap else ""))
        print("best configuration:")
        for line in format_config(best.user_attrs.get("config", best.params)):
            print(line)
    if result.promotion is not None:
        from search.cli.tuning_commands import print_promotion

        print_promotion(result.promotion)
    print(f"study {spec.name!r} is stored in {redact(url)}")
    print(f"see it again with: hpsearch status {spec.name}"
          + (f" --storage {redact(url)}" if args.storage else ""))
    return 0


def _print_pareto(study: Any, metrics: Sequence[str]) -> None:
    front = sorted(study.best_trials, key=lambda t: t.number)
    if not front:
        print("no completed trial yet: no Pareto front")
        return
    print(f"Pareto front ({len(front)} trials; none is better on every metric):")
    for t in front:
        values = " ".join(f"{m}={v:.4f}" for m, v in zip(metrics, t.values, strict=True))
        print(f"  trial {t.number}: {values}  " + " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items()))


def _cmd_worker(args: argparse.Namespace) -> int:
    from search.cli.tuning_commands import load_study_or_fail
    from search.run.worker import run_worker
    from storage import redact, resolve_storage_url
    from storage.attrs import BUDGET_ATTR, SPEC_ATTR

    url = resolve_storage_url(args.storage, allow_grpc=True)
    study = load_study_or_fail(url, args.study)
    spec = study.user_attrs.get(SPEC_ATTR)
    if spec is None:
        raise SpecError(f"study {args.study!r} in {redact(url)} was not created by hpsearch "
                        "launch (it has no spec); launch it first")
    # The budget of the latest launch (a later launch may have raised it with --trials).
    budget = study._storage.get_study_system_attrs(study._study_id).get(BUDGET_ATTR)
    if budget is not None:
        spec = {**spec, "budget": {**spec.get("budget", {}), "trials": int(budget)}}
    print(f"joined study {args.study!r} in {redact(url)} as worker {args.index}", flush=True)
    summary = run_worker(spec, url, worker_index=args.index, threads=args.threads)
    states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.states.items()))
    print(f"worker {args.index} ran {summary.trials_run} trials ({states or 'none'})"
          + (f"; stopped: {summary.stop_reason}" if summary.stop_reason else ""))
    return 0


def _cmd_proxy(args: argparse.Namespace) -> int:
    import signal
    import threading

    from storage import redact, resolve_storage_url
    from storage.grpc_proxy import serve

    if args.threads < 1 or not 0 < args.port < 65536:
        raise SpecError(f"--threads {args.threads} / --port {args.port}: threads must be at "
                        "least 1 and the port 1-65535, e.g. --threads 16 --port 13000")
    url = resolve_storage_url(args.storage)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def ready() -> None:
        print(f"serving {redact(url)} at grpc://{args.host}:{args.port} (give workers "
              f"--storage or --worker-storage grpc://HOST:{args.port}); Ctrl-C stops",
              flush=True)

    try:
        serve(url, host=args.host, port=args.port, threads=args.threads, on_ready=ready,
              stop=stop)
    except KeyboardInterrupt:
        stop.set()
    print("proxy stopped")
    return 0


def _line_printers() -> tuple[Any, Any]:
    """On a terminal the progress line is redrawn in place under the lasting lines; anywhere
    else (a log file, CI) every line is plain text."""
    if not sys.stdout.isatty():
        def plain(line: str) -> None:
            if line:
                print(line, flush=True)
        return plain, plain

    def lasting(line: str) -> None:
        sys.stdout.write("\r\x1b[K" + (line + "\n" if line else ""))
        sys.stdout.flush()

    def status(line: str) -> None:
        sys.stdout.write("\r\x1b[K" + line[: _terminal_width() - 1])
        sys.stdout.flush()

    return lasting, status


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


def _reached(spec: Any, value: float) -> bool:
    return value >= spec.target if spec.direction == "maximize" else value <= spec.target


def _cmd_status(args: argparse.Namespace) -> int:
    from search.cli.tuning_commands import load_study_or_fail
    from search.report.progress import describe_trial, format_config, format_progress, read_progress
    from storage import redact, resolve_storage_url
    from storage.attrs import SPEC_ATTR

    url = resolve_storage_url(args.storage)
    study = load_study_or_fail(url, args.study)
    spec = study.user_attrs.get(SPEC_ATTR, {})
    budget = spec.get("budget", {}).get("trials")
    workers = spec.get("budget", {}).get("workers", 1)
    objective = spec.get("objective", {})
    metric = ",".join(objective["metrics"]) if "metrics" in objective else \
        objective.get("metric", "value")
    p = read_progress(study, budget=budget, workers=workers)
    print(f"study {study.study_name!r} ({p.direction} {metric}) in {redact(url)}")
    print(format_progress(p), flush=True)
    while args.watch and (budget is None or p.done < budget):
        time.sleep(args.watch)
        p = read_progress(study, budget=budget, workers=workers)
        print(format_progress(p), flush=True)
    for t in p.finished[-10:]:
        print("  " + describe_trial(t, metric))
    if p.best is not None:
        print(f"best trial {p.best.number}: {metric} = {p.best.value:.4f}")
        for line in format_config(p.best.user_attrs.get("config", p.best.params)):
            print(line)
    if p.pareto:
        _print_pareto(study, metric.split(","))
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from search.report.dashboard import serve
    from storage import resolve_storage_url

    serve(resolve_storage_url(args.storage), host=args.host, port=args.port,
          emit=lambda line: print(line, flush=True))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from search.cli.tuning_commands import load_study_or_fail
    from search.errors import StudyError
    from search.report.render import load_previous, write_report
    from storage import resolve_storage_url
    from storage.attrs import SPEC_ATTR

    url = resolve_storage_url(args.storage)
    study = load_study_or_fail(url, args.study)
    spec = study.user_attrs.get(SPEC_ATTR)
    if not spec:
        raise StudyError(f"study {args.study!r} was not launched by hpsearch (no spec stored); "
                         "the report needs its search space")
    files = write_report(study, spec, args.out,
                         previous=load_previous(study._storage, args.previous))
    for line in [c.line() for c in files.analysis.comparisons]:
        print(line)
    print(f"wrote {files.html}, {files.markdown} and {files.next_spec}")
    print(f"next round: hpsearch launch {files.next_spec}")
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    import optuna

    from storage import open_optuna_storage, resolve_storage_url

    storage = open_optuna_storage(resolve_storage_url(args.storage))
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        best = f"best {s.best_trial.value:.4f}" if s.best_trial and s.best_trial.value is not None \
            else "no completed trial"
        print(f"{s.study_name}\t{s.n_trials} trials\t{best}")
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage import redact, resolve_storage_url, upgrade

    url = resolve_storage_url(args.storage)
    before, after = upgrade(url)
    if before == after:
        print(f"{redact(url)}: hpsearch tables already at revision {after}")
    else:
        print(f"{redact(url)}: hpsearch tables upgraded from {before or 'empty'} to {after}")
    return 0


def _cmd_db_current(args: argparse.Namespace) -> int:
    from storage import current_revision, head_revision, redact, resolve_storage_url

    url = resolve_storage_url(args.storage)
    rev = current_revision(url)
    print(f"{redact(url)}: revision {rev or 'none'} (head {head_revision()})")
    return 0
