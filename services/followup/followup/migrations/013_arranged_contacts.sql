-- A contact a care manager arranged with the patient: a follow-up of its own reason, with what it is for
-- (a code from the rules; null for the follow-ups careloop schedules on its own).
ALTER TABLE follow_ups DROP CONSTRAINT follow_ups_reason_check;
ALTER TABLE follow_ups ADD CONSTRAINT follow_ups_reason_check
    CHECK (reason IN ('plan-cadence', 'referral-check-in', 'referral-outcome-check-in', 'arranged-contact'));
ALTER TABLE follow_ups ADD COLUMN purpose text;
