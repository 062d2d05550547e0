-- Server-side sessions: the browser holds only a random id, the row holds who signed in and their token.
CREATE TABLE sessions (
    -- sha256 of the cookie's random value: a copy of this table lets nobody pose as a signed-in person.
    id_hash bytea PRIMARY KEY,
    csrf_token text NOT NULL,
    -- The person, once signed in (all null before: a visitor on the sign-in page).
    subject text,
    agency_id text,
    role text,
    signed_in_via text CHECK (signed_in_via IN ('development', 'oidc')),
    access_token text,
    token_expires_at timestamptz,
    -- A sign-in at the OpenID Connect provider under way: what the callback must match.
    login_state text,
    login_nonce text,
    login_verifier text,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CHECK ((subject IS NULL) = (access_token IS NULL))
);

CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);
