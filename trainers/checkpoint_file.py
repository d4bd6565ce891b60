"""A checkpoint file that says whether it is whole: a two-line header, then the payload.

    HPSEARCH-CHECKPOINT 1
    sha256 <64 hex digits> <payload length>
    <payload: torch.save's bytes>

Writes are atomic (temp file, fsync, rename, fsync of the directory), so a run killed mid-write
leaves the previous file. What atomic writes cannot prevent (a disk or network filesystem that
loses or truncates a file afterwards, a copy cut short) the checksum detects: a torn file is
reported, never loaded. Files without the header (written before it existed) are read as they
are; ``torch.load`` then tells whether they are whole. No torch here: search/ checks a
checkpoint with this module before a retry starts.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

__all__ = ["CorruptCheckpoint", "file_problem", "has_checksum", "read_verified", "set_aside",
           "write_verified"]

_MAGIC = b"HPSEARCH-CHECKPOINT 1\n"
_CHUNK = 1 << 20


class CorruptCheckpoint(ValueError):
    """A checkpoint file that is not whole."""


def write_verified(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically, under the header."""
    digest = hashlib.sha256(payload).hexdigest()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(_MAGIC)
        f.write(f"sha256 {digest} {len(payload)}\n".encode())
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_verified(path: Path) -> bytes:
    """The payload of ``path``; raises ``CorruptCheckpoint`` if it is torn (a file without the
    header comes back whole, unchecked)."""
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        return data
    head, sep, payload = data[len(_MAGIC):].partition(b"\n")
    digest, length = _parse_header(path, head if sep else b"")
    if len(payload) != length:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} holds {len(payload)} of its "
                                f"{length} bytes (torn or truncated)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} does not match its checksum "
                                "(damaged)")
    return payload


def has_checksum(path: Path) -> bool:
    """Whether ``path`` starts with the header (else it predates it)."""
    with open(path, "rb") as f:
        return f.read(len(_MAGIC)) == _MAGIC


def file_problem(path: Path) -> str | None:
    """Why ``path`` (with the header) is not whole, or None; reads it in chunks. A file
    without the header is not judged here (None)."""
    with open(path, "rb") as f:
        if f.read(len(_MAGIC)) != _MAGIC:
            return None
        head = f.readline()
        try:
            digest, length = _parse_header(path, head.rstrip(b"\n") if head.endswith(b"\n")
                                           else b"")
        except CorruptCheckpoint as exc:
            return str(exc)
        sha, size = hashlib.sha256(), 0
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    if size != length:
        return f"checkpoint {str(path)!r} holds {size} of its {length} bytes (torn or truncated)"
    if sha.hexdigest() != digest:
        return f"checkpoint {str(path)!r} does not match its checksum (damaged)"
    return None


def set_aside(path: Path) -> Path:
    """Rename a bad file or directory out of the way (``<name>.corrupt-<time>``, beside it);
    returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


def _parse_header(path: Path, head: bytes) -> tuple[str, int]:
    parts = head.decode("ascii", errors="replace").split(" ")
    if len(parts) != 3 or parts[0] != "sha256" or len(parts[1]) != 64 or not parts[2].isdigit():
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} has a damaged header")
    return parts[1], int(parts[2])


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every system opens directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
