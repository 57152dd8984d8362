-- The read-only role postgres_exporter logs in with, set up by `minitwit monitoring-role`.
-- Role names and passwords cannot be bound parameters in DDL: {role} and {password} are filled
-- in by psycopg's sql.Identifier and sql.Literal, which quote them safely. Kept out of sql/
-- itself, whose queries the app prepares on every connection.

-- name: monitoring_role_exists
-- Whether the monitoring role is there already (then only its password and rights are reset).
SELECT count(*) AS found FROM pg_roles WHERE rolname = {role_name};

-- name: monitoring_role_create
-- A login that can do nothing but read statistics: no superuser, no DDL, no other roles, and
-- at most 3 connections (postgres_exporter holds one).
CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    CONNECTION LIMIT 3 PASSWORD {password};

-- name: monitoring_role_update
-- The same attributes again, and the password from the current secret (rotation = re-run).
ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    CONNECTION LIMIT 3 PASSWORD {password};

-- name: monitoring_role_grant
-- pg_monitor: read every pg_stat_* view and pg_stat_statements' query texts, and call the
-- size functions; it grants no access to any table's rows.
GRANT pg_monitor TO {role};

-- name: monitoring_statements_extension
-- The view of pg_stat_statements in this database (the server must preload the library).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
