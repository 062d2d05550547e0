"""The five services of a chaos run as processes, and the faults done to them and to the infrastructure.

The fleet plays the supervisor (as Kubernetes or ``make up`` would): a service killed with SIGKILL is
started again on the same port after a short pause. Every fault is written down with when it happened
and how long until every service answered ready again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from careloop_shared.testing import REPO_ROOT, ServiceProcess, free_port

SERVICES = ("intake", "careplan", "referral", "followup", "record")
# How long a database crash waits for a backend to crash (the services may all have just been killed).
CRASH_WAIT_S = 15.0


@dataclass
class Fault:
    kind: str  # kill, broker-restart, database-restart, database-crash, pause, poison
    target: str
    at: float  # seconds since the run started
    ended_at: float | None = None  # the end of a restart or a pause
    recovered_at: float | None = None  # every service ready again
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def recovery_s(self) -> float | None:
        start = self.ended_at if self.ended_at is not None else self.at
        return None if self.recovered_at is None else round(self.recovered_at - start, 2)


class Fleet:
    def __init__(self, env: dict[str, str], log_dir: Path, started: float, static: bool = True) -> None:
        self.env = env
        self.static = static  # each service a static member of its consumer group
        self.log_dir = log_dir
        self.started = started
        self.procs: dict[str, ServiceProcess] = {}
        self.faults: list[Fault] = []
        self.peak_rss: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self.exits: list[dict[str, object]] = []  # a service that stopped without being killed
        self._ports: dict[str, int] = {}
        self._killing: set[str] = set()

    def now(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def url(self, service: str) -> str:
        return self.procs[service].url

    def start(self, service: str) -> None:
        process = ServiceProcess(service, self.env, self.log_dir)
        port = self._ports.setdefault(service, process.port)
        process.port = port
        process.env[f"{service.upper()}_PORT"] = str(port)
        # Where the services that seal free text ask for patients' keys; intake keeps its port too.
        process.env["CARELOOP_INTAKE_URL"] = (
            f"http://127.0.0.1:{self._ports.setdefault('intake', free_port())}"
        )
        process.log_path = self.log_dir / f"{service}.log"
        if self.static:  # one process per service: it comes back as the member it was
            process.env[f"{service.upper()}_GROUP_INSTANCE_ID"] = f"{service}-0"
        else:  # it makes the member it was leave, as a pod's next container does (the chart)
            process.env[f"{service.upper()}_GROUP_MEMBER_FILE"] = str(self.log_dir / f"{service}.member")
        self.procs[service] = process.start()

    async def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)
        await asyncio.gather(*(self.procs[s].wait_ready(timeout=120) for s in SERVICES))

    def stop_all(self) -> None:
        for process in self.procs.values():
            if process.proc is not None and process.proc.poll() is None:
                try:
                    os.kill(process.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            process.stop()

    async def ready(self, service: str) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{self.url(service)}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def all_ready(self) -> bool:
        return all(await asyncio.gather(*(self.ready(s) for s in SERVICES)))

    async def _until_ready(self, fault: Fault, only: str | None = None, deadline_s: float = 300) -> None:
        """Until ``only`` (else each service, not necessarily at the same moment, since other faults
        go on meanwhile) has answered ready."""
        end = time.monotonic() + deadline_s
        waiting = {only} if only else set(SERVICES)
        while time.monotonic() < end:
            order = sorted(waiting)
            answers = await asyncio.gather(*(self.ready(s) for s in order))
            waiting -= {s for s, ok in zip(order, answers, strict=True) if ok}
            if not waiting:
                fault.recovered_at = self.now()
                return
            await asyncio.sleep(0.25)

    async def kill(self, service: str, restart_after_s: float) -> Fault:
        """SIGKILL, then start it again as a supervisor would; recovery: until it answers ready."""
        if service in self._killing:
            raise RuntimeError(f"{service} is being killed already")
        process = self.procs[service]
        fault = Fault("kill", service, self.now())
        self.faults.append(fault)
        assert process.proc is not None
        self._killing.add(service)
        try:
            process.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.proc.wait, 30)
            await asyncio.sleep(restart_after_s)
            self.start(service)
        finally:
            self._killing.discard(service)
        fault.ended_at = self.now()
        await self._until_ready(fault, only=service)
        return fault

    async def pause(self, service: str, seconds: float) -> Fault:
        """SIGSTOP for longer than the consumer session timeout, then SIGCONT: the group moves on
        without it, then takes it back."""
        process = self.procs[service]
        assert process.proc is not None
        fault = Fault("pause", service, self.now(), detail={"seconds": seconds})
        self.faults.append(fault)
        process.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(seconds)
        process.proc.send_signal(signal.SIGCONT)
        fault.ended_at = self.now()
        await self._until_ready(fault, only=service)
        return fault

    async def restart_infra(self, server: str) -> Fault:
        """``deploy/local/<server>.sh stop`` then ``start``: the services are left alone to recover."""
        kind = {"kafka": "broker-restart", "postgres": "database-restart"}[server]
        fault = Fault(kind, server, self.now())
        self.faults.append(fault)
        script = str(REPO_ROOT / "deploy" / "local" / f"{server}.sh")
        for step in ("stop", "start"):
            done = await asyncio.to_thread(subprocess.run, [script, step], capture_output=True, text=True)
            if done.returncode != 0:
                fault.detail[f"{step}_error"] = (done.stderr or done.stdout)[-500:]
        fault.ended_at = self.now()
        await self._until_ready(fault)
        return fault

    async def crash_database(self, pg_url: str, databases: list[str]) -> Fault:
        """SIGKILL one PostgreSQL backend serving a service: the server ends every other session (SQLSTATE
        57P02, "crash of another server process"), recovers from its WAL and takes connections again, as
        after any of its processes crashed (the kernel's OOM killer, a full disk). Recovery: until every
        service answers ready."""
        fault = Fault("database-crash", "postgres", self.now())
        self.faults.append(fault)
        # The server may be restarting just now, or every service just killed (no backend yet): tried
        # again until one is there, else the crash is named as not done.
        deadline = time.monotonic() + CRASH_WAIT_S
        while True:
            error, pids = await self._backends(pg_url, databases)
            if pids or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        if error is not None or not pids:
            fault.detail["error"] = error or "no backend of the services' databases to crash"
        else:
            fault.detail["database"] = pids[0]["datname"]
            try:
                os.kill(pids[0]["pid"], signal.SIGKILL)
            except OSError as exc:  # another user's process: the fault is named as not done
                fault.detail["error"] = f"{type(exc).__name__}: {exc}"
        fault.ended_at = self.now()
        await self._until_ready(fault)
        return fault

    @staticmethod
    async def _backends(pg_url: str, databases: list[str]) -> tuple[str | None, list[asyncpg.Record]]:
        """The backends serving these databases, the active first; or why they could not be listed."""
        try:
            conn = await asyncpg.connect(f"{pg_url}/postgres", timeout=10)
            try:
                return None, await conn.fetch(
                    "SELECT pid, datname FROM pg_stat_activity WHERE datname = ANY($1)"
                    " ORDER BY state = 'active' DESC, pid",
                    databases,
                )
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            return f"{type(exc).__name__}: {exc}", []

    def supervise(self) -> None:
        """Start again any service that stopped without being killed (as a supervisor would), and
        write it down: the run counts these apart, since a service should ride out every fault."""
        for service, process in self.procs.items():
            if service in self._killing or process.proc is None or process.proc.poll() is None:
                continue
            # Why, in the service's own words (its log holds no PHI): the run must be debuggable
            # from the report alone, as in CI the logs go with the run's directory.
            last = process.tail(40).splitlines()
            errors = [line for line in last if "error" in line.lower() or "Error" in line]
            self.exits.append(
                {
                    "service": service,
                    "at": self.now(),
                    "code": process.proc.returncode,
                    "last_log": [line[:400] for line in (errors or last)[-4:]],
                }
            )
            self.start(service)

    def sample_memory(self) -> None:
        for service, process in self.procs.items():
            if process.proc is None or process.proc.poll() is not None:
                continue
            try:
                rss = psutil.Process(process.proc.pid).memory_info().rss
            except psutil.Error:
                continue
            self.peak_rss[service] = max(self.peak_rss[service], rss)
