"""``hpsearch report`` and ``hpsearch dashboard``: a study's results, as files or served."""

from __future__ import annotations

import argparse
from typing import Any

from search.cli.common import check_output_dir, check_port, storage_parent

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    storage = storage_parent()
    p = sub.add_parser("dashboard", parents=[storage],
                       help="optuna-dashboard on the same storage (no authentication: binds "
                            "to 127.0.0.1 by default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=_cmd_dashboard)

    p = sub.add_parser("report", parents=[storage],
                       help="an interactive HTML report (self-contained, works offline) and "
                            "a Markdown one with PNG plots: the round analysis, the top trials "
                            "and the next round's spec")
    p.add_argument("study")
    p.add_argument("--previous", metavar="STUDY", help="the previous round to compare against")
    p.add_argument("--out", required=True, help="directory for report.html, report.md, "
                                                "next_round.yaml and the plots")
    p.set_defaults(func=_cmd_report)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from search.report.dashboard import serve
    from storage import open_storage

    check_port("--port", args.port)
    serve(open_storage(args.storage), host=args.host, port=args.port,
          emit=lambda line: print(line, flush=True))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from search.errors import StudyError
    from search.report.render import load_previous, write_report
    from search.study.stored import load_study, read_spec_or_none
    from storage import open_storage

    check_output_dir("--out", args.out)
    storage = open_storage(args.storage)
    study = load_study(storage, args.study)
    spec = read_spec_or_none(study)
    if spec is None:
        raise StudyError(f"study {args.study!r} was not launched by hpsearch (no spec stored); "
                         "the report needs its search space")
    files = write_report(study, spec.to_dict(), args.out,
                         previous=load_previous(study._storage, args.previous))
    best = files.analysis.best
    print(f"best trial {best.number}: {spec.metric_label()} = {best.value:.4f}")
    for line in [c.line() for c in files.analysis.comparisons]:
        print(line)
    for line in files.analysis.moot:
        print(f"note: {line}")
    print(f"wrote {files.html}, {files.markdown} and {files.next_spec}")
    print(f"next round: hpsearch launch {files.next_spec}")
    return 0
