-- The consumer finds the events it applied among the entries (each entry's event id is unique), so the
-- inbox keeps only the events it dead-lettered. The ids of the events already applied go: their entries
-- hold them. Every agency's entries are looked at (row-level security), for this transaction only.
SELECT set_config('careloop.agency', '*', true);
DELETE FROM inbox i
WHERE i.outcome = 'processed'
  AND EXISTS (SELECT 1 FROM record_entries e WHERE e.event_id = i.event_id);
