"""Start every service from the exported image, as a pod would run it, and check each answers.

The OCI archive is unpacked with umoci; each service then runs in a mount namespace of its own with the
image's root read-only, a fresh tmpfs on /tmp (the chart's emptyDir), the image's user (10001), environment
and entrypoint, on this host's network, against the local Kafka and PostgreSQL (KAFKA_BOOTSTRAP_SERVERS,
CARELOOP_PG_URL), with fresh databases and a topic prefix of its own that are removed afterwards.
Usage: python deploy/images/smoke.py --archive .artifacts/images/careloop-<v>.oci.tar --tag <v>
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from careloop_shared.settings import over_loopback
from careloop_shared.testing import drop_databases

SERVICES = ("intake", "careplan", "referral", "followup", "record", "workspace")
UID = 10001
# In the image these must be absent: an installer, a compiler, what a build leaves behind.
FORBIDDEN = (
    "opt/venv/bin/pip",
    "opt/venv/bin/uv",
    "opt/tools",
    "usr/bin/gcc",
    "usr/bin/cc",
    "usr/bin/make",
    "usr/share/python-wheels",
    "src",
    ".git",
    ".venv",
    ".run",
    ".artifacts",
)
# Run inside the service's namespace: the read-only root, /tmp, /proc and /dev, then the service as 10001.
LAUNCH = """set -e
R="$1"; shift
mount --bind "$R" "$R"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs -o mode=1777,size=64m tmpfs "$R/tmp"
mount -o remount,bind,ro "$R"
exec chroot --userspec="$USERSPEC" "$R" /usr/bin/env -C "$WORKDIR" "$@"
"""


def say(message: str) -> None:
    print(f"[images-test] {message}", flush=True)


@dataclass
class Running:
    service: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)
    ready_after: float | None = None
    answers: dict[str, int] = field(default_factory=dict)


def unpack(archive: Path, tag: str, work: Path) -> tuple[Path, dict]:
    layout, bundle = work / "layout", work / "bundle"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True)
    shutil.rmtree(layout)
    return bundle / "rootfs", json.loads((bundle / "config.json").read_text())


def check_contents(rootfs: Path, config: dict) -> list[str]:
    problems = [f"/{path} is in the image" for path in FORBIDDEN if (rootfs / path).exists()]
    user = config["process"]["user"]
    if (user.get("uid"), user.get("gid")) != (UID, UID):
        problems.append(f"runs as {user.get('uid')}:{user.get('gid')}, not {UID}:{UID}")
    if config["process"]["args"][:2] != ["/opt/venv/bin/python", "-m"]:
        problems.append(f"entrypoint is {config['process']['args']}")
    site = next((rootfs / "opt/venv/lib").glob("python3*/site-packages"))
    if any(site.glob("pip")) or not any((site / "careloop_shared").glob("__pycache__/*.pyc")):
        problems.append("pip in the venv, or careloop_shared not compiled to bytecode")
    return problems


async def make_databases(pg_url: str, tag: str) -> dict[str, str]:
    conn = await asyncpg.connect(f"{pg_url}/postgres")
    try:
        names = {s: f"t_image_{s}_{tag}" for s in SERVICES}
        for name in names.values():
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return {s: f"{pg_url}/{name}" for s, name in names.items()}


async def remove_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="careloop-images-test")
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def service_env(config: dict, service: str, port: int, base: dict[str, str]) -> dict[str, str]:
    env = dict(item.split("=", 1) for item in config["process"]["env"])
    env.update(base)
    env[f"{service.upper()}_HOST"] = "127.0.0.1"
    env[f"{service.upper()}_PORT"] = str(port)
    return env


def start(rootfs: Path, config: dict, service: str, port: int, env: dict[str, str], logs: Path) -> Running:
    user = config["process"]["user"]
    launch = {
        **env,
        "USERSPEC": f"{user['uid']}:{user['gid']}",
        "WORKDIR": config["process"].get("cwd") or "/",
    }
    args = [*config["process"]["args"][:-1], service]  # the pod's args replace the image's CMD
    log = logs / f"{service}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", LAUNCH, "launch",
             str(rootfs), *args],
            env=launch, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Running(service, port, process, log)


# Run as the services run: a write to the root must fail, one to /tmp must work.
WRITE_PROBE = """
import os
try:
    open("/opt/venv/probe", "w")
except OSError as exc:
    root = exc.strerror
else:
    root = "writable"
with open("/tmp/probe", "w") as f:
    f.write("ok")
