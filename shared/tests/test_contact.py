import re
from urllib.parse import urlsplit

import pytest
from pydantic import TypeAdapter, ValidationError

from careloop_shared.contact import Email, Phone, Url

URL, EMAIL, PHONE = TypeAdapter(Url), TypeAdapter(Email), TypeAdapter(Phone)

GOOD_URLS = [
    "https://example.org",
    "http://food-bank.example.org:8080/path/to?q=1&r=2#top",
    "https://xn--bcher-kva.example/café",  # the path may be any text without spaces
    "https://bücher.example/",  # an internationalised host as people type it
    "https://my_site.example.org",
    "https://localhost/",
    "https://192.0.2.10/intake",
]
BAD_URLS = [
    "https://\U0010053eó\U000e1238Å\x10]\x84Õß",  # what a fuzzer stored once, and a URL parser then choked on
    "https://[::1]/",
    "https://[1:2]/",
    "https://user:pw@example.org",
    "https://exa mple.org",
    "https://example.org/a\x10b",
    "https://example.org/a\x85b",
    "ftp://example.org",
    "https://example.org\\evil.example",
    "https://example.org:123456",
    "https://",
    "example.org",
]


@pytest.mark.parametrize("value", GOOD_URLS)
def test_a_web_address_a_person_would_type_is_kept_as_typed(value):
    assert URL.validate_python(value) == value
    parts = urlsplit(value)  # and whatever reads it back can parse it
    assert parts.scheme in ("http", "https") and parts.hostname


@pytest.mark.parametrize("value", BAD_URLS)
def test_a_web_address_no_link_or_parser_could_use_is_refused(value):
    with pytest.raises(ValidationError):
        URL.validate_python(value)


def test_the_documented_pattern_is_the_one_enforced():
    pattern = URL.json_schema()["pattern"]
    assert [v for v in GOOD_URLS if not re.search(pattern, v)] == []
    assert [v for v in BAD_URLS if re.search(pattern, v)] == []


@pytest.mark.parametrize("value", ["a@b.org", "ana.lopez+food@mail.example.org", "renée@exemple.fr"])
def test_an_email_address_is_kept_as_typed(value):
    assert EMAIL.validate_python(value) == value


@pytest.mark.parametrize(
    "value", ["a\x10@b.org", "a@b\x85.org", "a\x7f@b.org", "a b@c.org", "a@b", "@b.org", "a@@b.org"]
)
def test_an_email_address_with_a_control_character_space_or_no_domain_is_refused(value):
    with pytest.raises(ValidationError):
        EMAIL.validate_python(value)


def test_a_phone_number_is_digits_and_the_usual_separators():
    assert PHONE.validate_python("+1 (555) 010-0100") == "+1 (555) 010-0100"
    with pytest.raises(ValidationError):
        PHONE.validate_python("call me")
