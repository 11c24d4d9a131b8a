"""The jobboard sample on a real server: deterministic, sized as asked, and as messy as real data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import psycopg
import pytest

from dbsplit import samples
from dbsplit.samples import SampleError

pytestmark = pytest.mark.integration

ROWS = 5_000
# md5 over the per-table checksums of create_sample(rows=ROWS), the same on every PostgreSQL version.
# Regenerate only when generate.sql changes on purpose: print(_digest(samples.table_checksums(conninfo))).
GOLDEN_DIGEST = "025161daa40bbf064845a8ae5a561013"
LINK_TABLES = {"user_skills", "job_skills"}


@pytest.fixture
def jobboard(make_db: Callable[[str], str]) -> tuple[str, dict[str, int]]:
    """A fresh database holding the sample at ROWS rows: (conninfo, counts returned by create_sample)."""
    conninfo = make_db("jobboard")
    return conninfo, samples.create_sample(conninfo, rows=ROWS)


def _scalar(conninfo: str, query: str) -> object:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(query.encode()).fetchone()
        return row[0] if row else None


def _digest(checksums: dict[str, str]) -> str:
    return hashlib.md5("".join(f"{t}={c};" for t, c in sorted(checksums.items())).encode()).hexdigest()


def test_same_rows_give_identical_data(make_db: Callable[[str], str]) -> None:
    first, second = make_db("det_a"), make_db("det_b")
    samples.create_sample(first, rows=ROWS)
    samples.create_sample(second, rows=ROWS)
    a, b = samples.table_checksums(first), samples.table_checksums(second)
    assert a == b
    assert set(a) == set(samples.sample_tables())


def test_data_matches_the_golden_digest(jobboard: tuple[str, dict[str, int]]) -> None:
    """Pins the bytes across servers and PostgreSQL versions (15 and 18 give this same digest)."""
    conninfo, _ = jobboard
    assert _digest(samples.table_checksums(conninfo)) == GOLDEN_DIGEST


def test_counts_follow_the_request(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, counts = jobboard
    assert counts == samples.table_counts(conninfo) == samples.planned_counts(ROWS)
    assert abs(sum(counts.values()) - ROWS) <= ROWS * 0.10
    assert all(n > 0 for n in counts.values()), counts
    assert counts["analytics_events"] > counts["users"] and counts["applications"] > counts["jobs"]


@pytest.mark.parametrize("rows", [1_000, 50_000, 5_000_000])
def test_planned_counts_scale(rows: int) -> None:
    counts = samples.planned_counts(rows)
    assert abs(sum(counts.values()) - rows) <= rows * 0.10
    assert counts["job_categories"] >= 8 and counts["notification_templates"] >= 8
    assert counts["notification_preferences"] <= counts["users"]


def test_too_few_rows_are_refused() -> None:
    with pytest.raises(SampleError, match="at least"):
        samples.planned_counts(999)


def test_unknown_sample_is_refused() -> None:
    with pytest.raises(SampleError, match="unknown sample"):
        samples.sample_tables("nope")


@pytest.mark.parametrize(
    ("what", "query"),
    [
        ("NULL phones", "SELECT count(*) FROM users WHERE phone IS NULL"),
        ("NULL salaries", "SELECT count(*) FROM jobs WHERE salary_min IS NULL"),
        ("NULL cover letters", "SELECT count(*) FROM applications WHERE cover_letter IS NULL"),
        ("NULL interview notes", "SELECT count(*) FROM interviews WHERE notes IS NULL"),
        ("unread notifications", "SELECT count(*) FROM notifications WHERE read_at IS NULL"),
        ("anonymous events", "SELECT count(*) FROM analytics_events WHERE user_id IS NULL"),
        ("empty descriptions", "SELECT count(*) FROM jobs WHERE description = ''"),
        ("empty cover letters", "SELECT count(*) FROM applications WHERE cover_letter = ''"),
        ("empty search queries", "SELECT count(*) FROM search_history WHERE query = ''"),
        ("accented names", "SELECT count(*) FROM users WHERE full_name LIKE '%ñ%' OR full_name LIKE '%ö%'"),
        ("CJK names", "SELECT count(*) FROM users WHERE full_name IN ('李小龙', '山田太郎', '김민준')"),
        ("emoji", "SELECT count(*) FROM jobs WHERE title LIKE '%🌍%' OR description LIKE '%🚀%'"),
        ("nested jsonb", "SELECT count(*) FROM users WHERE jsonb_typeof(settings->'notifications') = 'object'"),
        ("JSON null inside jsonb", "SELECT count(*) FROM analytics_events WHERE properties->'referrer' = 'null'"),
        ("empty arrays", "SELECT count(*) FROM jobs WHERE tags = '{}'"),
        ("later updates", "SELECT count(*) FROM users WHERE updated_at > created_at"),
        ("self-referencing rows", "SELECT count(*) FROM job_categories WHERE parent_id IS NOT NULL"),
    ],
)
def test_data_has_real_world_quirks(jobboard: tuple[str, dict[str, int]], what: str, query: str) -> None:
    conninfo, _ = jobboard
    assert int(str(_scalar(conninfo, query))) > 0, what


def test_nullable_columns_are_null_in_5_to_35_percent(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, _ = jobboard
    share = _scalar(conninfo, "SELECT avg((phone IS NULL)::int) FROM users")
    assert 0.05 <= float(str(share)) <= 0.35


def test_timestamps_span_two_years(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, _ = jobboard
    days = _scalar(conninfo, "SELECT extract(day FROM max(occurred_at) - min(occurred_at)) FROM analytics_events")
    assert int(str(days)) > 600


def test_children_never_precede_parents(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, _ = jobboard
    query = """SELECT (SELECT count(*) FROM applications AS a JOIN jobs AS j ON j.id = a.job_id
                       WHERE a.applied_at < j.posted_at)
                    + (SELECT count(*) FROM interviews AS i JOIN applications AS a ON a.id = i.application_id
                       WHERE i.scheduled_at < a.applied_at)"""
    assert _scalar(conninfo, query) == 0


def test_foreign_keys_are_declared(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, _ = jobboard
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            """SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
               WHERE contype = 'f' AND connamespace = 'public'::regnamespace"""
        ).fetchall()
    assert set(rows) == {
        ("user_skills", "users"), ("user_skills", "skills"), ("jobs", "companies"), ("jobs", "job_categories"),
        ("job_categories", "job_categories"), ("job_skills", "jobs"), ("job_skills", "skills"),
        ("applications", "users"), ("applications", "jobs"), ("application_attachments", "applications"),
        ("interviews", "applications"), ("search_history", "users"), ("saved_searches", "users"),
        ("notifications", "users"), ("notifications", "notification_templates"),
        ("notification_preferences", "users"), ("analytics_events", "users"),
    }


def test_every_table_has_a_primary_key_and_updated_at(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, _ = jobboard
    with psycopg.connect(conninfo) as conn:
        with_pk = {r[0] for r in conn.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'p'").fetchall()}
        updated = {r[0] for r in conn.execute(
            """SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'
               AND column_name = 'updated_at' AND data_type = 'timestamp with time zone'
               AND is_nullable = 'NO'""").fetchall()}
    tables = set(samples.sample_tables())
    assert tables <= with_pk
    assert tables - LINK_TABLES <= updated


def test_column_types_cover_the_common_ones(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, _ = jobboard
    with psycopg.connect(conninfo) as conn:
        types = {r[0] for r in conn.execute(
            "SELECT DISTINCT udt_name FROM information_schema.columns WHERE table_schema = 'public'").fetchall()}
    assert {"int8", "int4", "int2", "text", "varchar", "bpchar", "numeric", "bool", "jsonb", "timestamptz",
            "date", "_text", "bytea", "uuid", "inet", "application_status"} <= types


def test_identity_sequences_continue_after_the_data(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, counts = jobboard
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            """INSERT INTO users (public_id, email, full_name, locale, created_at, updated_at)
               VALUES (gen_random_uuid(), 'new@example.com', 'Ñandú Ötzi', 'es-ES', now(), now())
               RETURNING id"""
        ).fetchone()
        conn.rollback()
    assert row is not None and row[0] == counts["users"] + 1


def test_sample_exists_before_and_after(make_db: Callable[[str], str]) -> None:
    conninfo = make_db("exists")
    assert not samples.sample_exists(conninfo)
    samples.create_sample(conninfo, rows=1_000)
    assert samples.sample_exists(conninfo)


def test_create_sample_refuses_a_database_that_has_it(jobboard: tuple[str, dict[str, int]]) -> None:
    conninfo, counts = jobboard
    with pytest.raises(SampleError, match="already has tables"):
        samples.create_sample(conninfo, rows=ROWS)
    assert samples.table_counts(conninfo) == counts
