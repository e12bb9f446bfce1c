"""pipelines and step jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:20:00
"""

import sqlalchemy as sa
from alembic import op

import docmill.core.models

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pipelines',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', docmill.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', docmill.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.create_index('ix_pipelines_org_name', ['org_id', 'name'], unique=True)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('step', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('step_item', sa.Integer(), nullable=True))
        batch_op.create_index('ux_jobs_parent_step_item', ['parent_id', 'step', 'step_item'],
                              unique=True)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ux_jobs_parent_step_item')
        batch_op.drop_column('step_item')
        batch_op.drop_column('step')
        batch_op.drop_column('parent_id')
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_index('ix_pipelines_org_name')
    op.drop_table('pipelines')
