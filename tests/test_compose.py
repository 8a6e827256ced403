"""docker-compose.yml is what docs/many-hosts.md says: `docker-compose config` accepts it (parsing
and checking it without pulling an image), its services are that page's table, and its
workers are split by role around one S3 store. No image registry is needed, so nothing is
started."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tether.settings import TetherSettings

from tests.test_docs import DOCS, environment_variable

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["--profile", "codec", "--profile", "otel"]


@pytest.fixture(scope="module")
def compose() -> str:
    """Debian's docker-compose, installed here if missing (as `make setup` installs the rest)."""
    found = shutil.which("docker-compose")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "docker-compose"], check=True,
                       capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is missing: `apt-get install docker-compose`")
    return found


def run(compose: str, *args: str) -> str:
    done = subprocess.run([compose, *PROFILES, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COMPOSE_PROJECT_NAME": "tether"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def config(compose: str) -> dict[str, Any]:
    """The resolved file, read with the YAML library docker-compose itself runs on."""
    text = run(compose, "config")
    interpreter = Path(compose).read_text(errors="replace").splitlines()[0].removeprefix("#!").split()
    to_json = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"
    done = subprocess.run([*interpreter, "-c", to_json], input=text, capture_output=True,
                          text=True, check=True)
    return dict(json.loads(done.stdout))


def test_docker_compose_accepts_the_file(compose: str):
    run(compose, "config", "--quiet")


def test_the_services_are_the_ones_the_many_hosts_page_lists(compose: str):
    hosts = (DOCS / "many-hosts.md").read_text()
    table = re.findall(r"^\| `([\w-]+)` \|", hosts, re.M)
    assert table, "docs/many-hosts.md has no table of services"
    assert sorted(run(compose, "config", "--services").split()) == sorted(table)


def test_workers_are_split_by_role_around_one_s3_store(config: dict[str, Any]):
    services = config["services"]
    workflows, sandbox = services["worker-workflows"], services["worker-sandbox"]
    assert workflows["environment"]["TETHER_ROLE"] == "workflows"
    assert sandbox["environment"]["TETHER_ROLE"] == "sandbox"
    # Only sandbox hosts reach the engine; only workflow hosts hold the model keys.
    assert not any("docker.sock" in str(v) for v in workflows.get("volumes", []))
    assert any("docker.sock" in str(v) for v in sandbox["volumes"])
    assert "OPENAI_API_KEY" in workflows["environment"]
    assert "OPENAI_API_KEY" not in sandbox["environment"]
    stores = {w["environment"]["TETHER_STORE_URL"] for w in (workflows, sandbox)}
    assert len(stores) == 1 and stores.pop().startswith("s3://")
    assert all(w["deploy"]["replicas"] >= 2 for w in (workflows, sandbox))
    # Longer than the drain, so a stopped worker lets its runs move on.
    assert int(sandbox["environment"]["TETHER_DRAIN_SECONDS"]) < 90
    assert sandbox["stop_grace_period"] in ("1m30s", "90s")


def test_no_deprecated_image_and_every_tether_variable_is_a_setting(config: dict[str, Any]):
    images = [s.get("image", "") for s in config["services"].values()]
    assert not any("auto-setup" in image for image in images)
    assert any(image.startswith("temporalio/server:") for image in images)
    known = {environment_variable(n, f) for n, f in TetherSettings.model_fields.items()}
    used = {v for s in config["services"].values() for v in (s.get("environment") or {})
            if v.startswith("TETHER_")}
    assert used <= known, used - known
