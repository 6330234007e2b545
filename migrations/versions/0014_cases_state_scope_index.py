"""cases: an index on state and the permission rule's columns (covering on PostgreSQL)

Every statement of the PostgreSQL search backend joins the published cases the reader may see
(``policy.scope_clause``: state, municipality, visibility, consent). With the index on state alone,
PostgreSQL fetched every published case's row for that (60 ms a statement at 100,000 cases, three
statements a search). This index's key is state and the rule's columns, and on PostgreSQL it
INCLUDEs what the search reads of a case (id, category, kind, anonymity, dates), so the join is an
index-only scan (13 ms). On PostgreSQL it is built CONCURRENTLY: writes to ``cases`` go on while it
is built.

``ix_cases_state`` stays: SQLite finds "these ids, if visible" (a search's hits) by (state, id) in
it; without it, SQLite read every published case for that.

Revision ID: 0014_cases_state_scope_index
Revises: 0013_cases_kind_state_index
Create Date: 2026-12-02 08:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014_cases_state_scope_index'
down_revision = '0013_cases_kind_state_index'
branch_labels = None
depends_on = None

COLUMNS = ['state', 'municipality_id', 'visibility', 'sharing_consent']
INCLUDE = ['id', 'category_id', 'kind', 'anonymous', 'published_at', 'created_at']


def _valid_index(name: str):
    """True: the index exists and is valid; False: a CONCURRENTLY build that failed left it invalid;
    None: no such index."""
    return op.get_bind().execute(sa.text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"),
        {"name": name}).scalar()


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            if not _valid_index('ix_cases_state_scope'):
                op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_cases_state_scope')   # left invalid
                op.create_index('ix_cases_state_scope', 'cases', COLUMNS, unique=False,
                                postgresql_include=INCLUDE, postgresql_concurrently=True)
        return
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_state_scope', COLUMNS, unique=False)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_cases_state_scope')
        return
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_state_scope')
