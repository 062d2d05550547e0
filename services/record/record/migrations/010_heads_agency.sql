-- Each chain's agency, kept on its head: the agency of its first entry, which every later entry must name
-- too (003's promise that a chain is seen whole or not at all). Before, the appender did not look, so an
-- event naming another agency for a patient the record held was appended: the patient's agency then saw a
-- chain with a hole in it, reported as broken, and the other agency saw that one entry.
ALTER TABLE record_heads ADD COLUMN agency_id text;
SELECT set_config('careloop.agency', '*', true);  -- the entries' row security: this transaction reads all
UPDATE record_heads h SET agency_id = e.agency_id
FROM record_entries e
WHERE e.patient_id = h.patient_id AND e.seq = 1;
