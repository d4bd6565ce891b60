"""Bad data-set contents are found by the trainers' preflight, before a study exists: an empty
folder, an archive of text files, images of mixed sizes, a zero-byte JPEG. Each is one
ValueError naming the file (the launcher turns it into one line, exit 2, nothing written)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from trainers.cifar import CifarConfig
from trainers.cifar import preflight as cifar_preflight
from trainers.multitask_data import check_classification_source


def _png(size: tuple[int, int] = (32, 32), colour: tuple[int, int, int] = (200, 10, 10)
         ) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _folder(root: Path, *, per_class: int = 3) -> Path:
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(_png())
    return root


def _empty(tmp: Path) -> tuple[Path, str]:
    (tmp / "empty").mkdir()
    return tmp / "empty", r"'.*empty' holds images in 0 class folder\(s\)"


def _tar_of_text(tmp: Path) -> tuple[Path, str]:
    archive = tmp / "notes.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("cat/readme.txt", "dog/notes.txt"):
            payload = b"not an image\n"
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive, r"notes\.tar' holds images in 0 class folder\(s\)"


def _text_named_tar(tmp: Path) -> tuple[Path, str]:
    fake = tmp / "data.tar.gz"
    fake.write_text("just text\n")
    return fake, r"data\.tar\.gz' cannot be read as a \.tar/\.tar\.gz"


def _mixed_sizes(tmp: Path) -> tuple[Path, str]:
    root = _folder(tmp / "mixed")
    (root / "dog" / "big.png").write_bytes(_png((48, 40)))
    return root, r"image 'dog/big\.png' in '.*mixed' is 48x40; this trainer expects 32x32"


def _zero_byte_jpeg(tmp: Path) -> tuple[Path, str]:
    root = _folder(tmp / "zero")
    (root / "cat" / "broken.jpg").write_bytes(b"")
    return root, r"image 'cat/broken\.jpg' in '.*zero' is empty \(0 bytes\); remove or replace it"


def _text_named_jpeg(tmp: Path) -> tuple[Path, str]:
    root = _folder(tmp / "text")
    (root / "dog" / "photo.jpg").write_text("hello")
    return root, r"image 'dog/photo\.jpg' in '.*text' cannot be decoded"


_BAD: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "empty folder": _empty, "tar of text files": _tar_of_text,
    "text file named .tar.gz": _text_named_tar, "mixed sizes": _mixed_sizes,
    "zero-byte jpeg": _zero_byte_jpeg, "text named .jpg": _text_named_jpeg,
}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_cifar_preflight_names_the_bad_file(tmp_path: Path, case: str) -> None:
    source, message = _BAD[case](tmp_path)
    cfg = CifarConfig(dataset=str(source), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=f"^dataset: .*{message}") as caught:
        cifar_preflight(cfg)
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "cache").glob("*.pt"))  # no cache of a bad set


def test_cifar_preflight_builds_the_cache_once_then_looks_it_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainers import data as data_module

    source = _folder(tmp_path / "good")
    cfg = CifarConfig(dataset=str(source), test_dataset=str(source),
                      cache_dir=str(tmp_path / "cache"))
    cifar_preflight(cfg)
    assert len(list((tmp_path / "cache").glob("good-*.pt"))) == 1

    def no_decoding(*args: Any) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(data_module, "_decode", no_decoding)
    cifar_preflight(cfg)  # the cache exists: a look-up
    data_module.load_image_folder(source, cache_dir=tmp_path / "cache")  # and train loads it


def _imagenet_layout(root: Path) -> Path:
    for split in ("train", "val"):
        _folder(root / split, per_class=2)
    return root


@pytest.mark.parametrize("case", ["zero-byte jpeg", "text named .jpg", "empty folder",
                                  "tar of text files", "text file named .tar.gz"])
def test_multitask_preflight_reads_every_image_header(tmp_path: Path, case: str) -> None:
    cache = tmp_path / "cache"
    if case == "zero-byte jpeg":
        source = _imagenet_layout(tmp_path / "inet")
        bad = source / "val" / "dog" / "empty.jpg"
        bad.write_bytes(b"")
        message = f"image '{bad}' is empty (0 bytes)"
    elif case == "text named .jpg":
        source = _imagenet_layout(tmp_path / "inet")
        bad = source / "train" / "cat" / "notes.jpg"
        bad.write_text("hello")
        message = f"image '{bad}' is not an image PIL can read"
    elif case == "empty folder":
        source = tmp_path / "nothing"
        source.mkdir()
        message = "holds 0 images in 0 class folder(s)"
    else:
        source, _ = _BAD[case](tmp_path)
        message = ("holds 0 images in 2 class folder(s)" if case == "tar of text files"
                   else "cannot be read as a .tar/.tar.gz")
    with pytest.raises(ValueError) as caught:
        check_classification_source(str(source), cache_dir=cache)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_multitask_preflight_remembers_a_source_that_passed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainers import multitask_data

    source = _imagenet_layout(tmp_path / "inet")
    check_classification_source(str(source), cache_dir=tmp_path / "cache")
    seen: list[Path] = []
    monkeypatch.setattr(multitask_data, "_check_header", seen.append)
    check_classification_source(str(source), cache_dir=tmp_path / "cache")
    assert seen == []  # remembered
    (source / "train" / "cat" / "new.png").write_bytes(_png())
    check_classification_source(str(source), cache_dir=tmp_path / "cache")
    assert len(seen) == 9  # a file was added: read again


@pytest.mark.parametrize("case", ["zero-byte jpeg", "mixed sizes", "tar of text files"])
def test_launch_refuses_a_bad_data_set_before_the_study_exists(
        tiny_spec: dict[str, Any], tmp_path: Path, sqlite_url: str, case: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    from search.cli.main import main

    source, message = _BAD[case](tmp_path)
    tiny_spec["config"].update(dataset=str(source), cache_dir=str(tmp_path / "cache"))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    code = main(["launch", str(path), "--storage", sqlite_url])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("hpsearch: error: config: dataset: ")
    import re

    assert re.search(message, err[0]), err[0]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # no study, no database
