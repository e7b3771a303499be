"""Which schema a database holds, and whether this release's code can use it.

Migrations are a release step (`imdb-sentiment db upgrade`: a Kubernetes Job or a CI step before
the rollout; on one laptop, DATABASE_MIGRATE=auto, the server's master runs it once as it
starts: `store.migrate`), and they are additive for at least one release (expand, then
contract): the previous release's pods keep serving against the new schema, and a rollback meets
a schema newer than it knows. So a process that meets a database reads the revision there and
judges it:

- `current`       this release's newest revision.
- `newer`         a revision this release does not know, from a later one, and compatible: every
                  table and column this code reads and writes is there, and every column it does
                  not know is nullable or has a default (its inserts still succeed). Usable.
- `older`         a revision this release knows, before its newest: not migrated yet.
- `missing`       no schema at all.
- `incompatible`  a newer revision that removed or tightened what this code needs.

Only `current` and `newer` are usable; the service reports the others as not ready (one log
line, no crash) and looks again until the release step has migrated the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection, inspect

from imdb_sentiment.store.tables import metadata

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
Status = Literal["current", "newer", "older", "missing", "incompatible"]


@dataclass(frozen=True)
class SchemaState:
    status: Status
    revision: str | None  # what the database holds (None: no schema)
    head: str  # this release's newest revision
    detail: str

    @property
    def usable(self) -> bool:
        return self.status in ("current", "newer")


@lru_cache(maxsize=1)
def scripts() -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def head() -> str:
    found = scripts().get_current_head()
    assert found is not None, "the migrations have one head"
    return found


def known_revisions() -> set[str]:
    return {script.revision for script in scripts().walk_revisions()}


def inspect_schema(connection: Connection) -> SchemaState:
    """Judge the schema this connection's database holds (reads only)."""
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(connection).get_current_revision()
    newest = head()
    if revision is None:
        return SchemaState("missing", None, newest, "no schema: run `imdb-sentiment db upgrade`")
    if revision == newest:
        return SchemaState("current", revision, newest, f"schema at revision {revision}")
    if revision in known_revisions():
        return SchemaState(
            "older", revision, newest,
            f"schema at revision {revision}, older than this release's {newest}: "
            "run `imdb-sentiment db upgrade` (the release step)",
        )  # fmt: skip
    problems = incompatibilities(connection)
    if problems:
        return SchemaState(
            "incompatible", revision, newest,
            f"schema at revision {revision}, unknown to this release ({newest}) and "
            f"incompatible with it: {'; '.join(problems)}",
        )  # fmt: skip
    return SchemaState(
        "newer", revision, newest,
        f"schema at revision {revision}, newer than this release's {newest} and compatible",
    )  # fmt: skip


def incompatibilities(connection: Connection) -> list[str]:
    """What a newer schema took away from, or added in the way of, this code's tables."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    problems = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            problems.append(f"table {table.name} is gone")
            continue
        found = {c["name"]: c for c in inspector.get_columns(table.name)}
        problems += [f"column {table.name}.{c.name} is gone" for c in table.columns
                     if c.name not in found]  # fmt: skip
        for name, reflected in found.items():
            if name in table.columns:
                continue
            if not reflected["nullable"] and reflected.get("default") is None:
                problems.append(f"new column {table.name}.{name} is required and has no default")
    return problems
