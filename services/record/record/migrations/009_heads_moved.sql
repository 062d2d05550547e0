-- Which heads moved since they were last signed, kept where the checkpoint round can find them without
-- reading every head: the search joined every head to its last signature, so its cost grew with every chain
-- ever written (1.7 s a round over about 630,000 chains), not with what moved.
-- An appender sets `moved` on every head it moves; the round clears it, after signing, on the heads still
-- as signed. Only the moved heads are in the index; a head moved again and again stays moved, and its
-- updates stay HOT (the column's value, the only indexed thing they could change, does not change).
ALTER TABLE record_heads ADD COLUMN moved boolean NOT NULL DEFAULT false;
ALTER TABLE record_heads ALTER COLUMN moved SET DEFAULT true;
UPDATE record_heads h SET moved = true
WHERE h.seq > 0
  AND h.seq IS DISTINCT FROM (SELECT w.seq FROM record_witnessed w WHERE w.patient_id = h.patient_id);
CREATE INDEX record_heads_moved ON record_heads (patient_id) WHERE moved;
