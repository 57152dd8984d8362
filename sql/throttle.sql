-- Throttling of sign-ins and sign-ups (minitwit.throttle): fixed windows, one row per key.
-- Every statement touches one row by its primary key (scope, key), except the prune.

-- name: throttle_hit
-- Counts one attempt for (:scope, :key) and returns the count in the current window and the
-- seconds until that window ends. A window older than :window_seconds starts over at 1.
-- Atomic, so replicas racing on one key never lose a hit.
INSERT INTO throttle AS t (scope, key, window_start, hits)
VALUES (:scope, :key, now(), 1)
ON CONFLICT (scope, key) DO UPDATE
SET window_start = CASE WHEN t.window_start > now() - make_interval(secs => :window_seconds)
                        THEN t.window_start ELSE now() END,
    hits = CASE WHEN t.window_start > now() - make_interval(secs => :window_seconds)
                THEN t.hits + 1 ELSE 1 END
RETURNING hits,
          CAST(ceil(extract(epoch FROM window_start + make_interval(secs => :window_seconds) - now())) AS integer)
              AS retry_after;

-- name: throttle_give_back
-- Takes back one hit of (:scope, :key): the attempt it counted turned out fine.
UPDATE throttle
SET hits = hits - 1
WHERE scope = :scope
  AND key = :key
  AND hits > 0;

-- name: throttle_forget
-- Clears the count of (:scope, :key), as a successful sign-in does for its username.
DELETE FROM throttle
WHERE scope = :scope
  AND key = :key;

-- name: throttle_prune
-- Drops windows that ended long ago (throttle_window_start_idx), so the table stays small.
DELETE FROM throttle
WHERE window_start < now() - make_interval(secs => :older_than_seconds);
