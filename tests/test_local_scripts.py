"""The local platform's scripts (deploy/local) with the settings people give them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_relative_run_dir_is_the_callers_and_is_answered_at_once(tmp_path: Path):
    """CARELOOP_RUN_DIR=.run from another directory: the scripts change to / before they use it, so they
    make it absolute first (a relative one once sent `infra.sh down` into an endless loop as root)."""
    tmp_path.chmod(0o755)  # others may pass through the caller's directory
    env = {**os.environ, "CARELOOP_RUN_DIR": "state/run"}
    env.pop("CARELOOP_PG_DIR", None)
    answer = subprocess.run(
        [str(REPO / "deploy/local/postgres.sh"), "socket-dir"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    socket_dir = Path(answer.stdout.strip())
    assert socket_dir.is_absolute()
    # Under the caller's run dir, or (as root, where the server's user cannot reach it) a fixed place.
    assert socket_dir == tmp_path / "state/run/pg/sock" or str(socket_dir).startswith("/var/tmp/careloop-pg-")
