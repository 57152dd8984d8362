-- Rollback of 0002: the counters for /metrics and the triggers that maintain them.
DROP TRIGGER follows_count_truncate ON follows;
DROP TRIGGER follows_count_delete ON follows;
DROP TRIGGER follows_count_insert ON follows;
DROP TRIGGER messages_count_truncate ON messages;
DROP TRIGGER messages_count_delete ON messages;
DROP TRIGGER messages_count_insert ON messages;
DROP TRIGGER users_count_truncate ON users;
DROP TRIGGER users_count_delete ON users;
DROP TRIGGER users_count_insert ON users;
DROP FUNCTION business_counters_reset();
DROP FUNCTION business_counters_add();
DROP TABLE business_counters;
