-- Erasure (intake's PatientErased). Of followup's columns only an outcome's note is free text about the
-- patient: it is blanked (NULL) by the handler. Everything else is a code, an id, a time, a status or a
-- number (reschedule and task reasons are codes the API checks; recorded_by, by_subject, closed_by,
-- assignee_id and care_manager_id are staff members' identity-provider ids), so the pseudonymous case
-- goes on. No table of followup is append-only, so no trigger needs a narrow exception.

-- Patients intake erased, so that no new note about them is kept (a command giving one answers 410).
CREATE TABLE erased_patients (
    patient_id uuid        PRIMARY KEY,
    agency_id  text        NOT NULL,
    erased_at  timestamptz NOT NULL
);

ALTER TABLE erased_patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE erased_patients FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON erased_patients USING (careloop_visible(agency_id));
