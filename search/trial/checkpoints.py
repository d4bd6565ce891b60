"""Where a trial's checkpoints live, so that a retry of it (its worker died) resumes instead of
starting over.

- ``fault_tolerance.checkpoint_dir``: a directory every worker sees (NFS, a shared volume); the
  trainer writes ``<dir>/<study>/trial-<n>`` itself, n being the first attempt's number.
- ``fault_tolerance.artifact_store``: an Optuna artifact store, for clusters without a shared
  filesystem: a directory path or ``file://`` URL, ``s3://BUCKET`` (boto3) or ``gs://BUCKET``
  (google-cloud-storage). The trainer writes to a local directory (under ``checkpoint_dir`` when
  that is set too, else a temporary one); after every epoch whose checkpoint changed, the file is
  uploaded under a new artifact id, the trial's ``checkpoint_artifact`` user attribute records
  ``{id, epoch}``, and the previous upload is removed (so a crash mid-upload leaves the last
  good one). A retry downloads the newest checkpoint any earlier attempt of the same trial
  uploaded before the trainer starts.

When the trial finishes, the local directory and the uploads of every attempt are removed. A
trial that fails by itself (an exception in training) keeps them, for a look afterwards.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import optuna

from search.errors import SpecError
from storage.attrs import ARTIFACT_ATTR, CHECKPOINT_WARNING_ATTR
from trainers.checkpoint_file import file_problem, has_checksum, set_aside

__all__ = ["TrialCheckpoints", "open_artifact_store"]

log = logging.getLogger(__name__)

_CHECKPOINT_FILE = "last.pt"  # trainers/checkpoint.py's CHECKPOINT_NAME (no torch import here)


def open_artifact_store(location: str) -> Any:
    """The Optuna artifact store named by ``location`` (see the module doc); a bad location or a
    missing client library is one SpecError naming the value and the fix."""
    where = "fault_tolerance.artifact_store"
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else location).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError(f"{where}: cannot create directory {str(path)!r} ({exc.strerror}); "
                            "name a writable directory every worker sees") from None
        return optuna.artifacts.FileSystemArtifactStore(str(path))
    if parsed.scheme in ("s3", "gs") and parsed.netloc and parsed.path in ("", "/"):
        try:
            if parsed.scheme == "s3":
                return optuna.artifacts.Boto3ArtifactStore(parsed.netloc)
            return optuna.artifacts.GCSArtifactStore(parsed.netloc)
        except ImportError:
            package = "boto3" if parsed.scheme == "s3" else "google-cloud-storage"
            raise SpecError(f"{where}: {location!r} needs the {package} package on every "
                            f"worker: pip install {package}") from None
    raise SpecError(f"{where}: {location!r} is not a directory, file:// URL, s3://BUCKET or "
                    "gs://BUCKET")


def _first_attempt(trial: optuna.Trial) -> int:
    # Trial has no public system attributes in Optuna 5; the retry callback writes there.
    system = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    return int(system.get("failed_trial", trial.number))


class TrialCheckpoints:
    """One trial's checkpoint location: ``directory`` for the trainer, and the artifact-store
    side (restore before training, upload after each epoch, clean up when done)."""

    def __init__(self, trial: optuna.Trial, *, study_name: str, checkpoint_dir: str | None,
                 artifact_store: Any = None) -> None:
        self.trial = trial
        self.first = _first_attempt(trial)
        self.store = artifact_store
        name = f"trial-{self.first}"
        self._temporary_prefix: str | None = None
        if checkpoint_dir is not None:
            self.directory = Path(checkpoint_dir).expanduser() / study_name / name
        else:
            self._temporary_prefix = f"hpsearch-{study_name}-{name}-"
            self.directory = Path(tempfile.mkdtemp(prefix=self._temporary_prefix))
        self._uploaded: tuple[int, int] | None = None  # (mtime_ns, size) of the last upload
        self._artifact_id: str | None = None

    @property
    def is_retry(self) -> bool:
        return self.first != self.trial.number

    def _attempts(self) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.trial.study.get_trials(deepcopy=False)
                if t.number != self.trial.number
                and (t.number == self.first or t.system_attrs.get("failed_trial") == self.first)]

    def restore(self) -> int | None:
        """Before a retry trains: put the newest checkpoint an earlier attempt uploaded where
        the trainer looks (with an artifact store), then check the checkpoint the retry would
        resume from. One that cannot be read whole is set aside (its directory renamed
        ``trial-<n>.corrupt-<time>``), the trial's ``checkpoint_warning`` attribute says so,
        and the retry starts from scratch. Returns the restored upload's epoch, or None."""
        if not self.is_retry:
            return None
        epoch = self._download() if self.store is not None else None
        problem = self._problem()
        if problem is None:
            return epoch
        moved = set_aside(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        warning = f"{problem}; set aside as {str(moved)!r}, the retry starts from scratch"
        log.warning("trial %d: %s", self.trial.number, warning)
        self.trial.set_user_attr(CHECKPOINT_WARNING_ATTR, warning)
        return None

    def _problem(self) -> str | None:
        path = self.directory / _CHECKPOINT_FILE
        if not path.exists():
            return None
        if has_checksum(path):
            return file_problem(path)  # the checksum says whether it is whole; no torch
        from trainers.checkpoint import checkpoint_problem  # an older file: try loading it

        return checkpoint_problem(self.directory)

    def _download(self) -> int | None:
        """The newest upload of an earlier attempt, into ``directory``; its epoch or None."""
        uploads = [t.user_attrs[ARTIFACT_ATTR] for t in self._attempts()
                   if ARTIFACT_ATTR in t.user_attrs]
        if not uploads:
            return None
        newest = max(uploads, key=lambda u: int(u["epoch"]))
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{_CHECKPOINT_FILE}.{os.getpid()}.download"
        partial.unlink(missing_ok=True)
        optuna.artifacts.download_artifact(artifact_store=self.store, file_path=str(partial),
                                           artifact_id=str(newest["id"]))
        os.replace(partial, self.directory / _CHECKPOINT_FILE)
        log.info("trial %d: restored the epoch-%d checkpoint of trial %d's earlier attempt",
                 self.trial.number, newest["epoch"], self.first)
        return int(newest["epoch"])

    def after_epoch(self, epoch: int) -> None:
        """Upload the checkpoint if the trainer wrote a new one since the last upload."""
        if self.store is None:
            return
        path = self.directory / _CHECKPOINT_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        if self._uploaded == (stat.st_mtime_ns, stat.st_size):
            return
        artifact_id = f"hpsearch-{uuid.uuid4().hex}"
        with open(path, "rb") as f:
            self.store.write(artifact_id, f)
        self.trial.set_user_attr(ARTIFACT_ATTR, {"id": artifact_id, "epoch": epoch})
        previous, self._artifact_id = self._artifact_id, artifact_id
        self._uploaded = (stat.st_mtime_ns, stat.st_size)
        if previous is not None:
            self._remove(previous)

    def finished(self) -> None:
        """The trial ended normally: no retry will need its checkpoints. Temporary directories
        that killed attempts of this trial left on this machine go too."""
        shutil.rmtree(self.directory, ignore_errors=True)
        if self._temporary_prefix is not None and self.is_retry:
            pattern = os.path.join(glob.escape(tempfile.gettempdir()),
                                   glob.escape(self._temporary_prefix) + "*")
            for leftover in glob.glob(pattern):
                shutil.rmtree(leftover, ignore_errors=True)
        if self.store is None:
            return
        # Only a retry has earlier attempts whose uploads are left: a first attempt's own
        # upload is all there is, so the study is not read for it.
        earlier = self._attempts() if self.is_retry else []
        ids = {str(t.user_attrs[ARTIFACT_ATTR]["id"]) for t in earlier
               if ARTIFACT_ATTR in t.user_attrs}
        if self._artifact_id is not None:
            ids.add(self._artifact_id)
        for artifact_id in sorted(ids):
            self._remove(artifact_id)

    def _remove(self, artifact_id: str) -> None:
        try:
            self.store.remove(artifact_id)
        except Exception as exc:  # a leftover file is not worth failing a finished trial for
            log.warning("could not remove checkpoint artifact %s: %s", artifact_id, exc)
