-- Which receiving agency may see which patient's name and preferred contact detail: one row per
-- referral, learnt from referral's events (ReferralMade opens it, the referral's closing ends it). The
-- two travel on different topics, so the end may be known first: then to whom and why is filled in
-- when ReferralMade arrives, and the row stays ended.
CREATE TABLE referral_grants (
    referral_id         uuid        PRIMARY KEY,
    patient_id          uuid        NOT NULL,
    patient_agency_id   text        NOT NULL,
    receiving_agency_id text,
    need                text,
    program_category    text,        -- null: not known, so only a consent naming the agency covers it
    granted_at          timestamptz, -- when intake learnt of the referral; null: not yet
    ended_at            timestamptz, -- when the referral closed; null: open
    end_status          text,        -- completed, cancelled, failed, rejected, entered-in-error
    end_reason          text,        -- its coded reason, when it has one
    CHECK ((granted_at IS NULL) = (receiving_agency_id IS NULL)),
    CHECK (granted_at IS NULL OR need IS NOT NULL),
    CHECK ((ended_at IS NULL) = (end_status IS NULL)),
    CHECK (granted_at IS NOT NULL OR ended_at IS NOT NULL)
);
CREATE INDEX referral_grants_open ON referral_grants (receiving_agency_id, granted_at, referral_id)
    WHERE ended_at IS NULL;
