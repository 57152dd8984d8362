-- Queries on a database of the original MiniTwit (SQLite), read by `minitwit import-legacy`.
-- They run on that SQLite file, never on PostgreSQL (which is why they live in sql/sqlite/).
-- The original schema: user(user_id, username, email, pw_hash), follower(who_id, whom_id),
-- message(message_id, author_id, text, pub_date integer unix time, flagged integer).

-- name: legacy_users
-- Every legacy account, oldest first (the first of two rows with one username wins).
SELECT user_id, username, email, pw_hash
FROM "user"
ORDER BY user_id;

-- name: legacy_follows
-- Every follower row, duplicates included: the original table has no key.
SELECT who_id, whom_id
FROM follower
ORDER BY who_id, whom_id;

-- name: legacy_messages
-- Every legacy message, oldest first; read in batches.
SELECT message_id, author_id, text, pub_date, flagged
FROM message
ORDER BY message_id;
