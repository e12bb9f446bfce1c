"""knowledge base vocabularies (misspelt queries reach every document)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:30:00
"""

import re

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def upgrade() -> None:
    op.create_table('knowledge_terms',
    sa.Column('kb_id', sa.String(length=36), nullable=False),
    sa.Column('term', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['kb_id'], ['knowledge_bases.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kb_id', 'term')
    )
    # The vocabulary of the documents already there (the rule of core/knowledge.py:
    # vocabulary_of, frozen here as migrations must be).
    bind = op.get_bind()
    terms = sa.table('knowledge_terms', sa.column('kb_id'), sa.column('term'))
    seen: set[tuple[str, str]] = set()
    ids = [r[0] for r in bind.execute(sa.text("SELECT id FROM knowledge_documents"))]
    chunks = (ids[at:at + 200] for at in range(0, len(ids), 200))
    rows = (row for chunk in chunks for row in bind.execute(
        sa.text("SELECT kb_id, text FROM knowledge_documents WHERE id IN :ids")
        .bindparams(sa.bindparam("ids", expanding=True)), {"ids": chunk}).fetchall())
    batch: list[dict[str, str]] = []
    for kb_id, doc_text in rows:
        words = [w.lower() for w in _WORD.findall((doc_text or "")[:200_000])]
        for word in list(dict.fromkeys(w for w in words if 3 <= len(w) <= 64))[:5000]:
            if (kb_id, word) not in seen:
                seen.add((kb_id, word))
                batch.append({"kb_id": kb_id, "term": word})
        if len(batch) >= 5000:
            op.bulk_insert(terms, batch)
            batch = []
    if batch:
        op.bulk_insert(terms, batch)


def downgrade() -> None:
    op.drop_table('knowledge_terms')
