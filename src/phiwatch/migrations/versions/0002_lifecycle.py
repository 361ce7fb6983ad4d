"""The watcher's tables: jobs, runs, tracked findings, events, the alert outbox.

Revision ID: 0002_lifecycle
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_lifecycle"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "watch_jobs",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("every", sa.String(128), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("last_run", sa.Integer(), nullable=True),
        _when("last_started"), _when("last_ended"), _when("next_run"), _when("run_requested"),
    )
    op.create_table(
        "watch_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("scan_id", sa.String(64), nullable=True),
        _when("started", False), _when("ended"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(255), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in
          ("findings", "events", "exposed_services", "studies", "files", "open_findings")],
        sa.Column("open_by_severity", sa.JSON(), nullable=False),
    )
    op.create_index("ix_watch_runs_job", "watch_runs", ["job"])
    op.create_index("ix_watch_runs_scan_id", "watch_runs", ["scan_id"])
    op.create_index("ix_watch_runs_started", "watch_runs", ["started"])
    op.create_table(
        "watch_findings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _when("first_seen", False), _when("last_seen", False), _when("fixed_at"),
        sa.Column("absent_runs", sa.Integer(), nullable=False),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("studies", sa.Integer(), nullable=True),
        sa.Column("files", sa.Integer(), nullable=True),
        _when("acknowledged_at"), _when("accepted_until"),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("last_scan_id", sa.String(64), nullable=True),
        sa.Column("finding", sa.JSON(), nullable=False),
    )
    op.create_index("ux_watch_findings_identity", "watch_findings", ["job", "host", "port", "check_id"],
                    unique=True)
    op.create_index("ix_watch_findings_host", "watch_findings", ["host"])
    op.create_index("ix_watch_findings_state", "watch_findings", ["state"])
    op.create_index("ix_watch_findings_severity", "watch_findings", ["severity"])
    op.create_table(
        "watch_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("finding_id", sa.Integer(), sa.ForeignKey("watch_findings.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        _when("at", False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    for column in ("finding_id", "run_id", "job", "kind", "at"):
        op.create_index(f"ix_watch_events_{column}", "watch_events", [column])
    op.create_table(
        "watch_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("sink", sa.String(128), nullable=False),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        _when("created", False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt", False), _when("delivered"),
        sa.Column("last_error", sa.String(255), nullable=True),
    )
    op.create_index("ix_watch_outbox_pending", "watch_outbox", ["delivered", "next_attempt"])


def downgrade() -> None:
    for table in ("watch_outbox", "watch_events", "watch_findings", "watch_runs", "watch_jobs"):
        op.drop_table(table)
