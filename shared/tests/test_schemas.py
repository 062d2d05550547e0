import copy

from careloop_shared import schemas
from careloop_shared.contracts import PatientAssessed
from careloop_shared.events import REGISTRY


def test_committed_schemas_match_the_event_models():
    assert schemas.check() == []


def test_every_event_type_has_a_published_schema_file():
    assert {p.stem for p in schemas.SCHEMA_DIR.glob("*.json")} == set(REGISTRY)


def _current() -> dict:
    return schemas.resolved(schemas.schema_of(PatientAssessed))


def test_adding_an_optional_field_is_compatible():
    new = _current()
    new["properties"]["language"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert schemas.breaking_changes(_current(), new) == []


def test_widening_a_field_to_accept_null_is_compatible():
    new = _current()
    new["properties"]["instrument"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schemas.breaking_changes(_current(), new) == []


def test_removing_a_field_is_breaking():
    new = _current()
    del new["properties"]["instrument"]
    new["required"].remove("instrument")
    assert "$.instrument: removed or renamed" in schemas.breaking_changes(_current(), new)


def test_renaming_a_field_is_breaking():
    new = _current()
    new["properties"]["instrument_code"] = new["properties"].pop("instrument")
    new["required"] = [("instrument_code" if r == "instrument" else r) for r in new["required"]]
    problems = schemas.breaking_changes(_current(), new)
    assert "$.instrument: removed or renamed" in problems
    assert "$.instrument_code: new required field" in problems


def test_retyping_a_field_is_breaking():
    new = _current()
    new["properties"]["total_score"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schemas.breaking_changes(_current(), new) == ["$.total_score: type changed"]


def test_retyping_a_nested_field_is_breaking():
    new = copy.deepcopy(_current())
    new["properties"]["needs"]["items"]["properties"]["code"] = {"type": "integer"}
    assert schemas.breaking_changes(_current(), new) == ["$.needs[].code: type changed"]


def test_adding_a_required_field_is_breaking():
    new = _current()
    new["properties"]["site"] = {"type": "string"}
    new["required"].append("site")
    assert schemas.breaking_changes(_current(), new) == ["$.site: new required field"]


def test_removing_an_enum_value_is_breaking_adding_one_is_not():
    old = _current()
    narrowed = copy.deepcopy(old)
    narrowed["properties"]["risk_level"]["enum"].remove("urgent")
    widened = copy.deepcopy(old)
    widened["properties"]["risk_level"]["enum"].append("critical")
    assert schemas.breaking_changes(old, narrowed) == ["$.risk_level: enum value(s) removed: ['urgent']"]
    assert schemas.breaking_changes(old, widened) == []