print(f"{os.getuid()}:{os.getgid()} root {root}, /tmp ok")
"""


def probe_sandbox(rootfs: Path, config: dict, env: dict[str, str], logs: Path) -> str:
    """The emulated pod itself, checked: the user it runs as and what it may write."""
    user = config["process"]["user"]
    done = subprocess.run(
        ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", LAUNCH, "launch",
         str(rootfs), "/opt/venv/bin/python", "-c", WRITE_PROBE],
        env={**env, "USERSPEC": f"{user['uid']}:{user['gid']}", "WORKDIR": "/tmp"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[-1] if lines else "no output"


def status(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_ready(running: list[Running], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    waiting = list(running)
    while waiting and time.monotonic() < deadline:
        for r in list(waiting):
            if r.process.poll() is not None:
                waiting.remove(r)
                continue
            r.answers = {p: status(f"http://127.0.0.1:{r.port}/{p}") for p in ("healthz", "readyz")}
            if all(code == 200 for code in r.answers.values()):
                r.ready_after = time.monotonic() - r.started
                waiting.remove(r)
        time.sleep(0.5)


def healthcheck(rootfs: Path, config: dict, r: Running, env: dict[str, str]) -> bool:
    """The image's own HEALTHCHECK command, run in the image as its user."""
    user = config["process"]["user"]
    done = subprocess.run(
        ["chroot", f"--userspec={user['uid']}:{user['gid']}", str(rootfs),
         "/opt/venv/bin/python", "/opt/careloop/healthcheck.py", r.service],
        env=env, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode == 0


def stop(running: list[Running], grace_s: float = 20.0) -> dict[str, int | None]:
    for r in running:
        if r.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                r.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for r in running:
        try:
            r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.process.pid, signal.SIGKILL)
            r.process.wait()
    return {r.service: r.process.returncode for r in running}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--first-port", type=int, default=18001)
    parser.add_argument("--logs", type=Path, help="where to keep each service's log")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for every service to answer")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    # Over loopback TCP: the services see their image's files, not this machine's, so not its socket.
    pg_url = over_loopback(
        os.environ.get("CARELOOP_PG_URL", "postgresql://careloop@127.0.0.1:55432").rstrip("/")
    )
    run_id = secrets.token_hex(4)
    prefix = f"images-test-{run_id}-"
    failures: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="careloop-images-test-"))
    running: list[Running] = []
    databases: dict[str, str] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally below
    try:
        t0 = time.monotonic()
        rootfs, config = unpack(args.archive, args.tag, work)
        say(f"unpacked {args.archive.name} with umoci in {time.monotonic() - t0:.1f}s")
        problems = check_contents(rootfs, config)
        failures += problems
        clean = f"user {UID}:{UID}, no pip, uv, compiler or build leftovers, bytecode compiled"
        say("contents: " + ("; ".join(problems) if problems else clean))
        databases = asyncio.run(make_databases(pg_url, run_id))
        ports = {s: args.first_port + i for i, s in enumerate(SERVICES)}
        base = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CARELOOP_PG_URL": pg_url,
            "CARELOOP_TOPIC_PREFIX": prefix,
            "CARELOOP_JWT_SECRET": secrets.token_urlsafe(48),
            # Keys as an ops team gives them (kid:base64): not the development keys in the source.
            "CARELOOP_KEKS": "smoke:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "INTAKE_BLIND_INDEX_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "RECORD_CHAIN_KEYS": "smoke:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "RECORD_CHECKPOINT_SIGNING_KEY": "smoke:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            **{f"{s.upper()}_DATABASE_URL": url for s, url in databases.items()},
            **{f"WORKSPACE_{s.upper()}_URL": f"http://127.0.0.1:{p}" for s, p in ports.items()},
        }
        logs = work / "logs"
        logs.mkdir()
        envs = {s: service_env(config, s, p, base) for s, p in ports.items()}
        sandbox = probe_sandbox(rootfs, config, envs["intake"], logs)
        say(f"sandbox: {sandbox}")
        if sandbox != f"{UID}:{UID} root Read-only file system, /tmp ok":
            failures.append(f"the sandbox is not what a pod gets: {sandbox}")
        t0 = time.monotonic()
        running = [start(rootfs, config, s, ports[s], envs[s], logs) for s in SERVICES]
        last_port = args.first_port + len(SERVICES) - 1
        say(
            f"started {len(running)} services from the image (read-only root, /tmp tmpfs, uid {UID},"
            f" ports {args.first_port}-{last_port}); waiting up to {args.deadline:.0f}s"
        )
        wait_ready(running, args.deadline)
        for r in running:
            ok = r.ready_after is not None and healthcheck(rootfs, config, r, envs[r.service])
            answers = " ".join(f"/{p} {code or '-'}" for p, code in r.answers.items())
            when = f"ready in {r.ready_after:.1f}s" if r.ready_after is not None else "NOT READY"
            say(f"{r.service:<10} :{r.port}  {answers}  {when}  HEALTHCHECK {'ok' if ok else 'FAILED'}")
            if not ok:
                failures.append(f"{r.service} did not answer within {args.deadline:.0f}s")
                tail = r.log.read_text(errors="replace").splitlines()[-15:]
                print("\n".join(f"    {line}" for line in tail), file=sys.stderr)
        exits = stop(running)
        say("stopped (SIGTERM): " + ", ".join(f"{s} exit {code}" for s, code in exits.items()))
        # uvicorn raises the signal again once it has shut down: -15 is a clean stop as well as 0.
        failures += [f"{s} exited {code} on SIGTERM" for s, code in exits.items() if code not in (0, -15)]
        say(f"started, answered and stopped in {time.monotonic() - t0:.1f}s")
    finally:
        stop(running)
        with contextlib.suppress(Exception):
            asyncio.run(remove_topics(bootstrap, prefix))
        if databases:
            with contextlib.suppress(Exception):
                asyncio.run(drop_databases(pg_url, databases.values()))
        if args.logs and (work / "logs").is_dir():
            shutil.rmtree(args.logs, ignore_errors=True)
            shutil.copytree(work / "logs", args.logs)
        # Mounts die with their namespaces; never remove a tree that still has one.
        if str(work) not in Path("/proc/self/mounts").read_text():
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        say("FAILED: " + "; ".join(failures))
        return 1
    say(f"PASSED: {len(SERVICES)} services answered /healthz and /readyz from the image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
