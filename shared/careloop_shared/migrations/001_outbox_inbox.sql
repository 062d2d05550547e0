-- Transactional outbox: events are written here in the same transaction as the state change.
-- History is kept: a row is only ever marked published, never deleted.
CREATE TABLE outbox (
    position     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    headers      jsonb       NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;

CREATE FUNCTION outbox_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'outbox is append-only: DELETE refused';
    END IF;
    IF OLD.published_at IS NOT NULL
       OR (NEW.position, NEW.event_id, NEW.event_type, NEW.topic, NEW.key, NEW.headers,
           NEW.payload, NEW.created_at)
          IS DISTINCT FROM
          (OLD.position, OLD.event_id, OLD.event_type, OLD.topic, OLD.key, OLD.headers,
           OLD.payload, OLD.created_at) THEN
        RAISE EXCEPTION 'outbox is append-only: only published_at may be set, once';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER outbox_append_only BEFORE UPDATE OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_append_only();

-- Idempotent consumer: an event id is recorded in the same transaction as its effects.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    topic        text        NOT NULL,
    partition    int         NOT NULL,
    "offset"     bigint      NOT NULL,
    outcome      text        NOT NULL DEFAULT 'processed',
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
