"""Conversations people manage (titles, the current one), personal instructions, token quotas

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("active_at", sa.DateTime(), nullable=True))
    # Until now the newest conversation of a chat was its current one: keep it so.
    op.execute("UPDATE conversation SET active_at = created_at")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.alter_column("active_at", existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index(
            "ix_conversation_user_chat_active", ["user_id", "chat_id", "active_at"], unique=False
        )
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("instructions", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("quota_day", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quota_month", sa.Integer(), nullable=True))
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_user_created", ["user_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_user_created")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("quota_month")
        batch_op.drop_column("quota_day")
        batch_op.drop_column("instructions")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_user_chat_active")
        batch_op.drop_column("active_at")
        batch_op.drop_column("title")
