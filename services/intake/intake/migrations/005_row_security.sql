-- Row-level security by agency (careloop_shared.db): a query that forgets its agency filter finds
-- nothing of another agency's patients. Every table of intake holds patient data:
--   patients                  names, birth date, contact details, safe channels, the care manager
--   consents                  what the patient agreed to share, with whom
--   assessments               answers, scores, needs and risk
--   care_manager_assignments  who made whom responsible for the patient
--   referral_grants           which agency a patient was referred to, for which need
-- Left without a policy (the kernel's, no agency column): schema_migrations (names of migrations),
-- outbox and inbox (events waiting to be published and those applied; read by the service's own relay
-- and consumer, which act for every agency). audit_log and idempotency_keys have the kernel's policies.
--
-- Across agencies, intake shows one thing: a receiving agency reads the minimum of a patient referred
-- to it while the referral is open (GET /v1/referred-patients). So the agency named by an open grant
-- may read (never write) the grant, the patient's row and the patient's consents, which decide whether
-- it may see them now. That is the ceiling; the code's rule (domain.referred.may_see: a consent must
-- cover it) and its column list (the name and one contact detail) narrow it. Grants are written by the
-- consumer of referral's events only, acting for every agency ('*').

-- The look-ups below find a patient's open grants by patient, or the agency's by agency (that index is
-- 003's referral_grants_open).
CREATE INDEX referral_grants_open_patient ON referral_grants (patient_id) WHERE ended_at IS NULL;

-- FORCE: the policies hold for the tables' owner too (the service's own role). Without WITH CHECK a
-- USING expression also checks every row inserted or updated. A table's permissive policies are or-ed
-- (in an order PostgreSQL does not promise), so the read-only one tests the agency's own rows first
-- itself: its look-up then runs for other agencies' rows only. The look-up compares the receiving
-- agency with the session's plainly, so an index finds the agency's open grants ('*' is covered by
-- the first test).
ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON patients USING (careloop_visible(agency_id));
CREATE POLICY referred_to ON patients FOR SELECT USING (
    careloop_visible(agency_id) OR EXISTS (
        SELECT 1 FROM referral_grants g
        WHERE g.patient_id = patients.id AND g.ended_at IS NULL
          AND g.receiving_agency_id = current_setting('careloop.agency', true)
    )
);

ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE consents FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON consents USING (careloop_visible(agency_id));
CREATE POLICY referred_to ON consents FOR SELECT USING (
    careloop_visible(agency_id) OR EXISTS (
        SELECT 1 FROM referral_grants g
        WHERE g.patient_id = consents.patient_id AND g.ended_at IS NULL
          AND g.receiving_agency_id = current_setting('careloop.agency', true)
    )
);

ALTER TABLE assessments ENABLE ROW LEVEL SECURITY;
ALTER TABLE assessments FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON assessments USING (careloop_visible(agency_id));

ALTER TABLE care_manager_assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE care_manager_assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON care_manager_assignments USING (careloop_visible(agency_id));

-- The patient's agency (as referral's event names it) sees its patients' grants; the receiving agency
-- sees its open ones.
ALTER TABLE referral_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON referral_grants USING (careloop_visible(patient_agency_id));
CREATE POLICY referred_to ON referral_grants FOR SELECT USING (
    ended_at IS NULL AND careloop_visible(receiving_agency_id)
);
