-- Queries on follows: who follows whom. The primary key (follower_id, followed_id) serves
-- every lookup by follower; follows_followed_idx serves lookups by the followed user.

-- name: follow
-- Makes :follower_id follow :followed_id; following twice changes nothing.
INSERT INTO follows (follower_id, followed_id)
VALUES (:follower_id, :followed_id)
ON CONFLICT (follower_id, followed_id) DO NOTHING;

-- name: unfollow
-- Ends a follow; unfollowing someone not followed changes nothing.
DELETE FROM follows
WHERE follower_id = :follower_id
  AND followed_id = :followed_id;

-- name: is_following
-- Whether :follower_id follows :followed_id, for the follow/unfollow control on a profile.
SELECT EXISTS (
    SELECT 1 FROM follows
    WHERE follower_id = :follower_id
      AND followed_id = :followed_id
);

-- name: followed_usernames_json_by_name
-- The usernames :username follows, oldest follow first, at most :limit, as a JSON array written
-- here (the API: the user lookup and the list in one round trip, one text value to the app).
-- No row when there is no such user; '[]' when they follow nobody.
SELECT coalesce(json_agg(f.username ORDER BY f.created_at, f.username)
                FILTER (WHERE f.username IS NOT NULL), '[]')::text AS usernames
FROM users AS u
LEFT JOIN LATERAL (
    SELECT w.username, x.created_at
    FROM follows AS x
    JOIN users AS w ON w.user_id = x.followed_id
    WHERE x.follower_id = u.user_id
    ORDER BY x.created_at, w.username
    LIMIT :limit
) AS f ON true
WHERE u.username = :username
GROUP BY u.user_id;
