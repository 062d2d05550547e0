-- Who made each change: the person (their identity provider's subject id, the token's sub) and their
-- role. Null on rows from before this was kept.
ALTER TABLE patients
    ADD COLUMN registered_by      text,
    ADD COLUMN registered_by_role text,
    -- The last change of the patient's details (each change's person is in its PatientUpdated).
    ADD COLUMN updated_by         text,
    ADD COLUMN updated_by_role    text;

ALTER TABLE consents
    ADD COLUMN recorded_by      text,
    ADD COLUMN recorded_by_role text,
    ADD COLUMN revoked_by       text,
    ADD COLUMN revoked_by_role  text;

ALTER TABLE assessments
    ADD COLUMN assessed_by      text,
    ADD COLUMN assessed_by_role text;
