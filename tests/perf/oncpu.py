"""Where the services' CPU goes, by Python frame: `perf` samples on-CPU time only, so a process waiting for
a core or for a peer counts for nothing (py-spy's samples count a thread that holds the interpreter while
the kernel has set it aside, which on two busy cores is most of what a socket write shows).

CPython 3.13 tells `perf` its Python frames (``PYTHON_PERF_JIT_SUPPORT=1``: a jitdump per process, with
the unwinding tables that let `perf` walk every Python frame of a sample). ``make up-oncpu`` runs the
platform that way; then, under the load to be looked at (``make bench BENCH_ARGS=...``):

    make oncpu ONCPU_ARGS="--services intake,careplan --seconds 15"

For each service it prints its CPU seconds in the window, the self time by package, the time by task (the
outermost frame the event loop ran), the Python frames with the most on-CPU time beneath them (inclusive)
and in themselves (self); and it writes each service's folded stacks (``frame;frame;... count``, for any
flame-graph tool) to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.perf.bench_common import SERVICES
from tests.perf.bench_metrics import cmdline, runs_module

REPO = Path(__file__).resolve().parents[2]
PY_FRAME = " py::"  # how a Python frame's symbol starts in `perf script`'s output
LOOP_FRAME = "Runner.run (asyncio/runners.py)"  # the frame that runs the event loop (uvloop's too)


@dataclass
class Profile:
    """One process's samples, each as its Python frames from the outermost in."""

    stacks: Counter[tuple[str, ...]] = field(default_factory=Counter)

    @property
    def samples(self) -> int:
        return self.stacks.total()

    def add(self, frames: tuple[str, ...]) -> None:
        self.stacks[frames] += 1

    def inclusive(self) -> Counter[str]:
        """Samples with the frame on their stack below the event loop (a recursive frame counts once)."""
        out: Counter[str] = Counter()
        for stack, n in self.stacks.items():
            for frame in set(below_loop(stack)):
                out[frame] += n
        return out

    def reaching_loop(self) -> int:
        """Samples whose stack was copied whole, up to the event loop's frame; a stack cut short (deeper than
        perf copies) shows its innermost frames only, so its task and outer frames go uncounted."""
        return sum(n for stack, n in self.stacks.items() if any(f.startswith(LOOP_FRAME) for f in stack))

    def tasks(self) -> Counter[str]:
        """Samples by the outermost frame the event loop ran: which task or callback the time went to."""
        out: Counter[str] = Counter()
        for stack, n in self.stacks.items():
            inner = below_loop(stack)
            out[inner[0] if inner else "[the event loop itself]"] += n
        return out

    def self_time(self) -> Counter[str]:
        """Samples whose innermost Python frame is this one (native code below it included)."""
        out: Counter[str] = Counter()
        for stack, n in self.stacks.items():
            out[stack[-1] if stack else "[no Python frame]"] += n
        return out

    def by_package(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for frame, n in self.self_time().items():
            out[package_of(frame)] += n
        return out

    def folded(self) -> Iterator[str]:
        for stack, n in self.stacks.most_common():
            yield f"{';'.join(stack) or '[no Python frame]'} {n}"


def below_loop(stack: tuple[str, ...]) -> tuple[str, ...]:
    """The frames the event loop ran (a task's step, a callback), without the process's trunk above it
    (runpy, the server, ``asyncio.Runner.run``), which every sample shares."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i].startswith(LOOP_FRAME):
            return stack[i + 1 :]
    return stack


def frame_name(line: str) -> str:
    """``7f.. py::Store.save:/srv/store.py+0x5 (/tmp/jitted-1-2.so)`` -> ``Store.save (/srv/store.py)``."""
    symbol = line.split(PY_FRAME, 1)[1].rsplit(" (", 1)[0]
    symbol = symbol.rsplit("+0x", 1)[0]
    qualname, _, path = symbol.partition(":")
    return f"{qualname} ({short_path(path)})"


def short_path(path: str) -> str:
    """Paths as a reader knows them: within site-packages, the standard library or this repository."""
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1]
    if "/lib/python3." in path:  # /usr/lib/python3.13/asyncio/tasks.py -> asyncio/tasks.py
        return path.split("/lib/python3.", 1)[1].partition("/")[2] or path
    repo = f"{REPO}/"
    return path[len(repo) :] if path.startswith(repo) else path


def package_of(frame: str) -> str:
    """``Store.save (services/careplan/careplan/store.py)`` -> ``services/careplan``; ``x (aiokafka/conn.py)``
    -> ``aiokafka``; a standard-library module by its name."""
    path = frame.rsplit(" (", 1)[-1].rstrip(")")
    parts = path.split("/")
    if parts[0] in ("services", "shared", "tests", "deploy") and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def parse(lines: Iterable[str]) -> dict[int, Profile]:
    """`perf script` output -> a profile per pid. A sample is a header line (``comm pid time: ...``) and its
    frames, innermost first, up to a blank line; only the Python frames are kept."""
    profiles: dict[int, Profile] = {}
    pid: int | None = None
    frames: list[str] = []

    def flush() -> None:
        if pid is not None:
            profiles.setdefault(pid, Profile()).add(tuple(reversed(frames)))

    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            flush()
            pid, frames = None, []
        elif not line[0].isspace():
            flush()
            fields = line.split()
            pid, frames = (int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None), []
        elif PY_FRAME in line:
            frames.append(frame_name(line))
    flush()
    return profiles


def service_pids(names: Iterable[str]) -> dict[str, int]:
    """The pid of each ``python -m <service>`` running (the first found, where several run)."""
    wanted = tuple(names)
    found: dict[str, int] = {}
    for p in psutil.process_iter():
        cmd = cmdline(p)
        for name in wanted:
            if runs_module(cmd, name):
                found.setdefault(name, p.pid)
    return found


def _jit_ready(pid: int) -> bool:
    return Path(f"/tmp/jit-{pid}.dump").exists()


def record(pids: dict[str, int], seconds: float, frequency: int, work: Path) -> Path:
    """`perf record` the processes for ``seconds``, with the JIT's symbols; returns `perf script`'s text."""
    raw, injected, script = work / "perf.data", work / "perf.jit.data", work / "perf.txt"
    pid_list = ",".join(str(p) for p in pids.values())
    # perf keeps a copy of every object a profile touched in its build-id cache (~/.debug), the shared object
    # it makes of each jitted frame among them: thousands a run, gigabytes in a few. This run's cache is in
    # its work directory (perf inject heeds HOME, not PERF_BUILDID_DIR), and goes with it.
    env = {**os.environ, "HOME": str(work), "PERF_BUILDID_DIR": str(work / ".debug")}
    # -k 1: the clock the jitdumps are stamped with. Each sample copies the most of its stack perf allows
    # (64 KiB): an HTTP request through every middleware is deeper than 24 KiB.
    subprocess.run(
        ["perf", "record", "-q", "-k", "1", "-F", str(frequency), "-g", "--call-graph", "dwarf,65528",
         "-p", pid_list, "-o", str(raw), "--", "sleep", str(seconds)],
        check=True, env=env,
    )  # fmt: skip
    # perf inject writes a shared object per jitted frame beside the jitdumps (/tmp); they go afterwards.
    before = set(Path("/tmp").glob("jitted-*.so"))
    try:
        subprocess.run(["perf", "inject", "--jit", "-i", str(raw), "-o", str(injected)], check=True, env=env)
        with script.open("w") as out:
            # --max-stack: perf stops at 127 frames by default, and a Python frame is several native ones.
            script_cmd = ["perf", "script", "--max-stack", "2048", "-i", str(injected)]
            subprocess.run(script_cmd, check=True, stdout=out, stderr=subprocess.DEVNULL, env=env)
    finally:
        for so in set(Path("/tmp").glob("jitted-*.so")) - before:
            so.unlink(missing_ok=True)
    return script


def report(name: str, profile: Profile, frequency: int, top: int) -> str:
    total = profile.samples or 1
    lines = [
        f"== {name}: {profile.samples} samples, about {profile.samples / frequency:.2f} s of CPU; "
        f"{100 * profile.reaching_loop() / total:.0f}% of them with their stack up to the event loop"
    ]
    for title, counts in (
        ("self time by package", profile.by_package()),
        ("by task (the outermost frame the event loop ran)", profile.tasks()),
        ("inclusive (the frame and what it called, below the event loop)", profile.inclusive()),
        ("self (the frame itself and native code below it)", profile.self_time()),
    ):
        lines.append(f"-- {title}")
        lines += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in counts.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated (all five)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--frequency", type=int, default=299, help="samples a second of CPU")
    parser.add_argument("--top", type=int, default=30, help="rows per table")
    parser.add_argument("--out", type=Path, default=REPO / ".artifacts" / "oncpu")
    args = parser.parse_args(argv)
    names = [s for s in args.services.split(",") if s]
    if shutil.which("perf") is None:
        print("oncpu: needs perf (Debian: apt-get install linux-perf)", file=sys.stderr)
        return 2
    pids = service_pids(names)
    missing = [n for n in names if n not in pids]
    if missing:
        print(
            f"oncpu: not running: {', '.join(missing)} (make up-oncpu starts the platform)", file=sys.stderr
        )
        return 2
    unready = [n for n, pid in pids.items() if not _jit_ready(pid)]
    if unready:
        print(
            f"oncpu: {', '.join(unready)} not started with perf's JIT support (CPython 3.13, "
            "PYTHON_PERF_JIT_SUPPORT=1): start the platform with make up-oncpu",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="oncpu-") as tmp:
        script = record(pids, args.seconds, args.frequency, Path(tmp))
        with script.open() as text:
            profiles = parse(text)
    for name, pid in pids.items():
        profile = profiles.get(pid, Profile())
        (args.out / f"{name}.folded").write_text("\n".join(profile.folded()) + "\n")
        print(report(name, profile, args.frequency, args.top), end="\n\n")
    print(f"folded stacks in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
