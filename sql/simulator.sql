-- The simulator's bookkeeping: the id of the latest action it sent (one row, shared by replicas).

-- name: record_latest
-- Remembers the simulator's latest action id, whatever the request then does.
UPDATE simulator_latest
SET action_id = :action_id;

-- name: get_latest
-- The latest recorded simulator action id (-1 when none was ever recorded).
SELECT action_id
FROM simulator_latest;
