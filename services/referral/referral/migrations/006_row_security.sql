-- Row-level security by agency (careloop_shared.db: AGENCY; the kernel's careloop_visible). A request
-- sees the rows of its caller's agency; consumers and background steps act for every agency ('*').
--
-- Patient data, each with a policy:
--   referrals               the patient's (referring) agency; the receiving agency once it was sent
--   referral_status_history through its referral: whoever sees the referral sees its history (notes too)
--   patients                the patient's agency (what intake told us of them)
--   consents                the patient's agency
--   plans                   the patient's agency
--   plan_interventions      its plan's agency (a column of its own, kept equal by its key)
--   network_gaps            the waiting patient's agency (a gap of no known agency: '*' only)
-- Not patient data, left without a policy:
--   organizations, locations, services, hsds_shared  the program directory, public to every agency
--   prospects, prospect_status_history               providers the network would like to have: read
--                                                    by every agency's supervisors and administrators
-- Wider reads the code makes on purpose (referral/row_security.py says why at each): a receiving
-- agency's rejection re-routes for the referring agency; an activated program refers every agency's
-- waiting patients; quality figures and the gap report count every agency's rows.

-- A gap recorded before its agency was kept: the agency of the patient's plan, else as intake told us,
-- else of their referrals (as gaps/store.py reads it), so that the patient's agency sees it.
UPDATE network_gaps g SET agency_id = coalesce(
    (SELECT agency_id FROM plans p WHERE p.patient_id = g.patient_id),
    (SELECT agency_id FROM patients p WHERE p.patient_id = g.patient_id),
    (SELECT agency_id FROM referrals r WHERE r.intervention_id = g.intervention_id LIMIT 1))
WHERE agency_id IS NULL;

ALTER TABLE referrals ENABLE ROW LEVEL SECURITY;
ALTER TABLE referrals FORCE ROW LEVEL SECURITY;
-- A waiting draft is the referring agency's alone, as the code's own filter has it (loop/store.py).
CREATE POLICY by_agency ON referrals
    USING (careloop_visible(agency_id) OR (careloop_visible(receiving_agency_id) AND status <> 'draft'));
-- Only the referring agency (or careloop's own work) makes a referral; the receiving one moves it.
CREATE POLICY made_by_referring_agency ON referrals AS RESTRICTIVE FOR INSERT
    WITH CHECK (careloop_visible(agency_id));

ALTER TABLE referral_status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral_status_history FORCE ROW LEVEL SECURITY;
-- The subquery is held by the referrals' policy: a primary-key probe per row.
CREATE POLICY by_referral ON referral_status_history
    USING (EXISTS (SELECT 1 FROM referrals r WHERE r.id = referral_status_history.referral_id));

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON patients USING (careloop_visible(agency_id));

ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE consents FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON consents USING (careloop_visible(agency_id));

ALTER TABLE plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE plans FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON plans USING (careloop_visible(agency_id));

-- A plan's interventions carry its agency (set with them, as the plan event names it): a policy through
-- the plan cost a re-planned subquery on every plan event. The key makes it the plan's agency, always.
ALTER TABLE plan_interventions ADD COLUMN agency_id text;
UPDATE plan_interventions i SET agency_id = p.agency_id FROM plans p WHERE p.patient_id = i.patient_id;
ALTER TABLE plan_interventions ALTER COLUMN agency_id SET NOT NULL;
ALTER TABLE plans ADD CONSTRAINT plans_agency UNIQUE (patient_id, agency_id);
ALTER TABLE plan_interventions
    DROP CONSTRAINT plan_interventions_patient_id_fkey,
    ADD CONSTRAINT plan_interventions_plan FOREIGN KEY (patient_id, agency_id)
        REFERENCES plans (patient_id, agency_id) ON UPDATE CASCADE;

ALTER TABLE plan_interventions ENABLE ROW LEVEL SECURITY;
ALTER TABLE plan_interventions FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON plan_interventions USING (careloop_visible(agency_id));

ALTER TABLE network_gaps ENABLE ROW LEVEL SECURITY;
ALTER TABLE network_gaps FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON network_gaps USING (careloop_visible(agency_id));
