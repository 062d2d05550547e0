-- Members and notes written before 006 keep their text in the clear until careplan's background step
-- seals them (careplan/team/handlers.py, seal_free_text_in_the_clear): a migration has no key to seal
-- with. These indexes are what the step walks, in id order; they empty as it seals, so once every row is
-- sealed a round costs two empty index scans. Their predicates are TeamStore's (careplan/team/store.py).
CREATE INDEX care_team_members_in_the_clear ON care_team_members (id)
    WHERE sealed_details IS NULL AND (name <> '' OR contact IS NOT NULL);
CREATE INDEX contributions_in_the_clear ON contributions (id) WHERE note IS NOT NULL;
