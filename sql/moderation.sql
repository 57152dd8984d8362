-- Moderation (`minitwit flag` / `minitwit unflag`): flagged messages vanish from every timeline,
-- because every timeline query reads only NOT flagged rows.

-- name: set_message_flagged
-- Flags (or unflags) one message; returns it with its author, or no row when there is none.
UPDATE messages AS m
SET flagged = :flagged
FROM users AS u
WHERE m.message_id = :message_id
  AND u.user_id = m.author_id
RETURNING m.message_id, u.username, m.text, m.pub_date;

-- name: flagged_messages
-- Every flagged message with its author, newest first (a moderator's list; a full scan, rarely run).
SELECT m.message_id, u.username, m.text, m.pub_date
FROM messages AS m
JOIN users AS u ON u.user_id = m.author_id
WHERE m.flagged
ORDER BY m.pub_date DESC, m.message_id DESC;
