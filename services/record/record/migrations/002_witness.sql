-- Keys the database does not hold (record.domain.witness): each entry's MAC under a chain key from
-- configuration, and checkpoints of the chains' heads signed and published outside this database.
-- Entries written before this have no MAC; verify names them (python -m record.authenticate MACs the
-- chains that still verify).
ALTER TABLE record_entries ADD COLUMN mac_key text, ADD COLUMN mac bytea;

-- Setting a missing MAC is the one change the record allows, and only that: every other column as it was.
CREATE OR REPLACE FUNCTION record_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.mac IS NULL AND NEW.mac IS NOT NULL
       AND (to_jsonb(OLD) - 'mac' - 'mac_key') = (to_jsonb(NEW) - 'mac' - 'mac_key') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the case record is append-only: % refused', TG_OP;
END $$;

-- Every checkpoint this service signed, as published (a copy: the witness is the published one).
CREATE TABLE record_checkpoints (
    checkpoint   bigint      PRIMARY KEY,
    at           timestamptz NOT NULL,
    digest       bytea       NOT NULL,
    document     text        NOT NULL,
    published_at timestamptz
);

-- The latest signed head of each patient's chain, and the checkpoint that signed it.
CREATE TABLE record_witnessed (
    patient_id uuid   PRIMARY KEY,
    checkpoint bigint NOT NULL,
    seq        bigint NOT NULL,
    hash       bytea  NOT NULL
);
