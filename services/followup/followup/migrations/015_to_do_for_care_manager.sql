-- Who added a to-do (it may be for the patient's care manager rather than its maker); null for the tasks
-- events open.
ALTER TABLE tasks ADD COLUMN opened_by text, ADD COLUMN opened_by_role text;
