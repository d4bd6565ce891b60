"""``hpsearch train``, ``hpsearch defaults ...``, ``hpsearch export`` and
``hpsearch registry ...``: the commands around tuned defaults and the config registry."""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Mapping
from typing import Any

from search.cli.common import check_output_dir, parse_overrides, storage_parent
from search.cli.launch_checks import MAX_EXTRA_SEEDS
from search.errors import SpecError

__all__ = ["add_commands", "print_promotion"]


def add_commands(sub: Any) -> None:
    storage = storage_parent()
    p = sub.add_parser("train", parents=[storage], help="train one configuration, showing "
                                                        "where each value came from")
    p.add_argument("--trainer", default="cifar")
    p.add_argument("--model")
    p.add_argument("--optimizer")
    p.add_argument("--dataset")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--config", help="registry:NAME[@VERSION|@ALIAS] or an exported file")
    p.add_argument("--scaling-rule", default="linear", choices=["linear", "sqrt", "none"],
                   help="how the tuned LR follows a different batch size")
    p.add_argument("--dry-run", action="store_true", help="print the resolution, do not train")
    p.set_defaults(func=_cmd_train)

    defaults = sub.add_parser("defaults", help="the tuned-defaults table").add_subparsers(
        dest="defaults_command", required=True)
    p = defaults.add_parser("show", parents=[storage],
                            help="current rows, each with a command reproducing it")
    for flag in ("--trainer", "--model", "--optimizer", "--dataset"):
        p.add_argument(flag)
    p.set_defaults(func=_cmd_defaults_show)
    p = defaults.add_parser("history", parents=[storage],
                            help="every row of one key, oldest first")
    p.add_argument("--trainer", default="cifar")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--optimizer", required=True)
    p.add_argument("--dataset", required=True)
    p.set_defaults(func=_cmd_defaults_history)
    p = defaults.add_parser("promote", parents=[storage],
                            help="re-measure a study's best trial on extra seeds and promote it "
                                 "if it beats the current row")
    p.add_argument("study")
    p.add_argument("--extra-seeds", type=int, default=2)
    p.add_argument("--force", action="store_true", help="promote even if it does not win")
    p.add_argument("--trial", type=int, help="promote this trial instead of the best one "
                                             "(needed for a multi-objective study)")
    p.set_defaults(func=_cmd_defaults_promote)

    p = sub.add_parser("export", parents=[storage],
                       help="save a study's best (or a chosen) trial as a new immutable "
                            "registry version")
    p.add_argument("study")
    p.add_argument("--name", required=True)
    p.add_argument("--trial", type=int)
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--note")
    p.set_defaults(func=_cmd_export)

    reg = sub.add_parser("registry", help="the config registry").add_subparsers(
        dest="registry_command", required=True)
    p = reg.add_parser("list", parents=[storage], help="versions, newest last")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_cmd_registry_list)
    p = reg.add_parser("show", parents=[storage], help="one version in full")
    p.add_argument("ref", help="NAME, NAME@VERSION or NAME@ALIAS")
    p.set_defaults(func=_cmd_registry_show)
    p = reg.add_parser("alias", parents=[storage],
                       help="point an alias (e.g. production) at a version")
    p.add_argument("ref", help="NAME@VERSION")
    p.add_argument("alias")
    p.set_defaults(func=_cmd_registry_alias)
    p = reg.add_parser("export", parents=[storage],
                       help="write a version to a YAML or JSON file")
    p.add_argument("ref")
    p.add_argument("--format", default="yaml", choices=["yaml", "json"])
    p.add_argument("--out", default=".", help="directory (default: current)")
    p.set_defaults(func=_cmd_registry_export)


def _engine(args: argparse.Namespace) -> Any:
    from storage import open_storage

    return open_storage(args.storage).engine


def _short(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, list) else str(v)


