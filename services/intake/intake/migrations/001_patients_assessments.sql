-- Identifying details live here and nowhere else in careloop.
CREATE TABLE patients (
    id                 uuid        PRIMARY KEY,
    agency_id          text        NOT NULL,
    given_name         text        NOT NULL,
    family_name        text        NOT NULL,
    name_key           text        NOT NULL,
    birth_date         date        NOT NULL,
    preferred_language text        NOT NULL,
    contact_preference text        NOT NULL,
    phone              text,
    email              text,
    postal_code        text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
-- Likely duplicates within an agency: same normalised name and birth date.
CREATE UNIQUE INDEX patients_likely_duplicate ON patients (agency_id, name_key, birth_date);
CREATE INDEX patients_agency ON patients (agency_id, created_at, id);

CREATE TABLE consents (
    id                 uuid        PRIMARY KEY,
    patient_id         uuid        NOT NULL REFERENCES patients (id),
    agency_id          text        NOT NULL,
    purpose            text        NOT NULL,
    agencies           jsonb       NOT NULL,
    program_categories jsonb       NOT NULL,
    period_start       timestamptz NOT NULL,
    period_end         timestamptz,
    status             text        NOT NULL CHECK (status IN ('active', 'revoked')),
    recorded_at        timestamptz NOT NULL,
    revoked_at         timestamptz
);
CREATE INDEX consents_patient ON consents (patient_id, recorded_at);

CREATE TABLE assessments (
    id                      uuid        PRIMARY KEY,
    patient_id              uuid        NOT NULL REFERENCES patients (id),
    agency_id               text        NOT NULL,
    instrument              text        NOT NULL,
    rules_version           text        NOT NULL,
    answers                 jsonb       NOT NULL,
    observations            jsonb       NOT NULL,
    total_score             int,
    interpretation          text,
    needs                   jsonb       NOT NULL,
    risk_level              text        NOT NULL,
    urgent_flags            jsonb       NOT NULL,
    recommended_instruments jsonb       NOT NULL,
    assessed_at             timestamptz NOT NULL
);
CREATE INDEX assessments_patient ON assessments (patient_id, assessed_at, id);
