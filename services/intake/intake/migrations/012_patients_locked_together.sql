-- The patients of the commands that share a transaction (careloop_shared.command_groups), locked in one
-- look-up: 011's careloop_patient_locked was called once for each of them (a LATERAL call a patient),
-- about 40 µs of the server's time a patient at 500 assessments a second, most of it the call itself.
-- The same columns and rows as careloop_patient_locked gives each patient (a test compares them), by the
-- patients' ids whatever the statistics say (the agency compared with IS NOT DISTINCT FROM, as in 011),
-- locked in the ids' order so that two transactions asking for some of the same patients cannot
-- deadlock. A function for the reason 010 gives: its statement keeps the plan the session settles on,
-- where the pool's connections plan every statement for its parameters (careloop_shared.db) and
-- planning the join under both tables' policies cost more than running it. It runs as its caller, so
-- the policies decide what it finds, and the locks are taken in the caller's transaction.
CREATE FUNCTION careloop_patients_locked(patients uuid[], agency text)
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
        WHERE p.id = ANY(patients) AND p.agency_id IS NOT DISTINCT FROM agency
        ORDER BY p.id
        FOR UPDATE OF p;
END
$$;
