-- Wake the relay when events are written, without a round trip of the writer's own: one notification
-- per INSERT statement, delivered when the transaction commits (never for a rolled-back one).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('careloop_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
