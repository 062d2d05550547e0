-- The patient a kept response is about (from the request's path), so a patient's erasure can delete the
-- responses kept for replay: one could hold what a request sent (a care-team member's name).
ALTER TABLE idempotency_keys ADD COLUMN patient_id uuid;
CREATE INDEX idempotency_keys_patient ON idempotency_keys (patient_id) WHERE patient_id IS NOT NULL;
-- Kept responses are forgotten CARELOOP_IDEMPOTENCY_KEEP_S after the request (a day by default): a retry
-- within that window replays, and what a response held does not stay for good.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
