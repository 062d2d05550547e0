"""record's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr

from careloop_shared.clock import Clock, system_clock
from careloop_shared.logging import get_logger
from careloop_shared.rules import load_rules
from careloop_shared.settings import LOOPBACK_HOSTS, FetchWaitMs, ServiceSettings, service_config
from record.domain.timeline import SUMMARIES_FILE, Summaries
from record.domain.witness import ChainKeys, SigningKeys, parse_keys

log = get_logger(__name__)


def _development_key(purpose: str) -> str:
    """A fixed key for development only, derived from its purpose (published in this source file)."""
    return "dev:" + base64.b64encode(hashlib.sha256(f"careloop-dev-{purpose}".encode()).digest()).decode()


DEV_CHAIN_KEYS = _development_key("record-chain")
DEV_SIGNING_KEY = _development_key("record-checkpoint")


def refuse_development_keys_off_loopback(settings: RecordSettings) -> None:
    """The development keys are in this file: anyone could forge entries and checkpoints with them, so
    they are only for a service on loopback."""
    in_use = DEV_CHAIN_KEYS == settings.chain_keys.get_secret_value() or (
        DEV_SIGNING_KEY == settings.checkpoint_signing_key.get_secret_value()
    )
    if not in_use:
        return
    if settings.host not in LOOPBACK_HOSTS:
        raise SystemExit(
            f"refusing to listen on {settings.host} with the development record keys;"
            " set RECORD_CHAIN_KEYS and RECORD_CHECKPOINT_SIGNING_KEY"
        )
    log.warning("using the development record keys; set RECORD_CHAIN_KEYS outside development")


class RecordSettings(ServiceSettings):
    model_config = service_config("RECORD_")

    service_name: str = "record"
    port: int = 8005
    # Off the journey's path: a fetch gathers what arrives over half a second into one batch (README,
    # Performance), so it does not linger after a poll as well (that cost it more batches, not fewer).
    consumer_fetch_wait_ms: FetchWaitMs = 500
    consumer_linger_ms: FetchWaitMs = 0
    summaries_file: Path = SUMMARIES_FILE  # RECORD_SUMMARIES_FILE: an organisation's own wording
    # kid:base64 HMAC keys (32 bytes or more), comma-separated; the first authenticates new entries.
    chain_keys: SecretStr = SecretStr(DEV_CHAIN_KEYS)
    # kid:base64 of a raw 32-byte Ed25519 private key: signs checkpoints of the chains' heads.
    checkpoint_signing_key: SecretStr = SecretStr(DEV_SIGNING_KEY)
    # kid:base64 raw Ed25519 public keys accepted on checkpoints besides the signing key's own
    # (earlier signing keys, after a rotation).
    checkpoint_public_keys: str | None = None
    # Where checkpoints are written as files, besides the Kafka topic (a mounted volume, or a folder
    # an object store syncs); none: the topic only.
    checkpoint_dir: Path | None = None
    checkpoint_every_s: float = 60.0
    # Heads per checkpoint (more wait for the next, signed at once): a head is about 110 bytes of JSON, so
    # 4,000 keep a checkpoint near 450 KB, one Kafka record under the broker's default 1 MB limit.
    checkpoint_max_heads: int = Field(4_000, ge=1, le=8_000)


_DEVELOPMENT_CHAIN_KEYS = ChainKeys(parse_keys(DEV_CHAIN_KEYS, "RECORD_CHAIN_KEYS"))
_DEVELOPMENT_SIGNING_KEYS = SigningKeys.from_settings(DEV_SIGNING_KEY, None)


@dataclass(frozen=True)
class RecordContext:
    summaries: Summaries
    clock: Clock = system_clock
    chain_keys: ChainKeys = _DEVELOPMENT_CHAIN_KEYS
    signing_keys: SigningKeys = _DEVELOPMENT_SIGNING_KEYS
    checkpoint_dir: Path | None = None
    checkpoint_max_heads: int = 4_000

    @classmethod
    def from_settings(cls, settings: RecordSettings, clock: Clock = system_clock) -> RecordContext:
        return cls(
            load_rules(Summaries, settings.summaries_file),
            clock,
            ChainKeys(parse_keys(settings.chain_keys.get_secret_value(), "RECORD_CHAIN_KEYS")),
            SigningKeys.from_settings(
                settings.checkpoint_signing_key.get_secret_value(), settings.checkpoint_public_keys
            ),
            settings.checkpoint_dir,
            settings.checkpoint_max_heads,
        )
