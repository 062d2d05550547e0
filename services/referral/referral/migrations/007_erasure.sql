-- Patients intake erased (PatientErased). The free text written about them (the notes of their
-- referrals' history) is blanked when the event arrives; this row is why new notes are refused (410).
CREATE TABLE erased_patients (
    patient_id uuid        PRIMARY KEY,
    agency_id  text        NOT NULL,
    erased_at  timestamptz NOT NULL
);

ALTER TABLE erased_patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE erased_patients FORCE ROW LEVEL SECURITY;
-- The patient's agency, and an agency a referral of the patient was sent to (it may write notes too);
-- the subquery is held by the referrals' policy, an index probe on referrals_by_patient.
CREATE POLICY by_agency_or_referral ON erased_patients
    USING (careloop_visible(agency_id)
        OR EXISTS (SELECT 1 FROM referrals r WHERE r.patient_id = erased_patients.patient_id));
