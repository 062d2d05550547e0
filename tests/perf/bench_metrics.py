"""What a stage cost: CPU seconds and peak memory per process group, statements per journey.

Process groups are found by command line (``python -m <service>``, the Java process running
``kafka.Kafka``, the PostgreSQL postmaster with all its backends) and re-found every few samples, so a
service restarted mid-stage is still counted (its new process from zero). ``--pids`` overrides them.
PostgreSQL's CPU is the postmaster's own plus its reaped children's plus its live backends': backends
come and go with connections, and an exited one's time lands in the postmaster's children times.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from typing import Any

import aiohttp
import asyncpg
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.perf import bench_machine
from tests.perf.bench_common import MARK, SERVICES, BenchConfig

SAMPLE_S = 0.5
REDISCOVER_EVERY = 4  # samples
TX_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def runs_module(cmd: list[str], module: str) -> bool:
    """Whether the command line is Python's running ``-m <module>`` (a service: ``python -m intake``)."""
    return bool(cmd) and "python" in os.path.basename(cmd[0]) and ("-m", module) in itertools.pairwise(cmd)


def _port_of(url: str) -> int | None:
    tail = url.rsplit(":", 1)[-1].split("/", 1)[0]
    return int(tail) if tail.isdigit() else None


def _listens_on(p: psutil.Process, port: int | None) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def discover(cfg: BenchConfig) -> dict[str, list[int]]:
    """pids per group: each service (the one listening on its URL's port when several run), kafka and
    postgres (the postmaster; its backends are found from it)."""
    found: dict[str, list[psutil.Process]] = {s: [] for s in SERVICES}
    found.update(kafka=[], postgres=[])
    for p in psutil.process_iter(["name"]):
        cmd = cmdline(p)
        if not cmd:
            continue
        for service in SERVICES:
            if runs_module(cmd, service):
                found[service].append(p)
        if "java" in os.path.basename(cmd[0]) and any("kafka.Kafka" in a or "kafka.server" in a for a in cmd):
            found["kafka"].append(p)
        if p.info["name"] == "postgres":
            with contextlib.suppress(psutil.Error):
                if p.parent() is None or p.parent().name() != "postgres":
                    found["postgres"].append(p)
    out: dict[str, list[int]] = {}
    for group, procs in found.items():
        if len(procs) > 1 and group in SERVICES:
            port = _port_of(cfg.service_urls[group])
            procs = [p for p in procs if _listens_on(p, port)] or procs
        out[group] = [p.pid for p in procs]
    out.update(cfg.pids)
    return out


def _cpu(p: psutil.Process, tree: bool) -> float:
    t = p.cpu_times()
    total = t.user + t.system
    if tree:  # the postmaster: reaped backends' time plus the live ones'
        total += t.children_user + t.children_system
        for child in p.children():
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
    return total


