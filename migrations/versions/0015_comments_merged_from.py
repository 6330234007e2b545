"""comments: the question a comment was merged from

``merge_into`` turns a merged question's text into a comment of the target thread. The comment now
names that question (``merged_from_id``), so withdrawing either withdraws both. Comments made by
merges before this revision are found once by the marker the merge wrote at their start
(「（統合された相談 #<id>「」), with the same author as the merged question.

Revision ID: 0015_comments_merged_from
Revises: 0014_cases_state_scope_index
Create Date: 2026-12-02 19:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015_comments_merged_from'
down_revision = '0014_cases_state_scope_index'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_from_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_comments_merged_from_id'), ['merged_from_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_comments_merged_from_id_questions'), 'questions',
                                    ['merged_from_id'], ['id'], ondelete='SET NULL')
    op.execute(
        "UPDATE comments SET merged_from_id = (SELECT questions.id FROM questions"
        " WHERE questions.merged_into_id = comments.question_id AND questions.asker_id = comments.author_id"
        " AND comments.body LIKE '（統合された相談 #' || questions.id || '「%')"
        " WHERE comments.body LIKE '（統合された相談 #%'"
    )


def downgrade():
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_comments_merged_from_id_questions'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_comments_merged_from_id'))
        batch_op.drop_column('merged_from_id')
