-- Queries behind the operations endpoints (/ready).

-- name: applied_migrations
-- The ids of the schema migrations applied to this database (yoyo's bookkeeping table).
SELECT migration_id
FROM _yoyo_migration;
