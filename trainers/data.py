"""CIFAR-shaped image data held as uint8 tensors.

Every source ends up as one ``ImageData``: ``images`` uint8 [N, 3, 32, 32] and ``labels`` int64
[N]. Keeping raw uint8 (150 MB for all of CIFAR-10) lets the whole set live on the device, and
augmentation runs as batched tensor operations instead of per-image Python.

Sources:
- ``synthetic_cifar``: a learnable synthetic set for tests and the quickstart (offline, seeded).
- ``load_cifar10``: the official CIFAR-10 python batches through torchvision (downloads only
  when ``download`` is true).
- ``load_image_folder``: an image-folder tree (``root/<class>/<image>``) or a ``.tar``/``.tar.gz``
  of one, decoded once and cached on disk keyed by the source's path, size and mtime.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = [
    "ImageData",
    "check_image_folder",
    "load_cifar10",
    "load_image_folder",
    "random_crop_flip",
    "stratified_split",
    "synthetic_cifar",
]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
_SIDE = 32


@dataclass(frozen=True)
class ImageData:
    images: torch.Tensor  # uint8 [N, 3, 32, 32]
    labels: torch.Tensor  # int64 [N]
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels shape {tuple(self.labels.shape)} does not match "
                             f"{self.images.shape[0]} images")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> ImageData:
        return ImageData(self.images[index], self.labels[index], self.classes)


def synthetic_cifar(n: int, *, seed: int, num_classes: int = 10, noise: float = 3.0) -> ImageData:
    """A learnable CIFAR-shaped data set.

    Each class is a mixture of two smooth random colour patterns; every image is one of its
    class's patterns at a random contrast, shifted by up to 4 pixels, under per-pixel noise.
    A convolutional net needs several epochs to separate the classes, so a learning rate that
    is too small visibly under-trains and one that is too large visibly thrashes.
    The patterns depend only on ``num_classes`` (fixed seed), so sets drawn with different
    ``seed`` values are train/validation splits of the same task.
    """
    if n < num_classes:
        raise ValueError(f"synthetic data set needs at least {num_classes} images, got n={n}")
    proto_gen = torch.Generator().manual_seed(1234)
    protos = torch.randn(num_classes, 2, 3, 4, 4, generator=proto_gen)
    protos = F.interpolate(protos.view(-1, 3, 4, 4), size=(_SIDE, _SIDE), mode="bicubic",
                           align_corners=False).view(num_classes, 2, 3, _SIDE, _SIDE)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=gen)]
    which = torch.randint(0, 2, (n,), generator=gen)
    contrast = 0.5 + torch.rand(n, 1, 1, 1, generator=gen)
    x = protos[labels, which] * contrast
    shifts = torch.randint(-4, 5, (n, 2), generator=gen)
    for i in range(n):  # a per-image roll; n is small for synthetic sets
        x[i] = torch.roll(x[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    x = x + noise * torch.randn(x.shape, generator=gen)
    images = (128 + 45 * x).round().clamp(0, 255).to(torch.uint8)
    return ImageData(images, labels.to(torch.int64), tuple(f"class{c}" for c in range(num_classes)))


def stratified_split(labels: torch.Tensor, *, val_size: int, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split with ``val_size`` images spread evenly over the classes.

    Returns (train_index, val_index). Each class gives ``val_size // n_classes`` images (the
    remainder goes to the largest classes), drawn at random with ``seed``.
    """
    classes = torch.unique(labels)
    if not 0 < val_size < len(labels):
        raise ValueError(f"val_size must be between 1 and {len(labels) - 1}, got {val_size}")
    gen = torch.Generator().manual_seed(seed)
    per_class = [torch.nonzero(labels == c).flatten() for c in classes]
    per_class = [idx[torch.randperm(len(idx), generator=gen)] for idx in per_class]
    quota = [val_size // len(classes)] * len(classes)
    by_size = sorted(range(len(classes)), key=lambda i: -len(per_class[i]))
    for i in by_size[: val_size - sum(quota)]:
        quota[i] += 1
    for idx, q in zip(per_class, quota, strict=True):
        if q >= len(idx):
            raise ValueError(f"val_size {val_size} leaves no training images in a class of "
                             f"{len(idx)} images; use a smaller val_size")
    val = torch.cat([idx[:q] for idx, q in zip(per_class, quota, strict=True)])
    train = torch.cat([idx[q:] for idx, q in zip(per_class, quota, strict=True)])
    return train.sort().values, val.sort().values


def random_crop_flip(x: torch.Tensor, *, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, for a whole batch at once."""
    n, _, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        rows = (torch.arange(h, device=x.device).view(1, h) + dy.view(n, 1))  # [n, h]
        cols = (torch.arange(w, device=x.device).view(1, w) + dx.view(n, 1))  # [n, w]
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        x = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
        x = x.permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)


def load_image_folder(source: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str]
                      ) -> ImageData:
    """Load ``root/<class>/<image>`` from a directory or a .tar/.tar.gz, through a tensor cache.

    The first call decodes every image (32x32 RGB expected) and writes one uint8 tensor file to
    ``cache_dir``; later calls for the unchanged source load that file in well under a second.
    Class indices follow sorted class-folder names, as torchvision's ImageFolder does.
    """
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"data source {str(path)!r} does not exist; give an image-folder "
                                "directory or a .tar/.tar.gz of one")
    cache = _cache_path(path, cache_dir)
    if cache.exists():
        blob = torch.load(cache, weights_only=True)
        log.info("loaded %d images from cache %s", len(blob["labels"]), cache)
        return ImageData(blob["images"], blob["labels"], tuple(blob["classes"]))
    members = _tar_members(path) if path.is_file() else _dir_members(path)
    data = _decode(members, str(path))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    torch.save({"images": data.images, "labels": data.labels, "classes": list(data.classes)}, tmp)
    os.replace(tmp, cache)  # atomic: parallel workers never read a half-written cache
    log.info("decoded %d images from %s; cached at %s", len(data), path, cache)
    return data


def check_image_folder(source: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str]
                       ) -> None:
    """Read every image of an image-folder source once, before any trial: what ``train`` would
    meet (an empty folder, an archive of no images, an image that cannot be decoded, one of
    another size) raises ValueError naming the file. The decoded cache is built on the way, so
    trials pay nothing for it; once it exists, this is a look-up."""
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise ValueError(f"data source {str(path)!r} does not exist; give an image-folder "
                         "directory or a .tar/.tar.gz of one")
    if _cache_path(path, cache_dir).exists():
        return  # written only after every image decoded
    load_image_folder(path, cache_dir=cache_dir)


def _cache_path(path: Path, cache_dir: str | os.PathLike[str]) -> Path:
    return Path(cache_dir).expanduser() / f"{path.name}-{_source_key(path)}.pt"


def _source_key(path: Path) -> str:
    if path.is_file():
        st = path.stat()
        text = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    else:  # a directory: its class folders' listing and mtimes
        parts = [str(path)]
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            st = sub.stat()
            parts.append(f"{sub.name}|{st.st_mtime_ns}|{sum(1 for _ in sub.iterdir())}")
        text = "\n".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dir_members(root: Path) -> Iterator[tuple[str, bytes]]:
    for file in sorted(root.rglob("*")):
        if file.is_file() and file.suffix.lower() in _IMAGE_SUFFIXES:
            yield str(file.relative_to(root)), file.read_bytes()


def _tar_members(archive: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.isfile() and Path(member.name).suffix.lower() in _IMAGE_SUFFIXES:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:  # not a tar, or damaged, or cut short
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
        if "opened successfully" in reason:  # tarfile tried every compression
            reason = "not a tar archive"
        raise ValueError(f"{str(archive)!r} cannot be read as a .tar/.tar.gz ({reason}); give an "
                         "image-folder directory or a whole archive of one") from None


def _decode(members: Iterator[tuple[str, bytes]], source: str) -> ImageData:
    from PIL import Image  # torchvision's own dependency; imported only when decoding

    by_class: dict[str, list[torch.Tensor]] = {}
    for name, payload in members:
        parts = Path(name).parts
        if len(parts) < 2:
            continue  # a file at the top level has no class folder
        try:
            with Image.open(io.BytesIO(payload)) as img:
                rgb = img.convert("RGB")
        except (OSError, ValueError, SyntaxError) as exc:  # PIL: unidentified, truncated
            what = "is empty (0 bytes)" if not payload else f"cannot be decoded ({exc})"
            raise ValueError(f"image {name!r} in {source!r} {what}; remove or replace it"
                             ) from None
        if rgb.size != (_SIDE, _SIDE):
            raise ValueError(f"image {name!r} in {source!r} is {rgb.size[0]}x{rgb.size[1]}; "
                             f"this trainer expects {_SIDE}x{_SIDE} CIFAR-sized images")
        pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        by_class.setdefault(parts[-2], []).append(pixels.view(_SIDE, _SIDE, 3).permute(2, 0, 1))
    if len(by_class) < 2:
        raise ValueError(f"{source!r} holds images in {len(by_class)} class folder(s); an image "
                         "folder needs root/<class>/<image> with at least two classes (images: "
                         f"{', '.join(_IMAGE_SUFFIXES)})")
    classes = tuple(sorted(by_class))
    images = torch.stack([img for c in classes for img in by_class[c]])
    labels = torch.cat([torch.full((len(by_class[c]),), i, dtype=torch.int64)
                        for i, c in enumerate(classes)])
    return ImageData(images.contiguous(), labels, classes)


def load_cifar10(root: str | os.PathLike[str], *, train: bool, download: bool) -> ImageData:
    """The official CIFAR-10 split (python batches) from ``root``; never downloads unless asked."""
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    try:
        ds = CIFAR10(str(root), train=train, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise FileNotFoundError(f"CIFAR-10 python batches not found under {str(root)!r} "
                                f"({exc}); set download true to fetch them, or give an "
                                "image-folder path as dataset") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    return ImageData(images, labels, tuple(ds.classes))
