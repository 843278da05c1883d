"""The embedder's vector of each document passage, beside its terms

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

A nullable column: passages read while the embedder was off have none and are found by their
words alone. In SQLite it is added in place (ALTER TABLE ADD COLUMN), not by copying the table,
so the full-text index's triggers on document_passage stay as migration 0012 made them.
"""

from alembic import op
import sqlalchemy as sa


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("document_passage", sa.Column("embedding", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("document_passage", "embedding")
