-- A patient's row with the data key, locked, by id within the caller's agency (IntakeStore.get_patient
-- with lock: every command of intake takes it first), as one function whose statement keeps the plan
-- PostgreSQL settles on per session (plan_cache_mode auto, here only; the session's own setting plans
-- every statement for its parameters: careloop_shared.db). Written inline, the join of patients and
-- patient_keys under both tables' policies was planned on every execution: 0.12-0.28 ms of planning
-- against 0.05 ms executing it on a quiet server, and under load the statement with the most time of
-- the whole platform (README, Performance). Looked up by primary key, its plan is the same whatever
-- the parameters: two index scans.
-- Same rows, same rights: the function runs as its caller (not SECURITY DEFINER), so the tables'
-- policies decide what it finds, as they did for the statement written inline, and the lock is taken
-- in the caller's transaction. Its columns are identity.store.PATIENT_COLUMNS': a column added there
-- is added here by a migration that replaces the function (a test compares the two).
CREATE FUNCTION careloop_patient_locked(patient uuid, agency text)
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
        WHERE p.id = patient AND p.agency_id = agency
        FOR UPDATE OF p;
END
$$;
