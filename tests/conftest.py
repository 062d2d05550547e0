import asyncio
import json
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from careloop_shared.auth import issue_token
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import REPO_ROOT, start_services, unique_prefix
from careplan.domain.planning import DEFAULT_LIBRARY

SERVICES = ("intake", "careplan", "referral", "followup", "record")


@pytest.fixture(scope="session")
def fast_cadence_library(tmp_path_factory) -> Path:
    """The shipped plan library, with follow-ups a few seconds apart so tests see them fall due."""
    library = json.loads(DEFAULT_LIBRARY.read_text())
    library["follow_up_days_by_risk"] = {risk: 2 / 86400 for risk in library["follow_up_days_by_risk"]}
    path = tmp_path_factory.mktemp("library") / "plan-library.json"
    path.write_text(json.dumps(library))
    return path


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


def base_env(infra, prefix: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "CARELOOP_PG_URL": infra.pg_url,
        "CARELOOP_TOPIC_PREFIX": prefix,
        "CARELOOP_LOG_LEVEL": "INFO",
        "FOLLOWUP_SCHEDULER_TICK_S": "0.2",
        "PYTHON": sys.executable,
    }


def token(agency: str, role: str = "care-manager", subject: str = "dev-user") -> dict[str, str]:
    return {
        "Authorization": f"Bearer {issue_token(DEV_JWT_SECRET, agency=agency, role=role, subject=subject)}"
    }


def new_prefix() -> str:
    return unique_prefix()


@pytest_asyncio.fixture(scope="module")
async def platform(infra, database_factory, log_dir):
    """The five services of this module's own: a fresh topic prefix and fresh databases.
    Yields their environment and the processes by service name."""
    env = base_env(infra, new_prefix())
    for service in SERVICES:
        env[f"{service.upper()}_DATABASE_URL"] = await database_factory(service)
    processes = start_services(SERVICES, env, log_dir)
    try:
        await asyncio.gather(*(p.wait_ready() for p in processes.values()))
        yield env, processes
    finally:
        for process in processes.values():
            process.stop()


def platform_env(platform) -> dict[str, str]:
    """The environment of ``platform``'s services, with ``<SERVICE>_URL`` naming where each listens."""
    env, processes = platform
    out = {**processes["intake"].env, **env}
    out.update({f"{name.upper()}_URL": process.url for name, process in processes.items()})
    return out


async def run_module(
    module: str, *args: str, log_path: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """``python -m module args`` from the repository, its output in ``log_path``, killed past
    ``timeout`` seconds; its exit code and its output."""
    with log_path.open("wb") as log_file:
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args,
            cwd=REPO_ROOT, env=env, stdout=log_file, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            await asyncio.wait_for(run.wait(), timeout)
        except TimeoutError:
            run.kill()
            await run.wait()
    return run.returncode, await asyncio.to_thread(log_path.read_text, errors="replace")
