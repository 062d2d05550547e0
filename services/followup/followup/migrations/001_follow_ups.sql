CREATE TABLE follow_ups (
    id          uuid        PRIMARY KEY,
    patient_id  uuid        NOT NULL,
    agency_id   text        NOT NULL,
    reason      text        NOT NULL CHECK (reason IN ('plan-cadence', 'referral-check-in')),
    plan_id     uuid,
    referral_id uuid        UNIQUE,
    priority    text        NOT NULL,
    due_at      timestamptz NOT NULL,
    status      text        NOT NULL CHECK (status IN ('scheduled', 'due', 'completed', 'overdue', 'cancelled')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
-- A plan revision reschedules the pending cadence follow-up instead of piling up new ones.
CREATE UNIQUE INDEX follow_ups_one_pending_cadence ON follow_ups (patient_id)
    WHERE reason = 'plan-cadence' AND status = 'scheduled';
CREATE INDEX follow_ups_scheduled_due ON follow_ups (due_at) WHERE status = 'scheduled';
CREATE INDEX follow_ups_patient ON follow_ups (agency_id, patient_id, due_at);
