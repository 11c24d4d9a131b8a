#!/usr/bin/env bash
# Fill the jobboard sample monolith on the first start of its PostgreSQL container.
#
# The postgres image runs this from /docker-entrypoint-initdb.d (sourced, or executed when it is
# executable) while its temporary, socket-only server is up, and only when the data directory is
# new. It does what dbsplit.local.samples.create_sample does, in the same order and with the same
# settings, so the container holds the same rows as `make demo`'s monolith for the same size:
#   one transaction: the session settings, the row count of every table (custom settings
#   dbsplit.<table>), schema.sql, ../generate_helpers.sql, generate.sql, constraints.sql, ANALYZE
#   of the sample tables.
# tests/unit/test_compose.py compares the shares and settings below with include/dbsplit/local/samples.py
# and runs this script against a real server.
#
# Environment: POSTGRES_USER and POSTGRES_DB (set by the image; PGHOST, PGPORT and PGPASSWORD are
# honoured), JOBBOARD_ROWS (total rows, at least 1000; default 50000), JOBBOARD_SQL_DIR (the
# directory with schema.sql, generate.sql and constraints.sql; default /opt/jobboard, where
# docker-compose.yaml mounts include/examples/jobboard, and include/examples/generate_helpers.sql
# next to it).

jobboard_sample() (
    set -euo pipefail
    local rows="${JOBBOARD_ROWS:-50000}" dir="${JOBBOARD_SQL_DIR:-/opt/jobboard}" script
    if ! [[ "$rows" =~ ^[0-9]+$ ]] || (( rows < 1000 )); then
        echo "jobboard sample: JOBBOARD_ROWS=${rows} is not a number of at least 1000. Fix: set it in .env." >&2
        return 1
    fi
    if [[ "$dir" =~ [[:space:]] ]]; then
        echo "jobboard sample: JOBBOARD_SQL_DIR must not contain white space (psql \\i): $dir" >&2
        return 1
    fi
    for script in schema.sql ../generate_helpers.sql generate.sql constraints.sql; do
        if [[ ! -r "$dir/$script" ]]; then
            echo "jobboard sample: $dir/$script is missing. Fix: mount include/examples/jobboard at $dir and include/examples/generate_helpers.sql beside it." >&2
            return 1
        fi
    done
    echo "jobboard sample: creating about ${rows} rows in database ${POSTGRES_DB} (one transaction)"
    PGCLIENTENCODING=UTF8 psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 \
        --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" \
        --set jobboard_rows="$rows" \
        --set schema_sql="$dir/schema.sql" \
        --set generate_helpers="$dir/../generate_helpers.sql" \
        --set generate_sql="$dir/generate.sql" \
        --set constraints_sql="$dir/constraints.sql" <<'SQL'
BEGIN;

-- An empty UTF8 database, as dbsplit.local.samples._check_target requires.
DO $$
BEGIN
    IF pg_encoding_to_char((SELECT encoding FROM pg_database WHERE datname = current_database())) <> 'UTF8' THEN
        RAISE EXCEPTION 'the database is not UTF8; the sample holds non-ASCII text';
    END IF;
    IF to_regclass('public.users') IS NOT NULL THEN
        RAISE EXCEPTION 'the database already holds jobboard tables';
    END IF;
END
$$;

-- Session settings (dbsplit.local.samples._SESSION), local to this transaction.
\o /dev/null
SELECT set_config('client_encoding', 'UTF8', true);
SELECT set_config('TimeZone', 'UTC', true);
SELECT set_config('DateStyle', 'ISO, YMD', true);
SELECT set_config('IntervalStyle', 'postgres', true);
SELECT set_config('bytea_output', 'hex', true);
SELECT set_config('search_path', 'public', true);
SELECT set_config('work_mem', '64MB', true);
SELECT set_config('maintenance_work_mem', '256MB', true);
-- JIT stays on without LLVM's inlining and optimisation passes, which cost more than they save here
SELECT set_config('jit_inline_above_cost', '-1', true);
SELECT set_config('jit_optimize_above_cost', '-1', true);
\o

-- Rows per table (dbsplit.local.samples.planned_counts): per table its share of all rows (rounded half
-- to even, like Python's round of a float) and a minimum; the last table takes what the others leave.
CREATE TEMP TABLE jobboard_counts ON COMMIT DROP AS
WITH shares (pos, tbl, share, minimum) AS (VALUES
    -- shares: begin (tests/unit/test_compose.py compares these lines with samples.JOBBOARD)
    (1, 'users', 0.04, 20),
    (2, 'user_skills', 0.06, 20),
    (3, 'companies', 0.005, 5),
    (4, 'job_categories', 0.0005, 8),
    (5, 'skills', 0.002, 20),
    (6, 'jobs', 0.03, 20),
    (7, 'job_skills', 0.05, 20),
    (8, 'applications', 0.17, 20),
    (9, 'application_attachments', 0.07, 10),
    (10, 'interviews', 0.04, 10),
    (11, 'search_history', 0.13, 10),
    (12, 'saved_searches', 0.015, 10),
    (13, 'notification_templates', 0.0003, 8),
    (14, 'notifications', 0.12, 10),
    (15, 'notification_preferences', 0.03, 10),
    (16, 'analytics_events', 0.0, 10)
    -- shares: end
), firsts AS (
    SELECT pos, tbl, greatest(minimum, round(:jobboard_rows * share::float8)::bigint) AS n
    FROM shares WHERE pos < (SELECT max(pos) FROM shares)
)
SELECT pos, tbl, n FROM firsts
UNION ALL
SELECT pos, tbl, greatest(minimum, :jobboard_rows - (SELECT sum(n) FROM firsts))::bigint
FROM shares WHERE pos = (SELECT max(pos) FROM shares);

SELECT count(set_config('dbsplit.' || tbl, n::text, true)) AS tables_sized FROM jobboard_counts;

\i :schema_sql
\i :generate_helpers
\i :generate_sql
\i :constraints_sql

SELECT format('ANALYZE %s', string_agg(format('public.%I', tbl), ', ' ORDER BY pos)) FROM jobboard_counts
\gexec

SELECT tbl AS "table", n AS planned_rows FROM jobboard_counts ORDER BY pos;

COMMIT;
SQL
    echo "jobboard sample: done"
)

jobboard_sample
