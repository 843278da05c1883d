"""per-request sampling and finish reason

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('system_prompt', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('max_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('temperature', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('top_p', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('finish_reason', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_column('finish_reason')
        batch_op.drop_column('top_p')
        batch_op.drop_column('temperature')
        batch_op.drop_column('max_tokens')
        batch_op.drop_column('system_prompt')
