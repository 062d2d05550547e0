-- What a caseload shows of each patient's plan: the needs of its goals not yet achieved.
ALTER TABLE patient_plans ADD COLUMN open_needs text[] NOT NULL DEFAULT '{}';
-- The last time the patient was reached, per patient, without scanning every outcome.
CREATE INDEX follow_up_outcomes_reached ON follow_up_outcomes (follow_up_id, recorded_at) WHERE reached;
