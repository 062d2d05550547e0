-- The status history's policy (006) without a subquery for the planner. Written as an inline EXISTS over
-- referrals, it was planned, with referrals' own policy inside it, on every statement over the history,
-- every insert included (every statement is planned for its own parameters: careloop_shared.db): on a
-- slow day, at 50 journeys a second, each history insert spent 0.38 ms planning and 0.27 ms executing.
-- Same rule, same rights:
-- - careloop's own work ('*': consumers, background steps) sees every referral, so the EXISTS held for
--   every row whose referral exists, which the foreign key guarantees for every row; it is not asked.
-- - any other session asks the function, which runs as its caller (not SECURITY DEFINER), so
--   referrals' policy still decides whether the referral, and so its history, is seen. Its one
--   statement is a primary-key probe and keeps the plan PostgreSQL settles on per session
--   (plan_cache_mode auto, here only), as intake's careloop_referred does (intake migration 009).
CREATE FUNCTION careloop_referral_seen(referral uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET plan_cache_mode = auto
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM referrals r WHERE r.id = referral);
END
$$;

DROP POLICY by_referral ON referral_status_history;
CREATE POLICY by_referral ON referral_status_history USING (
    current_setting('careloop.agency', true) = '*' OR careloop_referral_seen(referral_id)
);
