-- Helpers shared by the examples' generate.sql scripts (session-local functions in pg_temp).
-- dbsplit.samples runs this file just before an example's generate.sql, in the same transaction;
-- so does docker/monolith-init/10-jobboard-sample.sh.

-- ---------------------------------------------------------------- helpers (session-local)
-- the rows 1..cnt, each with b, a well-mixed 31-bit value of g (murmur3-style finalizer, kept below 2^63);
-- volatile so that it is never inlined and b is computed once per row
CREATE FUNCTION pg_temp.rows(cnt bigint) RETURNS TABLE (g bigint, b bigint)
    LANGUAGE sql VOLATILE
    AS $$ SELECT s, x3 # (x3 >> 16)
          FROM generate_series(1, cnt) AS s,
               LATERAL (SELECT (s * 2654435761 + 1013904223) & 2147483647 AS x1) AS a,
               LATERAL (SELECT ((x1 # (x1 >> 16)) * 2246822519) & 2147483647 AS x2) AS c,
               LATERAL (SELECT ((x2 # (x2 >> 13)) * 3266489917) & 2147483647 AS x3) AS d $$;

-- stream k of b: multiplication by a different constant modulo the prime 2^31-1
CREATE FUNCTION pg_temp.h(b bigint, k integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (b * (1597334677 + k * 2654435::bigint)) % 2147483647 $$;

CREATE FUNCTION pg_temp.pick(pool text[], i bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT pool[1 + (i % cardinality(pool))::integer] $$;

CREATE FUNCTION pg_temp.pickj(pool jsonb[], i bigint) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT pool[1 + (i % cardinality(pool))::integer] $$;

-- a moment in the two sample years, 2023-01-01 .. 2024-12-31 UTC
CREATE FUNCTION pg_temp.at(i bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT timestamptz '2023-01-01 00:00:00+00' + (i % 63072000) * interval '1 second' $$;

CREATE FUNCTION pg_temp.secs(i bigint) RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT i * interval '1 second' $$;
