"""Data for the multi-task trainer: an image-folder classification set and a VOC-class
segmentation set (COCO instances or the VOC layout), read from the formats people have on disk.

Classification: an ImageNet-layout tree, ``root/train/<class>/<image>`` and
``root/val/<class>/<image>``, or class folders directly under ``root`` (then a seeded, stratified
split gives the validation set); a ``.tar``/``.tar.gz`` of either is unpacked once into the cache.
Segmentation, detected from the layout:
- COCO: ``root/annotations/instances_<split>.json`` with images in ``root/<split>/`` (for
  example ``train2017``/``val2017``), converted to the 21 VOC classes (trainers/coco_voc.py);
- VOC: ``root/JPEGImages/*.jpg``, ``root/SegmentationClass/*.png`` (palette or grey masks, values
  0..20 and 255) and ``root/ImageSets/Segmentation/{train,val}.txt``; ``root`` may also be the
  ``VOCdevkit`` folder or one above it.

Every sample is made square and fixed-size once (shorter side resized to ``size``, centre crop;
masks with nearest-neighbour), so batches are plain uint8 tensors; random crops and flips happen
on whole batches in the trainer. Sets that fit in memory are decoded once (``preload``); larger
ones stream through DataLoader workers. Batch ``k`` of a run is a pure function of the seed and
the global step, so a resumed run sees exactly the batches the uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trainers.coco_voc import IGNORE_INDEX, VOC_CLASSES, CocoImage, read_coco, semantic_mask

__all__ = [
    "BatchSource",
    "ClassificationFiles",
    "EvalSet",
    "SegmentationFiles",
    "check_classification_source",
    "classification_splits",
    "segmentation_splits",
]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
_PRELOAD_LIMIT_BYTES = 2 * 1024**3  # "auto" decodes a set into memory below this size


# ---------------------------------------------------------------- classification


class ClassificationFiles(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, files: Sequence[Path], labels: Sequence[int], classes: Sequence[str], *,
                 size: int) -> None:
        self.files = list(files)
        self.labels = list(labels)
        self.classes = tuple(classes)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return _square(_read_rgb(self.files[i]), self.size, nearest=False), self.labels[i]

    def subset(self, index: Sequence[int]) -> ClassificationFiles:
        return ClassificationFiles([self.files[i] for i in index],
                                   [self.labels[i] for i in index], self.classes, size=self.size)


def classification_splits(source: str, *, size: int, cache_dir: Path, val_fraction: float,
                          seed: int) -> tuple[ClassificationFiles, ClassificationFiles]:
    root = _unpacked(Path(source).expanduser(), cache_dir)
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        train = _folder(train_dir, size)
        val = _folder(val_dir, size, classes=train.classes)
        return train, val
    data = _folder(root, size)
    train_idx, val_idx = _stratified(data.labels, val_fraction, seed)
    return data.subset(train_idx), data.subset(val_idx)


def check_classification_source(source: str, *, cache_dir: Path) -> None:
    """Read the header of every image of a classification source once, before any trial: an
    empty folder, an archive of no images, a file that is not an image (a zero-byte JPEG, a
    text file named .jpg) raise ValueError naming it. An archive is unpacked into the cache
    on the way, as the trainer would. A source that passed is remembered in the cache (keyed
    by its folders' listings), so later checks are a look-up."""
    path = Path(source).expanduser()
    try:
        root = _unpacked(path, cache_dir)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
        if "opened successfully" in reason:  # tarfile tried every compression
            reason = "not a tar archive"
        raise ValueError(f"{str(path)!r} cannot be read as a .tar/.tar.gz ({reason}); give an "
                         "image-folder tree or a whole archive of one") from None
    marker = cache_dir.expanduser() / f".checked-{root.name}-{_listing_key(root)}"
    if marker.exists():
        return
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        train = _folder(train_dir, 1)
        files = train.files + _folder(val_dir, 1, classes=train.classes).files
    else:
        files = _folder(root, 1).files
    for file in files:
        _check_header(file)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _check_header(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):  # reads the header only
            pass
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        empty = path.stat().st_size == 0 if path.exists() else False
        what = "is empty (0 bytes)" if empty else f"is not an image PIL can read ({exc})"
        raise ValueError(f"image {str(path)!r} {what}; remove or replace it") from None


def _listing_key(root: Path) -> str:
    """A key that changes when a file is added to or removed from the tree (its folders'
    modification times and entry counts, down to root/train/<class>)."""
    parts = [str(root.resolve())]
    level = [root]
    for _ in range(3):
        below: list[Path] = []
        for folder in level:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
            parts.append(f"{folder.relative_to(root)}|{folder.stat().st_mtime_ns}|{len(entries)}")
            below += [Path(e.path) for e in entries if e.is_dir()]
        level = below
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _folder(root: Path, size: int, classes: tuple[str, ...] | None = None
            ) -> ClassificationFiles:
    found = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if classes is None:
        classes = found
    elif set(found) - set(classes):
        raise ValueError(f"{root} has class folders {sorted(set(found) - set(classes))} that the "
                         "training split does not have; the two splits need the same classes")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for f in sorted(folder.rglob("*")):
            if f.suffix.lower() in _IMAGE_SUFFIXES and f.is_file():
                files.append(f)
                labels.append(label)
    if len(classes) < 2 or not files:
        raise ValueError(f"{root} holds {len(files)} images in {len(classes)} class folder(s); "
                         "give an image-folder tree root/<class>/<image> (or root/train and "
                         "root/val of those) with at least two classes")
    return ClassificationFiles(files, labels, classes, size=size)


def _stratified(labels: Sequence[int], val_fraction: float, seed: int
                ) -> tuple[list[int], list[int]]:
    gen = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    train: list[int] = []
    val: list[int] = []
    for idx in by_class.values():
        order = [idx[j] for j in torch.randperm(len(idx), generator=gen).tolist()]
        n_val = min(len(order) - 1, max(1, round(len(order) * val_fraction)))
        val.extend(order[:n_val])
        train.extend(order[n_val:])
    return sorted(train), sorted(val)


# ---------------------------------------------------------------- segmentation


@dataclass(frozen=True)
class _SegItem:
    image: Path
    mask: Path | None  # VOC: the PNG; COCO: None (the mask comes from ``coco``)
    coco: CocoImage | None
    annotations: Path | None  # COCO: the JSON file, for messages


class SegmentationFiles(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, items: Sequence[_SegItem], *, size: int) -> None:
        self.items = list(items)
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[i]
        image = _read_rgb(item.image)
        if item.coco is not None:
            mask = semantic_mask(item.coco)
            if tuple(image.shape[1:]) != (item.coco.height, item.coco.width):
                raise ValueError(f"image {item.image} is {image.shape[2]}x{image.shape[1]} but "
                                 f"{item.annotations} says {item.coco.width}x{item.coco.height}; "
                                 "fix the annotation file or the image")
        else:
            assert item.mask is not None
            mask = _read_mask(item.mask)
            if mask.shape != image.shape[1:]:
                raise ValueError(f"mask {item.mask} is {mask.shape[1]}x{mask.shape[0]} but image "
                                 f"{item.image} is {image.shape[2]}x{image.shape[1]}; image and "
                                 "mask must have the same size")
        image = _square(image, self.size, nearest=False)
        mask = _square(mask.unsqueeze(0), self.size, nearest=True).squeeze(0)
        return image, mask

    def subset(self, index: Sequence[int]) -> SegmentationFiles:
        return SegmentationFiles([self.items[i] for i in index], size=self.size)


def segmentation_splits(source: str, *, size: int, val_fraction: float, seed: int,
                        min_area: float, seg_format: str = "auto"
                        ) -> tuple[SegmentationFiles, SegmentationFiles]:
    root = Path(source).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"segmentation data {str(root)!r} is not a directory; give a COCO "
                                "root (annotations/instances_*.json) or a VOC root")
    fmt = _detect_format(root) if seg_format == "auto" else seg_format
    if fmt == "coco":
        return _coco_splits(root, size, val_fraction, seed, min_area)
    if fmt == "voc":
        return _voc_splits(_voc_root(root), size, val_fraction, seed)
    raise ValueError(f"unknown segmentation format {fmt!r}; expected 'auto', 'coco' or 'voc'")


