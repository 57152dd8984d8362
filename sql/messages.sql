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

-- name: user_timeline_by_name
-- One author's newest messages, the author given by name (the API: one round trip instead of a
-- user lookup and user_timeline). No row when there is no such user; one row with NULL message
-- columns when they have no message to show.
SELECT m.message_id, m.text, m.pub_date, u.username, u.email
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
ORDER BY m.pub_date DESC, m.message_id DESC;

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
