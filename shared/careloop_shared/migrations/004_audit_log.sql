-- Who saw or was refused which patient's data, shaped after FHIR AuditEvent. Append-only: no UPDATE,
-- DELETE or TRUNCATE, whatever the caller; no API changes it.
CREATE TABLE audit_log (
    position          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                uuid        NOT NULL UNIQUE,
    recorded_at       timestamptz NOT NULL,  -- AuditEvent.recorded
    action            text        NOT NULL,  -- AuditEvent.action: R (read), E (execute), ...
    outcome           text        NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    outcome_detail    text,                  -- why denied: the missing permission, not found, ...
    subject           text        NOT NULL,  -- AuditEvent.agent.who: the person (token sub)
    role              text        NOT NULL,  -- AuditEvent.agent.role
    agency_id         text        NOT NULL,  -- the agent's agency
    network_address   text,                  -- AuditEvent.agent.network.address: from where
    source            text        NOT NULL,  -- AuditEvent.source.observer: the service
    patient_id        uuid,                  -- AuditEvent.entity: the patient whose data it is, when known
    patient_agency_id text,                  -- the patient's agency, when known: a disclosure outside it
    what              text        NOT NULL,  -- the kind of data: patient, assessment, plan, record, ...
    entity_id         text,                  -- the record read, when there is one
    route             text        NOT NULL   -- method and route template (never ids or query values)
);
CREATE INDEX audit_log_patient ON audit_log (patient_id, position);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
