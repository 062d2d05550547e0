-- The care team's free text sealed with the patient's data key (careloop_shared.patient_keys), so that
-- intake destroying the key on erasure makes it unreadable in every copy: replicas and backups too.
-- New rows keep a member's name and contact only in sealed_details and a note only in sealed_note (the
-- columns in the clear stay NULL); rows from before keep theirs in the clear and read as they are.
-- Erasure blanks both kinds: name '' (the erased marker), every other one NULL.
ALTER TABLE care_team_members
    ADD COLUMN sealed_details jsonb,
    ALTER COLUMN name DROP NOT NULL,
    ADD CONSTRAINT care_team_members_sealed_or_in_the_clear CHECK (
        CASE WHEN sealed_details IS NULL THEN name IS NOT NULL ELSE name IS NULL AND contact IS NULL END
    );

ALTER TABLE contributions
    ADD COLUMN sealed_note jsonb,
    ADD CONSTRAINT contributions_sealed_or_in_the_clear CHECK (sealed_note IS NULL OR note IS NULL);
