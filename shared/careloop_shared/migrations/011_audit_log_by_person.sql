-- What one person of an agency did (GET /v1/audit/activity?subject=): their entries in the order kept,
-- found without reading the rest of the agency's log.
CREATE INDEX audit_log_person ON audit_log (agency_id, subject, position);
