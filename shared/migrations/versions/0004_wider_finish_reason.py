"""wider finish_reason (failure kinds such as model_unavailable)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.alter_column(
            'finish_reason', existing_type=sa.String(length=16), type_=sa.String(length=32), existing_nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.alter_column(
            'finish_reason', existing_type=sa.String(length=32), type_=sa.String(length=16), existing_nullable=True
        )
