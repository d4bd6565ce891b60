"""The Python API: README's example runs as written, and the functions behave like the commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import search
from search.errors import SpecError, StudyError

REPO = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The one Python block of README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "README's Python API section should hold one python block"
    return blocks[0]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HPSEARCH_STORAGE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
def test_readme_example_runs_and_its_result_reads_back(tmp_path: Path) -> None:
    script = tmp_path / "api_example.py"
    script.write_text(readme_example())
    # Run as a user would, a file in its own directory: the workers are spawned processes
    # that import it, which is what the example's __main__ guard is for.
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("best trial "), proc.stdout
    assert "trials by state {'COMPLETE': 3}" in lines[0]
    assert lines[1] == "0.125 3"
    assert lines[2].endswith("code default (optimizer-settings document)")

    url = f"sqlite:///{tmp_path / 'api-example.db'}"
    result = search.load_study_result("api-example", storage=url)
    assert result.study_name == "api-example"
    assert result.storage == url
    assert dict(result.counts) == {"COMPLETE": 3}
    assert result.best_trial is not None and result.best_value is not None
    best = result.study.best_trial
    assert (result.best_trial, result.best_value) == (best.number, best.value)
    assert result.best_params == best.params
    assert 0.01 <= result.best_params["lr"] <= 0.5
    assert result.best_config["lr"] == result.best_params["lr"]
    assert result.best_config["width"] == 0.125
    assert result.pareto_front == () and result.promotion is None
    with pytest.raises(AttributeError):
        result.best_value = 1.0  # type: ignore[misc]  # frozen

    # Promotion from Python, forced with no extra seeds (one seed cannot show a gain beyond
    # seed noise): the study's winner becomes the tuned default for its regime, and resolving
    # the same setting now takes its learning rate from there.
    report = search.promote("api-example", storage=url, extra_seeds=0, force=True)
    assert report.promoted and report.trial.number == result.best_trial
    setting = {k: v for k, v in result.best_config.items() if k != "lr"}
    resolution = search.resolve_config(trainer="cifar", overrides=setting, storage=url)
    assert resolution.config.lr == result.best_params["lr"]
    assert resolution.sources["lr"].startswith("tuned default")


def test_a_password_never_shows_in_the_result_storage() -> None:
    import optuna

    from search.api import _result

    study = optuna.create_study(study_name="empty")  # in memory: no trial yet
    result = _result(study, "postgresql+psycopg2://me:secret@db:5432/x")
    assert "secret" not in result.storage
    assert "secret" not in repr(result)
    assert result.best_trial is None and result.best_value is None
    assert result.best_params == {} and result.counts == {}


def test_missing_study_is_the_commands_one_line_error(sqlite_url: str) -> None:
    with pytest.raises(StudyError, match=r"no study 'nope' in .*; studies there: none"):
        search.load_study_result("nope", storage=sqlite_url)


def test_launch_refuses_a_bad_spec_before_touching_the_storage(tmp_path: Path) -> None:
    db = tmp_path / "untouched.db"
    with pytest.raises(SpecError, match="spec dict"):
        search.launch({"name": "x", "trainer": "cifar", "space": {}},
                      storage=f"sqlite:///{db}")
    with pytest.raises(SpecError, match="does not exist"):
        search.launch(tmp_path / "missing.yaml", storage=f"sqlite:///{db}")
    with pytest.raises(SpecError, match="YAML path, a StudySpec or a dict"):
        search.launch(42, storage=f"sqlite:///{db}")  # type: ignore[arg-type]
    assert not db.exists()


def test_resolve_config_gives_each_value_its_source(sqlite_url: str) -> None:
    resolution = search.resolve_config(trainer="cifar", optimizer="adam",
                                       overrides={"batch_size": 64}, storage=sqlite_url)
    assert resolution.config.optimizer == "adam"
    assert resolution.sources["optimizer"] == "explicit"
    assert resolution.sources["batch_size"] == "explicit"
    assert resolution.config.lr == 0.001
    assert resolution.sources["lr"] == "code default (optimizer-settings document)"
    with pytest.raises(SpecError, match="unknown cifar config key"):
        search.resolve_config(overrides={"no_such_key": 1}, storage=sqlite_url)


def test_the_api_is_keyword_only_and_listed() -> None:
    import inspect

    for name in ("launch", "load_study_result", "promote"):
        params = list(inspect.signature(getattr(search, name)).parameters.values())
        assert all(p.kind == p.KEYWORD_ONLY for p in params[1:]), name
    assert all(p.kind == p.KEYWORD_ONLY
               for p in inspect.signature(search.resolve_config).parameters.values())
    assert {"launch", "load_study_result", "resolve_config", "promote", "load_spec",
            "StudyResult"} <= set(search.__all__)


def test_importing_search_loads_no_heavy_library() -> None:
    code = ("import sys, search; "
            "print(sorted(m for m in ('torch', 'optuna', 'sqlalchemy', 'ray') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    assert out == "[]"
