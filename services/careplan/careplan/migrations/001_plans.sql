-- What careplan knows of a patient's preferences (from intake's events; no identifying details).
CREATE TABLE patients (
    patient_id         uuid        PRIMARY KEY,
    agency_id          text        NOT NULL,
    preferred_language text,
    contact_preference text,
    updated_at         timestamptz NOT NULL
);

-- The current plan per patient and what it is drafted from.
CREATE TABLE plans (
    patient_id   uuid        PRIMARY KEY,
    plan_id      uuid        NOT NULL UNIQUE,
    agency_id    text        NOT NULL,
    version      int         NOT NULL,
    status       text        NOT NULL,
    assessments  jsonb       NOT NULL DEFAULT '{}',  -- latest result per instrument group
    services     jsonb       NOT NULL DEFAULT '[]',  -- service codes approved or chosen
    agreed_goals jsonb       NOT NULL DEFAULT '[]',  -- goal ids agreed with the care team
    overrides    jsonb       NOT NULL DEFAULT '{}',  -- preferences the care team recorded
    updated_at   timestamptz NOT NULL
);

-- Every version stays readable; versions are never changed or deleted.
CREATE TABLE plan_versions (
    plan_id         uuid        NOT NULL REFERENCES plans (plan_id),
    version         int         NOT NULL,
    status          text        NOT NULL,
    document        jsonb       NOT NULL,
    reason          text        NOT NULL,
    changed_by      text        NOT NULL,
    caused_by_event uuid,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (plan_id, version)
);
CREATE FUNCTION plan_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'plan_versions is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER plan_versions_append_only BEFORE UPDATE OR DELETE ON plan_versions
    FOR EACH ROW EXECUTE FUNCTION plan_versions_append_only();

-- The care team: supports' identifying details are held here only, never in events.
CREATE TABLE care_team_members (
    id           uuid        PRIMARY KEY,
    patient_id   uuid        NOT NULL,
    agency_id    text        NOT NULL,
    name         text        NOT NULL,
    relationship text        NOT NULL,
    role         text        NOT NULL,
    contact      text,
    status       text        NOT NULL CHECK (status IN ('active', 'inactive')),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX care_team_patient ON care_team_members (agency_id, patient_id, created_at);

CREATE TABLE contributions (
    id           uuid        PRIMARY KEY,
    patient_id   uuid        NOT NULL,
    agency_id    text        NOT NULL,
    member_id    uuid        NOT NULL REFERENCES care_team_members (id),
    kind         text        NOT NULL CHECK (kind IN ('note', 'agreed-goal', 'preference')),
    goal_id      uuid,
    note         text,
    preference   jsonb,
    plan_version int         NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX contributions_patient ON contributions (agency_id, patient_id, created_at);

CREATE TABLE service_requests (
    id                 uuid        PRIMARY KEY,
    patient_id         uuid        NOT NULL,
    agency_id          text        NOT NULL,
    plan_id            uuid        NOT NULL,
    service_code       text        NOT NULL,
    met                boolean     NOT NULL,
    failed_criteria    jsonb       NOT NULL,
    alternatives       jsonb       NOT NULL,
    criteria_version   text        NOT NULL,
    chosen_alternative text,
    chosen_at          timestamptz,
    requested_by       text        NOT NULL,
    created_at         timestamptz NOT NULL
);
CREATE INDEX service_requests_patient ON service_requests (agency_id, patient_id, created_at);

CREATE TABLE education_records (
    id              uuid        PRIMARY KEY,
    patient_id      uuid        NOT NULL,
    agency_id       text        NOT NULL,
    plan_id         uuid        NOT NULL,
    intervention_id uuid        NOT NULL,
    materials       jsonb       NOT NULL,
    language        text        NOT NULL,
    recorded_by     text        NOT NULL,
    provided_at     timestamptz NOT NULL
);
