-- The channels the patient marked safe to be contacted through (from intake's events); NULL when the
-- patient has not said, which for an interpersonal-safety need counts as none being safe.
ALTER TABLE patients ADD COLUMN safe_channels jsonb;

-- How education was given: which version of each material (in the order of materials), through which
-- channel, and whether the patient explained it back (teach-back). Rows from before name none.
ALTER TABLE education_records
    ADD COLUMN material_versions    jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN channel              text CHECK (channel IN ('in-person', 'phone', 'text', 'email', 'mail')),
    ADD COLUMN teach_back_confirmed boolean;
CREATE INDEX education_records_patient ON education_records (agency_id, patient_id, provided_at);
