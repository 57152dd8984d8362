-- Throttling (minitwit.throttle): sign-ups in fixed windows (table throttle), failed sign-ins
-- with growing delays (table login_throttle), one row per key. Every statement touches one row
-- by its primary key (scope, key), except the prunes.

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

-- name: throttle_prune
-- Drops windows that ended long ago (throttle_window_start_idx), so the table stays small.
DELETE FROM throttle
WHERE window_start < now() - make_interval(secs => :older_than_seconds);

-- name: login_wait
-- Asks to try a password for (:scope, :key): returns the seconds to wait first, 0 to go ahead.
-- The first :free_failures failures in a row cost nothing; after that each one doubles the wait
-- (1 s, 2 s, 4 s, ... up to :max_delay_seconds) counted from the last failure. An attempt that
-- goes ahead past the free ones stamps last_failure itself, so parallel guesses cannot all pass
-- through one opening (the UPDATE re-checks its WHERE on a row another attempt just stamped).
-- Rows quiet for :forget_after_seconds count as no row.
WITH opened AS (
    UPDATE login_throttle
    SET last_failure = now()
    WHERE scope = :scope
      AND key = :key
      AND failures >= :free_failures
      AND last_failure > now() - make_interval(secs => :forget_after_seconds)
      AND last_failure + make_interval(secs => LEAST(:max_delay_seconds, power(2, LEAST(failures - :free_failures, 30))))
          <= now()
    RETURNING 1
)
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM opened) THEN 0
    ELSE COALESCE((
        SELECT GREATEST(1, CAST(ceil(extract(epoch FROM
                   last_failure + make_interval(secs => LEAST(:max_delay_seconds, power(2, LEAST(failures - :free_failures, 30))))
                   - now())) AS integer))
        FROM login_throttle
        WHERE scope = :scope
          AND key = :key
          AND failures >= :free_failures
          AND last_failure > now() - make_interval(secs => :forget_after_seconds)
    ), 0)
END AS wait_seconds;

-- name: login_failed
-- Counts one failed sign-in for (:scope, :key); a row quiet for :forget_after_seconds starts
-- over at 1. Atomic, so replicas racing on one key never lose a failure.
INSERT INTO login_throttle AS t (scope, key, failures, last_failure)
VALUES (:scope, :key, 1, now())
ON CONFLICT (scope, key) DO UPDATE
SET failures = CASE WHEN t.last_failure > now() - make_interval(secs => :forget_after_seconds)
                    THEN t.failures + 1 ELSE 1 END,
    last_failure = now();

-- name: login_succeeded
-- Clears the failures of (:scope, :key), as a correct password does for its username.
DELETE FROM login_throttle
WHERE scope = :scope
  AND key = :key;

-- name: login_throttle_prune
-- Drops rows quiet for long (login_throttle_last_failure_idx), so the table stays small.
DELETE FROM login_throttle
WHERE last_failure < now() - make_interval(secs => :older_than_seconds);
