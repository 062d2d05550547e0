"""The demo caseload the README's quick start loads: named care managers, each with patients."""

from collections import Counter

from careloop_cli.demo import AGENCIES, CARE_MANAGERS, caseload


def test_every_demo_patient_has_one_of_their_agencys_named_care_managers_and_each_has_patients():
    patients = caseload()
    assert all(p.details["care_manager_id"] in CARE_MANAGERS[p.agency] for p in patients)
    per_manager = Counter(p.details["care_manager_id"] for p in patients)
    assert set(per_manager) == {m for a in AGENCIES for m in CARE_MANAGERS[a]}
    assert min(per_manager.values()) >= 3


def test_the_demo_has_patients_whose_answers_make_safety_checks():
    phq9_item_9 = [
        p
        for p in caseload()
        for a in p.assessments
        if a["instrument"] == "phq-9" and a["answers"]["44260-8"] > 0
    ]
    assert phq9_item_9, "the demo shows no open safety check without a positive item 9"
