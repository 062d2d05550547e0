-- A goal in the patient's own words put in new words: a contribution of its own kind naming the goal, the
-- words its sealed note (the plan keeps only the goal's code, so no new version).
ALTER TABLE contributions DROP CONSTRAINT contributions_kind_check;
ALTER TABLE contributions ADD CONSTRAINT contributions_kind_check
    CHECK (kind IN ('note', 'agreed-goal', 'preference', 'stated-need', 'need-withdrawn', 'personal-goal',
                    'goal-reworded'));
