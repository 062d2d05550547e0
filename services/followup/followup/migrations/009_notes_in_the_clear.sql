-- Outcome notes recorded before notes were sealed (008) keep their plaintext until the background step
-- (followup.sealing) seals them with the patient's data key. What it walks, in (follow-up, attempt)
-- order; it empties as they are sealed, so once all are it finds none at once.
CREATE INDEX follow_up_outcomes_in_the_clear ON follow_up_outcomes (follow_up_id, attempt)
    WHERE note IS NOT NULL;
