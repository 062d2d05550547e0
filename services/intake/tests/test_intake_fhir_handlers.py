"""The import of a FHIR QuestionnaireResponse against the fake store: the native assessment command."""

from datetime import date

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from careloop_shared.contracts import ContactPreference, PatientAssessed
from careloop_shared.testing.fakes import run
from intake import handlers
from intake.domain.commands import AssessPatient, RegisterPatient
from intake.erasure.handlers import revealed
from intake.erasure.keys import open_assessment
from intake.fhir import assessments
from intake.fhir.handlers import import_assessment
from intake.fhir.imports import imported_answers
from intake.fhir.schemas import QuestionnaireResponseIn


def qr_body(qr: dict) -> QuestionnaireResponseIn:
    return QuestionnaireResponseIn.model_validate({k: v for k, v in qr.items() if k != "author"})


BY = {"by": "cm-ana", "by_role": "care-manager"}


async def test_an_imported_screening_is_the_native_assessment_command_and_event(ctx, store):
    registration = RegisterPatient(
        "agency-a", "Ana", "Ruiz", date(1970, 1, 1), "en", ContactPreference.phone, phone="+1 555 0199", **BY
    )
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration)
    answers = dict.fromkeys(ctx.rules.instruments["phq-9"].items, 2)
    native_command = AssessPatient("agency-a", patient_id, "phq-9", answers, **BY)
    native_id, native = await run(handlers.assess_patient, ctx, store, native_command)
    [stored] = await revealed(ctx, store, "agency-a", [store.assessments[native_id]])  # answers sealed
    qr = assessments.questionnaire_response(stored, ctx.rules)
    instrument, imported = imported_answers(qr_body(qr), ctx.rules)
    command = AssessPatient("agency-a", patient_id, instrument, imported, **BY)
    assert command == native_command

    answered, uow = await run(import_assessment, ctx, store, command)
    [by_import], [by_native] = uow.events(PatientAssessed), native.events(PatientAssessed)
    same = {"assessment_id", "assessed_at", "sealed"}  # sealed: the same answers under a new nonce
    assert by_import.model_dump(exclude=same) == by_native.model_dump(exclude=same)
    data_key = ctx.keys.data_key(patient_id, await store.keys.get("agency-a", patient_id))
    assert open_assessment(data_key, patient_id, by_import.sealed.model_dump()) == open_assessment(
        data_key, patient_id, by_native.sealed.model_dump()
    )
    assert QuestionnaireResponse.model_validate(answered).id == str(by_import.assessment_id)
    assert answered["item"] == qr["item"]
