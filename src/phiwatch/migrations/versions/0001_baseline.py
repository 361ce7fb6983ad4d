"""The store as phiwatch made it before migrations: scans, services, findings, scan_plans, scan_shards.

Creates only what is missing, so stores made by older versions (some without the later indexes)
and new stores end up with the same schema.

Revision ID: 0001_baseline
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

TABLES = {
    "scans": lambda: op.create_table(
        "scans",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("scan", sa.JSON(), nullable=False),
    ),
    "services": lambda: op.create_table(
        "services",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scan_id", sa.String(64), sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
    ),
    "findings": lambda: op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scan_id", sa.String(64), sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("finding", sa.JSON(), nullable=False),
    ),
    "scan_plans": lambda: op.create_table(
        "scan_plans",
        sa.Column("scan_id", sa.String(64), sa.ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("shard_size", sa.Integer(), nullable=False),
    ),
    "scan_shards": lambda: op.create_table(
        "scan_shards",
        sa.Column("scan_id", sa.String(64), sa.ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("shard", sa.Integer(), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("services", sa.Integer(), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=False),
    ),
}

# (name, table, columns, unique)
INDEXES = [
    ("ix_services_scan_id", "services", ["scan_id"], False),
    ("ix_services_host", "services", ["host"], False),
    ("ux_services_scan_host_port", "services", ["scan_id", "host", "port"], True),
    ("ix_findings_scan_id", "findings", ["scan_id"], False),
    ("ix_findings_check_id", "findings", ["check_id"], False),
    ("ix_findings_scan_host_port", "findings", ["scan_id", "host", "port"], False),
]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = set(inspector.get_table_names())
    for name, create in TABLES.items():
        if name not in present:
            create()
    inspector = sa.inspect(op.get_bind())
    for name, table, columns, unique in INDEXES:
        if name not in {index["name"] for index in inspector.get_indexes(table)}:
            op.create_index(name, table, columns, unique=unique)


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        op.drop_table(name)
