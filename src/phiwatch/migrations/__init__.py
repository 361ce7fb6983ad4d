"""The store's schema, kept by Alembic: `migrate(engine)` brings any store up to the newest revision.

Revision 0001 is the schema phiwatch stores had before migrations existed: it creates only the
tables and indexes a store lacks, so a `.db` file made by an older phiwatch is upgraded in place.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

HEAD = "0004_findings_host_severity"  # the newest revision; tests check it against the scripts


def current_revision(engine: Engine) -> str | None:
    """The store's revision, None for a store never migrated (or an empty one)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def migrate(engine: Engine) -> None:
    """Upgrade the store to HEAD; a store already there costs one query and no Alembic import."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError:
        if current_revision(engine) != HEAD:  # another process migrated the same store meanwhile
            raise
