-- The case record: each patient's events, appended once, hash-chained. Never updated, never deleted.
CREATE TABLE record_entries (
    patient_id     uuid        NOT NULL,
    seq            bigint      NOT NULL,
    event_id       uuid        NOT NULL UNIQUE,
    event_type     text        NOT NULL,
    source         text        NOT NULL,
    agency_id      text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    correlation_id uuid        NOT NULL,
    causation_id   uuid,
    body           bytea       NOT NULL,  -- the event's JSON exactly as it was published
    prev_hash      bytea       NOT NULL,
    hash           bytea       NOT NULL,
    PRIMARY KEY (patient_id, seq)
);
CREATE INDEX record_entries_type_time ON record_entries (patient_id, event_type, occurred_at);

CREATE FUNCTION record_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the case record is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER record_entries_no_update_delete BEFORE UPDATE OR DELETE ON record_entries
    FOR EACH ROW EXECUTE FUNCTION record_entries_append_only();
CREATE TRIGGER record_entries_no_truncate BEFORE TRUNCATE ON record_entries
    FOR EACH STATEMENT EXECUTE FUNCTION record_entries_append_only();

-- The head of each patient's chain: where the next entry links to. Verify checks it against the entries.
CREATE TABLE record_heads (
    patient_id uuid   PRIMARY KEY,
    seq        bigint NOT NULL,
    hash       bytea  NOT NULL
);
