-- Writes of `minitwit import-legacy` (minitwit.legacy): rows of the original MiniTwit, passed as
-- parallel arrays so that one statement imports a whole batch. The legacy ids
-- (migrations/0003.legacy-import) make every statement idempotent.

-- name: import_legacy_users
-- Creates the given legacy accounts in order; one whose username or legacy id is already taken
-- is skipped. Returns the ids created, so the importer can tell new accounts from old ones.
INSERT INTO users (username, email, pw_hash, legacy_user_id)
SELECT legacy.username, legacy.email, legacy.pw_hash, legacy.legacy_user_id
FROM unnest(CAST(:usernames AS text[]), CAST(:emails AS text[]), CAST(:pw_hashes AS text[]),
            CAST(:legacy_user_ids AS bigint[]))
     WITH ORDINALITY AS legacy (username, email, pw_hash, legacy_user_id, position)
ORDER BY legacy.position
ON CONFLICT DO NOTHING
RETURNING legacy_user_id;

-- name: imported_legacy_users
-- Every account imported from the legacy database: its legacy id and its id here.
SELECT legacy_user_id, user_id
FROM users
WHERE legacy_user_id IS NOT NULL;

-- name: import_legacy_messages
-- Creates the given legacy messages in order (pub_date in unix seconds); one already imported
-- (messages_legacy_message_id_key) is skipped. The status tag counts the rows created.
INSERT INTO messages (author_id, text, pub_date, flagged, legacy_message_id)
SELECT legacy.author_id, legacy.text, to_timestamp(legacy.pub_date), legacy.flagged, legacy.legacy_message_id
FROM unnest(CAST(:author_ids AS bigint[]), CAST(:texts AS text[]), CAST(:pub_dates AS bigint[]),
            CAST(:flagged AS boolean[]), CAST(:legacy_message_ids AS bigint[]))
     WITH ORDINALITY AS legacy (author_id, text, pub_date, flagged, legacy_message_id, position)
ORDER BY legacy.position
ON CONFLICT (legacy_message_id) WHERE legacy_message_id IS NOT NULL DO NOTHING;

-- name: import_legacy_follows
-- Creates the given follows; one that exists already is skipped. The status tag counts the rows created.
INSERT INTO follows (follower_id, followed_id)
SELECT legacy.follower_id, legacy.followed_id
FROM unnest(CAST(:follower_ids AS bigint[]), CAST(:followed_ids AS bigint[])) AS legacy (follower_id, followed_id)
ON CONFLICT (follower_id, followed_id) DO NOTHING;
