"""intake's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr

from careloop_shared.clock import Clock, system_clock
from careloop_shared.crypto import LocalKeyWrapper
from careloop_shared.logging import get_logger
from careloop_shared.rules import load_rules
from careloop_shared.settings import LOOPBACK_HOSTS, ServiceSettings, service_config
from intake.domain import care_manager, key_release, retention
from intake.domain.care_manager import CareManagerRules
from intake.domain.key_release import KeyReleaseRules
from intake.domain.retention import RetentionRules
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.erasure.keys import PatientKeys
from intake.identity.sealed import DEV_BLIND_INDEX_KEY, BlindIndex, RowsInTheClear

log = get_logger(__name__)

# For development only (it is in this source file): a service beyond loopback refuses it.
DEV_KEKS = "dev:ZGV2ZWxvcG1lbnQta2V5LWVuY3J5cHRpb24ta2V5ISE="


class IntakeSettings(ServiceSettings):
    model_config = service_config("INTAKE_")

    service_name: str = "intake"
    port: int = 8001
    screening_rules: Path = RULES_FILE  # INTAKE_SCREENING_RULES: an organisation's own scoring rules
    # INTAKE_CARE_MANAGER_RULES: who becomes responsible by registering, the reassignment reason codes
    care_manager_rules: Path = care_manager.RULES_FILE
    # CARELOOP_KEKS: kid:base64 of 32-byte AES keys wrapping the patients' data keys; the first wraps new
    # ones, every one unwraps its own (rotation: put the new key first).
    keks: SecretStr = Field(SecretStr(DEV_KEKS), validation_alias="CARELOOP_KEKS")
    rewrap_tick_s: float = Field(60.0, gt=0)  # how often a replica looks for data keys under an older KEK
    rewrap_batch_size: int = Field(500, ge=1)  # data keys re-wrapped per transaction
    # INTAKE_RETENTION_RULES: when a closed case's identifying details and sealed data are erased
    retention_rules: Path = retention.RULES_FILE
    retention_every_s: float = Field(86400.0, gt=0)  # how often the retention rules are applied
    retention_tick_s: float = Field(600.0, gt=0)  # how often a replica asks whether a retention run is due
    retention_batch_size: int = Field(200, ge=1)  # patients a retention run looks at per transaction
    # INTAKE_BLIND_INDEX_KEY: base64 of the 32-byte key of the likely-duplicate blind index. It stays for
    # the life of the data: under another key no patient registered before is found as a duplicate.
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)
    identity_seal_tick_s: float = Field(60.0, gt=0)  # how often a replica looks for details not sealed yet
    identity_seal_batch_size: int = Field(500, ge=1)  # patients' details sealed per transaction
    # INTAKE_KEY_RELEASE_RULES: the services a patient's data key is released to, and what each seals
    key_release_rules: Path = key_release.RULES_FILE


_DEVELOPMENT_KEYS = PatientKeys(LocalKeyWrapper.from_setting(DEV_KEKS))
_DEVELOPMENT_BLIND_INDEX = BlindIndex.from_setting(DEV_BLIND_INDEX_KEY)
_RETENTION_RULES = load_rules(RetentionRules, retention.RULES_FILE)
_KEY_RELEASE_RULES = load_rules(KeyReleaseRules, key_release.RULES_FILE)


def refuse_development_keks_off_loopback(settings: IntakeSettings) -> None:
    """The development keys (key-encryption, blind index) are in the source: only for a service on
    loopback."""
    for setting, value, development in (
        ("CARELOOP_KEKS", settings.keks, DEV_KEKS),
        ("INTAKE_BLIND_INDEX_KEY", settings.blind_index_key, DEV_BLIND_INDEX_KEY),
    ):
        if value.get_secret_value() != development:
            continue
        if settings.host not in LOOPBACK_HOSTS:
            raise SystemExit(
                f"refusing to listen on {settings.host} with the development {setting}; set your own"
            )
        log.warning("using a development key; set your own outside development", setting=setting)


@dataclass(frozen=True)
class IntakeContext:
    rules: ScreeningRules
    care_manager: CareManagerRules
    clock: Clock = system_clock
    keys: PatientKeys = _DEVELOPMENT_KEYS
    retention: RetentionRules = _RETENTION_RULES
    retention_every: timedelta = timedelta(days=1)
    retention_batch_size: int = 200
    rewrap_batch_size: int = 500
    blind_index: BlindIndex = _DEVELOPMENT_BLIND_INDEX
    identity_seal_batch_size: int = 500
    in_the_clear: RowsInTheClear = field(default_factory=RowsInTheClear)  # this replica's, not shared
    key_release: KeyReleaseRules = _KEY_RELEASE_RULES

    @classmethod
    def from_settings(cls, settings: IntakeSettings, clock: Clock = system_clock) -> IntakeContext:
        return cls(
            load_rules(ScreeningRules, settings.screening_rules),
            load_rules(CareManagerRules, settings.care_manager_rules),
            clock,
            PatientKeys(LocalKeyWrapper.from_setting(settings.keks.get_secret_value())),
            load_rules(RetentionRules, settings.retention_rules),
            timedelta(seconds=settings.retention_every_s),
            settings.retention_batch_size,
            settings.rewrap_batch_size,
            blind_index=BlindIndex.from_setting(settings.blind_index_key.get_secret_value()),
            identity_seal_batch_size=settings.identity_seal_batch_size,
            key_release=load_rules(KeyReleaseRules, settings.key_release_rules),
        )
