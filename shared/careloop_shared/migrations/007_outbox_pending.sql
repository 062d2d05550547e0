-- What the relay has still to publish, apart from the outbox: one small row a pending event, inserted with
-- it (by the trigger that also wakes the relay) and deleted once it is published. The outbox row itself is
-- never touched again: before, marking it published rewrote the whole row, its payload too, with new
-- entries in its indexes, about half of what an event cost PostgreSQL on its way out (README, Performance).
-- published_at: set by relays before this migration; now an event is published when it is not pending.
-- Positions only, no agency and no patient data: no row-level security policy, as for outbox and inbox (005).
CREATE TABLE outbox_pending (
    position bigint PRIMARY KEY
);
INSERT INTO outbox_pending (position) SELECT position FROM outbox WHERE published_at IS NULL;
DROP INDEX outbox_unpublished;

-- Still one notification per INSERT statement, delivered at commit; a row written as published already
-- (published_at given) is not pending.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (position) SELECT position FROM inserted WHERE published_at IS NULL;
    PERFORM pg_notify('careloop_outbox', '');
    RETURN NULL;
END $$;
DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
