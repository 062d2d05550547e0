-- Row-level security by agency (careloop_shared.db): a query that forgets its agency filter finds
-- nothing of another agency's patients. Every table of careplan holds patient data, and each shows a
-- row to its agency only: careplan discloses nothing across agencies (a care team's members are people
-- named in the patient's record, not another agency's staff; a referral's receiving agency reads the
-- patient through intake, never here). Consumers and startup steps act for every agency ('*').
--   patients           preferences and safe contact channels
--   plans              the current plan and what it is drafted from
--   plan_versions      every version's document (agency_id added below, the plan's)
--   care_team_members  supports' names and contact details
--   care_team_changes  who added, changed or removed a member
--   contributions      the care team's notes, agreed goals and preferences
--   service_requests   necessity decisions
--   education_records  education given
-- Left without a policy (the kernel's, no agency column): schema_migrations (names of migrations),
-- outbox and inbox (events waiting to be published and those applied; read by the service's own relay
-- and consumer, which act for every agency).

-- A version carries its plan's agency, so its policy needs no look-up in plans; the composite key
-- makes it the plan's by construction. Versions are append-only: the backfill lifts that for itself.
ALTER TABLE plan_versions ADD COLUMN agency_id text;
ALTER TABLE plan_versions DISABLE TRIGGER plan_versions_append_only;
UPDATE plan_versions v SET agency_id = p.agency_id FROM plans p WHERE p.plan_id = v.plan_id;
ALTER TABLE plan_versions ENABLE TRIGGER plan_versions_append_only;
ALTER TABLE plan_versions ALTER COLUMN agency_id SET NOT NULL;
ALTER TABLE plans ADD CONSTRAINT plans_plan_id_agency_id_key UNIQUE (plan_id, agency_id);
ALTER TABLE plan_versions
    DROP CONSTRAINT plan_versions_plan_id_fkey,
    ADD CONSTRAINT plan_versions_plan_id_agency_id_fkey
        FOREIGN KEY (plan_id, agency_id) REFERENCES plans (plan_id, agency_id);

-- FORCE: the policies hold for the tables' owner too (the service's own role). Without WITH CHECK the
-- USING expression also checks every row inserted or updated.
ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON patients USING (careloop_visible(agency_id));

ALTER TABLE plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE plans FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON plans USING (careloop_visible(agency_id));

ALTER TABLE plan_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE plan_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON plan_versions USING (careloop_visible(agency_id));

ALTER TABLE care_team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE care_team_members FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON care_team_members USING (careloop_visible(agency_id));

ALTER TABLE care_team_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE care_team_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON care_team_changes USING (careloop_visible(agency_id));

ALTER TABLE contributions ENABLE ROW LEVEL SECURITY;
ALTER TABLE contributions FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON contributions USING (careloop_visible(agency_id));

ALTER TABLE service_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE service_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON service_requests USING (careloop_visible(agency_id));

ALTER TABLE education_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE education_records FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON education_records USING (careloop_visible(agency_id));
