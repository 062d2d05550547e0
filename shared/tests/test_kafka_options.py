"""Kafka settings: TLS and SASL are checked at start and reach every client the same way."""

import datetime
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.security import SASLScram512
from pydantic import ValidationError

from careloop_shared.kafka import (
    MissingTopics,
    client_options,
    ensure_topics,
    faststream_security,
    new_broker,
)
from careloop_shared.runtime import until_reachable
from careloop_shared.settings import KafkaSettings, ServiceSettings
from careloop_shared.testing import unique_prefix

SECRET = "not-to-be-seen-7f3a"


def settings(**env: str) -> KafkaSettings:
    return KafkaSettings(**env)  # type: ignore[arg-type]


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        KafkaSettings()
    return str(caught.value)


@pytest.fixture
def client_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed client certificate and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "careplan")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "user.crt", tmp_path / "user.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_by_default_clients_connect_in_plaintext_and_topics_have_one_replica():
    s = ServiceSettings()
    assert client_options(s) == {
        "bootstrap_servers": s.kafka_bootstrap_servers,
        "security_protocol": "PLAINTEXT",
    }
    assert faststream_security(client_options(s)) is None
    assert (s.topic_replication_factor, s.topic_min_insync_replicas, s.kafka_create_topics) == (1, None, True)


def test_sasl_over_tls_gives_every_client_the_mechanism_credentials_and_a_verifying_context(
    monkeypatch, client_pair
):
    ca, _ = client_pair  # self-signed: its own CA
    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9093,kafka-1:9093",
        "CARELOOP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CARELOOP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CARELOOP_KAFKA_SASL_USERNAME": "careplan",
        "CARELOOP_KAFKA_SASL_PASSWORD": SECRET,
        "CARELOOP_KAFKA_SSL_CA_FILE": str(ca),
        "CARELOOP_TOPIC_REPLICATION_FACTOR": "3",
        "CARELOOP_TOPIC_MIN_INSYNC_REPLICAS": "2",
        "CARELOOP_KAFKA_CREATE_TOPICS": "false",
    }.items():
        monkeypatch.setenv(name, value)
    s = ServiceSettings()
    assert SECRET not in repr(s)
    options = client_options(s)
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {
        "bootstrap_servers": "kafka-0:9093,kafka-1:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "careplan",
        "sasl_plain_password": SECRET,
    }
    assert (s.topic_replication_factor, s.topic_min_insync_replicas, s.kafka_create_topics) == (3, 2, False)
    security = faststream_security(client_options(s))
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password, security.use_ssl) == ("careplan", SECRET, True)


