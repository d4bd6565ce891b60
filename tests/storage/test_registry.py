from __future__ import annotations

from typing import Any

import pytest

from storage import StorageError, open_storage, registry, upgrade


@pytest.fixture
def engine(sqlite_url: str) -> Any:
    upgrade(open_storage(sqlite_url))
    return open_storage(sqlite_url).engine


def _create(engine: Any, name: str = "resnet18-cifar", **kw: Any) -> registry.RegistryVersion:
    return registry.create_version(
        engine, name=name, trainer="cifar", params={"lr": 0.1}, config={"lr": 0.1},
        metrics={"value": 0.9}, seeds=[0], study_name="s", trial_number=3, code_version="x",
        library_versions={"torch": "2"}, **kw)


def test_versions_number_up_and_refs_resolve(engine: Any) -> None:
    v1 = _create(engine, aliases=["production"])
    v2 = _create(engine)
    assert (v1.version, v2.version) == (1, 2)
    assert registry.resolve(engine, "resnet18-cifar").version == 2
    assert registry.resolve(engine, "resnet18-cifar@1").version == 1
    assert registry.resolve(engine, "resnet18-cifar@production").version == 1
    moved = registry.set_alias(engine, "resnet18-cifar@2", "production")
    assert moved.version == 2 and moved.aliases == ("production",)
    assert registry.resolve(engine, "resnet18-cifar@1").aliases == ()
    assert [v.ref for v in registry.list_versions(engine)] == ["resnet18-cifar@1",
                                                               "resnet18-cifar@2"]


@pytest.mark.parametrize(("ref", "message"), [
    ("nothing", r"no registry entry named 'nothing'; names: \['resnet18-cifar'\]"),
    ("resnet18-cifar@staging", r"has no alias 'staging'; aliases: none"),
    ("resnet18-cifar@7", r"has no version 7; versions: \[1\]"),
    ("../etc/passwd", "is not allowed"),
    ("resnet18-cifar@", "ends in '@'"),
])
def test_bad_references_are_named(engine: Any, ref: str, message: str) -> None:
    _create(engine)
    with pytest.raises(StorageError, match=message):
        registry.resolve(engine, ref)


def test_names_and_aliases_cannot_escape_or_pose_as_versions(engine: Any) -> None:
    with pytest.raises(StorageError, match="no slashes"):
        _create(engine, name="a/b")
    _create(engine)
    with pytest.raises(StorageError, match="would read as a version"):
        registry.set_alias(engine, "resnet18-cifar@1", "2")
