-- record_entries_type_time (patient_id, event_type, occurred_at) served one query, a patient's entries
-- filtered by type and time (RecordStore.entries), and the primary key (patient_id, seq) serves it as
-- well: it finds the patient's entries in chain order and the filter reads only those. The index was the
-- largest of the table's three (55 MB for 490,000 entries, against 25 MB for the primary key), and every
-- event appended paid for it. Measured on the chain (README, Performance).
DROP INDEX IF EXISTS record_entries_type_time;
