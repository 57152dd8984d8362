-- Queries on users: sign-up, sign-in, and resolving usernames from URLs.
-- Every lookup by name is served by the unique index users_username_key.

-- name: get_user_by_name
-- The account with exactly this username, with its password hash, for sign-in.
SELECT user_id, username, email, pw_hash
FROM users
WHERE username = :username;

-- name: get_user_id
-- The id of the user with exactly this username (NULL when there is none).
SELECT user_id
FROM users
WHERE username = :username;

-- name: get_user_profile
-- The public part of a user's account, for their profile page.
SELECT user_id, username, email
FROM users
WHERE username = :username;

-- name: create_user
-- Registers a user. Returns the new id, or no row when the username is already taken, so that
-- two sign-ups racing for one name give one account and one "already taken" answer.
INSERT INTO users (username, email, pw_hash)
VALUES (:username, :email, :pw_hash)
ON CONFLICT (username) DO NOTHING
RETURNING user_id;

-- name: update_password_hash
-- Replaces a user's password hash after a successful sign-in found it outdated.
UPDATE users
SET pw_hash = :pw_hash
WHERE user_id = :user_id;

-- name: get_user_id_by_key
-- The id of the user whose username reads the same as one with this comparison key
-- (minitwit.usernames; users_username_key_unique).
SELECT user_id
FROM users
WHERE username_key = :username_key;

-- name: create_user_with_key
-- Registers a user with its username's comparison key. Returns the new id, or no row when the
-- username or its key is already taken (users_username_key, users_username_key_unique), so
-- that two sign-ups racing for look-alike names give one account.
INSERT INTO users (username, email, pw_hash, username_key)
VALUES (:username, :email, :pw_hash, :username_key)
ON CONFLICT DO NOTHING
RETURNING user_id;

-- name: users_without_key
-- Up to :limit accounts whose username's comparison key is not computed yet (made before
-- migration 0005, or by a legacy import), oldest first (users_username_key_missing_idx).
SELECT user_id, username
FROM users
WHERE username_key IS NULL
ORDER BY user_id
LIMIT :limit;

-- name: set_username_key
-- Stores a username's comparison key; no row when another account holds that key already.
UPDATE users
SET username_key = :username_key
WHERE user_id = :user_id
  AND NOT EXISTS (SELECT 1 FROM users AS other WHERE other.username_key = :username_key)
RETURNING user_id;

-- name: update_password
-- Replaces a user's password hash (a password change); the caller ends their sessions.
UPDATE users
SET pw_hash = :pw_hash
WHERE user_id = :user_id
RETURNING user_id;

-- name: lock_username_keys
-- Serialises the processes that compute missing keys (replicas starting together), until the
-- end of the transaction.
SELECT pg_advisory_xact_lock(:lock_key);
