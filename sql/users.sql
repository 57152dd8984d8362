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
