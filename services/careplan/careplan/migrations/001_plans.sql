-- The current plan per patient; every version stays readable in plan_versions.
CREATE TABLE plans (
    patient_id uuid        PRIMARY KEY,
    plan_id    uuid        NOT NULL UNIQUE,
    agency_id  text        NOT NULL,
    version    int         NOT NULL,
    status     text        NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE plan_versions (
    plan_id         uuid        NOT NULL REFERENCES plans (plan_id),
    version         int         NOT NULL,
    document        jsonb       NOT NULL,
    reason          text        NOT NULL,
    caused_by_event uuid,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (plan_id, version)
);
