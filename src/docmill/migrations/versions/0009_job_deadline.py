"""job deadlines; one public link per job output

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:00:00
"""

import sqlalchemy as sa
from alembic import op

import docmill.core.models

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_at',
                                      docmill.core.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_jobs_deadline', ['deadline_at'], unique=False)
    # links published twice by racing polls before this index existed: keep one of each
    op.execute("DELETE FROM public_files WHERE job_id IS NOT NULL AND id NOT IN ("
               "SELECT MIN(id) FROM public_files WHERE job_id IS NOT NULL "
               "GROUP BY job_id, blob_key)")
    with op.batch_alter_table('public_files', schema=None) as batch_op:
        batch_op.create_index('ux_public_files_job_blob', ['job_id', 'blob_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('public_files', schema=None) as batch_op:
        batch_op.drop_index('ux_public_files_job_blob')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_deadline')
        batch_op.drop_column('deadline_at')
