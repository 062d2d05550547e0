"""Apply one service's schema migrations and exit: ``python -m careloop_shared.migrate <service>``.

A deployment runs it once per release (the Helm chart's hook Job) before the new pods roll out. The
services still migrate at start; under the advisory lock in ``db.migrate`` that finds nothing to do.
It reads the same settings as the service (``<SERVICE>_DATABASE_URL``, or ``CARELOOP_PG_URL``) and finds
the service's ``migrations/`` folder without importing the service's code.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path

from careloop_shared import db
from careloop_shared.logging import configure_logging, get_logger
from careloop_shared.runtime import until_reachable
from careloop_shared.settings import ServiceSettings, service_config

log = get_logger(__name__)

SERVICES = ("intake", "careplan", "referral", "followup", "record", "workspace")
# The workspace keeps sessions only: no outbox, inbox or audit tables (see workspace/main.py).
WITHOUT_KERNEL_TABLES = frozenset({"workspace"})


def settings_for(service: str) -> ServiceSettings:
    class Settings(ServiceSettings):
        model_config = service_config(f"{service.upper()}_")

    return Settings(service_name=service)


def migrations_for(service: str) -> list[tuple[str, str]]:
    found = importlib.util.find_spec(service)
    if found is None or not found.submodule_search_locations:
        raise SystemExit(f"careloop_shared.migrate: the {service} package is not installed")
    folder = Path(next(iter(found.submodule_search_locations))) / "migrations"
    kernel = [] if service in WITHOUT_KERNEL_TABLES else db.kernel_migrations()
    return [*kernel, *db.folder_migrations(service, folder)]


async def migrate(service: str) -> list[str]:
    settings = settings_for(service)
    migrations = migrations_for(service)
    deadline = time.monotonic() + settings.startup_wait_s
    pool = await until_reachable(
        "the database",
        lambda: db.create_pool(settings.own_database_url(), min_size=1, max_size=1),
        deadline=deadline,
    )
    try:
        return await db.migrate(pool, migrations)
    finally:
        await pool.close()


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in SERVICES:
        raise SystemExit(f"usage: python -m careloop_shared.migrate {{{','.join(SERVICES)}}}")
    service = argv[0]
    configure_logging(service, settings_for(service).log_level)
    applied = asyncio.run(migrate(service))
    log.info("migrations done", service=service, applied=len(applied))


if __name__ == "__main__":
    main(sys.argv[1:])
