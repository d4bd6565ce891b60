"""The docker files, checked by parsing (this machine has a docker client but no engine):
the compose services and their order of start, healthchecks, GPU reservations, credentials
only from the env file, and an image that installs the project the way the README does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_role_is_a_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "db-upgrade", "ray-head", "ray-worker",
                                        "dashboard", "launcher", "storage-proxy"}
    assert {"pgdata", "checkpoints"} <= set(compose["volumes"])


def test_postgres_has_a_volume_and_a_healthcheck(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    assert any(v.startswith("pgdata:/var/lib/postgresql/data") for v in pg["volumes"])
    check = pg["healthcheck"]
    assert "pg_isready" in " ".join(check["test"]) and check["retries"] >= 3
    head = compose["services"]["ray-head"]
    assert "ray" in head["healthcheck"]["test"] and "status" in head["healthcheck"]["test"]


def test_the_storage_proxy_is_opt_in_and_checked(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["storage-proxy"]
    assert proxy["profiles"] == ["proxy"]
    assert proxy["command"][:2] == ["hpsearch", "proxy"]
    port = proxy["command"][proxy["command"].index("--port") + 1]
    assert proxy["ports"][0].startswith(f"{port}:{port}")
    assert f"127.0.0.1:{port}" in " ".join(proxy["healthcheck"]["test"])
    assert proxy["depends_on"]["db-upgrade"]["condition"] == "service_completed_successfully"


def test_services_start_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["db-upgrade"]["command"] == ["hpsearch", "db", "upgrade"]
    assert services["db-upgrade"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("ray-worker", "dashboard", "launcher"):
        assert services[name]["depends_on"]["db-upgrade"]["condition"] == \
            "service_completed_successfully", name
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"


def test_workers_reserve_gpus_and_the_launcher_uses_ray(compose: dict[str, Any]) -> None:
    devices = compose["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    launch = compose["services"]["launcher"]["command"]
    assert launch[:2] == ["hpsearch", "launch"]
    assert launch[launch.index("--executor") + 1] == "ray"
    assert "--gpus-per-trial" in launch and "--checkpoint-dir" in launch
    head = compose["services"]["ray-head"]["command"]
    assert "--head" in head and "--block" in head


def test_credentials_come_only_from_the_env_file(compose: dict[str, Any]) -> None:
    text = (DOCKER / "compose.yaml").read_text()
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text()
                   .splitlines() if line and not line.startswith("#"))
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(example)
    assert example["POSTGRES_PASSWORD"] not in text  # no literal password in compose
    storage = compose["services"]["db-upgrade"]["environment"]["HPSEARCH_STORAGE"]
    assert "${POSTGRES_PASSWORD}" in storage
    for name, service in compose["services"].items():
        if name != "postgres":
            assert service["env_file"] == ".env", name
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT)
    assert ignored.returncode == 0, "docker/.env must be git-ignored"


def test_image_installs_the_project_as_the_readme_does() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    install = "python3 -m venv .venv && .venv/bin/pip install -e ."
    assert install in readme
    run_lines = [line for line in dockerfile.splitlines() if line.startswith("RUN ")]
    assert f"RUN {install}" in run_lines
    copied = set(re.findall(r"^COPY (\S+)", dockerfile, flags=re.M))
    for package in ("search", "trainers", "storage", "pyproject.toml"):
        assert any(c.startswith(package) for c in copied), package
    assert re.search(r"^ENV PATH=/app/\.venv/bin:\$PATH", dockerfile, flags=re.M)