def _rss(p: psutil.Process, tree: bool) -> int:
    """RSS; for the postmaster and its backends, their private memory plus the shared memory once
    (summing RSS would count shared_buffers once per backend)."""
    if not tree:
        return int(p.memory_info().rss)
    infos = [p.memory_info()]
    for child in p.children():
        with contextlib.suppress(psutil.Error):
            infos.append(child.memory_info())
    return sum(m.rss - m.shared for m in infos) + max(m.shared for m in infos)


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Sampler:
    """CPU and memory of every process group from ``start`` to ``stop``, sampled every 0.5 s."""

    def __init__(self, cfg: BenchConfig, extra: dict[str, list[int]] | None = None) -> None:
        self.cfg = cfg
        self.extra = extra or {}
        self.groups: dict[str, list[int]] = {}
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self.peak_rss: dict[str, int] = {}
        self.restarted: set[str] = set()
        self.error: str | None = None
        self._procs: dict[int, psutil.Process] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self._machine: dict[str, float] = {}

    def _find(self) -> None:
        found = {**discover(self.cfg), **self.extra, "bench": [os.getpid()]}
        groups = dict(self.groups)
        for group, pids in found.items():
            old = groups.get(group)
            if old and set(pids) - set(old):
                self.restarted.add(group)
            groups[group] = sorted(set(old or []) | set(pids))
        self.groups = groups  # replaced whole: a sample may be reading the old one

    def _sample(self) -> None:
        for group, pids in list(self.groups.items()):
            tree = group == "postgres"
            rss = 0
            for pid in pids:
                try:
                    proc = self._procs.get(pid) or self._procs.setdefault(pid, psutil.Process(pid))
                    cpu = _cpu(proc, tree)
                    if (group, pid) not in self.first:  # a process born during the stage counts from 0
                        self.first[(group, pid)] = 0.0 if proc.create_time() > self._started else cpu
                    self.last[(group, pid)] = cpu
                    rss += _rss(proc, tree)
                except psutil.Error:
                    continue
            self.peak_rss[group] = max(self.peak_rss.get(group, 0), rss)

    async def _run(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(SAMPLE_S)
            n += 1
            if n % REDISCOVER_EVERY == 0 and not self.cfg.pids:
                await asyncio.to_thread(self._find)
            self._sample()

    def start(self) -> None:
        self._started = time.time()
        self._machine = bench_machine.cpu_times()
        self._find()
        self._sample()
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, Any]:
        assert self._task is not None
        if self._task.done() and not self._task.cancelled() and self._task.exception():
            self.error = repr(self._task.exception())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sample()
        machine = bench_machine.cpu_times()
        cpu: dict[str, float] = {}
        for (group, pid), last in self.last.items():
            cpu[group] = cpu.get(group, 0.0) + max(0.0, last - self.first.get((group, pid), last))
        hwm = {
            g: round(max(h for h in (_vm_hwm_kb(p) for p in pids) if h) / 1024, 1)
            for g, pids in self.groups.items()
            if g != "postgres" and any(_vm_hwm_kb(p) for p in pids)
        }
        return {
            "wall_s": round(time.monotonic() - self._t0, 2),
            "cpu_s": {g: round(v, 2) for g, v in sorted(cpu.items())},
            "peak_rss_mb": {g: round(v / 2**20, 1) for g, v in sorted(self.peak_rss.items())},
            "vm_hwm_mb": hwm,  # lifetime peak of each process (VmHWM), not only this stage's
            "pids": self.groups,
            "restarted": sorted(self.restarted),
            "machine": bench_machine.window(self._machine, machine, cpu),
            **({"sampler_error": self.error} if self.error else {}),
        }


# --- pg_stat_statements --------------------------------------------------------------------------


