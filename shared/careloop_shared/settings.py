"""Settings from environment variables, shared by every service.

Global names (``KAFKA_BOOTSTRAP_SERVERS``, ``CARELOOP_*``) are the same for all services; per-service
names carry the service prefix (``INTAKE_DATABASE_URL``, ``INTAKE_PORT``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from careloop_shared.db import PLAN_CACHE_MODE, PlanCacheMode
from careloop_shared.ratelimit import parse_limits

DEV_JWT_SECRET = "careloop-dev-secret-change-me-0123456789"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Asymmetric only: a provider's public key must never be usable as an HMAC secret.
OIDC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def service_config(env_prefix: str) -> SettingsConfigDict:
    """A service's settings: its own names under ``env_prefix`` (``INTAKE_``), the global ones as they are."""
    return SettingsConfigDict(
        env_prefix=env_prefix, extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )


def _global(name: str) -> AliasChoices:
    return AliasChoices(name)


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster and how to shape topics: the same for every service and tool
    (``careloop_shared.kafka.client_options`` turns them into client options)."""

    # A setting that does not fit is named in the error, never its value (it may be a secret).
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=_global("KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT", validation_alias=_global("CARELOOP_KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        None, validation_alias=_global("CARELOOP_KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(None, validation_alias=_global("CARELOOP_KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=_global("CARELOOP_KAFKA_SASL_PASSWORD")
    )
    # PEM files; without a CA file the system's trust store verifies the brokers.
    kafka_ssl_ca_file: Path | None = Field(None, validation_alias=_global("CARELOOP_KAFKA_SSL_CA_FILE"))
    kafka_ssl_cert_file: Path | None = Field(None, validation_alias=_global("CARELOOP_KAFKA_SSL_CERT_FILE"))
    kafka_ssl_key_file: Path | None = Field(None, validation_alias=_global("CARELOOP_KAFKA_SSL_KEY_FILE"))
    topic_replication_factor: int = Field(
        1, ge=1, validation_alias=_global("CARELOOP_TOPIC_REPLICATION_FACTOR")
    )
    # Unset: the broker's own min.insync.replicas applies to the topics a service creates.
    topic_min_insync_replicas: int | None = Field(
        None, ge=1, validation_alias=_global("CARELOOP_TOPIC_MIN_INSYNC_REPLICAS")
    )
    # False where the topics are owned elsewhere (Strimzi KafkaTopic resources): only wait for them.
    kafka_create_topics: bool = Field(True, validation_alias=_global("CARELOOP_KAFKA_CREATE_TOPICS"))

    @field_validator(
        "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_ssl_ca_file", "kafka_ssl_cert_file",
        "kafka_ssl_key_file", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # A Helm chart renders an unused setting as an empty string.
        return None if value == "" else value

    @model_validator(mode="after")
    def _kafka_consistent(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_"):
            for name, value in (
                ("CARELOOP_KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                ("CARELOOP_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                ("CARELOOP_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
            ):
                if not value or (isinstance(value, SecretStr) and not value.get_secret_value()):
                    protocol = self.kafka_security_protocol
                    raise ValueError(f"{name} is required with CARELOOP_KAFKA_SECURITY_PROTOCOL={protocol}")
        tls_files = (self.kafka_ssl_ca_file, self.kafka_ssl_cert_file, self.kafka_ssl_key_file)
        if any(tls_files) and not self.kafka_security_protocol.endswith("SSL"):
            # Ignoring them would send the credentials and the events in the clear.
            raise ValueError(
                "CARELOOP_KAFKA_SSL_* files need CARELOOP_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("CARELOOP_KAFKA_SSL_CERT_FILE and CARELOOP_KAFKA_SSL_KEY_FILE go together")
        for name, path in (
            ("CARELOOP_KAFKA_SSL_CA_FILE", self.kafka_ssl_ca_file),
            ("CARELOOP_KAFKA_SSL_CERT_FILE", self.kafka_ssl_cert_file),
            ("CARELOOP_KAFKA_SSL_KEY_FILE", self.kafka_ssl_key_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name} names a file that does not exist")
        if (
            self.topic_min_insync_replicas is not None
            and self.topic_min_insync_replicas > self.topic_replication_factor
        ):
            # acks=all could then never be satisfied: every publish would fail.
            raise ValueError(
                "CARELOOP_TOPIC_MIN_INSYNC_REPLICAS must not exceed CARELOOP_TOPIC_REPLICATION_FACTOR"
            )
        return self


# Milliseconds the broker may hold a consumer's fetch (``consumer_fetch_wait_ms``), or a consumer waits
# for more records after some came (``consumer_linger_ms``): within a second.
FetchWaitMs = Annotated[int, Field(ge=0, le=1000)]
CommitIntervalMs = Annotated[int, Field(ge=0, le=5000)]


class ServiceSettings(KafkaSettings):
    """Settings every service has; a service subclasses it with ``env_prefix='<SERVICE>_'``."""

    # A setting that does not fit is named in the error, never its value (it may be a secret).
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )

    service_name: str = "careloop"
    host: str = "127.0.0.1"
    port: int = 8000

    pg_url: str = Field("postgresql://careloop@127.0.0.1:55432", validation_alias=_global("CARELOOP_PG_URL"))
    # TLS to PostgreSQL (libpq's names): verify-full checks the certificate against this CA and the
    # host name; added to the database URL unless it already says.
    pg_sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        None, validation_alias=_global("CARELOOP_PG_SSLMODE")
    )
    pg_sslrootcert: str | None = Field(None, validation_alias=_global("CARELOOP_PG_SSLROOTCERT"))
    # Full URL of this service's own database; defaults to <pg_url>/careloop_<service>.
    database_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10
    # Transactions of grouped HTTP commands at once (``careloop_shared.command_groups``); the commands
    # that arrive meanwhile share the next. 0: every command in a transaction of its own. Three, not two:
    # at 250 assessments a second a command waited less for a slot, at the same CPU (README, Performance).
    command_group_slots: int = Field(3, ge=0, le=32)
    # While such commands come within this many milliseconds of each other, a group waits this long
    # for more before it starts, even with a slot free; one after a quiet spell starts at once. 0: never.
    command_group_linger_ms: float = Field(10.0, ge=0, le=100)
    # How PostgreSQL plans the statements each connection prepares (``db.PLAN_CACHE_MODE``, and why).
    pg_plan_cache_mode: PlanCacheMode = Field(
        PLAN_CACHE_MODE, validation_alias=_global("CARELOOP_PG_PLAN_CACHE_MODE")
    )

    topic_prefix: str = Field("", validation_alias=_global("CARELOOP_TOPIC_PREFIX"))
    # A new group id replays every topic from the beginning (e.g. to rebuild a read model).
    group_id: str | None = None
    # Static group membership: a process that comes back under the same id (a restarted pod of a
    # StatefulSet, a supervised local service) takes its partitions back at once instead of waiting
    # out the session timeout and a rebalance. Two live processes must never share one.
    group_instance_id: str | None = None
    # Without one (dynamic membership, as the chart's Deployments run): a file of this process's own that
    # outlives it (a pod's emptyDir survives its container's restarts) where the consumer keeps its member
    # id, so the process started after a crash makes its predecessor leave the group at once instead of
    # waiting out the session timeout (``kafka.evict_predecessor``). Never one another live process of the
    # group writes: that one would be made to leave (and rejoin).
    group_member_file: Path | None = None
    topic_partitions: int = Field(6, validation_alias=_global("CARELOOP_TOPIC_PARTITIONS"))

    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), validation_alias=_global("CARELOOP_JWT_SECRET"))
    jwt_issuer: str = Field("careloop-dev", validation_alias=_global("CARELOOP_JWT_ISSUER"))

    # OpenID Connect provider; without an issuer only development tokens are accepted (see auth.py).
    oidc_issuer: str | None = Field(None, validation_alias=_global("CARELOOP_OIDC_ISSUER"))
    oidc_audience: str | None = Field(None, validation_alias=_global("CARELOOP_OIDC_AUDIENCE"))
    # The provider's key set; found from <issuer>/.well-known/openid-configuration when unset.
    oidc_jwks_url: str | None = Field(None, validation_alias=_global("CARELOOP_OIDC_JWKS_URL"))
    oidc_algorithms: Annotated[tuple[str, ...], NoDecode] = Field(
        ("RS256", "ES256"), validation_alias=_global("CARELOOP_OIDC_ALGORITHMS")
    )
    oidc_leeway_s: float = Field(30.0, ge=0, validation_alias=_global("CARELOOP_OIDC_LEEWAY_S"))
    oidc_jwks_refetch_min_s: float = Field(
        30.0, ge=0, validation_alias=_global("CARELOOP_OIDC_JWKS_REFETCH_MIN_S")
    )
    oidc_jwks_max_age_s: float = Field(3600.0, gt=0, validation_alias=_global("CARELOOP_OIDC_JWKS_MAX_AGE_S"))
    oidc_http_timeout_s: float = Field(5.0, gt=0, validation_alias=_global("CARELOOP_OIDC_HTTP_TIMEOUT_S"))
    oidc_agency_claim: str = Field(
        "agency", min_length=1, validation_alias=_global("CARELOOP_OIDC_AGENCY_CLAIM")
    )
    oidc_role_claim: str = Field("role", min_length=1, validation_alias=_global("CARELOOP_OIDC_ROLE_CLAIM"))

    log_level: str = Field("INFO", validation_alias=_global("CARELOOP_LOG_LEVEL"))

    # The largest request body a service reads (413 past it): the biggest legitimate one, a full
    # questionnaire or a directory entry, is a few kilobytes.
    http_max_body_bytes: int = Field(
        256 * 1024, gt=0, validation_alias=_global("CARELOOP_HTTP_MAX_BODY_BYTES")
    )
    # Requests a second one agency, and one token, may make of this service before 429s (``limits``
    # notation, e.g. "2000/second" or "100/minute;2000/hour"; empty: no limit). Counted per process.
    rate_limit_agency: str = Field("2000/second", validation_alias=_global("CARELOOP_RATE_LIMIT_AGENCY"))
    rate_limit_token: str = Field("1000/second", validation_alias=_global("CARELOOP_RATE_LIMIT_TOKEN"))
    # Requests (and connections) one process serves at once; past it, 503 at once rather than a queue
    # that grows until memory runs out.
    http_max_concurrency: int = Field(1000, gt=0, validation_alias=_global("CARELOOP_HTTP_MAX_CONCURRENCY"))
    # Requests one process works on at once (careloop_shared.admission); the others wait their turn, in
    # order, and one that waited longer than http_queue_wait_s is answered 503 before any of it runs.
    http_max_active: int = Field(200, gt=0, validation_alias=_global("CARELOOP_HTTP_MAX_ACTIVE"))
    http_queue_wait_s: float = Field(1.0, gt=0, validation_alias=_global("CARELOOP_HTTP_QUEUE_WAIT_S"))
    # How long a starting service waits for the database and the broker before it gives up and exits.
    startup_wait_s: float = Field(120.0, ge=0, validation_alias=_global("CARELOOP_STARTUP_WAIT_S"))
    # Python's cyclic garbage collector once the service has started (careloop_shared.runtime.settle_heap):
    # a young collection after this many new container objects (Python's default is 700). Above a batch's
    # working set; lower it where memory is tight and cyclic garbage is common.
    gc_young_threshold: int = Field(100_000, ge=1, validation_alias=_global("CARELOOP_GC_YOUNG_THRESHOLD"))
    # Where a service other than intake asks for a patient's data key (careloop_shared.patient_keys), how
    # long it keeps one, how many it keeps, and how long it waits for intake's answer.
    intake_url: str = Field("http://127.0.0.1:8001", validation_alias=_global("CARELOOP_INTAKE_URL"))
    key_cache_ttl_s: float = Field(300.0, gt=0, validation_alias=_global("CARELOOP_KEY_CACHE_TTL_S"))
    key_cache_size: int = Field(10_000, gt=0, validation_alias=_global("CARELOOP_KEY_CACHE_SIZE"))
    key_http_timeout_s: float = Field(5.0, gt=0, validation_alias=_global("CARELOOP_KEY_HTTP_TIMEOUT_S"))
    # How long a response is kept for an Idempotency-Key replay (a retry later than this runs anew).
    idempotency_keep_s: float = Field(86400.0, gt=0, validation_alias=_global("CARELOOP_IDEMPOTENCY_KEEP_S"))
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0
    consumer_batch_size: int = 500
    # How long the broker may hold a consumer's fetch to gather more records (up to 1 MiB); 0: it answers
    # as soon as one record is there. A service off the journey's path (record) fetches fewer, fuller
    # batches by waiting; every one on it answers at once.
    consumer_fetch_wait_ms: FetchWaitMs = 0
    # How long a consumer that polled fewer than a batch's worth waits for more before handling them: a
    # hop's transaction, relay cycle and offset commit then serve the events of those milliseconds.
    consumer_linger_ms: FetchWaitMs = 20
    # How long after an offset commit began the next may begin; batches processed meanwhile go in it. A
    # crash delivers at most those records again (the inbox drops them); a stopping service commits all.
    consumer_commit_interval_ms: CommitIntervalMs = 250
    consumer_max_attempts: int = 3
    consumer_backoff_s: float = 0.2
    # Liveness: a consumer with records waiting and no progress for this long is stuck (restart it).
    consumer_stall_s: float = 120.0

    @field_validator("rate_limit_agency", "rate_limit_token")
    @classmethod
    def _a_limit(cls, value: str) -> str:
        parse_limits(value)  # ValueError names what is wrong with it
        return value

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @model_validator(mode="after")
    def _oidc_consistent(self) -> Self:
        if not self.oidc_issuer:
            return self
        if not self.oidc_audience:
            raise ValueError("CARELOOP_OIDC_AUDIENCE is required with CARELOOP_OIDC_ISSUER")
        if self.oidc_issuer == self.jwt_issuer:
            raise ValueError("CARELOOP_OIDC_ISSUER must differ from CARELOOP_JWT_ISSUER")
        if not self.oidc_algorithms or not set(self.oidc_algorithms) <= OIDC_ALGORITHMS:
            raise ValueError(f"CARELOOP_OIDC_ALGORITHMS must be among {', '.join(sorted(OIDC_ALGORITHMS))}")
        for url in (self.oidc_issuer, self.oidc_jwks_url):
            if url is not None and not https_or_loopback(url):
                raise ValueError("the OIDC issuer and JWKS URL must be https (plain http only on loopback)")
        return self

    def own_database_url(self) -> str:
        url = self.database_url or f"{self.pg_url.rstrip('/')}/careloop_{self.service_name}"
        return with_tls(url, self.pg_sslmode, self.pg_sslrootcert)

    def topic(self, event_type: str) -> str:
        return f"{self.topic_prefix}{event_type}"

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"{self.topic_prefix}{self.service_name}"

    @property
    def member_file(self) -> Path | None:
        """Where the consumer keeps its member id: a dynamic member's file; none for a static member,
        which comes back under its instance id."""
        return self.group_member_file if self.group_instance_id is None else None


def with_tls(url: str, sslmode: str | None, sslrootcert: str | None) -> str:
    """``url`` with ``sslmode`` and ``sslrootcert`` as query parameters, where given and not already there."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if sslmode:
        query.setdefault("sslmode", sslmode)
    if sslrootcert:
        query.setdefault("sslrootcert", sslrootcert)
    return urlunsplit(parts._replace(query=urlencode(query)))


def over_loopback(url: str) -> str:
    """``url`` with a Unix-socket host (a percent-encoded directory, as ``deploy/local`` names the local
    server) replaced by 127.0.0.1 and the same port, where that server listens too: for a client that
    must speak TLS, or cannot see this machine's files (an image run in a mount namespace of its own)."""
    parts = urlsplit(url)
    user, at, place = parts.netloc.rpartition("@")
    host, colon, port = place.partition(":")  # a socket's directory, percent-encoded, holds no ':'
    if not unquote(host).startswith("/"):
        return url
    return urlunsplit(parts._replace(netloc=f"{user}{at}127.0.0.1{colon}{port}"))


def https_or_loopback(url: str) -> bool:
    """Keys fetched over plain http could be swapped on the way; only this machine is trusted without TLS."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
