"""Source rows into the target session's temporary staging tables, transformed exactly as a full load.

    pg_temp.dbsplit_stage     target rows (the table's target columns and types, NOT NULL as planned)
    pg_temp.dbsplit_keystage  (s0..sn[, t0..tm]) for every staged row: its source key and, for mapped
                              keys, its target key. Direct keys: a view over dbsplit_stage.
    pg_temp.dbsplit_keyhash   (s0..sn, h) for every staged row: its source key and the key's fingerprint
                              computed BY THE SOURCE SERVER (see context.py: key_hash). Pass-through tables:
                              a view over dbsplit_stage, whose rows carry the fingerprint in one more
                              column (read in the same COPY as the row).
    pg_temp.dbsplit_allkeys   (s0..sn, h) of every source row, and pg_temp.dbsplit_allmap (s0..sn, t0..tm)
                              for mapped keys (only when the key table is rebuilt)

Pass-through tables move as binary COPY from the source query straight into the staging table (text
COPY when a column type cannot travel in binary); other tables go through engine/migrate/transform.py's
extract_chunk -> transform_chunk -> load_chunk, so that every value equals what a full load writes.
For mapped keys the (source key, target key) pairs are made by the same functions from a key-only
table whose target key columns are the table's own key ColumnMaps (uuid_key, cast, ...).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import psycopg
from psycopg import sql

from dbsplit.engine.migrate import arrow_io, wire
from dbsplit.engine.resync.keyspec import KeySpec, keys_table, too_many_rejects
from dbsplit.engine.resync.names import ALLKEYS, ALLMAP, KEYHASH, KEYHASH_LATE, KEYSTAGE, STAGE, STAGE_LATE
from dbsplit.engine.resync.sql_parts import scalar
from dbsplit.errors import RejectLimitExceeded
from dbsplit.model.resolved import ResolvedTable
from dbsplit.model.sql_fragments import filter_sql
from dbsplit.pg.copy import joined_messages

KEY_SETTINGS = {"TimeZone": "UTC"}   # on top of arrow_io.TEXT_SETTINGS: key texts and hashes of the source
KEY_BATCH = 50_000          # keys per fetch-by-key query


@dataclass
class Fetcher:
    """Reads source rows (in the caller's snapshot transaction on src) into the staging tables on tgt."""

    src: psycopg.Connection
    tgt: psycopg.Connection
    table: ResolvedTable
    spec: KeySpec
    namespace: uuid.UUID
    salt: bytes | None
    tmpdir: Path
    key_hash: sql.Composable            # fingerprint of a source key, evaluated by the source (bigint)
    new_keys: tuple[str, sql.Composable] | None = None   # (temp table, key table): see track_new_keys
    rows: int = 0
    rejects: list = field(default_factory=list)
    seconds: float = 0.0
    _n: int = 0
    _binary: bool | None = None

    # -- staging tables -------------------------------------------------------------------------

    @property
    def hashed_stage(self) -> bool:
        """Staged rows carry their key's fingerprint (column hash_column) and dbsplit_keyhash is a view:
        pass-through tables with a direct key, whose rows and fingerprints come from one COPY."""
        return self.table.passthrough and self.spec.mode == "direct"

    @property
    def hash_column(self) -> str:
        """The staging table's fingerprint column: a name none of the table's columns has."""
        taken = {cm.target for cm in self.table.columns}
        name = "dbsplit_h"
        while name in taken:
            name += "_"
        return name

    def create_stage(self) -> None:
        cols = [sql.SQL("{} {}{}").format(sql.Identifier(cm.target), sql.SQL(cm.target_type),
                                          sql.SQL(" NOT NULL") if cm.not_null else sql.SQL(""))
                for cm in self.table.columns]
        if self.hashed_stage:
            cols.append(sql.SQL("{} bigint NOT NULL").format(sql.Identifier(self.hash_column)))
        self.tgt.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{} CASCADE").format(sql.Identifier(STAGE)))
        self.tgt.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(KEYSTAGE)))
        self.tgt.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(STAGE), sql.SQL(", ").join(cols)))
        self.tgt.execute(sql.SQL("CREATE INDEX ON pg_temp.{} ({})").format(
            sql.Identifier(STAGE), sql.SQL(", ").join(map(sql.Identifier, self.spec.target_cols))))
        if self.spec.mode == "direct":
            sel = sql.SQL(", ").join(sql.SQL("{} AS {}").format(sql.Identifier(t), sql.Identifier(s))
                                     for t, s in zip(self.spec.target_of_s(), self.spec.s, strict=False))
            self.tgt.execute(sql.SQL("CREATE TEMP VIEW {} AS SELECT {} FROM pg_temp.{}").format(
                sql.Identifier(KEYSTAGE), sel, sql.Identifier(STAGE)))
        else:
            self._create_keys(KEYSTAGE)
        if self.hashed_stage:
            self.tgt.execute(sql.SQL("CREATE TEMP VIEW {} AS SELECT {}, {} AS h FROM pg_temp.{}").format(
                sql.Identifier(KEYHASH), sel, sql.Identifier(self.hash_column), sql.Identifier(STAGE)))
        else:
            self._create_keys(KEYHASH, hashed=True)

    def _create_keys(self, name: str, hashed: bool = False) -> None:
        cols: list[sql.Composable] = [sql.SQL("{} {} NOT NULL").format(sql.Identifier(s), sql.SQL(ty))
                                      for s, ty in zip(self.spec.s, self.spec.source_types, strict=False)]
        if hashed:
            cols.append(sql.SQL("h bigint NOT NULL"))
        elif self.spec.mode == "mapped":
            cols += [sql.SQL("{} {} NOT NULL").format(sql.Identifier(t), sql.SQL(ty))
                     for t, ty in zip(self.spec.t, self.spec.target_types, strict=False)]
        self.tgt.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))
        self.tgt.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(name), sql.SQL(", ").join(cols)))
        if name != ALLKEYS and name != ALLMAP:   # small sets joined by index probes (the rebuild's are hashed)
            self.tgt.execute(sql.SQL("CREATE INDEX ON pg_temp.{} ({})").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, self.spec.s))))

    # -- reading ------------------------------------------------------------------------------

    def stage_where(self, where: sql.Composable | None) -> int:
        """Stage the source rows matching where (AND the plan's filter); returns rows staged."""
        start = time.perf_counter()
        n = 0
        for part in self._chunks(where):
            n += self._stage_rows(part)
            if self.spec.mode == "mapped":
                self._load_keys(part, KEYSTAGE)
            if not self.hashed_stage:
                self._hashes(part, KEYHASH)
        self.rows += n
        self.seconds += time.perf_counter() - start
        return n

    def stage_keys(self, keys: Sequence[tuple[str, ...]]) -> int:
        """Stage the source rows with these source keys (texts); absent keys are skipped."""
        n = 0
        for i in range(0, len(keys), KEY_BATCH):
            n += self.stage_where(self.keys_condition(keys[i:i + KEY_BATCH]))
        return n

    def load_all_keys(self) -> int:
        """Every source key with its hash into pg_temp.dbsplit_allkeys (and with its target key into
        pg_temp.dbsplit_allmap for mapped keys)."""
        start = time.perf_counter()
        self._create_keys(ALLKEYS, hashed=True)
        n = self._hashes(None, ALLKEYS)
        if self.spec.mode == "mapped":
            self._create_keys(ALLMAP)
            for part in self._chunks(None):
                self._load_keys(part, ALLMAP)
            self.tgt.execute(sql.SQL("ANALYZE pg_temp.{}").format(sql.Identifier(ALLMAP)))
        self.tgt.execute(sql.SQL("ANALYZE pg_temp.{}").format(sql.Identifier(ALLKEYS)))
        self.seconds += time.perf_counter() - start
        return n

    def track_new_keys(self, table: str, key_table: sql.Composable) -> None:
        """From now on, keys staged that key_table lacks are also added to pg_temp.<table> (the run's
        new keys), so that the key table's maintenance needs no probe per staged key."""
        if self.hashed_stage:   # late rows land here first, then join the staging table
            self.tgt.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(STAGE_LATE)))
            self.tgt.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE pg_temp.{})").format(
                sql.Identifier(STAGE_LATE), sql.Identifier(STAGE)))
        else:
            self._create_keys(KEYHASH_LATE, hashed=True)
        self.new_keys = (table, key_table)

    def _hashes(self, where: sql.Composable | None, name: str) -> int:
        """(source key, its hash by the source) of the rows matching where, into pg_temp.<name>."""
        query = sql.SQL("SELECT {}, {} FROM {}{}").format(
            sql.SQL(", ").join(map(sql.Identifier, self.spec.source_cols)), self.key_hash,
            sql.Identifier(self.table.source_schema, self.table.source_table), self._filter_clause(where))
        late = name == KEYHASH and self.new_keys is not None
        with arrow_io.text_settings(self.src, KEY_SETTINGS):
            n = self._copy(query, KEYHASH_LATE if late else name, [*self.spec.s, "h"], self._binary_ok())
        if late:
            with self.tgt.transaction():
                self.tgt.execute(sql.SQL("INSERT INTO pg_temp.{} SELECT * FROM pg_temp.{}").format(
                    sql.Identifier(KEYHASH), sql.Identifier(KEYHASH_LATE)))
                self._add_new_keys(sql.SQL("pg_temp.{}").format(sql.Identifier(KEYHASH_LATE)))
                self.tgt.execute(sql.SQL("TRUNCATE pg_temp.{}").format(sql.Identifier(KEYHASH_LATE)))
        return n

    def _add_new_keys(self, staged: sql.Composable) -> None:
        """The keys of staged (a FROM item with the s columns and h) that neither the key table nor the
        new-key table holds, into the new-key table (see track_new_keys)."""
        assert self.new_keys is not None, "track_new_keys was called"
        table, key_table = self.new_keys
        on = sql.SQL(" AND ").join(sql.SQL("k.{} = l.{}").format(sql.Identifier(c), sql.Identifier(c))
                                   for c in self.spec.s)
        self.tgt.execute(sql.SQL("INSERT INTO pg_temp.{n} SELECT {cols} FROM {l} l WHERE NOT EXISTS "
                                 "(SELECT 1 FROM {k} k WHERE {on}) AND NOT EXISTS (SELECT 1 FROM pg_temp.{n} k"
                                 " WHERE {on})").format(
            n=sql.Identifier(table), cols=sql.SQL(", ").join(sql.Identifier("l", c) for c in [*self.spec.s, "h"]),
            l=staged, k=key_table, on=on))

    def _join_late_rows(self) -> None:
        """Late pass-through rows (staged after track_new_keys) from their landing table into the
        staging table; their keys the key table lacks into the new-key table."""
        late = sql.Identifier(STAGE_LATE)
        keys = sql.SQL(", ").join(sql.SQL("{} AS {}").format(sql.Identifier(t), sql.Identifier(c))
                                  for t, c in zip(self.spec.target_of_s(), self.spec.s, strict=False))
        with self.tgt.transaction():
            self.tgt.execute(sql.SQL("INSERT INTO pg_temp.{} SELECT * FROM pg_temp.{}").format(
                sql.Identifier(STAGE), late))
            self._add_new_keys(sql.SQL("(SELECT {}, {} AS h FROM pg_temp.{})").format(
                keys, sql.Identifier(self.hash_column), late))
            self.tgt.execute(sql.SQL("TRUNCATE pg_temp.{}").format(late))

    def keys_condition(self, keys: Sequence[tuple[str, ...]]) -> sql.Composable:
        """`key IN (...)` on the source table for source key texts."""
        cols = self.spec.source_cols
        arrays = sql.SQL(", ").join(
            sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(k[i]) for k in keys))
            for i in range(len(cols)))
        names = [sql.Identifier(f"a{i}") for i in range(len(cols))]
        casts = sql.SQL(", ").join(sql.SQL("CAST({} AS {})").format(n, sql.SQL(ty))
                                   for n, ty in zip(names, self.spec.source_types, strict=False))
        lhs: sql.Composable = sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, cols)))
        if len(cols) == 1:
            lhs = sql.Identifier(cols[0])
        return sql.SQL("{} IN (SELECT {} FROM unnest({}) AS u({}))").format(
            lhs, casts, arrays, sql.SQL(", ").join(names))

    def _filter_clause(self, where: sql.Composable | None) -> sql.Composable:
        parts: list[sql.Composable] = [sql.SQL("({})").format(where)] if where is not None else []
        if self.table.filter:
            parts.append(filter_sql(self.table.filter))
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")

    def _chunks(self, where: sql.Composable | None) -> list[sql.Composable | None]:
        """where, cut into key ranges of at most chunk_rows rows for the transformed path (it holds a chunk
        in memory); pass-through rows stream and need no cut."""
        if self.table.passthrough and self.spec.mode == "direct":
            return [where]
        rel = sql.Identifier(self.table.source_schema, self.table.source_table)
        count = scalar(self.src, sql.SQL("SELECT count(*) FROM {}{}").format(rel, self._filter_clause(where)))
        if count <= self.table.chunk_rows:
            return [where] if count else []
        cols = sql.SQL(", ").join(map(sql.Identifier, self.spec.source_cols))
        texts = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in self.spec.source_cols)
        bounds = [tuple(r) for r in self.src.execute(sql.SQL(
            "SELECT {texts} FROM (SELECT {cols}, row_number() OVER (ORDER BY {cols}) AS rn FROM {rel}{w}) x "
            "WHERE rn > 1 AND (rn - 1) % {n} = 0 ORDER BY rn").format(
            texts=texts, cols=cols, rel=rel, w=self._filter_clause(where), n=sql.Literal(self.table.chunk_rows)))]
        from dbsplit.engine.resync.diff import KeySide, range_condition

        side = KeySide(self.src, rel, self.spec.source_cols, self.spec.source_types, sql.SQL("0"))
        edges: list = [None, *bounds, None]
        out: list[sql.Composable | None] = []
        for lo, hi in zip(edges, edges[1:], strict=False):
            cond = range_condition(side, (lo, hi))
            out.append(cond if where is None else sql.SQL("({}) AND ({})").format(where, cond))
        return out

    def _binary_ok(self) -> bool:
        if self._binary is None:
            problems = wire.table_needs_text_copy(self.src, self.table.source_schema, self.table.source_table,
                                                  self.tgt.info.server_version)
            self._binary = not problems
        return self._binary

    def _copy(self, query: sql.Composable, name: str, columns: Sequence[str], binary: bool) -> int:
        """COPY (query) on the source straight into pg_temp.<name> on the target, relayed in blocks of
        rows (copy.joined_messages: half the client CPU of a row-by-row relay)."""
        fmt = sql.SQL(" (FORMAT binary)") if binary else sql.SQL("")
        out = sql.SQL("COPY ({}) TO STDOUT{}").format(query, fmt)
        into = sql.SQL("COPY pg_temp.{} ({}) FROM STDIN{}").format(
            sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns)), fmt)
        with self.src.cursor() as sc, self.tgt.cursor() as tc:
            if binary:
                with sc.copy(out) as cin, tc.copy(into) as cout:
                    for block in joined_messages(cin):
                        cout.write(block)
            else:
                with arrow_io.text_settings(self.src), self.tgt.transaction(), arrow_io.text_settings(self.tgt):
                    with sc.copy(out) as cin, tc.copy(into) as cout:
                        for block in joined_messages(cin):
                            cout.write(block)
            return tc.rowcount

    def _stage_rows(self, where: sql.Composable | None) -> int:
        t = self.table
        if t.passthrough:
            cols = [cm.target for cm in t.columns]
            select: list[sql.Composable] = [sql.Identifier(c) for c in cols]
            if self.hashed_stage:
                select.append(self.key_hash)
                cols.append(self.hash_column)
            query = sql.SQL("SELECT {} FROM {}{}").format(sql.SQL(", ").join(select),
                                                         sql.Identifier(t.source_schema, t.source_table),
                                                         self._filter_clause(where))
            late = self.hashed_stage and self.new_keys is not None
            with arrow_io.text_settings(self.src, KEY_SETTINGS):
                n = self._copy(query, STAGE_LATE if late else STAGE, cols, self._binary_ok())
            if late:
                self._join_late_rows()
            return n
        return self._transformed(t, where, STAGE)

    def _load_keys(self, where: sql.Composable | None, name: str) -> int:
        return self._transformed(keys_table(self.table, self.spec), where, name)

    def _transformed(self, table: ResolvedTable, where: sql.Composable | None, name: str) -> int:
        from dbsplit.engine.migrate import transform as tx

        self._n += 1
        a, b = self.tmpdir / f"e{self._n}.arrow", self.tmpdir / f"t{self._n}.arrow"
        tx.extract_chunk(self.src, table, where, a)
        tx.transform_chunk(a, b, table, self.namespace, self.salt)
        # the staged rows count against the table's reject limit: the load stops at the first reject
        # over it instead of isolating every refused row (one COPY of the rest of the chunk each)
        limit = max(self.table.max_rejected_rows - len(self.rejects), 0) if name == STAGE else None
        try:
            with self.tgt.transaction():
                stats = tx.load_chunk(self.tgt, "pg_temp", name, table, b, max_rejects=limit)
        except RejectLimitExceeded as e:
            first = e.rejects[0] if not self.rejects else self.rejects[0]
            limit = self.table.max_rejected_rows
            raise too_many_rejects(f"{self.table.target_schema}.{self.table.target_table}", f"more than {limit}",
                                   limit, f"{first.key}: {first.column or '-'}: {first.reason}") from e
        a.unlink(missing_ok=True)
        b.unlink(missing_ok=True)
        if name == STAGE:
            self.rejects += list(stats.rejects)
        return stats.rows
