"""Settings from environment variables, shared by every service.

Global names (``KAFKA_BOOTSTRAP_SERVERS``, ``CARELOOP_*``) are the same for all services; per-service
names carry the service prefix (``INTAKE_DATABASE_URL``, ``INTAKE_PORT``, ...).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "careloop-dev-secret-change-me-0123456789"


def service_config(env_prefix: str) -> SettingsConfigDict:
    """A service's settings: its own names under ``env_prefix`` (``INTAKE_``), the global ones as they are."""
    return SettingsConfigDict(env_prefix=env_prefix, extra="ignore", frozen=True, populate_by_name=True)


def _global(name: str) -> AliasChoices:
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    """Settings every service has; a service subclasses it with ``env_prefix='<SERVICE>_'``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    service_name: str = "careloop"
    host: str = "127.0.0.1"
    port: int = 8000

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=_global("KAFKA_BOOTSTRAP_SERVERS")
    )
    pg_url: str = Field("postgresql://careloop@127.0.0.1:55432", validation_alias=_global("CARELOOP_PG_URL"))
    # Full URL of this service's own database; defaults to <pg_url>/careloop_<service>.
    database_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10

    topic_prefix: str = Field("", validation_alias=_global("CARELOOP_TOPIC_PREFIX"))
    # A new group id replays every topic from the beginning (e.g. to rebuild a read model).
    group_id: str | None = None
    topic_partitions: int = Field(6, validation_alias=_global("CARELOOP_TOPIC_PARTITIONS"))

    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), validation_alias=_global("CARELOOP_JWT_SECRET"))
    jwt_issuer: str = Field("careloop-dev", validation_alias=_global("CARELOOP_JWT_ISSUER"))

    log_level: str = Field("INFO", validation_alias=_global("CARELOOP_LOG_LEVEL"))

    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0
    consumer_batch_size: int = 500
    consumer_max_attempts: int = 3
    consumer_backoff_s: float = 0.2
    # Liveness: a consumer with records waiting and no progress for this long is stuck (restart it).
    consumer_stall_s: float = 120.0

    def own_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"{self.pg_url.rstrip('/')}/careloop_{self.service_name}"

    def topic(self, event_type: str) -> str:
        return f"{self.topic_prefix}{event_type}"

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"{self.topic_prefix}{self.service_name}"
