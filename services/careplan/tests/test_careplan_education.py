"""Education materials: every topic the plan library can name is written in every language it gives,
plainly enough for patients, and found by topic or material id with a fallback language."""

import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from careloop_shared.rules import load_rules
from careplan.config import DEFAULT_EDUCATION, load_education
from careplan.domain.education import InvalidMaterial, Material, MissingMaterials, parse_material
from careplan.domain.planning import DEFAULT_LIBRARY, PlanLibrary

LIBRARY = load_rules(PlanLibrary, DEFAULT_LIBRARY)
CATALOGUE = load_education(DEFAULT_EDUCATION, LIBRARY)
MAX_GRADE = 7.0  # about a sixth-grade reading level, with a little room

# ---- a Flesch-Kincaid estimate ----------------------------------------------------------------------
# Syllables by vowel groups with the common English exceptions. Checked against the CMU Pronouncing
# Dictionary on these texts: it errs by a few words a text and the grades agree within half a grade.

_VOWEL_GROUPS = re.compile(r"[aeiouy]+")
_SAID_AS_TWO = re.compile(r"(?<![tsc])i[aou]|ua|uo|[aeiouy]ing")  # radio, usual, going
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019.&-][A-Za-z0-9]+)*")  # don't, 988lifeline.org
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def syllables(word: str) -> int:
    if any(c.isdigit() for c in word):
        return sum(c.isdigit() for c in word)  # numbers are read digit by digit: 9-8-8
    w = re.sub(r"[^a-z]", "", word.lower())
    count = len(_VOWEL_GROUPS.findall(w)) + len(_SAID_AS_TWO.findall(w))
    if count > 1 and w.endswith("e") and not w.endswith(("le", "ee", "ye")):
        count -= 1  # a silent final e: home, life
    elif count > 1 and re.search(r"[^aeiouysxzgch]es$", w):
        count -= 1  # homes, times (not boxes, pages, babies)
    elif count > 1 and re.search(r"[^aeioutd]ed$", w):
        count -= 1  # helped, called (not needed, tried)
    return max(count, 1)


def sentences(markdown: str) -> list[str]:
    """What is read: headings left out; a list item is a sentence even without a full stop."""
    blocks: list[str] = []
    paragraph: list[str] = []
    for line in _FRONT_MATTER.sub("", markdown).splitlines():
        text = line.replace("[[", "").replace("]]", "").replace("**", "").strip()
        if text.startswith("#"):
            continue
        if not text or _LIST_ITEM.match(line):
            blocks += [" ".join(paragraph), _LIST_ITEM.sub("", text)]
            paragraph = []
        else:
            paragraph.append(text)
    blocks.append(" ".join(paragraph))
    return [s for block in blocks for s in _SENTENCE_END.split(block) if _WORD.search(s)]


def reading_grade(markdown: str) -> float:
    said = sentences(markdown)
    words = [w for s in said for w in _WORD.findall(s)]
    return 0.39 * len(words) / len(said) + 11.8 * sum(map(syllables, words)) / len(words) - 15.59


def test_the_reading_grade_estimate_tells_plain_from_dense_text():
    assert [syllables(w) for w in "home helped needed people depression emergency 988".split()] == [
        1,
        1,
        2,
        2,
        3,
        4,
        3,
    ]
    plain = "Call us if you feel worse. We can help. You are not alone."
    dense = (
        "Individuals experiencing persistent depressive symptomatology should consult appropriately"
        " credentialed behavioral health professionals regarding pharmacological interventions."
    )
    assert reading_grade(plain) < 3 < MAX_GRADE < 12 < reading_grade(dense)


# ---- the materials ----------------------------------------------------------------------------------


def test_the_library_names_a_topic_for_every_need_the_crisis_line_and_safety_planning():
    topics = LIBRARY.topics()
    assert all(LIBRARY.needs[n].education_topic for n in LIBRARY.needs)
    assert LIBRARY.default_need.education_topic
    assert {"crisis-line", "safety-planning"} <= set(topics)
    assert len(topics) == 10


