-- A need the patient or their family raised with the care team, without a screening that found it: a plan
-- input beside the assessed needs (a need code of the plan library), and the contribution that stated it.
ALTER TABLE plans ADD COLUMN stated_needs jsonb NOT NULL DEFAULT '[]';
ALTER TABLE contributions DROP CONSTRAINT contributions_kind_check;
ALTER TABLE contributions ADD CONSTRAINT contributions_kind_check
    CHECK (kind IN ('note', 'agreed-goal', 'preference', 'stated-need'));
ALTER TABLE contributions ADD COLUMN need text;
