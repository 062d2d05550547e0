-- The case record analyzed when it has doubled, not each time a tenth of it is new: entries are read by
-- patient (the primary key's first column) and by event id, whatever the statistics say, and under load
-- autovacuum analyzed the growing record at each of its visits (the same reasoning as the kernel's
-- 009_outbox_inbox_analyzed_less.sql).
ALTER TABLE record_entries SET (autovacuum_analyze_scale_factor = 1.0);
