CREATE TABLE patients (
    id                 uuid        PRIMARY KEY,
    agency_id          text        NOT NULL,
    given_name         text        NOT NULL,
    family_name        text        NOT NULL,
    birth_date         date        NOT NULL,
    preferred_language text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patients_agency ON patients (agency_id, created_at);

CREATE TABLE assessments (
    id            uuid        PRIMARY KEY,
    patient_id    uuid        NOT NULL REFERENCES patients (id),
    agency_id     text        NOT NULL,
    instrument    text        NOT NULL,
    rules_version text        NOT NULL,
    answers       jsonb       NOT NULL,
    total_score   int,
    needs         jsonb       NOT NULL,
    risk_level    text        NOT NULL,
    urgent_flags  jsonb       NOT NULL,
    assessed_at   timestamptz NOT NULL
);
CREATE INDEX assessments_patient ON assessments (patient_id, assessed_at);
