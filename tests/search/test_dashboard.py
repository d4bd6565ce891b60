"""optuna-dashboard on a PostgreSQL study: its own HTTP API, and the page in a real headless
Chromium (Debian's package; .ci/run installs it). The studies are created as ``hpsearch launch``
creates them, so the dashboard shows the metric names launch stores (never "Objective 0")."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.conftest import TINY_SPEC, free_port
from tests.search.chromium import dump_dom, require_chromium, screenshot

TWO_OBJECTIVES = "dashboard-two-objectives"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _launched(url: str, name: str, objective: dict[str, Any] | None = None) -> optuna.Study:
    """A study created by launch's create path (no baselines, no trials run)."""
    from search.run.launch import create_or_join
    from search.study.study_spec import parse_spec
    from storage import open_storage, upgrade

    raw = copy.deepcopy(TINY_SPEC)
    raw.update(name=name, baselines=[])
    if objective is not None:  # two objectives: Optuna cannot prune them, and no target
        raw.update(objective=objective, pruner={"name": "none"})
        raw.pop("success")
    handle = open_storage(url)
    upgrade(handle)
    study, created = create_or_join(parse_spec(raw), handle)
    assert created
    return study


@pytest.fixture
def dashboard(pg_url: str) -> Iterator[tuple[str, str]]:
    study = _launched(pg_url, "dashboard-visible-study")
    two = _launched(pg_url, TWO_OBJECTIVES, {"metrics": ["best_val_acc", "best_val_loss"],
                                             "directions": ["maximize", "minimize"]})
    for x in (0.3, 0.6):
        two.add_trial(optuna.trial.create_trial(
            values=[x, 1.0 - x], params={"lr": x},
            distributions={"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}))
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
def test_dashboard_api_serves_the_metric_names_launch_stored(
        dashboard: tuple[str, str]) -> None:
    base, name = dashboard
    summaries = {s["study_name"]: s for s in _get(f"{base}/api/studies")["study_summaries"]}
    single = _get(f"{base}/api/studies/{summaries[name]['study_id']}")
    assert single["objective_names"] == ["best_val_acc"]
    two = _get(f"{base}/api/studies/{summaries[TWO_OBJECTIVES]['study_id']}")
    assert two["objective_names"] == ["best_val_acc", "best_val_loss"]


@pytest.mark.postgres
def test_dashboard_page_renders_the_study_name_and_metric_names_in_headless_chromium(
        dashboard: tuple[str, str], tmp_path: Path) -> None:
    require_chromium()
    base, name = dashboard
    dom = dump_dom(f"{base}/dashboard", tmp_path / "profile")
    assert name in dom.stdout, dom.stderr[-2000:]
    summaries = {s["study_name"]: s["study_id"]
                 for s in _get(f"{base}/api/studies")["study_summaries"]}
    page = f"{base}/dashboard/studies/{summaries[name]}"
    dom = dump_dom(page, tmp_path / "profile")
    assert "best_val_acc" in dom.stdout and "Objective 0" not in dom.stdout, dom.stderr[-2000:]
    two = dump_dom(f"{base}/dashboard/studies/{summaries[TWO_OBJECTIVES]}",
                   tmp_path / "profile")
    assert "best_val_acc" in two.stdout and "best_val_loss" in two.stdout, two.stderr[-2000:]
    screenshot(f"{base}/dashboard", tmp_path / "dashboard.png", tmp_path / "profile")
    screenshot(page, tmp_path / "dashboard_study.png", tmp_path / "profile")


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
