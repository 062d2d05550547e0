"""tests/perf/oncpu.py: `perf script` output folded into Python frames, and the tables made of them."""

from __future__ import annotations

from tests.perf.oncpu import REPO, Profile, package_of, parse, report, short_path

SITE = "/opt/v/lib/python3.13/site-packages"
STDLIB = "/usr/lib/python3.13"
PLANS = f"{REPO}/services/careplan/careplan/plans"

# Three samples of pid 10 and one of pid 20, as `perf script` prints them after `perf inject --jit`:
# native frames between the Python ones, innermost first.
SCRIPT = f"""python 10 27458.588776:    2004008 cpu-clock:pppH:
\t          13bf10 PyDict_GetItemRef+0x80 (/usr/lib/libpython3.13.so.1.0)
\t              85 py::PlanStore.save:{PLANS}/store.py+0x5 (/tmp/j-2.so)
\t          2bc5f0 py_trampoline_evaluator+0x70 (/usr/lib/libpython3.13.so.1.0)
\t              85 py::revise:{PLANS}/revision.py+0x5 (/tmp/j-1.so)
\t              85 py::Runner.run:{STDLIB}/asyncio/runners.py+0x5 (/tmp/j-0.so)

python 10 27458.590000:    2004008 cpu-clock:pppH:
\t              85 py::Schema.decode:{SITE}/aiokafka/protocol/types.py+0x5 (/tmp/j-5.so)
\t              85 py::Fetcher._proc_fetch_request:{SITE}/aiokafka/consumer/fetcher.py+0x5 (/tmp/j-4.so)
\t              85 py::Runner.run:{STDLIB}/asyncio/runners.py+0x5 (/tmp/j-0.so)

python 10 27458.592000:    2004008 cpu-clock:pppH:
\t              85 py::revise:{PLANS}/revision.py+0x5 (/tmp/j-1.so)
\t              85 py::Runner.run:{STDLIB}/asyncio/runners.py+0x5 (/tmp/j-0.so)
python 20 27458.593000:    2004008 cpu-clock:pppH:
\t          7f0000 epoll_wait+0x10 (/usr/lib/libc.so.6)

"""


def test_samples_fold_into_python_stacks_per_process() -> None:
    profiles = parse(SCRIPT.splitlines(keepends=True))

    assert sorted(profiles) == [10, 20]
    careplan, idle = profiles[10], profiles[20]
    assert careplan.samples == 3 and idle.samples == 1
    save = "PlanStore.save (services/careplan/careplan/plans/store.py)"
    revise = "revise (services/careplan/careplan/plans/revision.py)"
    run = "Runner.run (asyncio/runners.py)"
    assert careplan.stacks[(run, revise, save)] == 1  # outermost first; native frames left out
    assert careplan.stacks[(run, revise)] == 1  # a sample with no blank line before the next header
    assert careplan.inclusive()[revise] == 2
    assert run not in careplan.inclusive()  # the trunk every sample shares is left out
    fetch = "Fetcher._proc_fetch_request (aiokafka/consumer/fetcher.py)"
    assert careplan.tasks() == {revise: 2, fetch: 1}
    assert careplan.self_time()[revise] == 1 and careplan.self_time()[save] == 1
    assert careplan.by_package() == {"services/careplan": 2, "aiokafka": 1}
    assert idle.self_time() == {"[no Python frame]": 1}
    assert careplan.reaching_loop() == 3 and idle.reaching_loop() == 0


def test_a_recursive_frame_counts_once_in_inclusive_time() -> None:
    profile = Profile()
    profile.add(("a (m.py)", "b (m.py)", "a (m.py)"))
    assert profile.inclusive() == {"a (m.py)": 1, "b (m.py)": 1}
    assert profile.tasks() == {"a (m.py)": 1}  # no event loop on the stack: all of it counts


def test_time_in_the_event_loop_itself_is_named_so() -> None:
    profile = Profile()
    profile.add(("_run_module_as_main (<frozen runpy>)", "Runner.run (asyncio/runners.py)"))
    assert profile.tasks() == {"[the event loop itself]": 1}
    assert profile.inclusive() == {}


def test_paths_read_as_a_reader_knows_them() -> None:
    assert short_path(f"{SITE}/aiokafka/conn.py") == "aiokafka/conn.py"
    assert short_path(f"{STDLIB}/json/encoder.py") == "json/encoder.py"
    assert short_path(f"{REPO}/shared/careloop_shared/db.py") == "shared/careloop_shared/db.py"
    assert short_path("<frozen runpy>") == "<frozen runpy>"
    assert package_of("x (shared/careloop_shared/db.py)") == "shared/careloop_shared"
    assert package_of("UUID.__str__ (uuid.py)") == "uuid"
    assert package_of("Task.step (asyncio/tasks.py)") == "asyncio"


def test_the_report_gives_shares_of_the_samples_and_the_folded_stacks_their_counts() -> None:
    profile = parse(SCRIPT.splitlines(keepends=True))[10]
    text = report("careplan", profile, frequency=300, top=5)

    assert text.splitlines()[0] == (
        "== careplan: 3 samples, about 0.01 s of CPU; 100% of them with their stack up to the event loop"
    )
    assert "  66.7%  revise (services/careplan/careplan/plans/revision.py)" in text
    assert "  66.7%  services/careplan" in text
    fetch = (
        "Runner.run (asyncio/runners.py);Fetcher._proc_fetch_request (aiokafka/consumer/fetcher.py);"
        "Schema.decode (aiokafka/protocol/types.py) 1"
    )
    assert fetch in set(profile.folded())
    assert len(list(profile.folded())) == 3
