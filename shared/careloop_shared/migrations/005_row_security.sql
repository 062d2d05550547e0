-- Row-level security by agency (careloop_shared.db: AGENCY). careloop_visible(agency) is true when the
-- session's careloop.agency names that agency or is '*' (the service's own work: consumers, schedulers,
-- the audit writer); false, or null, when it names another or is unset, so a query that forgets its
-- agency filter finds nothing of another agency. An inlined SQL function: the planner sees through it.
CREATE FUNCTION careloop_visible(agency text) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT current_setting('careloop.agency', true) IN (agency, '*')
$$;

-- FORCE: the policies hold for the table's owner too (the service's own role owns its tables).
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
-- The reader's agency and the patient's: a supervisor sees every read of their agency's patients,
-- including another agency's (the accounting of disclosures).
CREATE POLICY by_agency ON audit_log USING (careloop_visible(agency_id) OR careloop_visible(patient_agency_id));

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON idempotency_keys USING (careloop_visible(scope));
