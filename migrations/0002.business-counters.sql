-- Business totals for /metrics (users, messages, follow pairs), kept exact by triggers so that a
-- scrape reads a few rows instead of counting whole tables.
-- depends: 0001.initial-schema

-- Each total is the sum of up to 16 slot rows. A writer adds to the slot of its own backend
-- (pg_backend_pid() % 16), so concurrent inserts through different pooled connections update
-- different rows and do not queue behind one row lock until each other's commit.
CREATE TABLE business_counters (
    name  text     NOT NULL,
    slot  smallint NOT NULL,
    value bigint   NOT NULL,
    PRIMARY KEY (name, slot)
);

-- Statement-level, with transition tables: one counter write per statement, however many rows
-- it touched (a user's deletion cascades to all their messages), none when it touched no row
-- (INSERT ... ON CONFLICT DO NOTHING on a taken name).
CREATE FUNCTION business_counters_add() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM inserted_rows;
    ELSE
        SELECT -count(*) INTO delta FROM deleted_rows;
    END IF;
    IF delta <> 0 THEN
        INSERT INTO business_counters AS c (name, slot, value)
        VALUES (TG_ARGV[0], pg_backend_pid() % 16, delta)
        ON CONFLICT (name, slot) DO UPDATE SET value = c.value + excluded.value;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION business_counters_reset() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM business_counters WHERE name = TG_ARGV[0];
    RETURN NULL;
END;
$$;

-- No write may slip between the initial count and the triggers (a replica of the previous
-- version keeps serving during a rolling update): hold writers off until this commits.
LOCK TABLE users, messages, follows IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER users_count_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_add('users');
CREATE TRIGGER users_count_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_add('users');
CREATE TRIGGER users_count_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_reset('users');

CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_add('messages');
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_add('messages');
CREATE TRIGGER messages_count_truncate AFTER TRUNCATE ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_reset('messages');

CREATE TRIGGER follows_count_insert AFTER INSERT ON follows
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_add('follows');
CREATE TRIGGER follows_count_delete AFTER DELETE ON follows
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_add('follows');
CREATE TRIGGER follows_count_truncate AFTER TRUNCATE ON follows
    FOR EACH STATEMENT EXECUTE FUNCTION business_counters_reset('follows');

INSERT INTO business_counters (name, slot, value)
SELECT 'users', 0, count(*) FROM users
UNION ALL
SELECT 'messages', 0, count(*) FROM messages
UNION ALL
SELECT 'follows', 0, count(*) FROM follows;
