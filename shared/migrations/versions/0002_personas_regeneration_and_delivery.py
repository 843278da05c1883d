"""personas, regeneration and delivery

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('superseded', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('persona', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('model_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('client_meta', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('persona', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('persona')

    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('client_meta')
        batch_op.drop_column('model_name')
        batch_op.drop_column('persona')
        batch_op.drop_column('superseded')
