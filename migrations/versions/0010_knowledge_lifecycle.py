"""knowledge lifecycle: case revisions, readers' reports, review dates, supersedes links, questions
asked about a case, tag and category status (retired, merged) and review periods; every existing
case gets its first revision (its content at the upgrade) and a published case its review date

Revision ID: 0010_knowledge_lifecycle
Revises: 0009
Create Date: 2026-12-02 10:00:00

"""
import calendar
from datetime import date, datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = "0010_knowledge_lifecycle"
down_revision = "0009"
branch_labels = None
depends_on = None

# Kept in step with app/services/review.py (a migration does not import the app).
DEFAULT_REVIEW_MONTHS = 12
CATEGORY_REVIEW_MONTHS = {"security": 6}


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _as_datetime(value):
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _seed(bind) -> None:
    """The first revision of every existing case, and a review date for every published one."""
    categories = {row.id: (row.slug, row.name) for row in bind.execute(sa.text("SELECT id, slug, name FROM categories"))}
    tags: dict[int, list[str]] = {}
    for row in bind.execute(sa.text(
            "SELECT ct.case_id, t.name FROM case_tags ct JOIN tags t ON t.id = ct.tag_id ORDER BY t.name")):
        tags.setdefault(row.case_id, []).append(row.name)
    revisions = sa.table(
        "case_revisions", *(sa.column(name) for name in (
            "case_id", "number", "created_at", "actor_id", "actions", "changed", "title", "issue", "environment",
            "cause", "resolution", "category_id", "category_name", "tags", "state", "visibility", "sharing_consent",
            "anonymous", "municipality_id")))
    rows = []
    now = datetime.now(timezone.utc)
    for case in bind.execute(sa.text(
            "SELECT id, title, issue, environment, cause, resolution, category_id, state, visibility, sharing_consent, "
            "anonymous, municipality_id, updated_by_id, published_at FROM cases ORDER BY id")):
        slug, name = categories.get(case.category_id, ("", ""))
        rows.append({
            "case_id": case.id, "number": 1, "created_at": now, "actor_id": case.updated_by_id,
            "actions": "移行時の内容", "changed": "", "title": case.title or "", "issue": case.issue or "",
            "environment": case.environment or "", "cause": case.cause or "", "resolution": case.resolution or "",
            "category_id": case.category_id, "category_name": name, "tags": "、".join(tags.get(case.id, [])),
            "state": case.state, "visibility": case.visibility, "sharing_consent": case.sharing_consent,
            "anonymous": bool(case.anonymous), "municipality_id": case.municipality_id,
        })
        published = _as_datetime(case.published_at)
        if case.state == "published" and published is not None:
            months = CATEGORY_REVIEW_MONTHS.get(slug, DEFAULT_REVIEW_MONTHS)
            bind.execute(sa.text("UPDATE cases SET review_due = :due WHERE id = :id"),
                         {"due": _add_months(published.date(), months), "id": case.id})
    if rows:
        op.bulk_insert(revisions, rows)


def upgrade():
    op.create_table('category_settings',
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('review_months', sa.Integer(), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_category_settings_category_id_categories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merged_into_id'], ['categories.id'], name=op.f('fk_category_settings_merged_into_id_categories'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('category_id', name=op.f('pk_category_settings'))
    )
    op.create_table('tag_status',
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['merged_into_id'], ['tags.id'], name=op.f('fk_tag_status_merged_into_id_tags'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_tag_status_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tag_id', name=op.f('pk_tag_status'))
    )
    op.create_table('case_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('outcome_note', sa.Text(), server_default='', nullable=False),
    sa.Column('handled_by_id', sa.Integer(), nullable=True),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_reports_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['handled_by_id'], ['users.id'], name=op.f('fk_case_reports_handled_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reporter_id'], ['users.id'], name=op.f('fk_case_reports_reporter_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_reports'))
    )
    with op.batch_alter_table('case_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_reports_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_reports_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_reports_outcome'), ['outcome'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_reports_reporter_id'), ['reporter_id'], unique=False)

    op.create_table('case_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actions', sa.String(length=300), server_default='', nullable=False),
    sa.Column('changed', sa.String(length=300), server_default='', nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('issue', sa.Text(), nullable=False),
    sa.Column('environment', sa.Text(), nullable=False),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.Column('resolution', sa.Text(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('category_name', sa.String(length=100), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('visibility', sa.String(length=20), nullable=False),
    sa.Column('sharing_consent', sa.String(length=20), nullable=False),
    sa.Column('anonymous', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_case_revisions_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_revisions_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_case_revisions_category_id_categories'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_revisions')),
    sa.UniqueConstraint('case_id', 'number', name='uq_case_revisions_case_number')
    )
    with op.batch_alter_table('case_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_revisions_case_id'), ['case_id'], unique=False)

    op.create_table('question_case_refs',
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_question_case_refs_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], name=op.f('fk_question_case_refs_question_id_questions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('question_id', name=op.f('pk_question_case_refs'))
    )
    with op.batch_alter_table('question_case_refs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_case_refs_case_id'), ['case_id'], unique=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_due', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('last_reviewed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('superseded_by_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_review_due'), ['review_due'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_superseded_by_id'), ['superseded_by_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_cases_superseded_by_id_cases'), 'cases', ['superseded_by_id'], ['id'], ondelete='SET NULL')

    _seed(op.get_bind())


def downgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_cases_superseded_by_id_cases'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_cases_superseded_by_id'))
        batch_op.drop_index(batch_op.f('ix_cases_review_due'))
        batch_op.drop_column('superseded_by_id')
        batch_op.drop_column('last_reviewed_at')
        batch_op.drop_column('review_due')
    with op.batch_alter_table('question_case_refs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_question_case_refs_case_id'))
    op.drop_table('question_case_refs')
    with op.batch_alter_table('case_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_revisions_case_id'))
    op.drop_table('case_revisions')
    with op.batch_alter_table('case_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_reports_reporter_id'))
        batch_op.drop_index(batch_op.f('ix_case_reports_outcome'))
        batch_op.drop_index(batch_op.f('ix_case_reports_created_at'))
        batch_op.drop_index(batch_op.f('ix_case_reports_case_id'))
    op.drop_table('case_reports')
    op.drop_table('tag_status')
    op.drop_table('category_settings')
