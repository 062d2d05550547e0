-- The directory (after Open Referral HSDS): organizations, their locations, and services (programs).
CREATE TABLE organizations (
    id          text        PRIMARY KEY,
    agency_id   text        NOT NULL,
    name        text        NOT NULL,
    description text,
    url         text,
    email       text,
    phone       text,
    source      text        NOT NULL CHECK (source IN ('seed', 'api')),
    updated_at  timestamptz NOT NULL
);
CREATE INDEX organizations_agency ON organizations (agency_id);

CREATE TABLE locations (
    id              text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    location_type   text NOT NULL,
    postal_code     text
);
CREATE INDEX locations_organization ON locations (organization_id);

CREATE TABLE services (
    id                      text        PRIMARY KEY,
    organization_id         text        NOT NULL REFERENCES organizations (id),
    name                    text        NOT NULL,
    description             text,
    program_category        text        NOT NULL,
    needs                   jsonb       NOT NULL,
    status                  text        NOT NULL,
    languages               jsonb       NOT NULL,
    interpretation_services boolean     NOT NULL,
    eligibility             jsonb       NOT NULL,
    hours                   jsonb       NOT NULL,
    capacity_status         text        NOT NULL
        CHECK (capacity_status IN ('capacity', 'no-capacity', 'waitlist', 'additional-assessment-required')),
    capacity_notes          text,
    capacity_updated_at     timestamptz NOT NULL,
    contact                 jsonb       NOT NULL,
    location_ids            jsonb       NOT NULL,
    -- Rows changed through the API are the organisation's word: a later seed load leaves them alone.
    source                  text        NOT NULL CHECK (source IN ('seed', 'api')),
    updated_at              timestamptz NOT NULL
);
CREATE INDEX services_category ON services (program_category);

-- What referral knows of each patient: the non-identifying details intake's events carry.
CREATE TABLE patients (
    patient_id         uuid        PRIMARY KEY,
    agency_id          text        NOT NULL,
    preferred_language text,
    contact_preference text,
    postal_area        text,
    as_of              timestamptz NOT NULL
);

CREATE TABLE consents (
    id                 uuid        PRIMARY KEY,
    patient_id         uuid        NOT NULL,
    agency_id          text        NOT NULL,
    purpose            text        NOT NULL,
    agencies           jsonb       NOT NULL,
    program_categories jsonb       NOT NULL,
    period_start       timestamptz NOT NULL,
    period_end         timestamptz,
    revoked_at         timestamptz
);
CREATE INDEX consents_patient ON consents (patient_id);

-- A referral is a Task (the receiving agency's progress) on a ServiceRequest (what is asked);
-- a re-routed referral is a new Task on the same ServiceRequest.
ALTER TABLE referrals DROP CONSTRAINT referrals_intervention_id_key;
ALTER TABLE referrals
    ADD COLUMN service_request_id   uuid,
    ADD COLUMN program_category     text,
    ADD COLUMN priority             text NOT NULL DEFAULT 'routine',
    ADD COLUMN language             text,
    ADD COLUMN postal_area          text,
    ADD COLUMN status_reason        text,
    ADD COLUMN consent_id           uuid,
    ADD COLUMN replaces_referral_id uuid REFERENCES referrals (id),
    ADD COLUMN outcome              jsonb,
    ADD COLUMN made_at              timestamptz,
    ADD COLUMN outcome_due_at       timestamptz,
    ADD COLUMN response_overdue_at  timestamptz,
    ADD COLUMN outcome_overdue_at   timestamptz,
    ADD COLUMN accepted_at          timestamptz,
    ADD COLUMN closed_at            timestamptz,
    ADD COLUMN updated_at           timestamptz;
UPDATE referrals SET service_request_id = gen_random_uuid(), made_at = created_at, updated_at = created_at,
    outcome_due_at = created_at + interval '14 days';
ALTER TABLE referrals
    ALTER COLUMN service_request_id SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL,
    ALTER COLUMN response_due_at DROP NOT NULL;  -- a draft waiting for consent has no deadline yet
-- One intervention makes one referral however often the plan event arrives; each re-route one more.
CREATE UNIQUE INDEX referrals_one_per_intervention ON referrals (intervention_id)
    WHERE replaces_referral_id IS NULL;
CREATE UNIQUE INDEX referrals_one_reroute ON referrals (replaces_referral_id);
CREATE INDEX referrals_receiving ON referrals (receiving_agency_id, created_at);
CREATE INDEX referrals_service ON referrals (program_id);
CREATE INDEX referrals_open_response ON referrals (response_due_at)
    WHERE status = 'requested' AND response_overdue_at IS NULL;
CREATE INDEX referrals_open_outcome ON referrals (outcome_due_at)
    WHERE outcome_overdue_at IS NULL AND status IN ('requested', 'accepted', 'in-progress', 'on-hold');

CREATE TABLE referral_status_history (
    position     bigserial   PRIMARY KEY,
    referral_id  uuid        NOT NULL REFERENCES referrals (id),
    from_status  text,
    to_status    text        NOT NULL,
    by_agency_id text        NOT NULL,
    by_party     text        NOT NULL,
    reason       text,
    outcome      jsonb,
    note         text,       -- free text: shown to both agencies, never put in events or logs
    changed_at   timestamptz NOT NULL
);
CREATE INDEX referral_status_history_referral ON referral_status_history (referral_id, position);

-- Interventions for which no eligible program existed: reported once, retried on every plan version.
CREATE TABLE network_gaps (
    intervention_id  uuid        PRIMARY KEY,
    patient_id       uuid        NOT NULL,
    need             text        NOT NULL,
    program_category text,
    postal_area      text,
    language         text,
    detected_at      timestamptz NOT NULL,
    resolved_at      timestamptz
);