def test_the_faststream_broker_gets_every_bootstrap_server_and_the_sasl_credentials():
    options = client_options(
        settings(
            kafka_bootstrap_servers="127.0.0.1:19092,127.0.0.1:19093",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="careplan",
            kafka_sasl_password=SECRET,
        )
    )
    # What FastStream hands to aiokafka: it would take a comma-separated string as a single host.
    given = new_broker(options, client_id="careplan")._connection_kwargs
    assert given["bootstrap_servers"] == ["127.0.0.1:19092", "127.0.0.1:19093"]
    assert {k: given[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username")} == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "careplan",
    }
    assert given["sasl_plain_password"] == SECRET


def test_mutual_tls_loads_the_client_certificate(client_pair):
    cert, key = client_pair
    options = client_options(
        settings(
            kafka_security_protocol="SSL",
            kafka_ssl_ca_file=str(cert),
            kafka_ssl_cert_file=str(cert),
            kafka_ssl_key_file=str(key),
        )
    )
    assert options["security_protocol"] == "SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert faststream_security(options).use_ssl  # type: ignore[union-attr]


def test_sasl_needs_a_mechanism_a_user_and_a_password_and_the_error_shows_no_value(monkeypatch):
    base = {"CARELOOP_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CARELOOP_KAFKA_SASL_MECHANISM": "PLAIN"}
    error = refusal(monkeypatch, **base, CARELOOP_KAFKA_SASL_PASSWORD=SECRET)
    assert "CARELOOP_KAFKA_SASL_USERNAME is required" in error and SECRET not in error
    monkeypatch.delenv("CARELOOP_KAFKA_SASL_PASSWORD")
    error = refusal(monkeypatch, **base, CARELOOP_KAFKA_SASL_USERNAME="careplan")
    assert "CARELOOP_KAFKA_SASL_PASSWORD is required" in error
    monkeypatch.delenv("CARELOOP_KAFKA_SASL_MECHANISM")
    error = refusal(monkeypatch, CARELOOP_KAFKA_SASL_PASSWORD=SECRET)
    assert "CARELOOP_KAFKA_SASL_MECHANISM is required" in error and SECRET not in error


def test_an_unknown_protocol_or_mechanism_is_refused_by_name(monkeypatch):
    error = refusal(monkeypatch, CARELOOP_KAFKA_SECURITY_PROTOCOL="SASL_TLS")
    assert "CARELOOP_KAFKA_SECURITY_PROTOCOL" in error and "SASL_TLS" not in error
    error = refusal(
        monkeypatch,
        CARELOOP_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        CARELOOP_KAFKA_SASL_MECHANISM="GSSAPI",
    )
    assert "CARELOOP_KAFKA_SASL_MECHANISM" in error


def test_certificate_and_key_come_together_and_must_exist(monkeypatch, client_pair, tmp_path):
    cert, _ = client_pair
    error = refusal(
        monkeypatch, CARELOOP_KAFKA_SECURITY_PROTOCOL="SSL", CARELOOP_KAFKA_SSL_CERT_FILE=str(cert)
    )
    assert "CARELOOP_KAFKA_SSL_CERT_FILE and CARELOOP_KAFKA_SSL_KEY_FILE go together" in error
    hidden = tmp_path / "secret-place" / "ca.crt"
    monkeypatch.delenv("CARELOOP_KAFKA_SSL_CERT_FILE")
    error = refusal(monkeypatch, CARELOOP_KAFKA_SSL_CA_FILE=str(hidden))
    assert "CARELOOP_KAFKA_SSL_CA_FILE names a file that does not exist" in error
    assert "secret-place" not in error


def test_tls_files_without_a_tls_protocol_are_refused(monkeypatch, client_pair):
    error = refusal(monkeypatch, CARELOOP_KAFKA_SSL_CA_FILE=str(client_pair[0]))
    assert "CARELOOP_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL" in error


def test_min_insync_replicas_above_the_replication_factor_is_refused(monkeypatch):
    error = refusal(
        monkeypatch, CARELOOP_TOPIC_REPLICATION_FACTOR="2", CARELOOP_TOPIC_MIN_INSYNC_REPLICAS="3"
    )
    assert "CARELOOP_TOPIC_MIN_INSYNC_REPLICAS must not exceed" in error


def test_empty_values_as_a_chart_renders_them_mean_unset(monkeypatch):
    monkeypatch.setenv("CARELOOP_KAFKA_SASL_MECHANISM", "")
    monkeypatch.setenv("CARELOOP_KAFKA_SSL_CA_FILE", "")
    s = KafkaSettings()
    assert (s.kafka_sasl_mechanism, s.kafka_ssl_ca_file) == (None, None)


async def test_missing_topics_are_waited_for_until_the_startup_deadline_then_named():
    tries = 0

    async def topics_present() -> None:
        nonlocal tries
        tries += 1
        raise MissingTopics(["careloop.patient.assessed"])

    with pytest.raises(MissingTopics, match=r"careloop\.patient\.assessed"):
        await until_reachable("its topics", topics_present, deadline=time.monotonic() + 1.0)
    assert tries >= 2


@pytest.mark.integration
async def test_a_service_that_may_not_create_topics_names_the_missing_ones(infra):
    prefix = unique_prefix()
    made = await ensure_topics(infra.kafka, [f"{prefix}present"], partitions=1)
    assert made == [f"{prefix}present"]
    with pytest.raises(MissingTopics) as caught:
        await ensure_topics(infra.kafka, [f"{prefix}present", f"{prefix}absent"], partitions=1, create=False)
    assert caught.value.topics == [f"{prefix}absent"]
    assert f"{prefix}absent" in str(caught.value) and f"{prefix}present" not in str(caught.value)
    assert await ensure_topics(infra.kafka, [f"{prefix}present"], partitions=1, create=False) == []


def test_only_a_dynamic_member_keeps_its_member_id_in_a_file():
    """A static member comes back under its instance id; its member file, if set too, goes unused."""
    kept = Path("/tmp/member")
    assert ServiceSettings(group_member_file=kept).member_file == kept
    assert ServiceSettings(group_member_file=kept, group_instance_id="careplan-0").member_file is None
    assert ServiceSettings().member_file is None
