-- Queries behind /metrics: cheap enough to run on every scrape.

-- name: business_totals
-- Registered users, messages and follow pairs (exact: kept by the triggers of migration 0002,
-- summed over at most 16 slot rows each) and the simulator's latest action id.
SELECT
    coalesce(sum(c.value) FILTER (WHERE c.name = 'users'), 0) AS users,
    coalesce(sum(c.value) FILTER (WHERE c.name = 'messages'), 0) AS messages,
    coalesce(sum(c.value) FILTER (WHERE c.name = 'follows'), 0) AS follows,
    (SELECT s.action_id FROM simulator_latest AS s) AS latest
FROM business_counters AS c;