def _detect_format(root: Path) -> str:
    if any((root / "annotations").glob("instances_*.json")):
        return "coco"
    try:
        _voc_root(root)
    except FileNotFoundError:
        raise FileNotFoundError(f"{root} is neither a COCO root (annotations/instances_*.json) "
                                "nor a VOC root (JPEGImages/, SegmentationClass/); give one of "
                                "those") from None
    return "voc"


def _coco_splits(root: Path, size: int, val_fraction: float, seed: int, min_area: float
                 ) -> tuple[SegmentationFiles, SegmentationFiles]:
    files = sorted((root / "annotations").glob("instances_*.json"))
    train_json = [f for f in files if f.stem.startswith("instances_train")]
    val_json = [f for f in files if f.stem.startswith("instances_val")]
    if not train_json:
        raise FileNotFoundError(f"{root / 'annotations'} has no instances_train*.json; found "
                                f"{[f.name for f in files]}")
    train = _coco_items(root, train_json[0], min_area=min_area)
    if val_json:
        val = _coco_items(root, val_json[0], min_area=0)
        return SegmentationFiles(train, size=size), SegmentationFiles(val, size=size)
    return _split_items(train, size, val_fraction, seed)


def _coco_items(root: Path, json_path: Path, *, min_area: float) -> list[_SegItem]:
    image_dir = root / json_path.stem.removeprefix("instances_")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{json_path} needs its images in {image_dir}, which does not "
                                "exist")
    items = [_SegItem(image_dir / img.file_name, None, img, json_path)
             for img in read_coco(json_path, min_area=min_area)]
    if not items:
        raise ValueError(f"{json_path} has no image with VOC-class instances covering more than "
                         f"{min_area:g} pixels; lower coco_min_area or use another file")
    return items


