-- Who made each change: the person (their identity provider's subject id) beside the role. Rows from
-- before this migration name no person (NULL); careloop's own changes name none either.

-- changed_by stays the role (or 'system'); the person who made the version:
ALTER TABLE plan_versions ADD COLUMN changed_by_subject text;

-- education_records.recorded_by stays the role:
ALTER TABLE education_records ADD COLUMN recorded_by_subject text;

ALTER TABLE contributions
    ADD COLUMN recorded_by_subject text,
    ADD COLUMN recorded_by_role    text;

-- service_requests.requested_by stays the role:
ALTER TABLE service_requests
    ADD COLUMN requested_by_subject text,
    ADD COLUMN chosen_by_subject    text,
    ADD COLUMN chosen_by_role       text;

-- Who added a member, and who changed them last; every change with its person is in care_team_changes.
ALTER TABLE care_team_members
    ADD COLUMN created_by_subject text,
    ADD COLUMN created_by_role    text,
    ADD COLUMN updated_by_subject text,
    ADD COLUMN updated_by_role    text;

CREATE TABLE care_team_changes (
    id                 uuid        PRIMARY KEY,
    member_id          uuid        NOT NULL REFERENCES care_team_members (id),
    patient_id         uuid        NOT NULL,
    agency_id          text        NOT NULL,
    change             text        NOT NULL CHECK (change IN ('added', 'changed', 'removed')),
    changed_by_subject text        NOT NULL,
    changed_by_role    text        NOT NULL,
    changed_at         timestamptz NOT NULL
);
CREATE INDEX care_team_changes_member ON care_team_changes (member_id, changed_at);
CREATE FUNCTION care_team_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'care_team_changes is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER care_team_changes_append_only BEFORE UPDATE OR DELETE ON care_team_changes
    FOR EACH ROW EXECUTE FUNCTION care_team_changes_append_only();
