"""Patient education materials: one Markdown text per topic and language, versioned. Pure: no I/O.

A topic (``depression``) is written in several languages; a plan names the text given in one language
by its material id, ``edu-<topic>-<language>`` (``edu-depression-es``), the ids plans always named.
Each text starts with a small front matter::

    ---
    title: Depression
    version: 2026.11.1
    reviewed: 2026-11-30
    ---
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from careloop_shared.errors import SafeMessageError

_FRONT_MATTER = re.compile(r"\A---\n(?P<head>.*?)\n---\n(?P<body>.*)\Z", re.DOTALL)
CODE = r"^[a-z][a-z0-9-]{1,63}$"


def material_id(topic: str, language: str) -> str:
    return f"edu-{topic}-{language}"


class FrontMatter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    reviewed: date  # when the text was last reviewed


class Material(BaseModel):
    """One topic's text in one language."""

    model_config = ConfigDict(frozen=True)

    topic: str = Field(pattern=CODE)
    language: str = Field(pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
    title: str
    version: str
    reviewed: date
    markdown: str

    @property
    def id(self) -> str:
        return material_id(self.topic, self.language)


class InvalidMaterial(SafeMessageError):
    """A material file that does not fit: the service stops at start, naming the file and why."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"education material {where}: {why}")


def parse_material(topic: str, language: str, text: str) -> Material:
    """A material from its file's text (front matter, then Markdown)."""
    where = f"{topic}/{language}"
    found = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if found is None:
        raise InvalidMaterial(where, "no front matter between --- lines at the start")
    fields = {}
    for line in found["head"].splitlines():
        key, colon, value = line.partition(":")
        if not colon:
            raise InvalidMaterial(where, "a front matter line is not 'key: value'")
        fields[key.strip()] = value.strip()
    try:
        head = FrontMatter.model_validate(fields)
        return Material(topic=topic, language=language, markdown=found["body"].strip() + "\n", **dict(head))
    except ValidationError as exc:
        why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidMaterial(where, why) from None


class MissingMaterials(SafeMessageError):
    """The plan library names topics not written in every language it gives materials in."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"education materials missing (topic/language): {', '.join(missing)}")


@dataclass(frozen=True)
class Shown:
    """A material as answered for a language: the one asked for, or the fallback's."""

    material: Material
    requested_language: str
    fell_back: bool


class EducationCatalogue:
    """Every material, by topic and language."""

    def __init__(self, materials: Iterable[Material], fallback_language: str) -> None:
        self.fallback_language = fallback_language
        self.by_topic: dict[str, dict[str, Material]] = {}
        for m in materials:
            self.by_topic.setdefault(m.topic, {})[m.language] = m
        self._by_id = {m.id: m for langs in self.by_topic.values() for m in langs.values()}

    def material(self, material_id: str) -> Material | None:
        """The text a plan names by its material id."""
        return self._by_id.get(material_id)

    def missing(self, topics: Iterable[str], languages: Iterable[str]) -> list[str]:
        """``topic/language`` for each of these topics not written in each of these languages."""
        langs = list(languages)
        return [f"{t}/{lang}" for t in dict.fromkeys(topics) for lang in langs if self.find(t, lang) is None]

    def find(self, topic: str, language: str) -> Material | None:
        return self.by_topic.get(topic, {}).get(language)

    def show(self, requested: str, language: str | None = None) -> Shown | None:
        """A topic (``depression``) or a material id (``edu-depression-es``) in ``language`` (by default
        the id's own), else in the fallback language; None when no such topic exists."""
        topic, own_language = self._topic_of(requested)
        if topic is None:
            return None
        wanted = language or own_language or self.fallback_language
        found = self.find(topic, wanted)
        if found is not None:
            return Shown(found, wanted, fell_back=False)
        fallback = self.find(topic, self.fallback_language)
        return None if fallback is None else Shown(fallback, wanted, fell_back=True)

    def _topic_of(self, requested: str) -> tuple[str | None, str | None]:
        if requested in self.by_topic:
            return requested, None
        known = self._by_id.get(requested)
        if known is not None:
            return known.topic, known.language
        # A material id in a language the topic is not written in: edu-<topic>-<language>.
        for topic in sorted(self.by_topic, key=len, reverse=True):
            prefix = f"edu-{topic}-"
            if requested.startswith(prefix) and len(requested) > len(prefix):
                return topic, requested[len(prefix) :]
        return None, None
