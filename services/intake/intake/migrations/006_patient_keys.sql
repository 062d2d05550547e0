-- Per-patient data keys (careloop_shared.crypto): each kept only wrapped by a key-encryption key from
-- configuration. Erasure destroys the wrapped key (wrapped and kek_id become null): everything it sealed,
-- in every database, topic, backup and replica, is unreadable from then on.
CREATE TABLE patient_keys (
    patient_id     uuid        PRIMARY KEY REFERENCES patients (id),
    agency_id      text        NOT NULL,
    version        int         NOT NULL DEFAULT 1,
    kek_id         text,
    wrapped        bytea,
    created_at     timestamptz NOT NULL,
    erased_at      timestamptz,
    erased_by      text,
    erased_by_role text,
    erasure_reason text,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL) AND (kek_id IS NULL) = (wrapped IS NULL))
);
ALTER TABLE patient_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON patient_keys USING (careloop_visible(agency_id));

-- An assessment's item-level answers, sealed with the patient's data key; `answers` and the items in
-- `observations` are no longer kept in the clear (rows written before this keep theirs).
ALTER TABLE assessments ADD COLUMN sealed jsonb;

-- When the patient's identifying details were erased (they are blanked in the same transaction).
ALTER TABLE patients ADD COLUMN erased_at timestamptz;
