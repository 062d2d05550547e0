-- When a booked appointment's time passed without the receiving agency saying whether the patient came, the
-- deadline sweep flags it (one ReferralOverdue "attendance" per booking); a new booking clears the flag.
ALTER TABLE referrals ADD COLUMN attendance_overdue_at timestamptz;
-- Only booked appointments not yet flagged: the chain's referrals, with no appointment, never enter it.
CREATE INDEX referrals_booked_unflagged ON referrals (appointment_starts_at)
    WHERE appointment_status = 'booked' AND attendance_overdue_at IS NULL;