async def pgss_prepare(cfg: BenchConfig) -> str | None:
    """None when pg_stat_statements can be read, else why not."""
    try:
        conn = await asyncpg.connect(cfg.admin_url(), timeout=10)
        try:
            await conn.execute(MARK + "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.fetchval(MARK + "SELECT count(*) FROM pg_stat_statements")
            # The extension may be there (made by a superuser) while this role may not reset it.
            reset = "pg_stat_statements_reset(oid, oid, bigint)"
            if not await conn.fetchval(MARK + "SELECT has_function_privilege($1, 'EXECUTE')", reset):
                return "this role may not reset pg_stat_statements (CARELOOP_PG_ADMIN_URL: a superuser's)"
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def pgss_reset(cfg: BenchConfig) -> None:
    conn = await asyncpg.connect(cfg.admin_url(), timeout=10)
    try:
        await conn.execute(MARK + "SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def pgss_read(cfg: BenchConfig, journeys: int, dbs: dict[str, str] | None = None, top: int = 5) -> Any:
    """Statement calls per database divided by ``journeys``, with each database's top statements."""
    dbs = dbs or {s: url.rsplit("/", 1)[-1] for s, url in cfg.db_urls.items()}
    conn = await asyncpg.connect(cfg.admin_url(), timeout=10)
    try:
        rows = await conn.fetch(
            MARK + "SELECT d.datname, s.calls, s.total_exec_time,"
            " s.shared_blks_hit + s.shared_blks_read AS pages, s.query FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = ANY($1::text[])"
            " AND s.query NOT LIKE '%careloop-bench%' ORDER BY s.calls DESC",
            list(dbs.values()),
        )
    finally:
        await conn.close()
    out: dict[str, Any] = {}
    for service, db in dbs.items():
        mine = [r for r in rows if r["datname"] == db]
        calls = sum(r["calls"] for r in mine)
        work = sum(r["calls"] for r in mine if not r["query"].lstrip().upper().startswith(TX_CONTROL))
        out[service] = {
            "database": db,
            "calls": calls,
            "per_journey": round(calls / journeys, 2) if journeys else None,
            "per_journey_excl_tx_control": round(work / journeys, 2) if journeys else None,
            "exec_ms_per_journey": round(sum(r["total_exec_time"] for r in mine) / journeys, 3)
            if journeys
            else None,
            "top": [{"calls": r["calls"], "query": " ".join(r["query"].split())[:120]} for r in mine[:top]],
            # Where the time went, and what each call read: a statement whose pages a call grow with a
            # table is planned wrong (a fresh platform's plans made without statistics: docs/performance.md).
            "costliest": [
                {
                    "ms": round(r["total_exec_time"], 1),
                    "calls": r["calls"],
                    "mean_ms": round(r["total_exec_time"] / r["calls"], 3) if r["calls"] else None,
                    "pages_per_call": round(r["pages"] / r["calls"], 1) if r["calls"] else None,
                    "query": " ".join(r["query"].split())[:120],
                }
                for r in sorted(mine, key=lambda r: r["total_exec_time"], reverse=True)[:top]
            ],
        }
    total = sum(v["calls"] for v in out.values())
    out["_total_per_journey"] = round(total / journeys, 2) if journeys else None
    return out


# --- the services' own counters ------------------------------------------------------------------

# Below saturation a service's cost follows its batches, not its events: each batch pays a fetch, a
# transaction, a relay cycle and an offset commit (docs/performance.md, measured on 2026-12-02).
_COUNTERS = {
    "careloop_consumer_batch_records_count": "batches",
    "careloop_consumer_batch_records_sum": "records",
    "careloop_outbox_relay_cycle_duration_seconds_count": "relay_cycles",
}


Counters = dict[str, dict[str, float]]  # service -> counter -> value


async def batch_counters(cfg: BenchConfig) -> Counters:
    """Each service's batches consumed, records in them and relay cycles so far (its ``/metrics``); a
    service that does not answer is left out."""
    out: Counters = {}
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for service, url in cfg.service_urls.items():
            try:
                async with http.get(f"{url}/metrics") as response:
                    text = await response.text() if response.status == 200 else ""
            except (aiohttp.ClientError, TimeoutError):
                continue
            found = {name: 0.0 for name in _COUNTERS.values()}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in _COUNTERS:
                        found[_COUNTERS[sample.name]] += sample.value
            if text:
                out[service] = found
    return out


def batches_between(before: Counters, after: Counters) -> dict[str, Any]:
    """Per service over the window: batches, records per batch, relay cycles (restarted ones left out)."""
    out: dict[str, Any] = {}
    for service, end in after.items():
        start = before.get(service)
        if start is None or any(end[k] < start[k] for k in end):
            continue  # not read at the start, or restarted (its counters began again)
        batches = end["batches"] - start["batches"]
        out[service] = {
            "batches": int(batches),
            "records_per_batch": round((end["records"] - start["records"]) / batches, 2) if batches else None,
            "relay_cycles": int(end["relay_cycles"] - start["relay_cycles"]),
        }
    return out


class Metrics:
    """One measured window: the sampler and (when readable) pg_stat_statements, reset at its start."""

    def __init__(self, cfg: BenchConfig, pgss: bool) -> None:
        self.cfg = cfg
        self.pgss = pgss
        self._sampler: Sampler | None = None
        self._counters: Counters = {}

    async def abandon(self) -> None:
        """Stop a window that will not be ended (its stage failed)."""
        if self._sampler is not None:
            await self._sampler.stop()
            self._sampler = None

    async def begin(self, extra: dict[str, list[int]] | None = None) -> None:
        await self.abandon()
        if self.pgss:
            await pgss_reset(self.cfg)
        self._counters = await batch_counters(self.cfg)
        self._sampler = Sampler(self.cfg, extra)
        self._sampler.start()

    async def end(self, journeys: int, dbs: dict[str, str] | None = None) -> dict[str, Any]:
        assert self._sampler is not None
        out = await self._sampler.stop()
        self._sampler = None
        out["batches"] = batches_between(self._counters, await batch_counters(self.cfg))
        if journeys:
            out["cpu_ms_per_journey"] = {g: round(v * 1000 / journeys, 3) for g, v in out["cpu_s"].items()}
        if self.pgss:
            try:
                out["statements"] = await pgss_read(self.cfg, journeys, dbs)
            except (OSError, asyncpg.PostgresError) as exc:
                out["statements"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out
