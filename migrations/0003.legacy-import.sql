-- Provenance of rows imported from the original MiniTwit's SQLite database (minitwit.legacy).
-- depends: 0001.initial-schema

-- The legacy ids make `minitwit import-legacy` idempotent: a second run finds every row it
-- already imported. Partial indexes, so that the rows made by this app (NULL) cost nothing.
ALTER TABLE users ADD COLUMN legacy_user_id bigint;
ALTER TABLE messages ADD COLUMN legacy_message_id bigint;
CREATE UNIQUE INDEX users_legacy_user_id_key
    ON users (legacy_user_id) WHERE legacy_user_id IS NOT NULL;
CREATE UNIQUE INDEX messages_legacy_message_id_key
    ON messages (legacy_message_id) WHERE legacy_message_id IS NOT NULL;
