-- An agency's referrals made in a period (GET /v1/referrals/summary) without reading every referral it made.
CREATE INDEX referrals_agency_created ON referrals (agency_id, created_at);
