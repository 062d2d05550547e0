"""The fuzzer's runs side by side: all of them, never two on one service at once, results in order."""

import threading
import time

from tests.fuzz.fuzz import run_side_by_side


def test_runs_side_by_side_never_two_on_one_service():
    pairs = [(s, r) for r in ("a", "b", "c") for s in ("intake", "careplan", "record")]
    lock = threading.Lock()
    running: list[str] = []
    most_at_once = 0
    overlaps = []

    def run(pair):
        nonlocal most_at_once
        with lock:
            if pair[0] in running:
                overlaps.append(pair)
            running.append(pair[0])
            most_at_once = max(most_at_once, len(running))
        # intake's runs take longest, so the others would catch up with it if nothing held them back
        time.sleep(0.03 if pair[0] == "intake" else 0.005)
        with lock:
            running.remove(pair[0])
        return {"service": pair[0], "role": pair[1]}

    results = run_side_by_side(pairs, 2, run)
    assert [(r["service"], r["role"]) for r in results] == pairs
    assert overlaps == []
    assert most_at_once == 2


def test_one_at_a_time_is_the_plain_order():
    seen = []
    results = run_side_by_side([("intake", "x"), ("intake", "y")], 1, lambda p: seen.append(p) or {"p": p})
    assert seen == [("intake", "x"), ("intake", "y")]
    assert [r["p"] for r in results] == seen
