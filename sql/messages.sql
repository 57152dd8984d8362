-- Queries on messages: posting and the three timelines.
-- Timelines are newest first, never show flagged messages, and page with a keyset cursor:
-- :before_id is the id of the last message of the previous page (NULL for the first page).
-- The cursor subquery always yields one row: the cursor message's (pub_date, message_id), or
-- (infinity, max bigint) when there is no cursor, so the row comparison stays an index condition.

-- name: insert_message
-- Records a message by an existing author; returns its id.
INSERT INTO messages (author_id, text)
VALUES (:author_id, :text)
RETURNING message_id;

-- name: public_timeline
-- Everybody's messages, newest first (messages_public_timeline_idx).
SELECT m.message_id, m.text, m.pub_date, u.username, u.email
FROM messages AS m
JOIN users AS u ON u.user_id = m.author_id
WHERE NOT m.flagged
  AND (m.pub_date, m.message_id) < (
        SELECT coalesce(max(c.pub_date), 'infinity'), coalesce(max(c.message_id), 9223372036854775807)
        FROM messages AS c
        WHERE c.message_id = :before_id)
ORDER BY m.pub_date DESC, m.message_id DESC
LIMIT :limit;

-- name: user_timeline
-- One author's messages, newest first (messages_author_timeline_idx).
SELECT m.message_id, m.text, m.pub_date, u.username, u.email
FROM messages AS m
JOIN users AS u ON u.user_id = m.author_id
WHERE m.author_id = :author_id
  AND NOT m.flagged
  AND (m.pub_date, m.message_id) < (
        SELECT coalesce(max(c.pub_date), 'infinity'), coalesce(max(c.message_id), 9223372036854775807)
        FROM messages AS c
        WHERE c.message_id = :before_id)
ORDER BY m.pub_date DESC, m.message_id DESC
LIMIT :limit;

-- name: public_timeline_json
-- The API's public timeline: everybody's newest :limit messages as its JSON array, written here
-- ([{"content", "pub_date", "user"}], newest first; pub_date as ISO 8601 in UTC to the second).
-- Aggregated by PostgreSQL, the page reaches the app as one text value: no rows to decode and
-- no objects to build per message (docs/performance.md). messages_public_timeline_idx.
SELECT coalesce(json_agg(json_build_object(
           'content', m.text,
           'pub_date', to_char(m.pub_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
           'user', u.username)
       ORDER BY m.pub_date DESC, m.message_id DESC), '[]')::text AS messages
FROM (
    SELECT x.message_id, x.author_id, x.text, x.pub_date
    FROM messages AS x
    WHERE NOT x.flagged
    ORDER BY x.pub_date DESC, x.message_id DESC
    LIMIT :limit
) AS m
JOIN users AS u ON u.user_id = m.author_id;

-- name: user_timeline_json_by_name
-- The API's user timeline: one author's newest :limit messages, the author given by name, as
-- the JSON array of public_timeline_json (the user lookup and the page in one round trip).
-- No row when there is no such user; '[]' when they have no message to show.
SELECT coalesce(json_agg(json_build_object(
           'content', m.text,
           'pub_date', to_char(m.pub_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
           'user', u.username)
       ORDER BY m.pub_date DESC, m.message_id DESC) FILTER (WHERE m.message_id IS NOT NULL), '[]')::text
       AS messages
FROM users AS u
LEFT JOIN LATERAL (
    SELECT x.message_id, x.text, x.pub_date
    FROM messages AS x
    WHERE x.author_id = u.user_id
      AND NOT x.flagged
    ORDER BY x.pub_date DESC, x.message_id DESC
    LIMIT :limit
) AS m ON true
WHERE u.username = :username
GROUP BY u.user_id;

-- name: home_timeline
-- A user's own messages and those of everyone they follow, newest first. Each author's newest
-- :limit (pub_date, message_id) pairs come from messages_author_timeline_idx alone (an index-only
-- scan: no table access), the newest :limit of them are kept, and only those are read from the
-- table and joined to their authors. The cost grows with the number of authors followed, not
-- with the size of the messages table.
SELECT m.message_id, m.text, m.pub_date, u.username, u.email
FROM (
    SELECT x.message_id, x.pub_date
    FROM (
        SELECT CAST(:user_id AS bigint) AS author_id
        UNION
        SELECT f.followed_id FROM follows AS f WHERE f.follower_id = :user_id
    ) AS a
    CROSS JOIN LATERAL (
        SELECT y.message_id, y.pub_date
        FROM messages AS y
        WHERE y.author_id = a.author_id
          AND NOT y.flagged
          AND (y.pub_date, y.message_id) < (
                SELECT coalesce(max(c.pub_date), 'infinity'), coalesce(max(c.message_id), 9223372036854775807)
                FROM messages AS c
                WHERE c.message_id = :before_id)
        ORDER BY y.pub_date DESC, y.message_id DESC
        LIMIT :limit
    ) AS x
    ORDER BY x.pub_date DESC, x.message_id DESC
    LIMIT :limit
) AS newest
JOIN messages AS m ON m.message_id = newest.message_id
JOIN users AS u ON u.user_id = m.author_id
ORDER BY newest.pub_date DESC, newest.message_id DESC;
