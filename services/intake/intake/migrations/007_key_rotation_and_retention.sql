-- Re-wrapping the patients' data keys under the current key-encryption key (intake/erasure/rotation.py)
-- finds those still wrapped by an older one, and counts them per key, through this index.
CREATE INDEX patient_keys_kek ON patient_keys (kek_id, patient_id) WHERE wrapped IS NOT NULL;

-- The retention rules applied (intake/erasure/retention.py): one row per run, one run under way at a
-- time. Every rule's period counts back from started_at; the run walks the patients by id, after_patient
-- saying how far it came, so a run of many batches goes on where it stopped. No patient data here: who
-- was erased, by which rule and version, is in patient_keys (erased_by, erasure_reason).
CREATE TABLE retention_runs (
    id            uuid        PRIMARY KEY,
    rules_version text        NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    after_patient uuid,
    examined      int         NOT NULL DEFAULT 0,
    erased        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(erased) = 'object')
);
CREATE UNIQUE INDEX retention_runs_under_way ON retention_runs ((true)) WHERE finished_at IS NULL;
CREATE INDEX retention_runs_started ON retention_runs (started_at);

-- A case's last activity is read per patient; its referrals too (003 indexes only the open ones).
CREATE INDEX referral_grants_patient ON referral_grants (patient_id);
