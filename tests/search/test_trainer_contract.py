"""The trainer contract (trainers/contract.py): search builds a trainer's registry entry from
the module's own declaration, so a third trainer needs no edit in search/, and a module that
misses a piece is refused in one line naming it."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.errors import SpecError
from search.study.trainers import get_trainer
from search.tuning.resolve import resolve_config, tuned_params_from_config
from trainers.contract import TrainerConfig, TrainerInfo, TrainerModule, contract_problem

_MODULE = '''
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainers.contract import TrainerInfo


@dataclass(frozen=True)
class Config:
    model: str = "tiny"
    optimizer: str = "adam"
    dataset: str = "/data/sets/toy.tar.gz"
    size: int = 8
    lr: float = 0.1
    epochs: int = 3
    seed: int = 0
    checkpoint_dir: str | None = None

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def preflight(cfg: Config) -> None:
    return None


def train(cfg: Config, reporter: Any = None) -> dict[str, Any]:
    return {"stop_reason": "completed", "epochs_run": cfg.epochs, "best_loss": cfg.lr}


def _key(cfg: Config) -> str:
    return "toy-" + str(cfg.size)


SEARCH = TrainerInfo(tunable_fields=("lr",), metrics=("best_loss", "epochs_run"),
                     reports=("loss",), default_metric="best_loss", default_report="loss",
                     key_fields=("model", "optimizer", "size"), regime_fields=("size", "epochs"),
                     dataset_key=_key)
'''


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path holding a package ``contract_probe`` that tests write into."""
    package = tmp_path / "contract_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        yield package
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "contract_probe"]:
            del sys.modules[name]


def test_a_trainer_from_its_own_module_needs_no_edit_in_search(module_dir: Path) -> None:
    (module_dir / "toy.py").write_text(textwrap.dedent(_MODULE))
    entry = get_trainer("contract_probe.toy")
    assert entry.name == "contract_probe.toy"
    assert (entry.default_metric, entry.default_report) == ("best_loss", "loss")
    cfg = entry.build_config({"size": 16})
    assert entry.defaults_key(cfg) == ("contract_probe.toy", "tiny", "adam", "toy-16")
    # Its own tunable fields, not a list kept in search/: only lr of a tuned row applies.
    resolution = resolve_config(entry, explicit={}, tuned={"lr": 0.5, "size": 99, "epochs": 9})
    assert (resolution.config.lr, resolution.config.size, resolution.config.epochs) == (0.5, 8, 3)
    assert tuned_params_from_config(entry, cfg.to_dict()) == {"lr": 0.1}


@pytest.mark.parametrize(("source", "missing"), [
    (_MODULE.replace("SEARCH = TrainerInfo(", "OTHER = TrainerInfo("), "lacks SEARCH"),
    (_MODULE.replace("def preflight(", "def check("), "lacks preflight"),
    (_MODULE + "\nSEARCH = {'tunable_fields': ('lr',)}\n", "SEARCH is a dict"),
    (_MODULE.replace("    seed: int = 0\n", ""), "Config lacks the field(s) ['seed']"),
    (_MODULE.replace('tunable_fields=("lr",)', 'tunable_fields=("lr", "momentum")'),
     "SEARCH.tunable_fields names ['momentum']"),
])
def test_a_module_missing_a_piece_is_refused_naming_it(module_dir: Path, source: str,
                                                       missing: str) -> None:
    (module_dir / "broken.py").write_text(textwrap.dedent(source))
    with pytest.raises(SpecError) as info:
        get_trainer("contract_probe.broken")
    message = str(info.value)
    assert "\n" not in message
    assert "'contract_probe.broken'" in message and missing in message, message


def test_an_unimportable_module_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError, match=r"trainer module 'no_such_pkg\.trainer' cannot be "
                                        r"imported .* install it where"):
        get_trainer("no_such_pkg.trainer")


def test_a_declaration_must_agree_with_itself() -> None:
    def key(cfg: object) -> str:
        return "x"

    with pytest.raises(ValueError, match="default_metric 'best_acc' is not one of its metrics"):
        TrainerInfo(tunable_fields=(), metrics=("best_loss",), reports=("loss",),
                    default_metric="best_acc", default_report="loss", key_fields=(),
                    regime_fields=(), dataset_key=key)
    with pytest.raises(TypeError, match="tunable_fields must be a tuple of field names"):
        TrainerInfo(tunable_fields="lr", metrics=("best_loss",),  # type: ignore[arg-type]
                    reports=("loss",), default_metric="best_loss", default_report="loss",
                    key_fields=(), regime_fields=(), dataset_key=key)


@pytest.mark.parametrize("module_name", ["trainers.cifar", "trainers.multitask",
                                         "benchmarks.stub_trainer"])
def test_every_shipped_trainer_satisfies_the_protocols(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    assert contract_problem(module) is None
    assert isinstance(module, TrainerModule)
    assert isinstance(module.Config(), TrainerConfig)
    info = module.SEARCH
    assert info.default_metric in info.metrics and info.default_report in info.reports


def test_built_in_entries_keep_their_keys_and_tuned_fields() -> None:
    cifar, multitask = get_trainer("cifar"), get_trainer("multitask")
    assert cifar.defaults_key(cifar.build_config({"dataset": "/d/cifar-10-batches-py"})) == \
        ("cifar", "resnet18", "sgd", "cifar10")
    assert multitask.defaults_key(multitask.build_config(
        {"cls_dataset": "/data/imagenet/", "seg_dataset": "/data/coco2017"})) == \
        ("multitask", "mobilenet_v3_large", "adam", "imagenet1k+coco-voc21")
    assert cifar.key_fields == ("model", "optimizer", "dataset")
    assert multitask.key_fields == ("model", "optimizer", "cls_dataset", "seg_dataset")
    assert "label_smoothing" in cifar.tunable_fields and "seg_weight" not in cifar.tunable_fields
    assert "seg_weight" in multitask.tunable_fields
    # Beyond their own fields both tune the same optimizer and schedule fields.
    assert set(cifar.tunable_fields) ^ set(multitask.tunable_fields) == \
        {"label_smoothing", "seg_weight"}
    assert cifar.info.epoch_fields == multitask.info.epoch_fields
    for entry in (cifar, multitask):
        config = entry.build_config().to_dict()
        kept = tuned_params_from_config(entry, config)
        assert set(kept) == set(entry.tunable_fields)
        assert not {"seed", "device", "checkpoint_dir", "model"} & set(kept)
        assert set(entry.info.regime_fields) <= {f.name for f in
                                                 dataclasses.fields(entry.config_cls)}
