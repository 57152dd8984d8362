-- Web sessions held on the server (minitwit.sessions). Every statement but the prune touches
-- rows by the primary key (token_hash) or by web_sessions_user_idx.

-- name: session_user
-- The user signed in by the session with this token hash, if the session exists and has not
-- expired: the one lookup a signed-in web request makes.
SELECT u.user_id, u.username
FROM web_sessions AS s
JOIN users AS u ON u.user_id = s.user_id
WHERE s.token_hash = :token_hash
  AND s.expires_at > now();

-- name: session_start
-- Starts a session for :user_id that lasts :max_age_seconds.
INSERT INTO web_sessions (token_hash, user_id, expires_at)
VALUES (:token_hash, :user_id, now() + make_interval(secs => :max_age_seconds));

-- name: session_end
-- Ends one session (signing out).
DELETE FROM web_sessions
WHERE token_hash = :token_hash;

-- name: sessions_end_all
-- Ends every session of a user (a password change).
DELETE FROM web_sessions
WHERE user_id = :user_id;

-- name: sessions_prune
-- Drops expired sessions (web_sessions_expires_idx), so the table stays small.
DELETE FROM web_sessions
WHERE expires_at < now();
