-- Synthetic data for the benchmarks and the query-plan test (minitwit.bench.seed), set-based:
-- a million rows take seconds. Never loaded by the app (sql/*.sql only, not sql/bench/).
-- Seeded users are named bench1, bench2, ... ; ids are counted from the first seeded user, so
-- run it on an empty database.

-- name: seed_users
-- Creates :count users bench1..bench<count>, all with the password hash :pw_hash.
INSERT INTO users (username, email, pw_hash)
SELECT 'bench' || i, 'bench' || i || '@example.com', :pw_hash
FROM generate_series(1, CAST(:count AS integer)) AS i;

-- name: seed_home_follows
-- Makes bench1 follow bench2..bench<:count + 1> (the user whose home timeline is measured).
INSERT INTO follows (follower_id, followed_id)
SELECT b.base + 1, b.base + 1 + i
FROM (SELECT min(user_id) - 1 AS base FROM users WHERE username LIKE 'bench%') AS b,
     generate_series(1, CAST(:count AS integer)) AS i;

-- name: seed_follows
-- Adds :count follow pairs among :users users: each of bench2, bench3, ... follows
-- :per_user others, spread over all users (never itself, never twice).
INSERT INTO follows (follower_id, followed_id)
SELECT b.base + 2 + (k / :per_user),
       b.base + 1 + ((1 + k / :per_user + 487 * (1 + k % :per_user)) % :users)
FROM (SELECT min(user_id) - 1 AS base FROM users WHERE username LIKE 'bench%') AS b,
     generate_series(0, CAST(:count AS integer) - 1) AS k
ON CONFLICT DO NOTHING;

-- name: seed_messages
-- Adds :count messages, numbered from :first, one second apart from 2020-01-01 on. Messages
-- numbered below :active * :per_active go round-robin to the first :active users (each gets
-- :per_active: full pages at any size); later ones are spread over all :users users.
INSERT INTO messages (author_id, text, pub_date)
SELECT b.base + 1 + CASE WHEN n < CAST(:active AS bigint) * :per_active THEN n % :active
                         ELSE (n * 7919) % :users END,
       'Message ' || n || ': ' || md5(CAST(n AS text)),
       TIMESTAMPTZ '2020-01-01 00:00:00+00' + n * INTERVAL '1 second'
FROM (SELECT min(user_id) - 1 AS base FROM users WHERE username LIKE 'bench%') AS b,
     generate_series(CAST(:first AS bigint), CAST(:first AS bigint) + :count - 1) AS n;

-- name: seed_analyze
-- Refreshes the planner's statistics and the visibility map after a bulk load, as autovacuum
-- does on a live database soon after (index-only scans need the visibility map).
VACUUM (ANALYZE) users, messages, follows;