def _voc_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() and (candidate / "SegmentationClass").is_dir():
            return candidate
    raise FileNotFoundError(f"{root} has no JPEGImages/ and SegmentationClass/ folders (nor "
                            "VOC2012/ or VOCdevkit/VOC2012/ with them); give a VOC root")


def _voc_splits(root: Path, size: int, val_fraction: float, seed: int
                ) -> tuple[SegmentationFiles, SegmentationFiles]:
    sets = root / "ImageSets" / "Segmentation"

    def items(ids: list[str]) -> list[_SegItem]:
        out = []
        for name in ids:
            image = root / "JPEGImages" / f"{name}.jpg"
            mask = root / "SegmentationClass" / f"{name}.png"
            for f in (image, mask):
                if not f.exists():
                    raise FileNotFoundError(f"{f} is listed in {sets} but does not exist")
            out.append(_SegItem(image, mask, None, None))
        return out

    if (sets / "train.txt").exists() and (sets / "val.txt").exists():
        train = items(_read_ids(sets / "train.txt"))
        val = items(_read_ids(sets / "val.txt"))
        return SegmentationFiles(train, size=size), SegmentationFiles(val, size=size)
    ids = sorted(p.stem for p in (root / "SegmentationClass").glob("*.png"))
    return _split_items(items(ids), size, val_fraction, seed)


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _split_items(items: list[_SegItem], size: int, val_fraction: float, seed: int
                 ) -> tuple[SegmentationFiles, SegmentationFiles]:
    if len(items) < 2:
        raise ValueError(f"{len(items)} segmentation image(s) cannot be split into training and "
                         "validation sets; give more images or a val split")
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = min(len(items) - 1, max(1, round(len(items) * val_fraction)))
    val = [items[i] for i in sorted(order[:n_val])]
    train = [items[i] for i in sorted(order[n_val:])]
    return SegmentationFiles(train, size=size), SegmentationFiles(val, size=size)


