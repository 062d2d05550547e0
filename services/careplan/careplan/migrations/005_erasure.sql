-- Patients intake erased (PatientErased). Their care team's names and contact details and the team's
-- notes are blanked when the event arrives; this row is why new ones are refused (410) from then on.
CREATE TABLE erased_patients (
    patient_id uuid        PRIMARY KEY,
    agency_id  text        NOT NULL,
    erased_at  timestamptz NOT NULL
);

ALTER TABLE erased_patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE erased_patients FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON erased_patients USING (careloop_visible(agency_id));
