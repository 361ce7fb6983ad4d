"""A host's tracked findings by severity: the host page reads them worst first, a severity at a time.

Revision ID: 0004_findings_host_severity
"""

from alembic import op

revision = "0004_findings_host_severity"
down_revision = "0003_dashboard_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_watch_findings_host_severity", "watch_findings", ["host", "severity"])


def downgrade() -> None:
    op.drop_index("ix_watch_findings_host_severity", table_name="watch_findings")
