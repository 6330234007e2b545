"""search consumers: every index (one per server) applies the outbox itself, from its own position;
the outbox gets ids that never go back (SQLite AUTOINCREMENT) and, on PostgreSQL, the writing
transaction's id; "applied" is no longer one flag for everybody

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 17:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    op.create_table('search_consumers',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('location', sa.String(length=500), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_search_consumers'))
    )
    op.create_table('search_consumer_marks',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('outbox_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['consumer'], ['search_consumers.name'], name=op.f('fk_search_consumer_marks_consumer_search_consumers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consumer', 'outbox_id', name=op.f('pk_search_consumer_marks'))
    )
    # Work not applied yet under the old scheme is kept; indexes start at position 0, so each
    # applies what is still in the outbox once (applying twice is harmless).
    op.execute("DELETE FROM search_outbox WHERE applied_at IS NOT NULL")
    if bind.dialect.name == 'postgresql':
        with op.batch_alter_table('search_outbox', schema=None) as batch_op:
            batch_op.drop_index(batch_op.f('ix_search_outbox_applied_at'))
            batch_op.drop_column('applied_at')
            batch_op.alter_column('id', type_=sa.BigInteger(), existing_type=sa.Integer())
            batch_op.add_column(sa.Column('txid', sa.BigInteger(), nullable=True))
            batch_op.create_index(batch_op.f('ix_search_outbox_txid'), ['txid'], unique=False)
        op.execute("UPDATE search_outbox SET txid = 0")
        op.execute("ALTER TABLE search_outbox ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint)")
    else:
        with op.batch_alter_table('search_outbox', schema=None, recreate='always',
                                  table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            batch_op.drop_index(batch_op.f('ix_search_outbox_applied_at'))
            batch_op.drop_column('applied_at')
            batch_op.add_column(sa.Column('txid', sa.BigInteger(), nullable=True))
            batch_op.create_index(batch_op.f('ix_search_outbox_txid'), ['txid'], unique=False)


def downgrade():
    bind = op.get_bind()
    with op.batch_alter_table('search_outbox', schema=None, recreate='always' if bind.dialect.name == 'sqlite' else 'auto') as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_outbox_txid'))
        batch_op.drop_column('txid')
        batch_op.add_column(sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_search_outbox_applied_at'), ['applied_at'], unique=False)
    op.drop_table('search_consumer_marks')
    op.drop_table('search_consumers')
