CREATE TABLE referrals (
    id                  uuid        PRIMARY KEY,
    patient_id          uuid        NOT NULL,
    agency_id           text        NOT NULL,
    plan_id             uuid        NOT NULL,
    -- One intervention makes one referral however often the plan event arrives.
    intervention_id     uuid        NOT NULL UNIQUE,
    need                text        NOT NULL,
    program_id          text        NOT NULL,
    receiving_agency_id text        NOT NULL,
    status              text        NOT NULL,
    response_due_at     timestamptz NOT NULL,
    created_at          timestamptz NOT NULL
);
CREATE INDEX referrals_patient ON referrals (agency_id, patient_id, created_at);
