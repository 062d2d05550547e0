"""``python -m record.authenticate``: give a MAC to the entries written before the record was keyed.

Only chains that still verify are authenticated (every hash holds and links, and the head matches);
the others are named by their pseudonymous id and left for an investigation. A rewrite made before the
record was keyed that recomputed every hash cannot be told apart here: keys and checkpoints protect
what is written, or authenticated, from then on. Run it once after upgrading, with the service's
settings (RECORD_DATABASE_URL, RECORD_CHAIN_KEYS); running it again does nothing more.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import asyncpg

from careloop_shared import db
from careloop_shared.logging import configure_logging, get_logger
from record.config import RecordSettings
from record.domain.chain import verify
from record.domain.witness import ChainKeys, parse_keys
from record.store import RecordStore

log = get_logger(__name__)


@dataclass
class Authenticated:
    patients: int = 0
    entries: int = 0
    refused: list[uuid.UUID] = field(default_factory=list)


async def authenticate(pool: asyncpg.Pool, keys: ChainKeys) -> Authenticated:
    done = Authenticated()
    patients = await pool.fetch("SELECT DISTINCT patient_id FROM record_entries WHERE mac IS NULL")
    for row in patients:
        patient_id = row["patient_id"]
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM record_heads WHERE patient_id = $1 FOR UPDATE", patient_id)
            entries, head = await RecordStore(conn).chain(patient_id)
            if not verify(entries, head).intact:
                done.refused.append(patient_id)
                continue
            missing = [e for e in entries if e["mac"] is None]
            await conn.executemany(
                "UPDATE record_entries SET mac_key = $3, mac = $4 WHERE patient_id = $1 AND seq = $2"
                " AND mac IS NULL",
                [(patient_id, e["seq"], *keys.mac(bytes(e["hash"]))) for e in missing],
            )
        done.patients += 1
        done.entries += len(missing)
    return done


async def main() -> Authenticated:
    settings = RecordSettings()
    configure_logging(settings.service_name, settings.log_level)
    keys = ChainKeys(parse_keys(settings.chain_keys.get_secret_value(), "RECORD_CHAIN_KEYS"))
    pool = await db.create_pool(settings.own_database_url(), min_size=1, max_size=1)
    try:
        done = await authenticate(pool, keys)
    finally:
        await pool.close()
    log.info("record entries authenticated", patients=done.patients, entries=done.entries)
    for patient_id in done.refused:
        log.error("chain does not verify: left without MACs", patient_id=str(patient_id))
    return done


if __name__ == "__main__":
    raise SystemExit(1 if asyncio.run(main()).refused else 0)
