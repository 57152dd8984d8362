-- Rollback of 0005.username-keys: the keys can be computed again from the usernames.
DROP INDEX users_username_key_missing_idx;
DROP INDEX users_username_key_unique;
ALTER TABLE users DROP COLUMN username_key;
