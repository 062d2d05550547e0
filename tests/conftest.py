import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from careloop_shared.testing import REPO_ROOT, ServiceProcess, start_services, unique_prefix
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


def local_script(script: str) -> list[str]:
    return [str(REPO_ROOT / "deploy/local" / script)]


def infra_is_ours(infra) -> bool:
    """Only the project's own local broker and server can be restarted by a test."""
    port = os.environ.get("CARELOOP_KAFKA_PORT", "9092")
    ours = subprocess.run([*local_script("kafka.sh"), "status"], capture_output=True).returncode == 0
    return ours and infra.bootstrap_servers == f"127.0.0.1:{port}"


# The pids of what run_module started and has not seen end. A test failed by pytest-timeout is stopped inside
# the event loop and never comes back to its await: the child would run on into the tests after it (a
# chaos run did, restarting the database under them).
_RUNNING: set[int] = set()


def kill_what_run_module_left() -> None:
    for pid in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # its services die with it (PR_SET_PDEATHSIG)
        _RUNNING.discard(pid)


@pytest.fixture(autouse=True)
def _no_module_outlives_its_test():
    yield
    kill_what_run_module_left()


@pytest.fixture
def restarts_local_infra(infra):
    """For a test that stops and starts the local broker or database server: skipped unless they are
    the project's own; however the test ends (pytest-timeout among the ways, in the middle of a restart),
    both are running again before the next test."""
    if not infra_is_ours(infra):
        pytest.skip("needs the project's own local broker and database server to restart")
    yield infra
    kill_what_run_module_left()  # first, or a run still going could stop them again
    subprocess.run([*local_script("infra.sh"), "up"], check=True, capture_output=True, timeout=120)


def base_env(infra, prefix: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "CARELOOP_PG_URL": infra.pg_url,
        "CARELOOP_TOPIC_PREFIX": prefix,
        "CARELOOP_LOG_LEVEL": "INFO",
        "FOLLOWUP_SCHEDULER_TICK_S": "0.2",
        "PYTHON": sys.executable,
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


def start_workspace(
    env: dict[str, str], processes: dict[str, ServiceProcess], log_dir: Path
) -> ServiceProcess:
    """The workspace in front of ``processes`` (the services by name), with ``env`` (its database's URL
    among it), started."""
    urls = {f"WORKSPACE_{name.upper()}_URL": process.url for name, process in processes.items()}
    return ServiceProcess("workspace", {**env, **urls}, log_dir).start()


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
        _RUNNING.add(run.pid)
        try:
            await asyncio.wait_for(run.wait(), timeout)
        except TimeoutError:
            run.kill()
            await run.wait()
        finally:
            if run.returncode is None:  # cancelled: not left running
                run.kill()
            _RUNNING.discard(run.pid)
    return run.returncode, await asyncio.to_thread(log_path.read_text, errors="replace")
