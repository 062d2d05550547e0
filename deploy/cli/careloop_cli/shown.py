"""Text from events and from the services' answers, as the CLI's tables show it."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

# Characters a terminal acts on instead of showing: C0 and C1 controls (an escape sequence can clear or
# retitle the reader's terminal) and the bidirectional marks and overrides (which reorder what follows).
_ACTED_ON = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(value: Any, empty: str = "") -> Text:
    """``value`` as text, never read as rich markup (a name or a code with "[/x]" in it stopped the table),
    each character a terminal acts on written as its escape (``\\u202e``); None as ``empty``."""
    if value is None:
        return Text(empty)
    return Text(_ACTED_ON.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value)))