def _cmd_train(args: argparse.Namespace) -> int:
    from search.study.trainers import get_trainer
    from search.tuning.resolve import TunedLookup, resolve_config, resolve_tuned
    from storage import open_storage

    explicit: dict[str, Any] = {k: v for k, v in (
        ("model", args.model), ("optimizer", args.optimizer), ("dataset", args.dataset),
        ("lr", args.lr), ("batch_size", args.batch_size), ("epochs", args.epochs))
        if v is not None}
    explicit.update(parse_overrides(args.overrides, _overridden_config_cls(args)))
    if args.config:
        entry, base, label = _config_source(args.config, args)
        resolution = resolve_config(entry, explicit=explicit, tuned=base, tuned_label=label,
                                    scaling_rule=args.scaling_rule, whole_config=True)
    else:
        entry = get_trainer(args.trainer)
        resolution = resolve_tuned(entry, explicit, TunedLookup(open_storage(args.storage)),
                                   scaling_rule=args.scaling_rule)
    width = max(len(k) for k in resolution.sources)
    for key, source in resolution.sources.items():
        value = getattr(resolution.config, key)
        print(f"{key:<{width}}  {_short(value):<24} {source}")
    for note in resolution.notes:
        print(f"note: {note}")
    if args.dry_run:
        return 0
    result = entry.train(resolution.config, _PrintingReporter())
    for key, value in result.items():
        print(f"{key}: {_short(value)}")
    return 0


def _config_source(ref: str, args: argparse.Namespace) -> tuple[Any, dict[str, Any], str]:
    """A whole config from the registry or a file; it is applied as one layer."""
    from search.study.trainers import get_trainer
    from search.tuning.registry_files import load_config_file
    from storage import registry

    if ref.startswith("registry:"):
        version = registry.resolve(_engine(args), ref.removeprefix("registry:"))
        entry = get_trainer(version.trainer)
        entry.build_config(version.config)  # a hand-edited row fails here, naming the field
        return entry, dict(version.config), f"registry {version.ref}"
    trainer, cfg, _ = load_config_file(ref)
    return get_trainer(trainer), cfg.to_dict(), f"file {ref}"


class _PrintingReporter:
    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        print(f"epoch {epoch}: " + " ".join(f"{k} {_short(v)}" for k, v in metrics.items()),
              flush=True)

    def should_stop(self) -> bool:
        return False


def _cmd_defaults_show(args: argparse.Namespace) -> int:
    from storage.defaults import list_current

    rows = list_current(_engine(args), trainer=args.trainer, model=args.model,
                        optimizer=args.optimizer, dataset=args.dataset)
    if not rows:
        print("no tuned defaults match")
        return 0
    for row in rows:
        measured = (f"{row.metric}={row.metric_value:.4f} over {row.n_seeds} seeds"
                    if row.metric_value is not None else "documented, not measured")
        print(f"{row.key}  row {row.id}  {row.source}  {measured}  "
              + " ".join(f"{k}={_short(v)}" for k, v in row.params.items()))
        regime = _regime_flags(row)
        print(f"  measured at: {regime[1]}")
        flags = " ".join(f"--set {k}={shlex.quote(_short(v))}"
                         for k, v in {**regime[0], **row.params}.items())
        # A data set known by name reproduces as is; a file-based one needs its path.
        dataset = (row.key.dataset if row.key.dataset in ("synthetic", "cifar10")
                   else f"PATH/TO/{row.key.dataset}")
        print(f"  hpsearch train --trainer {row.key.trainer} --model {row.key.model} "
              f"--optimizer {row.key.optimizer} --dataset {dataset} {flags}")
    return 0


def _regime_flags(row: Any) -> tuple[dict[str, Any], str]:
    """The row's regime as config values to reproduce it, and in words."""
    from search.study.trainers import get_trainer
    from search.tuning.regime import describe_regime

    if row.regime is None:
        return {}, "not recorded (measured before regimes were kept): applies nowhere"
    try:
        fields = get_trainer(row.key.trainer).field_names()
    except Exception:  # a trainer module not importable here: show the regime only
        fields = set()
    skip = {"model", "optimizer", "dataset"}
    values = {k: v for k, v in row.regime.items()
              if k in fields and k not in skip and v is not None and k not in row.params}
    return values, describe_regime(row.regime)


def _cmd_defaults_history(args: argparse.Namespace) -> int:
    from storage.defaults import DefaultsKey, default_history

    key = DefaultsKey(args.trainer, args.model, args.optimizer, args.dataset)
    rows = default_history(_engine(args), key)
    if not rows:
        print(f"no rows for {key}")
        return 0
    for row in rows:
        mark = "*" if row.is_current else " "
        value = f"{row.metric_value:.4f}" if row.metric_value is not None else "-"
        source = (f"study {row.study_name} trial {row.trial_number}" if row.study_name
                  else (row.note or ""))
        print(f"{mark} row {row.id}  {row.created_at:%Y-%m-%d %H:%M}  {row.source:<10} "
              f"{row.metric or '-'}={value}  lr={_short(row.params.get('lr'))}  {source}")
    return 0


