-- A batch's channel update (followup.store._set_channels), planned for the rows it is given at every call.
-- As a statement of the pool's sessions it was planned the way the session settles on (plan_cache_mode
-- auto, careloop_shared.db): after five calls PostgreSQL may keep one plan for every call, made for no
-- rows in particular. On a fresh platform that plan came from a table of a few hundred follow-ups never
-- analyzed: the named follow-ups outside (found by their ids, the agency policy's filter making the
-- planner expect one of them) and the given rows unnested again for each one, 500 passes over 500 rows
-- for a batch of 500 (about 110 ms where the hash join takes 12), until an analyze replaced it. Written
-- to probe each given row's follow-up by key instead, the generic plan of a table analyzed while it held
-- a few dozen rows scanned the whole table once for each given row. Planned at every call (the setting
-- below), it sees how many rows it is given and how large the table is now, and the planning costs a
-- fraction of a millisecond against the update's milliseconds (README, Performance). It runs as its
-- caller, so the policies decide what it finds, in the caller's transaction, whose batch has the
-- follow-ups locked already.
CREATE FUNCTION careloop_set_channels(follow_up_ids uuid[], channels text[], changed_at timestamptz[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
BEGIN
    -- The follow-ups by key (ANY) joined to the given rows: each finds its channel once; one whose
    -- channel stays what it was is not touched.
    UPDATE follow_ups f SET channel = r.channel, updated_at = r.at
    FROM unnest(follow_up_ids, channels, changed_at) AS r(id, channel, at)
    WHERE f.id = ANY(follow_up_ids) AND f.id = r.id AND f.channel IS DISTINCT FROM r.channel;
END
$$;
