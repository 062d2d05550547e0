-- A goal the patient set in their own words with the care team: a plan input (which goal, for which need,
-- due when), its words the contribution's sealed note, the contribution's id the goal's.
ALTER TABLE plans ADD COLUMN personal_goals jsonb NOT NULL DEFAULT '[]';
ALTER TABLE contributions DROP CONSTRAINT contributions_kind_check;
ALTER TABLE contributions ADD CONSTRAINT contributions_kind_check
    CHECK (kind IN ('note', 'agreed-goal', 'preference', 'stated-need', 'personal-goal'));
