"""How services reach PostgreSQL: over TLS (CARELOOP_PG_SSLMODE=verify-full and the server's CA) where it is
another machine, through the local server's Unix socket on this one."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from careloop_shared import db
from careloop_shared.settings import ServiceSettings, over_loopback, with_tls
from careloop_shared.testing import exported

pytestmark = pytest.mark.integration

CA = os.environ.get("CARELOOP_PG_TLS_CA")
LOCAL = Path(__file__).resolve().parents[2] / "deploy" / "local"


def test_tls_settings_are_added_to_the_database_url_unless_it_says_already():
    url = with_tls("postgresql://u@db:5432/careloop_intake", "verify-full", "/etc/pg/ca.crt")
    assert (
        url == "postgresql://u@db:5432/careloop_intake?sslmode=verify-full&sslrootcert=%2Fetc%2Fpg%2Fca.crt"
    )
    assert with_tls("postgresql://u@db/x?sslmode=require", "verify-full", None).endswith("?sslmode=require")
    assert with_tls("postgresql://u@db/x", None, None) == "postgresql://u@db/x"


@pytest.mark.skipif(not CA or not Path(CA).exists(), reason="no CA of the test server (CARELOOP_PG_TLS_CA)")
async def test_a_service_connects_over_verified_tls(infra, database_factory, monkeypatch):
    url = over_loopback(await database_factory("tls"))  # TLS is for TCP; the local server's socket has none
    monkeypatch.setenv("CARELOOP_PG_SSLMODE", "verify-full")
    monkeypatch.setenv("CARELOOP_PG_SSLROOTCERT", str(CA))
    settings = ServiceSettings(database_url=url)
    pool = await db.create_pool(settings.own_database_url(), min_size=1, max_size=1)
    try:
        row = await pool.fetchrow("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert row["ssl"] is True and row["version"].startswith("TLSv1.")
    finally:
        await pool.close()


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    other = tmp_path / "other-ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=someone else", "-keyout", str(tmp_path / "k"), "-out", str(other)],
        check=True, capture_output=True,
    )  # fmt: skip
    return other


@pytest.mark.skipif(not CA or not Path(CA).exists(), reason="no CA of the test server (CARELOOP_PG_TLS_CA)")
async def test_a_server_certificate_from_another_ca_is_refused(infra, database_factory, other_ca):
    url = over_loopback(await database_factory("tls_refused"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await db.create_pool(with_tls(url, "verify-full", str(other_ca)), min_size=1, max_size=1)


def test_the_local_servers_url_names_its_socket_once_it_is_there_and_a_provided_one_is_kept(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARELOOP_PG", "KAFKA_"))}
    env |= {"CARELOOP_RUN_DIR": str(tmp_path / "run"), "CARELOOP_PG_DIR": str(tmp_path / "pg")}
    env["CARELOOP_PG_PORT"] = "55999"

    def url() -> str:
        out = subprocess.run([LOCAL / "infra.sh", "env"], env=env, capture_output=True, text=True, check=True)
        return exported(out.stdout)["CARELOOP_PG_URL"]

    assert url() == "postgresql://careloop@127.0.0.1:55999"  # no server started yet: its TCP address
    socket_dir = tmp_path / "pg" / "sock"
    socket_dir.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(socket_dir / ".s.PGSQL.55999"))
        assert url() == f"postgresql://careloop@{quote(str(socket_dir), safe='')}:55999"
        assert over_loopback(url()) == "postgresql://careloop@127.0.0.1:55999"
        env["CARELOOP_PG_URL"] = "postgresql://careloop@db.example:5432"
        assert url() == "postgresql://careloop@db.example:5432"


async def test_services_reach_the_local_server_through_its_socket(infra):
    if over_loopback(infra.pg_url) == infra.pg_url:
        pytest.skip("a provided server, reached as its URL says")
    conn = await db.connect(f"{infra.pg_url}/postgres")
    try:
        assert await conn.fetchval("SELECT inet_server_addr()") is None  # NULL: not over TCP
    finally:
        await conn.close()
