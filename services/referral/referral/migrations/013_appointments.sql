-- The referred patient's appointment with the receiving program, as the receiving agency booked it and said
-- how it went (booked, fulfilled, noshow, cancelled): one at a time per referral, its history the events.
ALTER TABLE referrals ADD COLUMN appointment_status text
    CHECK (appointment_status IN ('booked', 'fulfilled', 'noshow', 'cancelled'));
ALTER TABLE referrals ADD COLUMN appointment_starts_at timestamptz;
