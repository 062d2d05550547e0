"""TLS to PostgreSQL: a service's pool with CARELOOP_PG_SSLMODE=verify-full and the server's CA."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import pytest

from careloop_shared import db
from careloop_shared.settings import ServiceSettings, with_tls

pytestmark = pytest.mark.integration

CA = os.environ.get("CARELOOP_PG_TLS_CA")


def test_tls_settings_are_added_to_the_database_url_unless_it_says_already():
    url = with_tls("postgresql://u@db:5432/careloop_intake", "verify-full", "/etc/pg/ca.crt")
    assert (
        url == "postgresql://u@db:5432/careloop_intake?sslmode=verify-full&sslrootcert=%2Fetc%2Fpg%2Fca.crt"
    )
    assert with_tls("postgresql://u@db/x?sslmode=require", "verify-full", None).endswith("?sslmode=require")
    assert with_tls("postgresql://u@db/x", None, None) == "postgresql://u@db/x"


@pytest.mark.skipif(not CA or not Path(CA).exists(), reason="no CA of the test server (CARELOOP_PG_TLS_CA)")
async def test_a_service_connects_over_verified_tls(infra, database_factory, monkeypatch):
    url = await database_factory("tls")
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
    url = await database_factory("tls_refused")
    with pytest.raises(ssl.SSLCertVerificationError):
        await db.create_pool(with_tls(url, "verify-full", str(other_ca)), min_size=1, max_size=1)
