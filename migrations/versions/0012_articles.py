"""articles: cases.kind and cases.article_type

Articles (issue 12): お知らせ・手順書・注意喚起 written by the help desk directly, kept as cases of
kind ``article`` so they share Markdown, attachments, sharing, review dates, search and history.
Existing rows become kind ``case`` (server default); article_type is null for cases.

Revision ID: 0012_articles
Revises: 0011_experts
Create Date: 2026-12-01 18:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_articles'
down_revision = '0011_experts'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), server_default='case', nullable=False))
        batch_op.add_column(sa.Column('article_type', sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_kind'), ['kind'], unique=False)


def downgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_kind'))
        batch_op.drop_column('article_type')
        batch_op.drop_column('kind')
