-- Who chose the program: careloop's ranking ('automatic': from a plan, a re-route, a filled gap) or a
-- care manager by hand ('by-hand'); and the person whose action made the referral (null: careloop's own).
ALTER TABLE referrals
    ADD COLUMN choice       text NOT NULL DEFAULT 'automatic' CHECK (choice IN ('automatic', 'by-hand')),
    ADD COLUMN made_by      text,
    ADD COLUMN made_by_role text;
CREATE INDEX referrals_intervention ON referrals (intervention_id);

-- What referral knows of each patient's current care plan (from PlanUpdated): a hand-made referral
-- must be for one of its interventions. An older version arriving late changes nothing.
CREATE TABLE plans (
    patient_id         uuid        PRIMARY KEY,
    agency_id          text        NOT NULL,
    plan_id            uuid        NOT NULL,
    version            int         NOT NULL,
    status             text        NOT NULL,
    updated_at         timestamptz NOT NULL
);

CREATE TABLE plan_interventions (
    intervention_id  uuid    PRIMARY KEY,
    patient_id       uuid    NOT NULL REFERENCES plans (patient_id),
    need             text    NOT NULL,
    kind             text    NOT NULL,
    program_category text,
    needs_referral   boolean NOT NULL,
    status           text    NOT NULL,
    priority         text    NOT NULL,
    language         text    -- the intervention's, else the plan's preferred language
);
CREATE INDEX plan_interventions_patient ON plan_interventions (patient_id);

-- A gap keeps what routing needs to make its referral once a program appears (a recruited provider
-- activated). Gaps recorded before this migration have none of it: the report shows them, and
-- activation re-routes them only when the patient's plan (plan_interventions) or agency (patients)
-- is known since; the plan's next version retries them in any case.
-- detected_at is since when the patient waits: a gap that re-opens (its referral rejected again)
-- waits from then.
ALTER TABLE network_gaps
    ADD COLUMN agency_id text,
    ADD COLUMN plan_id   uuid,
    ADD COLUMN priority  text;
UPDATE network_gaps g SET agency_id = p.agency_id FROM patients p WHERE p.patient_id = g.patient_id;
CREATE INDEX network_gaps_open ON network_gaps (program_category, need, detected_at)
    WHERE resolved_at IS NULL;

-- The recruitment pipeline: providers the network would like to have, until they join the directory.
CREATE TABLE prospects (
    id                      text        PRIMARY KEY,
    name                    text        NOT NULL,
    agency_id               text,
    description             text,
    url                     text,
    email                   text,
    phone                   text,
    program_categories      jsonb       NOT NULL,
    needs                   jsonb       NOT NULL,
    languages               jsonb       NOT NULL,
    interpretation_services boolean     NOT NULL,
    postal_prefixes         jsonb       NOT NULL,
    owner_id                text        NOT NULL,
    notes                   text,       -- the recruiter's free text: never in events or logs
    status                  text        NOT NULL
        CHECK (status IN ('prospect', 'contacted', 'onboarding', 'active', 'declined')),
    status_reason           text,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    changed_by              text        NOT NULL,
    changed_by_role         text        NOT NULL
);
CREATE INDEX prospects_status ON prospects (status, id);

CREATE TABLE prospect_status_history (
    position     bigserial   PRIMARY KEY,
    prospect_id  text        NOT NULL REFERENCES prospects (id),
    from_status  text,
    to_status    text        NOT NULL,
    reason       text,
    note         text,
    by_subject   text        NOT NULL,
    by_role      text        NOT NULL,
    by_agency_id text        NOT NULL,
    changed_at   timestamptz NOT NULL
);
CREATE INDEX prospect_status_history_prospect ON prospect_status_history (prospect_id, position);
