-- The outcome and reschedule policies (006) without a subquery for the planner, as referral's status
-- history has it (referral migration 010): written as an inline EXISTS over follow_ups, each was planned,
-- with follow_ups' own policy inside it, on every statement over those tables, every insert included.
-- Same rule, same rights:
-- - careloop's own work ('*') sees every follow-up, so the EXISTS held for every row whose follow-up
--   exists, which the foreign key guarantees for every row; it is not asked.
-- - any other session asks the function, which runs as its caller (not SECURITY DEFINER), so
--   follow_ups' policy still decides whether the follow-up, and so its outcomes and moves, are seen.
--   Its one statement is a primary-key probe and keeps the plan PostgreSQL settles on per session.
CREATE FUNCTION careloop_follow_up_seen(follow_up uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET plan_cache_mode = auto
AS $$
BEGIN
    RETURN EXISTS (SELECT FROM follow_ups f WHERE f.id = follow_up);
END
$$;

DROP POLICY by_follow_up ON follow_up_outcomes;
CREATE POLICY by_follow_up ON follow_up_outcomes USING (
    current_setting('careloop.agency', true) = '*' OR careloop_follow_up_seen(follow_up_id)
);

DROP POLICY by_follow_up ON follow_up_reschedules;
CREATE POLICY by_follow_up ON follow_up_reschedules USING (
    current_setting('careloop.agency', true) = '*' OR careloop_follow_up_seen(follow_up_id)
);
