"""Embedding requests of /v1 clients, queued for the workers

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Texts stay only until a worker has read them, vectors only until the client has them; the token
count stays for the person's quota.
"""

from alembic import op
import sqlalchemy as sa


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embedding_request",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("texts", sa.Text(), nullable=True),
        sa.Column("as_query", sa.Boolean(), nullable=False),
        sa.Column("vectors", sa.LargeBinary(), nullable=True),
        sa.Column("dimensions", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(length=128), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("compute_seconds", sa.Float(), nullable=True),
        sa.Column("worker_name", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("embedding_request", schema=None) as batch_op:
        batch_op.create_index(
            "ix_embedding_request_user_created", ["user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("embedding_request")