@pytest.mark.parametrize("topic", LIBRARY.topics())
def test_every_topic_the_library_names_is_written_in_english_and_spanish_and_plainly(topic):
    assert {"en", "es"} <= set(LIBRARY.education_languages)
    for language in LIBRARY.education_languages:
        material = CATALOGUE.find(topic, language)
        assert material is not None, f"{topic}/{language}"
        assert material.title and material.version and material.reviewed <= date.today()
        assert material.markdown.startswith("# ")
    english = CATALOGUE.find(topic, "en")
    assert english is not None
    assert reading_grade(english.markdown) <= MAX_GRADE


# Real lines a patient may call anywhere in the country; anything else is a placeholder to fill in.
REAL_NUMBERS = {"911", "988", "211", "1-800-799-7233", "88788"}


@pytest.mark.parametrize(
    "path", sorted(DEFAULT_EDUCATION.glob("*/*.md")), ids=lambda p: p.parent.name + "/" + p.stem
)
def test_materials_name_no_phone_number_but_real_national_lines_and_mark_what_to_fill_in(path):
    text = path.read_text()
    numbers = set(re.findall(r"\b\d[\d-]{2,}\d\b", text.split("---", 2)[2]))
    assert numbers <= REAL_NUMBERS
    assert set(re.findall(r"\[\[([^\]]*)\]\]", text)) <= {"CARE TEAM PHONE"}
    assert "[[" not in re.sub(r"\[\[[A-Z ]+\]\]", "", text)


def test_a_topic_or_a_material_id_is_shown_in_the_language_asked_for_or_else_in_english_saying_so():
    shown = CATALOGUE.show("depression", "es")
    assert shown is not None and (shown.material.id, shown.fell_back) == ("edu-depression-es", False)
    by_id = CATALOGUE.show("edu-crisis-line-es")
    assert by_id is not None and (by_id.material.language, by_id.fell_back) == ("es", False)
    in_another = CATALOGUE.show("edu-crisis-line-es", "en")
    assert in_another is not None and in_another.material.id == "edu-crisis-line-en"
    somali = CATALOGUE.show("edu-safety-planning-so")
    assert somali is not None
    assert (somali.material.id, somali.requested_language, somali.fell_back) == (
        "edu-safety-planning-en",
        "so",
        True,
    )
    assert CATALOGUE.show("safety-planning") is not None
    assert CATALOGUE.show("edu-nothing-en") is None and CATALOGUE.show("nothing") is None


def test_a_material_reads_its_front_matter_and_keeps_the_markdown():
    material = parse_material(
        "depression",
        "en",
        "---\ntitle: Depression: what helps\nversion: 2\nreviewed: 2026-11-30\n---\n\n# Hi\n",
    )
    assert material == Material(
        topic="depression",
        language="en",
        title="Depression: what helps",
        version="2",
        reviewed=date(2026, 11, 30),
        markdown="# Hi\n",
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("# no front matter\n", "no front matter"),
        ("---\ntitle: T\nversion: 1\n---\n# x\n", "reviewed"),
        ("---\ntitle: T\nversion: 1\nreviewed: soon\n---\n# x\n", "reviewed"),
        ("---\ntitle: T\nversion: 1\nreviewed: 2026-11-30\nauthor: me\n---\n# x\n", "author"),
        ("---\ntitle T\n---\n# x\n", "not 'key: value'"),
    ],
)
def test_a_material_that_does_not_fit_stops_the_service_naming_the_file_and_why(text, why):
    with pytest.raises(InvalidMaterial, match=why) as refused:
        parse_material("depression", "en", text)
    assert "depression/en" in str(refused.value)


def test_the_service_does_not_start_without_every_topic_in_every_language(tmp_path: Path):
    materials = tmp_path / "education"
    shutil.copytree(DEFAULT_EDUCATION, materials)
    (materials / "crisis-line" / "es.md").unlink()
    with pytest.raises(MissingMaterials, match="crisis-line/es"):
        load_education(materials, LIBRARY)
    (materials / "Bad Topic").mkdir()
    (materials / "Bad Topic" / "en.md").write_text("---\ntitle: T\nversion: 1\nreviewed: 2026-11-30\n---\n")
    with pytest.raises(InvalidMaterial, match="Bad Topic/en"):
        load_education(materials, LIBRARY)
