"""The store's schema, kept by Alembic: `migrate(engine)` brings any store up to the newest revision.

Revision 0001 is the schema phiwatch stores had before migrations existed: it creates only the
tables and indexes a store lacks, so a `.db` file made by an older phiwatch is upgraded in place.

A brand-new (empty) store skips Alembic: its tables are created from the models' metadata (store.py and
watch/tables.py, which mirror every revision) and stamped HEAD. tests/test_store_migrations.py proves
that this yields the same schema as running every revision, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["HEAD", "create_head", "current_revision", "migrate", "upgrade"]

from ..litestore import HEAD  # the newest revision (tests check it against the scripts)


def current_revision(engine: Engine) -> str | None:
    """The store's revision, None for a store never migrated (or an empty one)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def create_head(engine: Engine) -> bool:
    """An empty store gets the HEAD schema without Alembic; False (nothing done) if it has any table."""
    from ..orm import Base  # the store's tables are registered by store.py, which calls this
    from ..watch import tables  # noqa: F401  (registers the watcher's tables in Base.metadata)

    version = MetaData()
    # as Alembic creates it (alembic.runtime.migration.MigrationContext)
    Table("alembic_version", version, Column("version_num", String(32), nullable=False),
          PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
    with engine.begin() as connection:
        if inspect(connection).get_table_names():
            return False
        Base.metadata.create_all(connection)
        version.create_all(connection)
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD})
    return True


def upgrade(engine: Engine) -> None:
    """Run Alembic's upgrade to head (every revision the store lacks)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def migrate(engine: Engine) -> None:
    """Upgrade the store to HEAD; a store already there costs one query, and a new one is created at
    HEAD, both without importing Alembic."""
    if current_revision(engine) == HEAD:
        return
    try:
        if not create_head(engine):
            upgrade(engine)
    except SQLAlchemyError:
        if current_revision(engine) != HEAD:  # another process migrated the same store meanwhile
            raise