def _read_mask(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise ValueError(f"mask {path} has mode {img.mode}; VOC masks are palette (P) or "
                             "grey (L) PNGs holding class indices")
        mask = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(
            img.height, img.width)
    values = torch.unique(mask)
    bad = values[(values > len(VOC_CLASSES) - 1) & (values != IGNORE_INDEX)]
    if len(bad):
        raise ValueError(f"mask {path} holds labels {bad.tolist()}; VOC masks may only hold "
                         f"0..{len(VOC_CLASSES) - 1} and {IGNORE_INDEX} (ignore)")
    return mask


# ---------------------------------------------------------------- shared pieces


def _read_rgb(path: Path) -> torch.Tensor:
    """uint8 [3, H, W]. PIL, not torchvision.io, whose decoders are deprecated since 0.29."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"cannot decode image {path}: {exc}") from None
    pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return pixels.view(rgb.height, rgb.width, 3).permute(2, 0, 1)


def _square(image: torch.Tensor, size: int, *, nearest: bool) -> torch.Tensor:
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    mode = InterpolationMode.NEAREST if nearest else InterpolationMode.BILINEAR
    if min(image.shape[-2:]) != size:
        image = TF.resize(image, [size], interpolation=mode, antialias=not nearest)
    if tuple(image.shape[-2:]) != (size, size):
        image = TF.center_crop(image, [size, size])
    return image.contiguous()


def _unpacked(path: Path, cache_dir: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"classification data {str(path)!r} does not exist; give an "
                                "image-folder tree or a .tar/.tar.gz of one")
    if path.is_dir():
        return path
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    target = cache_dir.expanduser() / f"{path.name}-{key[:16]}"
    if target.is_dir():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(path) as tar:
        tar.extractall(tmp, filter="data")  # "data": no absolute paths, links out, devices
    try:
        os.replace(tmp, target)  # atomic: parallel workers never see half an archive
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another worker won the race
    log.info("unpacked %s into %s", path, target)
    return target


class _StepSampler(Sampler[list[int]]):
    """The index lists of steps ``[first, first + count)``; the trainer moves the window."""

    def __init__(self, source: BatchSource) -> None:
        self.source = source
        self.first = 0
        self.count = 0

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.first, self.first + self.count):
            yield self.source.batch_index(step).tolist()

    def __len__(self) -> int:
        return self.count


class BatchSource:
    """Training batches of one task: batch ``step`` is drawn from a seeded permutation of the
    set, a new one for every pass, so the order depends only on (seed, step)."""

    def __init__(self, dataset: Dataset[tuple[torch.Tensor, object]], *, batch_size: int,
                 seed: int, workers: int, preload: str, sample_bytes: int,
                 pin_memory: bool) -> None:
        self.n = len(dataset)  # type: ignore[arg-type]
        if batch_size > self.n:
            raise ValueError(f"batch_size {batch_size} is larger than the {self.n} training "
                             "images of a task; use a smaller batch_size")
        self.batch_size = batch_size
        self.batches_per_pass = self.n // batch_size  # full batches only (BatchNorm)
        self.seed = seed
        self._orders: dict[int, torch.Tensor] = {}
        self.dataset = dataset
        self.workers = workers
        self.pin_memory = pin_memory
        self.tensors = materialize(dataset, workers=workers) \
            if _preloads(preload, self.n * sample_bytes) else None
        self._sampler = _StepSampler(self)
        self._loader: DataLoader[tuple[torch.Tensor, object]] | None = None

    def batch_index(self, step: int) -> torch.Tensor:
        pass_no, k = divmod(step, self.batches_per_pass)
        order = self._orders.get(pass_no)
        if order is None:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + pass_no)
            order = torch.randperm(self.n, generator=gen)
            self._orders = {pass_no: order}  # one pass at a time is all a step needs
        return order[k * self.batch_size : (k + 1) * self.batch_size]

    def batches(self, first_step: int, count: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            x, y = self.tensors
            for step in range(first_step, first_step + count):
                idx = self.batch_index(step)
                yield x[idx], y[idx]
            return
        if self._loader is None:
            self._loader = DataLoader(self.dataset, batch_sampler=self._sampler,
                                      num_workers=self.workers, pin_memory=self.pin_memory,
                                      persistent_workers=self.workers > 0,
                                      collate_fn=_collate)
        self._sampler.first, self._sampler.count = first_step, count
        yield from self._loader


class EvalSet:
    """A validation set in a fixed order: decoded once when it fits, streamed otherwise."""

    def __init__(self, dataset: Dataset[tuple[torch.Tensor, object]], *, batch_size: int,
                 workers: int, preload: str, sample_bytes: int) -> None:
        self.dataset = dataset
        self.n = len(dataset)  # type: ignore[arg-type]
        self.batch_size = batch_size
        self.workers = workers
        self.tensors = materialize(dataset, workers=workers) \
            if _preloads(preload, self.n * sample_bytes) else None

    def __len__(self) -> int:
        return self.n

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            x, y = self.tensors
            for start in range(0, len(y), self.batch_size):
                yield x[start : start + self.batch_size], y[start : start + self.batch_size]
            return
        yield from DataLoader(self.dataset, batch_size=self.batch_size,
                              num_workers=self.workers, collate_fn=_collate)


def _preloads(preload: str, total_bytes: int) -> bool:
    return preload == "yes" or (preload == "auto" and total_bytes < _PRELOAD_LIMIT_BYTES)


def materialize(dataset: Dataset[tuple[torch.Tensor, object]], *, workers: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample of ``dataset`` decoded into two tensors (images, targets)."""
    loader = DataLoader(dataset, batch_size=64, num_workers=workers, collate_fn=_collate)
    xs, ys = zip(*loader, strict=True) if len(dataset) else ((), ())  # type: ignore[arg-type]
    return torch.cat(xs), torch.cat(ys)


def _collate(batch: list[tuple[torch.Tensor, object]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([b[0] for b in batch])
    targets = [b[1] for b in batch]
    if isinstance(targets[0], torch.Tensor):
        return images, torch.stack(targets)  # type: ignore[arg-type]
    return images, torch.tensor(targets, dtype=torch.int64)
