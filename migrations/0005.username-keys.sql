-- Usernames compared as people read them (minitwit.usernames): NFKC, case folding and the
-- Unicode confusable skeleton (UTS #39), so "victim", "Victim" and "vіctim" are one name.
-- depends: 0001.initial-schema 0003.legacy-import

-- The comparison key of each username. Unique, so two sign-ups racing for look-alike names give
-- one account. NULL until computed: the app computes keys (Python holds the Unicode data), for
-- rows made before this migration at the next `minitwit migrate`/`serve`, for a legacy import
-- right after it. An existing name whose key is already held keeps its name; its key gets a
-- suffix (U+001F and its id) so the unique index holds and the first holder still blocks new
-- look-alikes.
ALTER TABLE users ADD COLUMN username_key text;
CREATE UNIQUE INDEX users_username_key_unique ON users (username_key);
-- Finds the rows still to be computed without reading the table.
CREATE INDEX users_username_key_missing_idx ON users (user_id) WHERE username_key IS NULL;
