-- Who made each change: the person's role beside their subject. Rows recorded before keep a null role.
ALTER TABLE follow_up_outcomes ADD COLUMN recorded_by_role text;
ALTER TABLE follow_up_reschedules ADD COLUMN by_role text;

-- Whose patient this is, for the audit log's readers, without scanning every follow-up.
CREATE INDEX follow_ups_by_patient ON follow_ups (patient_id);
