"""``python -m record.witness_audit DIR``: every case record against the checkpoints published in DIR.

DIR is the checkpoint folder (RECORD_CHECKPOINT_DIR, or a copy of it from the object store). Checks the
series (each checkpoint signed by a key the settings accept, numbered one after another, linked to the
one before) and that every patient's last signed head is still in their chain, without trusting the
record database's own note of what was signed. Exit 0 when everything holds, 1 otherwise; the patients
named are pseudonymous ids.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from careloop_shared import db
from careloop_shared.logging import configure_logging, get_logger
from record.checkpoints import CheckpointFiles, audit
from record.config import RecordContext, RecordSettings
from record.store import RecordStore

log = get_logger(__name__)


async def main(folder: Path) -> int:
    settings = RecordSettings()
    configure_logging(settings.service_name, settings.log_level)
    pool = await db.create_pool(settings.own_database_url(), min_size=1, max_size=1)
    try:
        found = await audit(
            RecordContext.from_settings(settings), RecordStore(pool), list(CheckpointFiles(folder))
        )
    finally:
        await pool.close()
    log.info(
        "witness audit",
        checkpoints=found.series.checkpoints,
        series_intact=found.series.intact,
        series_problem=found.series.problem,
        patients=found.patients,
        broken=len(found.broken),
    )
    for patient_id, problem in sorted(found.broken.items()):
        log.error("record does not hold its signed head", patient_id=patient_id, problem=problem)
    return 0 if found.series.intact and not found.broken else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m record.witness_audit CHECKPOINT_DIR")
    raise SystemExit(asyncio.run(main(Path(sys.argv[1]))))
