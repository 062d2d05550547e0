-- What one person of an agency did within a period (GET /v1/audit/activity?subject=&since=&until=):
-- their entries in the order recorded, the period's found without reading their entries before it.
DROP INDEX IF EXISTS audit_log_person;
CREATE INDEX audit_log_person ON audit_log (agency_id, subject, recorded_at, position);
-- The refused attempts alone (?outcome=denied; who has been refused, GET /v1/audit/people): few among
-- the reads, found without reading the reads, and not written to by them.
CREATE INDEX audit_log_person_refused ON audit_log (agency_id, subject, recorded_at, position)
    WHERE outcome = 'denied';
