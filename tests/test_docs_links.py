"""The project's Markdown documents link only to what exists: a section of the same or another document
(GitHub's anchors), or a file of the repository. A renamed heading or a moved file breaks a reader's way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from careloop_shared.testing import REPO_ROOT

DOCUMENTS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "deploy" / "README.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated one numbered."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", _FENCE.sub("", markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        numbered, n = slug, 0
        while numbered in found:
            n += 1
            numbered = f"{slug}-{n}"
        found.add(numbered)
    return found


def test_anchors_are_made_as_github_makes_them():
    headings = [
        "# Quick start",
        "## Interoperability: FHIR R4 and Open Referral",
        "### The kernel (`shared/x_y/`)",
    ]
    text = "\n".join([*headings, "## Tests", "```", "# not a heading", "```", "## Tests"])
    assert anchors(text) == {
        "quick-start",
        "interoperability-fhir-r4-and-open-referral",
        "the-kernel-sharedx_y",
        "tests",
        "tests-1",
    }


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_link_of_a_document_reaches_a_file_or_a_section(document: Path):
    text = document.read_text()
    broken = []
    for target in _LINK.findall(_FENCE.sub("", text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:: not the repository's
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(target)
    assert broken == [], f"{document.relative_to(REPO_ROOT)} links to what is not there: {broken}"
