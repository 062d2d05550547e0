-- The notes kept in the clear before 008, in the order the background step seals them
-- (erasure/handlers.py); it empties as they are sealed, and no new note is written in the clear.
CREATE INDEX referral_status_history_in_the_clear ON referral_status_history (position) WHERE note IS NOT NULL;
