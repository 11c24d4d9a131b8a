"""Broken plans: each fails with exactly one problem, at the right line and field, in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbsplit.errors import PlanError
from dbsplit.plan import load_plan

# Lines 1-7; every case below appends its services from line 8 on.
HEAD = """\
version: 1
name: demo
source: {conn_id: src}
services:
  jobs:
    target: {conn_id: jobs_db}
    tables: [companies]
"""

# (id, plan text, line, field path, fragment of the message, fragment of the fix)
CASES = [
    ("unknown-key-typo", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        nmae: people
""", 12, "services.users.tables.0.nmae", "unknown key `nmae`", "did you mean `name`?"),
    ("key-in-wrong-place", HEAD + """\
  users:
    target: {conn_id: users_db}
    transforms: {email: drop}
    tables: [users]
""", 10, "services.users.transforms", "unknown key `transforms`",
     "`transforms` belongs in a table entry under `tables`"),
    ("missing-target", HEAD + """\
  users:
    tables: [users]
""", 8, "services.users.target", "required key `target` is missing", "add `target: {conn_id:"),
    ("missing-source-conn-id", HEAD.replace("source: {conn_id: src}", "source: {schema: app}"),
     3, "source.conn_id", "required key `conn_id` is missing", "add `conn_id: <an Airflow connection id>`"),
    ("bad-service-name", HEAD + """\
  Users:
    target: {conn_id: users_db}
    tables: [users]
""", 8, "services.Users", "invalid service name: `Users` is not a valid service name", "lower-case letters"),
    ("bad-plan-name", HEAD.replace("name: demo", "name: no spaces"), 2, "name",
     "`no spaces` is not a valid plan name", "letters, digits, `_` and `-` only"),
    ("number-as-name", HEAD.replace("name: demo", "name: 2024"), 2, "name",
     "`name` must be text, not the number 2024", "quote it: '2024'"),
    ("unsupported-version", HEAD.replace("version: 1", "version: 2"), 1, "version",
     "unsupported plan version 2; this dbsplit reads version 1", "write `version: 1`"),
    ("namespace-not-uuid", HEAD.replace("name: demo\n", "name: demo\nnamespace: 1234\n"), 3, "namespace",
     "`namespace` must be a UUID, not the number 1234", "derive one from the plan name"),
    ("conn-id-is-url", HEAD + """\
  users:
    target: {conn_id: "postgresql://u:secret@db/users"}
    tables: [users]
""", 9, "services.users.target.conn_id", "a connection id is expected here, not a URL", "define the URL in Airflow"),
    ("mask-typo", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          email: {mask: hsah}
""", 13, "services.users.tables.0.transforms.email.mask", "`mask` must be one of hash, redact, null (not `hsah`)",
     "did you mean `hash`?"),
    ("short-form-typo", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          legacy: dorp
""", 13, "services.users.tables.0.transforms.legacy", "unknown transform `dorp`", "did you mean `drop`?"),
    ("mask-and-cast", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          age: {mask: redact, cast: integer}
""", 13, "services.users.tables.0.transforms.age", "mask and cast cannot be combined",
     "only rename combines with mask or cast"),
    ("drop-false", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          legacy: {drop: false}
""", 13, "services.users.tables.0.transforms.legacy", "`drop: false` does nothing", "or remove the entry"),
    ("drop-and-rename", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          legacy: {drop: true, rename: old}
""", 13, "services.users.tables.0.transforms.legacy", "drop cannot be combined with another operation",
     "keep `drop` alone"),
    ("empty-transform", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          email:
""", 13, "services.users.tables.0.transforms.email", "the transform is empty", "give one operation: drop"),
    ("rename-collision", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        columns: [id, full_name, name]
        transforms:
          full_name: {rename: name}
""", 14, "services.users.tables.0.transforms.full_name.rename",
     "renaming `full_name` to `name` collides with the kept column `name`", "drop or rename the other column"),
    ("two-renames-collide", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          first: {rename: name}
          last: {rename: name}
""", 14, "services.users.tables.0.transforms.last.rename",
     "renaming `last` to `name` collides with `first` renamed to `name`", "rename it to a name no other column has"),
    ("added-column-collides", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        columns: [id, origin]
        add_columns:
          origin: {type: text}
""", 14, "services.users.tables.0.add_columns.origin", "added column `origin` collides with the kept column `origin`",
     "give the added column another name"),
    ("default-bare-word", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        add_columns:
          origin: {type: text, default: monolith}
""", 13, "services.users.tables.0.add_columns.origin.default",
     "`monolith` is not an SQL literal (PostgreSQL would read it as a column name)", """default: "'monolith'\""""),
    ("added-column-without-type", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        add_columns:
          origin: {default: "'x'"}
""", 13, "services.users.tables.0.add_columns.origin.type", "required key `type` is missing",
     "add `type: <PostgreSQL type>`"),
    ("custom-not-module-function", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        custom: mypkg.transforms.normalise
""", 12, "services.users.tables.0.custom",
     "`mypkg.transforms.normalise` is not of the form `package.module:function`",
     "e.g. `mypkg.transforms:normalise`"),
    ("chunk-rows-too-small", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        chunk_rows: 10
""", 12, "services.users.tables.0.chunk_rows", "`chunk_rows` must be at least 1000 (not 10)",
     "use a value of 1000 or more"),
    ("chunk-rows-not-a-number", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        chunk_rows: lots
""", 12, "services.users.tables.0.chunk_rows", "`chunk_rows` must be a whole number, not the text `lots`",
     "give a whole number"),
    ("retries-too-many", HEAD.replace("services:", "defaults: {retries: 11}\nservices:"), 4, "defaults.retries",
     "`retries` must be at most 10 (not 11)", "use a value of 10 or less"),
    ("negative-rejected-rows", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        max_rejected_rows: -1
""", 12, "services.users.tables.0.max_rejected_rows", "`max_rejected_rows` must be at least 0 (not -1)",
     "use a value of 0 or more"),
    ("uuid-key-not-bool", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        uuid_key: maybe
""", 12, "services.users.tables.0.uuid_key", "`uuid_key` must be true or false, not the text `maybe`",
     "write true or false"),
    ("routed-twice", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables: [companies]
""", 10, "services.users.tables.0",
     "source table public.companies is routed to both 'jobs' and 'users' under the same name `companies`",
     "give one route its own `name`"),
    ("duplicate-target-name", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - users
      - source: archive.old_users
        name: users
""", 13, "services.users.tables.1.name",
     "service 'users' loads two tables named `users` into users_db schema public", "give one of them another `name`"),
    ("shared-conn-and-schema", HEAD + """\
  users:
    target: {conn_id: jobs_db, schema: public}
    tables: [users]
""", 9, "services.users.target", "services 'jobs' and 'users' both load into jobs_db schema public",
     "give one another `schema`"),
    ("target-is-source-schema", HEAD + """\
  users:
    target: {conn_id: src}
    tables: [users]
""", 9, "services.users.target.conn_id",
     "service 'users' would load into the source database (connection `src`)", "a `conn_id` of its own"),
    ("reference-unknown-service", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        references: {company_id: jbos.companies}
""", 12, "services.users.tables.0.references.company_id", "no service `jbos` (in reference `jbos.companies`)",
     "did you mean `jobs`?"),
    ("reference-unknown-table", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        references: {company_id: jobs.company}
""", 12, "services.users.tables.0.references.company_id",
     "service 'jobs' has no table `company` (in reference `jobs.company`)", "did you mean `companies`?"),
    ("reference-malformed", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        references: {company_id: companies}
""", 12, "services.users.tables.0.references.company_id", "`companies` is not a `<service>.<table>` reference",
     "e.g. `jobs.companies`"),
    ("reference-masked", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms: {company_id: {mask: redact}}
        references: {company_id: jobs.companies}
""", 13, "services.users.tables.0.references.company_id",
     "column `company_id` holds a reference and cannot be masked", "remove the mask or the reference"),
    ("cycle-of-two", HEAD.replace("    tables: [companies]\n", """\
    tables:
      - source: companies
        references: {owner_id: users.users}
""") + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        references: {company_id: jobs.companies}
""", 9, "services.jobs.tables.0.references.owner_id",
     "services 'jobs' and 'users' reference each other: jobs -> users -> jobs", "remove one of these references"),
    ("cycle-of-three", HEAD.replace("    tables: [companies]\n", """\
    tables:
      - source: companies
        references: {owner_id: users.users}
""") + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        references: {last_application_id: apps.applications}
  apps:
    target: {conn_id: apps_db}
    tables:
      - source: applications
        references: {company_id: jobs.companies}
""", 9, "services.jobs.tables.0.references.owner_id",
     "services 'jobs', 'users' and 'apps' reference each other: jobs -> users -> apps -> jobs",
     "move the tables that reference each other into one service"),
    ("hash-without-salt", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        transforms:
          email: {mask: hash}
""", 13, "services.users.tables.0.transforms.email.mask",
     "`mask: hash` needs a salt, but `defaults.mask_salt` is not set",
     "add `mask_salt: {variable: dbsplit_mask_salt}`"),
    ("salt-given-literally", HEAD.replace("services:", "defaults:\n  mask_salt: s3cr3t\nservices:"), 5,
     "defaults.mask_salt", "mask_salt must say where the salt is kept, not hold the salt itself",
     "{variable: dbsplit_mask_salt}"),
    ("salt-in-two-places",
     HEAD.replace("services:", "defaults:\n  mask_salt: {variable: v, conn_id: c}\nservices:"), 5,
     "defaults.mask_salt", "mask_salt needs exactly one of `variable` or `conn_id`", "{conn_id: some_conn"),
    ("column-listed-twice", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        columns:
          - id
          - email
          - id
""", 15, "services.users.tables.0.columns.2", "column `id` is listed twice", "list each column once"),
    ("transform-outside-columns", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        columns: [id, bio]
        transforms:
          email: {mask: redact}
""", 14, "services.users.tables.0.transforms.email", "column `email` has a transform but is not in `columns`",
     "add `email` to `columns`"),
    ("tables-not-a-list", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables: users
""", 10, "services.users.tables", "`tables` must be a list, not the text `users`", "write a YAML list"),
    ("target-not-a-mapping", HEAD + """\
  users:
    target: users_db
    tables: [users]
""", 9, "services.users.target", "`target` must be a mapping, not the text `users_db`",
     "e.g. target: {conn_id: my_service_db, schema: public}"),
    ("table-entry-a-number", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - users
      - 42
""", 12, "services.users.tables.1", "a table entry must be a table name or a mapping", "{source: schema.users"),
    ("source-three-parts", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables: [db.public.users]
""", 10, "services.users.tables.0.source", "`db.public.users` is not a table name", "`schema.table`"),
    ("service-without-tables", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables: []
""", 8, "services.users", "the service has no tables", "or whole source schemas under `schemas`"),
    ("conflict-policy-typo", HEAD + """\
  users:
    target: {conn_id: users_db}
    resync: {on_conflict: source_win}
    tables: [users]
""", 10, "services.users.resync.on_conflict", "`on_conflict` must be one of source_wins, stop (not `source_win`)",
     "did you mean `source_wins`?"),
    ("schedule-not-cron", HEAD + """\
  users:
    target: {conn_id: users_db}
    resync: {schedule: "every night"}
    tables: [users]
""", 10, "services.users.resync.schedule", "`every night` is not a cron schedule", '"0 2 * * *"'),
    ("expectations-absolute", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        expectations: /etc/suite.json
""", 12, "services.users.tables.0.expectations", "`/etc/suite.json` is not a relative path of a .json file",
     "relative to the repository root"),
    ("name-too-long", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables:
      - source: users
        name: %s
""" % ("n" * 64), 12, "services.users.tables.0.name", "is longer than 63 bytes, PostgreSQL's limit for names",
     "at most 63 bytes"),
    ("duplicate-yaml-key", HEAD + """\
  users:
    target: {conn_id: users_db}
    tables: [users]
    tables: [user_skills]
""", 11, "services.users.tables", "key `tables` is given twice (lines 10 and 11)",
     "YAML would silently use the last"),
    ("schema-routed-twice", HEAD + """\
  users:
    target: {conn_id: users_db}
    schemas: [accounts]
  billing:
    target: {conn_id: billing_db}
    schemas: [invoices, accounts]
""", 13, "services.billing.schemas.1", "source schema accounts is routed whole to both 'users' and 'billing'",
     "list it once, in one service"),
    ("table-in-schema-of-other-service", HEAD + """\
  users:
    target: {conn_id: users_db}
    schemas: [accounts]
  billing:
    target: {conn_id: billing_db}
    tables: [accounts.invoices]
""", 13, "services.billing.tables.0",
     "table accounts.invoices is routed to 'billing', but service 'users' takes the whole schema accounts",
     "remove accounts from the `schemas` of 'users'"),
]


@pytest.mark.parametrize(("text", "line", "field", "message", "fix"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_broken_plan(tmp_path: Path, text: str, line: int, field: str, message: str, fix: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), line, field), str(problem)
    assert message in problem.message, str(problem)
    assert fix in problem.fix, str(problem)
    assert "Input should be" not in str(problem) and "valid dictionary" not in str(problem)


def test_there_are_enough_broken_plans() -> None:
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)
