-- The kernel's patient_agencies (kernel migration 010) claims each patient for the agency the first event
-- about them names, and the consumer refuses an event naming another. The patients this service held before
-- it are claimed here for the agency its own tables already give them, instead of by their next event.
SELECT set_config('careloop.agency', '*', true);  -- row security: this transaction reads every agency's rows
INSERT INTO patient_agencies (patient_id, agency_id) SELECT patient_id, agency_id FROM patients ON CONFLICT DO NOTHING;
INSERT INTO patient_agencies (patient_id, agency_id) SELECT patient_id, agency_id FROM plans ON CONFLICT DO NOTHING;
