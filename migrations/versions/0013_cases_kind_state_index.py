"""cases: one index on (kind, state) instead of one on kind

Every search asks the database for the published articles (``kind = 'article' AND state =
'published'``). With an index on each column and no statistics, SQLite could choose the state
index and read every published case: 425 ms a search at 1,000,000 cases. The two-column index
answers it directly (and serves every lookup by kind alone).

Revision ID: 0013_cases_kind_state_index
Revises: 0012_articles
Create Date: 2026-12-02 06:30:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013_cases_kind_state_index'
down_revision = '0012_articles'
branch_labels = None
depends_on = None


def _valid_index(name: str):
    """True: the index exists and is valid; False: a CONCURRENTLY build that failed left it invalid;
    None: no such index."""
    return op.get_bind().execute(sa.text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"),
        {"name": name}).scalar()


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':   # writes to cases go on while it is built
        # Outside a transaction, so a run that stopped half-way is finished by the next one.
        with op.get_context().autocommit_block():
            if not _valid_index('ix_cases_kind_state'):
                op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_cases_kind_state')   # left invalid
                op.create_index('ix_cases_kind_state', 'cases', ['kind', 'state'], unique=False,
                                postgresql_concurrently=True)
            op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_cases_kind')
        return
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_kind_state', ['kind', 'state'], unique=False)
        batch_op.drop_index(batch_op.f('ix_cases_kind'))


def downgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_kind'), ['kind'], unique=False)
        batch_op.drop_index('ix_cases_kind_state')
