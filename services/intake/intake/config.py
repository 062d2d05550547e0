"""intake's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr

from careloop_shared.clock import Clock, system_clock
from careloop_shared.crypto import LocalKeyWrapper
from careloop_shared.logging import get_logger
from careloop_shared.rules import load_rules
from careloop_shared.settings import LOOPBACK_HOSTS, ServiceSettings, service_config
from intake.domain import care_manager
from intake.domain.care_manager import CareManagerRules
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.erasure.keys import PatientKeys

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


_DEVELOPMENT_KEYS = PatientKeys(LocalKeyWrapper.from_setting(DEV_KEKS))


def refuse_development_keks_off_loopback(settings: IntakeSettings) -> None:
    """The development key-encryption key is in this file: only for a service on loopback."""
    if settings.keks.get_secret_value() != DEV_KEKS:
        return
    if settings.host not in LOOPBACK_HOSTS:
        raise SystemExit(
            f"refusing to listen on {settings.host} with the development CARELOOP_KEKS; set your own"
        )
    log.warning("using the development key-encryption key; set CARELOOP_KEKS outside development")


@dataclass(frozen=True)
class IntakeContext:
    rules: ScreeningRules
    care_manager: CareManagerRules
    clock: Clock = system_clock
    keys: PatientKeys = _DEVELOPMENT_KEYS

    @classmethod
    def from_settings(cls, settings: IntakeSettings, clock: Clock = system_clock) -> IntakeContext:
        return cls(
            load_rules(ScreeningRules, settings.screening_rules),
            load_rules(CareManagerRules, settings.care_manager_rules),
            clock,
            PatientKeys(LocalKeyWrapper.from_setting(settings.keks.get_secret_value())),
        )
