-- The care manager responsible for the patient (their identity provider's subject id): null on
-- patients registered before this was kept, until a supervisor assigns one. And the channels the
-- patient marked safe to be contacted through (a JSON array of codes; null: they have not said).
ALTER TABLE patients
    ADD COLUMN care_manager_id text,
    ADD COLUMN safe_channels   jsonb CHECK (safe_channels IS NULL OR jsonb_typeof(safe_channels) = 'array');

-- Who made whom responsible, when and why: one row per assignment, at registration or reassignment.
CREATE TABLE care_manager_assignments (
    id                       uuid        PRIMARY KEY,
    patient_id               uuid        NOT NULL REFERENCES patients (id),
    agency_id                text        NOT NULL,
    care_manager_id          text        NOT NULL,
    previous_care_manager_id text,
    reason                   text        NOT NULL CHECK (reason IN ('registration', 'reassignment')),
    reason_code              text,       -- the supervisor's coded reason for a reassignment, when given
    assigned_at              timestamptz NOT NULL,
    assigned_by              text        NOT NULL,
    assigned_by_role         text        NOT NULL,
    position                 bigint      GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX care_manager_assignments_patient ON care_manager_assignments (patient_id, position);
