-- Each patient's care manager as followup last heard of it: the newest assignment wins (assigned_at).
CREATE TABLE patients (
    patient_id      uuid        PRIMARY KEY,
    agency_id       text        NOT NULL,
    care_manager_id text,
    assigned_at     timestamptz NOT NULL
);
CREATE INDEX patients_caseload ON patients (agency_id, care_manager_id);

-- How the plan says follow-ups reach the patient (null: the patient's preference, or phone).
ALTER TABLE patient_plans ADD COLUMN channel text;
ALTER TABLE follow_ups ADD COLUMN channel text;

-- Units of work for a person or a role, one per kind and cause.
CREATE TABLE tasks (
    id                     uuid        PRIMARY KEY,
    kind                   text        NOT NULL,
    cause_key              text        NOT NULL,
    patient_id             uuid        NOT NULL,
    agency_id              text        NOT NULL,
    subject                text        NOT NULL,  -- what it is about, as the events resolving it name it
    cause_event_id         uuid        NOT NULL,
    cause_event_type       text        NOT NULL,
    cause_at               timestamptz NOT NULL,
    referral_id            uuid,
    follow_up_id           uuid,
    assessment_id          uuid,
    intervention_id        uuid,
    instrument             text,
    priority               text        NOT NULL,
    priority_rank          int         NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('open', 'in-progress', 'done', 'cancelled')),
    due_at                 timestamptz NOT NULL,
    escalate_at            timestamptz,
    escalated_at           timestamptz,
    for_role               text        NOT NULL,  -- whose work it is by the rules; stays when escalated
    assignee_id            text,
    assignee_role          text        NOT NULL,
    closed_at              timestamptz,
    closed_by              text,
    closed_by_role         text,
    closed_reason          text,
    resolved_by_event_id   uuid,
    resolved_by_event_type text,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    UNIQUE (kind, cause_key)
);
CREATE INDEX tasks_active_about ON tasks (patient_id, kind, subject) WHERE status IN ('open', 'in-progress');
CREATE INDEX tasks_to_escalate ON tasks (escalate_at)
    WHERE escalated_at IS NULL AND status IN ('open', 'in-progress');
CREATE INDEX tasks_list ON tasks (agency_id, priority_rank, due_at);
CREATE INDEX tasks_by_patient ON tasks (patient_id);

-- What resolved tasks about what, so a cause arriving after its resolution never opens a task.
CREATE TABLE task_resolutions (
    patient_id  uuid        NOT NULL,
    kind        text        NOT NULL,
    subject     text        NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    resolved_at timestamptz NOT NULL,
    any_time    boolean     NOT NULL,
    PRIMARY KEY (patient_id, kind, subject, event_id)
);
