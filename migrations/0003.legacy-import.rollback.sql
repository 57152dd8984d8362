-- Rollback of 0003.legacy-import: forgets which rows came from the legacy database (the rows stay).
DROP INDEX messages_legacy_message_id_key;
DROP INDEX users_legacy_user_id_key;
ALTER TABLE messages DROP COLUMN legacy_message_id;
ALTER TABLE users DROP COLUMN legacy_user_id;
