-- A need the care team raised, withdrawn when it is no longer the patient's: a contribution of its own kind.
ALTER TABLE contributions DROP CONSTRAINT contributions_kind_check;
ALTER TABLE contributions ADD CONSTRAINT contributions_kind_check
    CHECK (kind IN ('note', 'agreed-goal', 'preference', 'stated-need', 'need-withdrawn', 'personal-goal'));
