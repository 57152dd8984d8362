-- Queries of the operator's tools: what `minitwit restore` checks before it overwrites a
-- database, and the figures `minitwit backup` and `minitwit restore` report.

-- name: backup_database_tables
-- The ordinary tables of the database outside PostgreSQL's own schemas: none on a brand-new
-- database, MiniTwit's and yoyo's on a migrated one.
SELECT n.nspname AS schema_name, c.relname AS table_name
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname;

-- name: backup_row_counts
-- Rows in the tables that hold what people wrote, for reports and for refusing to overwrite them.
SELECT
    (SELECT count(*) FROM users) AS users,
    (SELECT count(*) FROM messages) AS messages,
    (SELECT count(*) FROM follows) AS follows;
