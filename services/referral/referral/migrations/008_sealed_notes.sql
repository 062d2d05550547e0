-- A note of a referral's history sealed with the patient's data key (careloop_shared.patient_keys: the
-- key intake holds, asked for the referring agency, whose patient it is), so that erasing the patient by
-- destroying the key reaches this database's replicas and backups too. A new row keeps its note here
-- only, `note` NULL; rows written before keep their plaintext note until erasure blanks it (007).
ALTER TABLE referral_status_history ADD COLUMN note_sealed jsonb;
ALTER TABLE referral_status_history ADD CONSTRAINT referral_status_history_note_kept_once
    CHECK (note IS NULL OR note_sealed IS NULL);