def _cmd_defaults_promote(args: argparse.Namespace) -> int:
    from search.study.stored import load_study, read_spec
    from search.tuning.promote import promote_best_trial
    from storage import open_storage

    if not 0 <= args.extra_seeds <= MAX_EXTRA_SEEDS:
        raise SpecError(f"--extra-seeds {args.extra_seeds} is out of range; give 0 to "
                        f"{MAX_EXTRA_SEEDS}, e.g. --extra-seeds 2")
    storage = open_storage(args.storage)
    study = load_study(storage, args.study)
    spec = read_spec(study, where=storage.redacted)
    report = promote_best_trial(study, spec, storage, extra_seeds=args.extra_seeds,
                                force=args.force, trial_number=args.trial, emit=print)
    print_promotion(report)
    return 0


def print_promotion(report: Any) -> None:
    seeds = ", ".join(f"{s}: {v:.4f}" for s, v in zip(report.seeds, report.values, strict=True))
    verdict = "promoted" if report.promoted else "not promoted"
    print(f"{verdict}: trial {report.trial.number} as {report.key}, mean {report.mean:.4f} "
          f"over seeds ({seeds}); {report.reason}")


def _cmd_export(args: argparse.Namespace) -> int:
    from search.study.stored import load_study, read_spec_or_none
    from search.tuning.promote import best_finished_trial
    from storage import open_storage, registry
    from storage.attrs import CONFIG_ATTR

    storage = open_storage(args.storage)
    study = load_study(storage, args.study)
    trial = best_finished_trial(study, args.trial)
    config = dict(trial.user_attrs.get(CONFIG_ATTR) or {})
    spec = read_spec_or_none(study)
    trainer = spec.trainer if spec is not None else "cifar"
    metrics: dict[str, float | int | None] = {
        k: v for k, v in trial.user_attrs.items()
        if isinstance(v, int | float) and not isinstance(v, bool)}
    metrics["value"] = trial.value
    version = registry.create_version(
        storage.engine, name=args.name, trainer=trainer, params=dict(trial.params),
        config=config, metrics=metrics, seeds=[int(config.get("seed", 0))],
        study_name=study.study_name, trial_number=trial.number,
        code_version=trial.user_attrs.get("code_version"),
        library_versions=trial.user_attrs.get("library_versions"), note=args.note,
        aliases=args.alias)
    print(f"exported trial {trial.number} of {study.study_name!r} as {version.ref}"
          + (f" (aliases {', '.join(version.aliases)})" if version.aliases else ""))
    return 0


def _cmd_registry_list(args: argparse.Namespace) -> int:
    from storage import registry

    versions = registry.list_versions(_engine(args), args.name)
    if not versions:
        print("the registry is empty" if args.name is None else f"no versions of {args.name!r}")
    for v in versions:
        value = v.metrics.get("value")
        print(f"{v.ref:<32} {v.created_at:%Y-%m-%d %H:%M}  value "
              f"{_short(value) if value is not None else '-':<8} from {v.study_name}#"
              f"{v.trial_number}" + (f"  [{', '.join(v.aliases)}]" if v.aliases else ""))
    return 0


def _cmd_registry_show(args: argparse.Namespace) -> int:
    import yaml

    from storage import registry

    print(yaml.safe_dump(registry.resolve(_engine(args), args.ref).to_dict(), sort_keys=False),
          end="")
    return 0


def _cmd_registry_alias(args: argparse.Namespace) -> int:
    from storage import registry

    version = registry.set_alias(_engine(args), args.ref, args.alias)
    print(f"{version.name}@{args.alias} -> version {version.version}")
    return 0


def _cmd_registry_export(args: argparse.Namespace) -> int:
    from search.tuning.registry_files import write_version_file
    from storage import registry

    check_output_dir("--out", args.out)
    version = registry.resolve(_engine(args), args.ref)
    try:
        path = write_version_file(version, args.out, args.format)
    except OSError as exc:
        raise SpecError(f"--out {args.out}: cannot write there ({exc.strerror}); name a "
                        "directory you can write") from None
    print(f"wrote {path}")
    return 0


def _overridden_config_cls(args: argparse.Namespace) -> type | None:
    """The config class ``--set`` values are typed by: the trainer of ``--trainer``, or of an
    exported ``--config`` file; None for a registry reference (read later, from the database),
    whose ``--set`` values are read as YAML."""
    from search.study.trainers import get_trainer
    from search.tuning.registry_files import load_config_file

    if not args.overrides or (args.config and args.config.startswith("registry:")):
        return None
    trainer = load_config_file(args.config)[0] if args.config else args.trainer
    return get_trainer(trainer).config_cls
