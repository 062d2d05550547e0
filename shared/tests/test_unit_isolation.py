"""Unit tests reach no broker and no database, in `make test` as in `make test-unit`."""

import os


def test_a_unit_test_sees_the_broker_and_database_at_a_closed_port():
    assert os.environ["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9"
    assert os.environ["CARELOOP_PG_URL"] == "postgresql://nobody@127.0.0.1:9"
    assert "CARELOOP_PG_ADMIN_URL" not in os.environ
