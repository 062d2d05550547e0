-- The two look-ups that keep a plan per session (009 careloop_referred, 010 careloop_patient_locked) find
-- their rows by the patient's id whatever the statistics say. Each also compared an agency with `=`, and
-- an index leads with that agency (patients_duplicate_key, patients_agency; referral_grants_open), so
-- the plan a session kept could walk all of the agency's rows to find one: on a fresh platform the
-- session's plan is made while the tables are nearly empty, where both indexes look equally cheap, and
-- PostgreSQL kept the agency's (until an ANALYZE of the table replanned it). Measured (2026-12-04, the
-- open loop at 50 assessments a second, the first stage on a fresh platform): the locked look-up 2.86 ms
-- a call, 7.1 s of intake's 8.9 s of statement time, against 0.19 ms in the next stage. The agency is now
-- compared with IS NOT DISTINCT FROM, which no index serves: the same rows (neither side is ever NULL
-- here: an open grant always names its receiving agency; a NULL session setting matches nothing,
-- as before), found by the patient's id. Columns and rights as before (010's note on columns stands).
CREATE OR REPLACE FUNCTION careloop_patient_locked(patient uuid, agency text)
    RETURNS TABLE (
        id uuid, preferred_language text, contact_preference text, care_manager_id text,
        safe_channels jsonb, created_at timestamptz, updated_at timestamptz, erased_at timestamptz,
        identity jsonb, given_name text, family_name text, birth_date date, phone text, email text,
        postal_code text, key_version integer, key_kek_id text, key_wrapped bytea
    )
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = auto
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT p.id, p.preferred_language, p.contact_preference, p.care_manager_id, p.safe_channels,
               p.created_at, p.updated_at, p.erased_at, p.identity, p.given_name, p.family_name,
               p.birth_date, p.phone, p.email, p.postal_code, k.version, k.kek_id, k.wrapped
        FROM patients p LEFT JOIN patient_keys k ON k.patient_id = p.id
        WHERE p.id = patient AND p.agency_id IS NOT DISTINCT FROM agency
        FOR UPDATE OF p;
END
$$;

CREATE OR REPLACE FUNCTION careloop_referred(patient uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET plan_cache_mode = auto
AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM referral_grants g
        WHERE g.patient_id = patient AND g.ended_at IS NULL
          AND g.receiving_agency_id IS NOT DISTINCT FROM current_setting('careloop.agency', true)
    );
END
$$;
