"""Tool calling on /v1: the tools a task may call, the conversation it brings, the calls it made

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tools", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("transcript", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tool_calls", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("tool_calls")
        batch_op.drop_column("transcript")
        batch_op.drop_column("tools")
