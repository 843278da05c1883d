"""Documents people ask about, their passages, the passages' full-text index, an answer's sources

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

The index is the database's own. SQLite: an FTS5 table over the passages' terms (external
content: the terms are stored once, in document_passage), kept by triggers, ranked by bm25(); a
later SQLite migration that copies document_passage (batch mode) must create the triggers again.
PostgreSQL: a GIN index over to_tsvector('simple', terms). The terms are stemmed before they are
written (shared.terms), so both databases index the same words and 'simple' adds no stemming
of its own.
"""

from alembic import op
import sqlalchemy as sa


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("pages_read", sa.Integer(), nullable=False),
        sa.Column("passages", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker_name", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.create_index("ix_document_user_conversation", ["user_id", "conversation_id"], unique=False)
        batch_op.create_index("ix_document_conversation_id", ["conversation_id"], unique=False)
    op.create_table(
        "document_passage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("section", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["document.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("document_passage", schema=None) as batch_op:
        batch_op.create_index("ix_document_passage_document", ["document_id", "ordinal"], unique=False)
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_ids", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("sources", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_INDEX:
            op.execute(statement)
    else:
        op.execute(
            "CREATE INDEX ix_document_passage_terms ON document_passage "
            "USING gin (to_tsvector('simple', terms))"
        )


# unicode61 with diacritics kept: the terms are already folded (ё as е) and stemmed.
SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE document_passage_fts USING fts5(terms, content='document_passage', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER document_passage_indexed AFTER INSERT ON document_passage BEGIN "
    "INSERT INTO document_passage_fts(rowid, terms) VALUES (new.id, new.terms); END",
    "CREATE TRIGGER document_passage_unindexed AFTER DELETE ON document_passage BEGIN "
    "INSERT INTO document_passage_fts(document_passage_fts, rowid, terms) "
    "VALUES ('delete', old.id, old.terms); END",
)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS document_passage_unindexed")
        op.execute("DROP TRIGGER IF EXISTS document_passage_indexed")
        op.execute("DROP TABLE IF EXISTS document_passage_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_document_passage_terms")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("sources")
        batch_op.drop_column("document_ids")
    op.drop_table("document_passage")
    op.drop_table("document")
