"""Indexes the dashboard's overview reads through: counts by state and severity, the fixed findings'
windows, and new and fixed events per week, each answered from an index alone.

Revision ID: 0003_dashboard_indexes
"""

from alembic import op

revision = "0003_dashboard_indexes"
down_revision = "0002_lifecycle"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_watch_findings_state_severity", "watch_findings", ["state", "severity"]),
    ("ix_watch_findings_state_fixed", "watch_findings", ["state", "fixed_at", "first_seen"]),
    ("ix_watch_events_kind_at", "watch_events", ["kind", "at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
