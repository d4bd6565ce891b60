"""Headless Chromium for the tests that look at a rendered page (Debian's package; .ci/run
installs it): skipped where it is missing locally, a failure in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") or os.environ.get("HPSEARCH_REQUIRE_POSTGRES"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def chromium_flags(profile: Path, *, height: int = 800, budget_ms: int = 15000) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size=1280,{height}",
            f"--virtual-time-budget={budget_ms}"]


def dump_dom(url: str, profile: Path, **kw: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_chromium(), *chromium_flags(profile, **kw), "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)


def screenshot(url: str, shot: Path, profile: Path, **kw: int) -> Path:
    subprocess.run([require_chromium(), *chromium_flags(profile, **kw), f"--screenshot={shot}",
                    url], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    keep = os.environ.get("HPSEARCH_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
    return shot
