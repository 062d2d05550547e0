-- Whose patient each patient id is, as this service's consumer first heard it. Every event about a patient
-- names the patient's own agency (the event catalogue), so a consumer refuses one naming another
-- (careloop_shared.consumer, EventOfAnotherAgency) instead of acting on another agency's patient (an upsert
-- of its preferences, or whatever a handler does with it for the other agency). Written by
-- the statement that writes the inbox, so it costs no round trip. Pseudonymous ids and agency ids only.
-- The patients a service held before this table came are claimed by a migration of the service's own.
CREATE TABLE patient_agencies (patient_id uuid PRIMARY KEY, agency_id text NOT NULL);
ALTER TABLE patient_agencies ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_agencies FORCE ROW LEVEL SECURITY;
CREATE POLICY by_agency ON patient_agencies USING (careloop_visible(agency_id));
