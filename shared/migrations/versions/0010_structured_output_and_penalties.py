"""A /v1 request's response format (structured output) and its presence and frequency penalties

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_format", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("presence_penalty", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("frequency_penalty", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("frequency_penalty")
        batch_op.drop_column("presence_penalty")
        batch_op.drop_column("response_format")
