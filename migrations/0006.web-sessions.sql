-- Web sessions held on the server (minitwit.sessions), so that signing out ends a session and a
-- password change ends all of a user's. The cookie carries a random token; only its SHA-256 is
-- stored, so a copy of this table signs nobody in.
-- depends: 0001.initial-schema

CREATE TABLE web_sessions (
    token_hash bytea       PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT web_sessions_token_hash_length CHECK (octet_length(token_hash) = 32)
);
-- "End all of this user's sessions" (and the foreign key's ON DELETE) without a scan.
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);
-- Pruning of expired sessions.
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);
