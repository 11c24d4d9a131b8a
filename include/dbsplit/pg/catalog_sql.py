"""The catalog queries of catalog.py: one per kind of object, each for many tables at once.

Every query takes `%(oids)s` (table oids) and returns rows whose first value is the table oid.
Names and expressions come from the server (quote_ident, format_type, pg_get_expr, pg_get_*def)
and are read with an empty search_path, so that every non-catalog name in them is schema-qualified.
"""

from __future__ import annotations

COLUMNS = """
SELECT a.attrelid::int, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atttypid::int,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       a.attidentity::text, a.attgenerated::text,
       CASE WHEN a.attcollation <> t.typcollation
            THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                  FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                  WHERE co.oid = a.attcollation) END,
       (SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname)
        FROM pg_depend dep JOIN pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
          AND dep.refclassid = 'pg_class'::regclass
        ORDER BY s.oid LIMIT 1),
       ARRAY(SELECT g.attname FROM pg_depend dep
             JOIN pg_attribute g ON g.attrelid = dep.refobjid AND g.attnum = dep.refobjsubid
             WHERE a.attgenerated <> '' AND dep.refclassid = 'pg_class'::regclass
               AND dep.refobjid = a.attrelid AND dep.refobjsubid NOT IN (0, a.attnum)
               AND ((dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid)
                    OR (dep.classid = 'pg_class'::regclass AND dep.objid = a.attrelid AND dep.objsubid = a.attnum))
             ORDER BY g.attnum)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%(oids)s::int8[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# primary key, unique, check and exclusion constraints (NOT NULL constraints of PostgreSQL 18 are columns')
CONSTRAINTS = """
SELECT c.conrelid::int, c.conname, c.contype::text, pg_get_constraintdef(c.oid),
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.pos),
       c.convalidated
FROM pg_constraint c
WHERE c.conrelid = ANY(%(oids)s::int8[]::oid[]) AND c.contype IN ('p', 'u', 'c', 'x') AND c.conparentid = 0
ORDER BY c.conrelid, c.contype = 'p' DESC, c.contype, c.conname
"""

FOREIGN_KEYS = """
SELECT c.conrelid::int, c.conname,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.pos),
       rn.nspname, rc.relname,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.pos),
       c.confdeltype::text, c.confupdtype::text, c.confmatchtype::text, c.condeferrable, c.condeferred,
       c.convalidated,
       ARRAY(SELECT a.attname FROM unnest(c.confdelsetcols) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.pos),
       pg_get_constraintdef(c.oid)
FROM pg_constraint c
JOIN pg_class rc ON rc.oid = c.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE c.conrelid = ANY(%(oids)s::int8[]::oid[]) AND c.contype = 'f' AND c.conparentid = 0
ORDER BY c.conrelid, c.conname
"""

# indexes that no constraint of the table owns; per key column: definition, expression?, opclass,
# collation and ordering, each only when it differs from the default
INDEXES = """
SELECT i.indrelid::int, ic.relname, am.amname, i.indisunique, i.indnullsnotdistinct,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k.n::int, true)
             FROM generate_series(1, i.indnkeyatts) AS k(n) ORDER BY k.n),
       ARRAY(SELECT (i.indkey::int2[])[k.n - 1] = 0 FROM generate_series(1, i.indnkeyatts) AS k(n) ORDER BY k.n),
       ARRAY(SELECT CASE WHEN opc.opcdefault THEN ''
                         ELSE quote_ident(opn.nspname) || '.' || quote_ident(opc.opcname) END
             FROM unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opc_oid, pos)
             JOIN pg_opclass opc ON opc.oid = k.opc_oid JOIN pg_namespace opn ON opn.oid = opc.opcnamespace
             ORDER BY k.pos),
       ARRAY(SELECT COALESCE((
                SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                WHERE co.oid = k.coll AND k.coll <> COALESCE(
                    (SELECT a.attcollation FROM pg_attribute a
                     WHERE a.attrelid = i.indrelid AND a.attnum = (i.indkey::int2[])[k.pos - 1]),
                    100)), '')
             FROM unnest(i.indcollation::oid[]) WITH ORDINALITY AS k(coll, pos) ORDER BY k.pos),
       ARRAY(SELECT o FROM unnest(i.indoption::int2[]) WITH ORDINALITY AS k(o, pos) ORDER BY k.pos),
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k.n::int, true)
             FROM generate_series(i.indnkeyatts + 1, i.indnatts) AS k(n) ORDER BY k.n),
       pg_get_expr(i.indpred, i.indrelid),
       COALESCE(ic.reloptions, '{}'),
       ARRAY(SELECT DISTINCT a.attname FROM pg_depend dep
             JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
             WHERE dep.classid = 'pg_class'::regclass AND dep.objid = i.indexrelid
               AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = i.indrelid
             ORDER BY a.attname),
       pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY(%(oids)s::int8[]::oid[])
  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                                AND c.contype IN ('p', 'u', 'x'))
ORDER BY i.indrelid, ic.relname
"""

# sequences owned by a column: by serial (deptype 'a') or identity (deptype 'i')
SEQUENCES = """
SELECT dep.refobjid::int, a.attname, quote_ident(sn.nspname) || '.' || quote_ident(s.relname), dep.deptype = 'i',
       format_type(sq.seqtypid, NULL), sq.seqstart, sq.seqincrement, sq.seqmin, sq.seqmax, sq.seqcache, sq.seqcycle
FROM pg_depend dep
JOIN pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_sequence sq ON sq.seqrelid = s.oid
JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
  AND dep.refobjid = ANY(%(oids)s::int8[]::oid[]) AND dep.deptype IN ('a', 'i')
ORDER BY dep.refobjid, a.attnum
"""

# enums, domains and composite types the columns use (through arrays, domains and composites), the
# ones others depend on first
USER_TYPES = """
WITH RECURSIVE used(tbl, oid, depth) AS (
    SELECT attrelid, atttypid, 0 FROM pg_attribute
    WHERE attrelid = ANY(%(oids)s::int8[]::oid[]) AND attnum > 0 AND NOT attisdropped
  UNION ALL
    SELECT u.tbl, x.oid, u.depth + 1
    FROM used u JOIN pg_type t ON t.oid = u.oid
    CROSS JOIN LATERAL (
        SELECT unnest(ARRAY[t.typelem, t.typbasetype]) AS oid
        UNION ALL
        SELECT a.atttypid FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid AND r.relkind = 'c'
        WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ) AS x
    WHERE x.oid <> 0 AND u.depth < 20
)
SELECT u.tbl::int, n.nspname, t.typname, t.typtype::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       t.typnotnull,
       ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
             WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname),
       pg_get_expr(t.typdefaultbin, 0),
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
               AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM (SELECT tbl, oid, max(depth) AS depth FROM used GROUP BY tbl, oid) u
JOIN pg_type t ON t.oid = u.oid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND EXISTS (
    SELECT FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind = 'c'))
ORDER BY u.tbl, u.depth DESC, t.oid
"""

TABLES = """
SELECT c.oid::int, n.nspname, c.relname, c.relkind::text,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(%(oids)s::int8[]::oid[])
"""

TABLE_OIDS = """
SELECT k.pos::int, c.oid::int
FROM unnest(%(schemas)s::text[], %(names)s::text[]) WITH ORDINALITY AS k(schema, name, pos)
JOIN pg_namespace n ON n.nspname = k.schema
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = k.name AND c.relkind IN ('r', 'p')
"""

LIST_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""

LIST_SCHEMAS = """
SELECT n.nspname FROM pg_namespace n
WHERE left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                                             AND d.deptype = 'e')
ORDER BY n.nspname
"""
