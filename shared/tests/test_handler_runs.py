"""A consumed batch as runs of one handler each: fewer runs than consecutive grouping gives, never an
event ahead of one it must follow (same partition, same patient)."""

from __future__ import annotations

from itertools import groupby
from typing import NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from careloop_shared.coalesce import handler_runs


class Ev(NamedTuple):
    handler: str
    partition: str
    patient: str
    n: int = 0


def _runs(events: list[Ev]) -> list[tuple[str, list[Ev]]]:
    return handler_runs(events, lambda e: e.handler, lambda e: (("p", e.partition), ("patient", e.patient)))


def test_one_handlers_events_split_by_another_topics_partition_go_together() -> None:
    # As a poll hands them: topic a's partition 0, topic b's partition 0, topic a's partition 1.
    batch = [
        Ev("plan", "a0", "p1"),
        Ev("plan", "a0", "p2"),
        Ev("referral", "b0", "p3"),
        Ev("plan", "a1", "p4"),
    ]
    assert _runs(batch) == [("plan", [batch[0], batch[1], batch[3]]), ("referral", [batch[2]])]


def test_a_partition_carrying_two_handlers_keeps_its_order() -> None:
    batch = [Ev("x", "a0", "p1"), Ev("y", "a0", "p2"), Ev("x", "a0", "p3")]
    assert [(h, [e.patient for e in run]) for h, run in _runs(batch)] == [
        ("x", ["p1"]),
        ("y", ["p2"]),
        ("x", ["p3"]),
    ]


def test_a_patients_events_keep_their_order_across_topics() -> None:
    # p1's referral (topic b) came before its second plan update (topic a, another partition).
    batch = [
        Ev("plan", "a0", "p1"),
        Ev("referral", "b0", "p1"),
        Ev("plan", "a1", "p1"),
        Ev("plan", "a2", "p2"),
    ]
    assert [(h, [(e.partition, e.patient) for e in run]) for h, run in _runs(batch)] == [
        ("plan", [("a0", "p1"), ("a2", "p2")]),
        ("referral", [("b0", "p1")]),
        ("plan", [("a1", "p1")]),
    ]


def test_a_batch_for_one_handler_is_one_run_and_none_is_none() -> None:
    batch = [Ev("record", f"t{i % 3}", f"p{i % 4}", i) for i in range(12)]
    assert _runs(batch) == [("record", batch)]
    assert _runs([]) == []


_events = st.lists(
    st.tuples(
        st.sampled_from("xyz"), st.sampled_from(["a0", "a1", "b0", "c0"]), st.sampled_from(["p1", "p2", "p3"])
    ),
    max_size=40,
).map(lambda ts: [Ev(h, p, pt, i) for i, (h, p, pt) in enumerate(ts)])


@given(_events)
def test_every_event_once_each_partitions_and_patients_order_kept_never_more_runs(events: list[Ev]) -> None:
    runs = _runs(events)
    flat = [e for _, run in runs for e in run]
    assert sorted(flat) == sorted(events)
    assert all(e.handler == h for h, run in runs for e in run)
    for stream in ("partition", "patient"):
        for key in {getattr(e, stream) for e in events}:
            assert [e.n for e in flat if getattr(e, stream) == key] == [
                e.n for e in events if getattr(e, stream) == key
            ]
    assert len(runs) <= sum(1 for _ in groupby(events, key=lambda e: e.handler))
