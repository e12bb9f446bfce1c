"""knowledge bases

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:50:00.000000

The full-text index depends on the database: SQLite gets an FTS5 table the core keeps in step
with `knowledge_documents` (core/knowledge.py), PostgreSQL a GIN index over
`to_tsvector('simple', text)`.
"""

import sqlalchemy as sa
from alembic import op

import docmill.core.models

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('knowledge_bases',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('json_schema', sa.JSON(), nullable=False),
    sa.Column('indexing_preferences', sa.JSON(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', docmill.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', docmill.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('synced_at', docmill.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_knowledge_bases_org_name', 'knowledge_bases', ['org_id', 'name'],
                    unique=True)
    op.create_table('knowledge_documents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kb_id', sa.String(length=36), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.Column('document_id', sa.String(length=255), nullable=True),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', docmill.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', docmill.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['kb_id'], ['knowledge_bases.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_knowledge_documents_kb_created', 'knowledge_documents',
                    ['kb_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_knowledge_documents_org_id'), 'knowledge_documents', ['org_id'],
                    unique=False)
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("CREATE VIRTUAL TABLE knowledge_documents_fts USING fts5("
                   "doc_id UNINDEXED, kb_id UNINDEXED, text, tokenize='unicode61 remove_diacritics 2')")
    else:
        op.execute("CREATE INDEX ix_knowledge_documents_tsv ON knowledge_documents "
                   "USING GIN (to_tsvector('simple', text))")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP TABLE IF EXISTS knowledge_documents_fts")
    op.drop_table('knowledge_documents')
    op.drop_table('knowledge_bases')
