"""labelled examples and taught extractors

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:20:00
"""

import sqlalchemy as sa
from alembic import op

import docmill.core.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('doc_type_examples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expected', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('document', sa.JSON(), nullable=True))
    op.create_table('doc_type_models',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('doc_type_id', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.Column('job_id', sa.String(length=64), nullable=False),
    sa.Column('examples', sa.Integer(), nullable=False),
    sa.Column('created_at', docmill.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['doc_type_id'], ['document_types.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('doc_type_models', schema=None) as batch_op:
        batch_op.create_index('ix_doc_type_models_type_org', ['doc_type_id', 'org_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('doc_type_models', schema=None) as batch_op:
        batch_op.drop_index('ix_doc_type_models_type_org')
    op.drop_table('doc_type_models')
    with op.batch_alter_table('doc_type_examples', schema=None) as batch_op:
        batch_op.drop_column('document')
        batch_op.drop_column('expected')
