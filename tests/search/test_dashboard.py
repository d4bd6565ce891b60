"""optuna-dashboard on a PostgreSQL study: its own HTTP API, and the page in a real headless
Chromium (Debian's package; .ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.conftest import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def dashboard(pg_url: str) -> Iterator[tuple[str, str]]:
    study = optuna.create_study(study_name="dashboard-visible-study", storage=pg_url,
                                direction="maximize")
    for lr in (0.01, 0.1):
        trial = study.ask()
        x = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        for epoch in (1, 2, 3):
            trial.report(x * epoch, step=epoch)
        trial.set_user_attr("stop_reason", "completed")
        study.tell(trial, x * 3)
        del lr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "search", "dashboard", "--storage", pg_url,
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/api/meta")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    pytest.fail(f"dashboard did not come up on port {port}: {out}")
                time.sleep(0.3)
        yield base, "dashboard-visible-study"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.postgres
def test_dashboard_api_serves_the_study_trials_and_intermediate_values(
        dashboard: tuple[str, str]) -> None:
    base, name = dashboard
    summaries = _get(f"{base}/api/studies")["study_summaries"]
    study_id = next(s["study_id"] for s in summaries if s["study_name"] == name)
    detail = _get(f"{base}/api/studies/{study_id}")
    assert detail["name"] == name
    trials = detail["trials"]
    assert len(trials) == 2
    assert [[v["step"] for v in t["intermediate_values"]] for t in trials] == [[1, 2, 3]] * 2
    assert all(any(a["key"] == "stop_reason" for a in t["user_attrs"]) for t in trials)


@pytest.mark.postgres
def test_dashboard_page_renders_the_study_name_in_headless_chromium(
        dashboard: tuple[str, str], tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") or os.environ.get("HPSEARCH_REQUIRE_POSTGRES"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    base, name = dashboard
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,800",
             "--virtual-time-budget=15000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", f"{base}/dashboard"],
                         capture_output=True, text=True, timeout=120)
    assert name in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "dashboard.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", f"{base}/dashboard"],
                   capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    keep = os.environ.get("HPSEARCH_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "dashboard.png")


def test_binding_beyond_localhost_warns_that_there_is_no_authentication(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna_dashboard

    from search.report.dashboard import serve
    from storage import open_storage

    served: list[tuple[str, int]] = []
    # Record instead of serving forever; the real server runs in the tests above.
    monkeypatch.setattr(optuna_dashboard, "run_server",
                        lambda storage, host, port: served.append((host, port)))
    lines: list[str] = []
    serve(open_storage(sqlite_url), host="0.0.0.0", port=8099, emit=lines.append)
    assert served == [("0.0.0.0", 8099)]
    assert "no authentication" in lines[0] and "ssh -L 8099:127.0.0.1:8099" in lines[0]
    lines.clear()
    serve(open_storage(sqlite_url), host="127.0.0.1", port=8099, emit=lines.append)
    assert len(lines) == 1 and "no authentication" not in lines[0]
