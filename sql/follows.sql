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

-- name: followed_usernames
-- The usernames a user follows, oldest follow first, at most :limit.
SELECT u.username
FROM follows AS f
JOIN users AS u ON u.user_id = f.followed_id
WHERE f.follower_id = :follower_id
ORDER BY f.created_at, u.username
LIMIT :limit;
