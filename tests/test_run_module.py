"""What ``run_module`` starts does not outlive its test: a test failed by pytest-timeout never comes back
to its await, so the run would go on into the tests after it (a short chaos run did, restarting the
database under them). The autouse fixture kills what is left when the test ends."""

import asyncio
import signal

from careloop_shared.testing import until
from tests.conftest import _RUNNING, kill_what_run_module_left, run_module

SLEEPS = ("timeit", "-n", "1", "import time; time.sleep(120)")  # a module run that goes on and on


async def test_a_run_its_test_left_waiting_is_killed_when_the_test_ends(tmp_path):
    # As a test stopped by pytest-timeout leaves it: started, awaited by no one who will come back.
    left = asyncio.create_task(run_module(*SLEEPS, log_path=tmp_path / "left", timeout=300))
    await until(lambda: bool(_RUNNING), "the module started", timeout=30)
    kill_what_run_module_left()  # what the autouse fixture does as the test ends
    code, _ = await asyncio.wait_for(left, timeout=30)
    assert code == -signal.SIGKILL
    assert not _RUNNING


async def test_a_run_that_ends_is_forgotten_and_a_cancelled_one_is_killed(tmp_path):
    code, log = await run_module("timeit", "-n", "1", "pass", log_path=tmp_path / "done", timeout=60)
    assert code == 0, log
    assert not _RUNNING

    cancelled = asyncio.create_task(run_module(*SLEEPS, log_path=tmp_path / "cancelled", timeout=300))
    await until(lambda: bool(_RUNNING), "the module started", timeout=30)
    (pid,) = _RUNNING
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert not _RUNNING
    # Killed, not left running: the pid is gone or a zombie waiting to be reaped.
    await until(lambda: _gone(pid), "the cancelled run's process ended", timeout=30)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
