-- A patient's identifying details (names, birth date, phone, email, postal code) kept only sealed with
-- their data key (intake/identity): one sealed JSON document in `identity`. Destroying the key (erasure)
-- makes it unreadable. Language, contact preference, safe channels and the care manager stay in the
-- clear: they route the patient's care and travel on the events already.
ALTER TABLE patients ADD COLUMN identity jsonb;

-- Likely duplicates found without the details: a blind index, HMAC-SHA256 of the agency, the normalised
-- name and the birth date under INTAKE_BLIND_INDEX_KEY. Unique per agency (null on rows not sealed yet).
ALTER TABLE patients ADD COLUMN duplicate_key bytea;
CREATE UNIQUE INDEX patients_duplicate_key ON patients (agency_id, duplicate_key);

-- Rows written before this keep their details in the clear until the background step seals them (a
-- migration has no key to seal with); a sealed row keeps none. patients_likely_duplicate (001) still
-- finds a duplicate among the rows not sealed yet; both go once every row is sealed.
ALTER TABLE patients
    ALTER COLUMN given_name DROP NOT NULL,
    ALTER COLUMN family_name DROP NOT NULL,
    ALTER COLUMN name_key DROP NOT NULL,
    ALTER COLUMN birth_date DROP NOT NULL,
    ADD CONSTRAINT patients_sealed_keep_nothing_clear CHECK (
        identity IS NULL OR num_nonnulls(given_name, family_name, name_key, birth_date, phone, email,
                                         postal_code) = 0
    );
-- What the background step walks, in id order; it empties as the rows are sealed.
CREATE INDEX patients_in_the_clear ON patients (id) WHERE identity IS NULL AND erased_at IS NULL;

-- Patients erased before this kept their birth date and a placeholder name key in the clear.
UPDATE patients SET given_name = NULL, family_name = NULL, name_key = NULL, birth_date = NULL
WHERE erased_at IS NOT NULL;

-- A receiving agency reads a patient referred to it through intake's code (referred/), which opens the
-- details with the patient's data key: so that agency may read (never write) the wrapped key while the
-- referral is open, as it may read the patient's row (005). The key opens only under the key-encryption
-- key, which only the service holds; the code's rule and column list decide what is shown.
CREATE POLICY referred_to ON patient_keys FOR SELECT USING (
    careloop_visible(agency_id) OR EXISTS (
        SELECT 1 FROM referral_grants g
        WHERE g.patient_id = patient_keys.patient_id AND g.ended_at IS NULL
          AND g.receiving_agency_id = current_setting('careloop.agency', true)
    )
);
