"""FHIR R4 (4.0.1) validity, proved by HAPI FHIR's instance validator, offline, for tests.

``validate_r4(resources)`` runs deploy/tools/fhir-validator/run.sh once over every resource given (one
JVM: about four seconds, most of it loading the R4 definitions, so collect first and call once) and
returns every issue it found; ``r4_errors`` keeps the errors. The first call on a machine builds the
validator with Maven into ~/.cache/careloop/fhir-validator (seconds to a minute); Java 17 is needed.

What the validator cannot look up offline is a warning, never an error: a code from a system it has no
content for (LOINC, SNOMED CT, careloop's ``urn:`` systems, an implementation guide's code systems)
comes back as "CodeSystem is unknown and can't be validated". A wrong code from a system FHIR R4
itself defines (``Task.status`` "bogus"), a missing required element and a value of the wrong type are
errors.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN = Path(__file__).resolve().parents[1] / "deploy" / "tools" / "fhir-validator" / "run.sh"
ERROR_SEVERITIES = ("fatal", "error")
UNAVAILABLE = 3  # run.sh's exit status when Java or Maven is missing or the build failed


class ValidatorUnavailable(RuntimeError):
    """The validator could not be built or started; the message says what to install."""


@dataclass(frozen=True)
class Issue:
    index: int  # the resource's place in the list validated
    resource: str  # "<resourceType>/<id>"
    severity: str  # fatal, error, warning or information
    location: str  # the element's path, e.g. "Task.status" or "Bundle.entry[2].resource.status"
    message: str
    message_id: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity in ERROR_SEVERITIES

    def __str__(self) -> str:
        return f"{self.resource} at {self.location}: {self.severity}: {self.message}"


def validate_r4(resources: Sequence[dict[str, Any]], *, timeout: float = 900) -> list[Issue]:
    """Every issue the R4 validator finds in ``resources`` (each validated on its own; a Bundle with
    its entries), in order. The timeout covers a cold build."""
    done = subprocess.run(
        [str(RUN), "-"],
        input=json.dumps(list(resources)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode == UNAVAILABLE:
        raise ValidatorUnavailable(done.stderr.strip())
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{RUN} exited {done.returncode}:\n{done.stderr.strip()}")
    report = json.loads(done.stdout)
    validated = report["resources"]
    if len(validated) != len(resources):
        raise RuntimeError(f"{RUN} validated {len(validated)} of {len(resources)} resources")
    return [
        Issue(
            index=r["index"],
            resource=f"{r['resourceType']}/{r['id']}",
            severity=issue["severity"],
            location=issue["location"],
            message=issue["message"],
            message_id=issue.get("messageId"),
        )
        for r in validated
        for issue in r["issues"]
    ]


def r4_errors(resources: Sequence[dict[str, Any]]) -> list[Issue]:
    """The errors (and fatal issues) alone: none means every resource is valid R4."""
    return [i for i in validate_r4(resources) if i.is_error]
