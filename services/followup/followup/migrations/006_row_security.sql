-- Row-level security by agency (careloop_shared.db: AGENCY; careloop_visible in the kernel's 005). Every
-- table of followup holds patient data, so every one has a forced policy:
--   follow_ups, patient_plans, patients, tasks       by their agency_id
--   follow_up_outcomes, follow_up_reschedules         through their follow-up (a primary-key probe)
--   task_resolutions                                  by an agency_id added here (no parent row to go by)
-- No cross-agency rule: everything followup keeps belongs to the patient's agency (every event it
-- consumes names it), and only that agency's people see it; a receiving provider's agency is never shown
-- a check-in, a task or an outcome here. None of followup's tables is left without a policy; the kernel's
-- (outbox, inbox, schema_migrations) are the kernel's to decide.

-- What resolved a patient's tasks: the agency of the event that resolved them, as its tasks carry it.
-- Rows from before are given the patient's agency as followup knows it from its other tables (read
-- before any policy below holds them).
ALTER TABLE task_resolutions ADD COLUMN agency_id text;
UPDATE task_resolutions r SET agency_id = coalesce(
    (SELECT agency_id FROM patients p WHERE p.patient_id = r.patient_id),
    (SELECT agency_id FROM patient_plans pp WHERE pp.patient_id = r.patient_id),
    (SELECT agency_id FROM tasks t WHERE t.patient_id = r.patient_id LIMIT 1),
    (SELECT agency_id FROM follow_ups f WHERE f.patient_id = r.patient_id LIMIT 1)
);
-- A row of a patient known nowhere else keeps a null agency: seen by the service's own work ('*') only,
-- which is where a resolution is looked up for a consumed cause. Every new row names its agency.
ALTER TABLE task_resolutions ADD CONSTRAINT task_resolutions_agency_named CHECK (agency_id IS NOT NULL) NOT VALID;

ALTER TABLE follow_ups ENABLE ROW LEVEL SECURITY;
ALTER TABLE follow_ups FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON follow_ups USING (careloop_visible(agency_id));

ALTER TABLE patient_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_plans FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON patient_plans USING (careloop_visible(agency_id));

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON patients USING (careloop_visible(agency_id));

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON tasks USING (careloop_visible(agency_id));

-- An attempt's outcome (its note is free text about the patient) and a move are seen, and written, only
-- where their follow-up is: the subquery is itself held by follow_ups' policy.
ALTER TABLE follow_up_outcomes ENABLE ROW LEVEL SECURITY;
ALTER TABLE follow_up_outcomes FORCE ROW LEVEL SECURITY;
CREATE POLICY by_follow_up ON follow_up_outcomes
    USING (EXISTS (SELECT FROM follow_ups f WHERE f.id = follow_up_outcomes.follow_up_id));

ALTER TABLE follow_up_reschedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE follow_up_reschedules FORCE ROW LEVEL SECURITY;
CREATE POLICY by_follow_up ON follow_up_reschedules
    USING (EXISTS (SELECT FROM follow_ups f WHERE f.id = follow_up_reschedules.follow_up_id));

-- task_resolutions: the agency_id added above.
ALTER TABLE task_resolutions ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_resolutions FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON task_resolutions USING (careloop_visible(agency_id));
