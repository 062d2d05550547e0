"""The analytics sink and report on real Kafka: the fixed caseload's figures, and a rebuild from offset 0."""

from pathlib import Path

import pytest
import pytest_asyncio

from careloop_cli.analytics import report, store
from careloop_cli.analytics.sink import run_sink
from careloop_cli.main import main
from careloop_shared.contracts import PatientAssessed
from careloop_shared.testing import publish_message, publish_raw, unique_prefix
from tests.analytics_caseload import caseload, publish
from tests.test_analytics_measures import EXPECTED

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def topics(infra):
    """The caseload on a prefix of its own, one event published twice, a record that is not an event."""
    prefix, messages = unique_prefix(), caseload()
    await publish(infra.kafka, prefix, messages)
    await publish_message(infra.kafka, f"{prefix}{messages[10].envelope.type}", messages[10])
    await publish_raw(infra.kafka, f"{prefix}{PatientAssessed.type}", b"not an event", key=b"x")
    return prefix, len(messages)


async def test_the_report_gives_the_hand_computed_figures(infra, topics, tmp_path):
    prefix, events = topics
    db = str(tmp_path / "analytics.duckdb")
    counts = await run_sink(infra.kafka, db, topic_prefix=prefix, until_caught_up=True)
    assert (counts.read, counts.stored, counts.duplicates, counts.skipped) == (events + 2, events, 1, 1)
    assert {f.name: f.rows for f in report.read(db)} == EXPECTED

    again = await run_sink(infra.kafka, db, topic_prefix=prefix, until_caught_up=True)
    assert (again.read, again.stored) == (0, 0)

    charts = tmp_path / "charts"
    assert main(["report", "--db", db, "--month", "2026-01", "--charts", str(charts)]) == 0
    pngs = sorted(charts.glob("*.png"))
    assert len(pngs) == len(report.CHARTS)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)


async def test_a_rebuild_from_offset_zero_gives_identical_results(infra, topics, tmp_path):
    prefix, events = topics
    built = []
    for name in ("first", "rebuilt"):
        db = str(tmp_path / f"{name}.duckdb")
        await run_sink(infra.kafka, db, topic_prefix=prefix, until_caught_up=True, batch_size=7)
        with store.opened(db, read_only=True) as con:
            built.append((store.checksum(con), store.stored_offsets(con), report.figures(con)))
    assert built[0] == built[1]
    (count, _), offsets, _ = built[0]
    assert count == events
    assert sum(last + 1 for last in offsets.values()) == events + 2  # every record of every partition


def test_the_report_says_when_the_file_has_no_views(tmp_path: Path):
    db = str(tmp_path / "empty.duckdb")
    store.connect(db).close()
    assert main(["report", "--db", db]) == 2
