-- Row-level security by agency (careloop_shared.db): a query that forgets its agency filter finds
-- nothing of another agency's case records. Every entry of a patient's chain carries the patient's
-- agency, so a chain is seen whole or not at all.
ALTER TABLE record_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE record_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON record_entries USING (careloop_visible(agency_id));
-- Not patient data, so without a policy: record_heads, record_witnessed and record_checkpoints hold
-- pseudonymous ids, positions and hashes (what the chains' integrity needs, nothing of their content).
