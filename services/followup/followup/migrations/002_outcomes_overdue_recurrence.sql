-- Attempts, due points, grace periods, recurrence and the outcome/reschedule history.
ALTER TABLE follow_ups
    ADD COLUMN attempt           int         NOT NULL DEFAULT 1,
    ADD COLUMN due_point         int         NOT NULL DEFAULT 1,
    ADD COLUMN overdue_at        timestamptz,
    ADD COLUMN every_days        double precision,
    ADD COLUMN cadence_anchor_at timestamptz,
    ADD COLUMN overdue_since     timestamptz,
    ADD COLUMN completed_at      timestamptz,
    ADD COLUMN reassessment      text;
UPDATE follow_ups SET overdue_at = due_at + interval '1 day';
ALTER TABLE follow_ups ALTER COLUMN overdue_at SET NOT NULL;

ALTER TABLE follow_ups DROP CONSTRAINT follow_ups_reason_check;
ALTER TABLE follow_ups ADD CONSTRAINT follow_ups_reason_check
    CHECK (reason IN ('plan-cadence', 'referral-check-in', 'referral-outcome-check-in'));

-- A referral has one check-in after its response deadline and one after it is completed.
ALTER TABLE follow_ups DROP CONSTRAINT follow_ups_referral_id_key;
CREATE UNIQUE INDEX follow_ups_one_per_referral_reason ON follow_ups (referral_id, reason)
    WHERE referral_id IS NOT NULL;

-- One open cadence follow-up per patient: a plan revision or a recurrence never piles up another.
DROP INDEX follow_ups_one_pending_cadence;
CREATE UNIQUE INDEX follow_ups_one_open_cadence ON follow_ups (patient_id)
    WHERE reason = 'plan-cadence' AND status IN ('scheduled', 'due', 'overdue');
CREATE INDEX follow_ups_due_overdue_at ON follow_ups (overdue_at) WHERE status = 'due';
CREATE INDEX follow_ups_work_queue ON follow_ups (agency_id, status) WHERE status IN ('due', 'overdue');

-- The patient's current plan as followup last heard of it.
CREATE TABLE patient_plans (
    patient_id  uuid        PRIMARY KEY,
    agency_id   text        NOT NULL,
    plan_id     uuid        NOT NULL,
    version     int         NOT NULL,
    status      text        NOT NULL,
    risk_level  text        NOT NULL,
    priority    text        NOT NULL,
    every_days  double precision NOT NULL,
    goal_ids    uuid[]      NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- What each contact attempt found. The note is free text about the patient: it stays here, never
-- in events or logs.
CREATE TABLE follow_up_outcomes (
    follow_up_id  uuid        NOT NULL REFERENCES follow_ups (id),
    attempt       int         NOT NULL,
    reached       boolean     NOT NULL,
    goal_progress jsonb       NOT NULL,
    barriers      jsonb       NOT NULL,
    next_step     text,
    note          text,
    recorded_by   text        NOT NULL,
    recorded_at   timestamptz NOT NULL,
    PRIMARY KEY (follow_up_id, attempt)
);

CREATE TABLE follow_up_reschedules (
    follow_up_id uuid        NOT NULL REFERENCES follow_ups (id),
    due_point    int         NOT NULL,
    reason       text        NOT NULL,
    from_due_at  timestamptz NOT NULL,
    to_due_at    timestamptz NOT NULL,
    by_subject   text        NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (follow_up_id, due_point)
);
