-- The simulator's bookkeeping: the id of the latest action it sent (one row, shared by replicas).

-- name: record_latest
-- Remembers the simulator's latest action id, whatever the request then does.
UPDATE simulator_latest
SET action_id = :action_id;

-- name: get_latest
-- The latest recorded simulator action id (-1 when none was ever recorded).
SELECT action_id
FROM simulator_latest;

-- The simulator's writes, one statement each: the request's work and the recording of its
-- latest action id (skipped when :latest is NULL) share one round trip and one commit.
-- Usernames are resolved inside the statement; the result says which one was unknown.

-- name: simulator_post_message
-- Records :latest and posts :text as :username; returns the new message id, or no row when
-- there is no such user.
WITH recorded AS (
    UPDATE simulator_latest
    SET action_id = :latest
    WHERE CAST(:latest AS bigint) IS NOT NULL
)
INSERT INTO messages (author_id, text)
SELECT u.user_id, :text
FROM users AS u
WHERE u.username = :username
RETURNING message_id;

-- name: simulator_follow
-- Records :latest and makes :username follow :target (following twice changes nothing);
-- returns both user ids, NULL for an unknown name. Nothing is written when either is unknown
-- or when they are the same user.
WITH recorded AS (
    UPDATE simulator_latest
    SET action_id = :latest
    WHERE CAST(:latest AS bigint) IS NOT NULL
),
follower AS (SELECT user_id FROM users WHERE username = :username),
followed AS (SELECT user_id FROM users WHERE username = :target),
inserted AS (
    INSERT INTO follows (follower_id, followed_id)
    SELECT follower.user_id, followed.user_id
    FROM follower, followed
    WHERE follower.user_id <> followed.user_id
    ON CONFLICT (follower_id, followed_id) DO NOTHING
)
SELECT (SELECT user_id FROM follower) AS follower_id,
       (SELECT user_id FROM followed) AS followed_id;

-- name: simulator_unfollow
-- Records :latest and ends :username's follow of :target (not following changes nothing);
-- returns both user ids, NULL for an unknown name.
WITH recorded AS (
    UPDATE simulator_latest
    SET action_id = :latest
    WHERE CAST(:latest AS bigint) IS NOT NULL
),
follower AS (SELECT user_id FROM users WHERE username = :username),
followed AS (SELECT user_id FROM users WHERE username = :target),
deleted AS (
    DELETE FROM follows
    WHERE follower_id = (SELECT user_id FROM follower)
      AND followed_id = (SELECT user_id FROM followed)
)
SELECT (SELECT user_id FROM follower) AS follower_id,
       (SELECT user_id FROM followed) AS followed_id;

-- name: simulator_username_taken
-- Records :latest and says whether an account has exactly this username: the simulator's
-- sign-up checks the name in the same round trip as the recording, before it hashes the
-- password (create_user_with_key then inserts, and still refuses a name taken meanwhile).
WITH recorded AS (
    UPDATE simulator_latest
    SET action_id = :latest
    WHERE CAST(:latest AS bigint) IS NOT NULL
)
SELECT EXISTS (SELECT 1 FROM users WHERE username = :username);
