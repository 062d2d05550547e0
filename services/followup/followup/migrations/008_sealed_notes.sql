-- An outcome's note sealed with the patient's data key (careloop_shared.patient_keys, the key intake
-- holds), so that erasing the patient by destroying the key reaches this database's replicas and backups
-- too. A new row keeps its note here only, its plaintext column NULL; rows recorded before keep their
-- plaintext note until erasure blanks it (007). Never both.
ALTER TABLE follow_up_outcomes ADD COLUMN note_sealed jsonb;
ALTER TABLE follow_up_outcomes ADD CONSTRAINT follow_up_outcomes_note_kept_once
    CHECK (note IS NULL OR note_sealed IS NULL);
