"""How to reach someone, as people type it: a phone number, an e-mail address, a web address. One
definition for every service, so a patient's e-mail (intake) and a program's (referral's directory) are
held to the same rule. Pure: field types only.

None takes control characters (C0, DEL, C1), which no address has and which every page, export and
client that shows the value would have to guard against. A web address is http or https, a host name,
an optional port, then anything without spaces: no user or password before the host and no IPv6
literal (a bracket there is what makes URL parsers give up), so whatever reads it back (a browser link,
an HSDS or FHIR export, a URL parser) can parse it.

These are the rules for what is saved from now on. What a service shows reads stored values as text,
so a value saved under an earlier, looser rule is still shown rather than failing the answer.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

_CONTROL = r"\x00-\x1f\x7f-\x9f"
_NOT_IN_ADDRESS = rf"@\s{_CONTROL}"
_HOST = rf"[^\s{_CONTROL}/?#@\[\]\\:]{{1,253}}"

Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ()\-.]{7,25}$")]
Email = Annotated[
    str,
    Field(pattern=rf"^[^{_NOT_IN_ADDRESS}]+@[^{_NOT_IN_ADDRESS}]+\.[^{_NOT_IN_ADDRESS}]+$", max_length=254),
]
Url = Annotated[
    str,
    Field(
        pattern=rf"^https?://{_HOST}(?::[0-9]{{1,5}})?(?:[/?#][^\s{_CONTROL}]*)?$",
        max_length=508,
        description="An http or https address: a host name, an optional port, then a path; no spaces.",
    ),
]
