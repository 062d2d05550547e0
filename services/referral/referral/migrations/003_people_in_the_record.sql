-- Who made each change: the person (their identity provider's subject id, the token's sub) and their
-- role. Null when careloop did it on its own (a reaction to an event, a seed load) or before this was kept.
ALTER TABLE referral_status_history
    ADD COLUMN by_subject text,
    ADD COLUMN by_role    text;

ALTER TABLE organizations
    ADD COLUMN changed_by      text,
    ADD COLUMN changed_by_role text;

ALTER TABLE services
    ADD COLUMN changed_by               text,
    ADD COLUMN changed_by_role          text,
    -- Who last said whether the program can take referrals (moves with capacity_updated_at).
    ADD COLUMN capacity_changed_by      text,
    ADD COLUMN capacity_changed_by_role text;

-- Whose patient this is (the audit log asks), and a patient's waiting referrals.
CREATE INDEX referrals_by_patient ON referrals (patient_id);
