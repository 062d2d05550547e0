-- A to-do a person adds to the task list about a patient (kind to-do): what it is for, as a code of the task
-- rules' to_do purposes; null for the tasks events open.
ALTER TABLE tasks ADD COLUMN purpose text;
