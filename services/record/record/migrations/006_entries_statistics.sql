-- No planner statistics for a case record entry's body and hashes: no statement filters, joins or sorts on
-- them, and collecting them was most of what an ANALYZE of record_entries cost, which autovacuum repeats every
-- time a tenth of the record is new (the same reasoning as the kernel's 008_outbox_statistics.sql).
ALTER TABLE record_entries
    ALTER COLUMN body SET STATISTICS 0,
    ALTER COLUMN prev_hash SET STATISTICS 0,
    ALTER COLUMN hash SET STATISTICS 0;
