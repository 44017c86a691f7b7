"""ledger: accounts, journals, entries, cursors; append-only trigger on PostgreSQL

Revision ID: 0002_ledger
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed (post a reversing journal)',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
"""


def upgrade() -> None:
    op.create_table('ledger_accounts',
    sa.Column('id', BIGID, nullable=False),
    sa.Column('owner_kind', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('normal', sa.String(length=6), nullable=False),
    sa.Column('allow_negative', sa.Boolean(), nullable=False),
    sa.Column('running', sa.Boolean(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('last_entry_id', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("running = false OR allow_negative = true OR (CASE WHEN normal = 'credit' THEN -balance ELSE balance END) >= 0", name=op.f('ck_ledger_accounts_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts'))
    )
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.create_index('uq_ledger_accounts_owner_purpose', ['owner_kind', 'owner_id', 'purpose', 'currency'], unique=True)

    op.create_table('ledger_journals',
    sa.Column('id', BIGID, nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('source_type', sa.String(length=32), nullable=True),
    sa.Column('source_id', sa.String(length=255), nullable=True),
    sa.Column('effective_at', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('reverses_id', sa.BigInteger(), nullable=True),
    sa.Column('leg_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['reverses_id'], ['ledger_journals.id'], name=op.f('fk_ledger_journals_reverses_id_ledger_journals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_journals')),
    sa.UniqueConstraint('key', name=op.f('uq_ledger_journals_key')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_ledger_journals_reverses_id'))
    )
    with op.batch_alter_table('ledger_journals', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_journals_source', ['source_type', 'source_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', BIGID, nullable=False),
    sa.Column('journal_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['journal_id'], ['ledger_journals.id'], name=op.f('fk_ledger_entries_journal_id_ledger_journals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_ledger_entries_journal_id', ['journal_id'], unique=False)

    op.create_table('ledger_cursors',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_ledger_cursors'))
    )

    if op.get_bind().dialect.name == "postgresql":
        # Append-only: no UPDATE or DELETE on journals and entries, whoever asks. TRUNCATE is
        # not blocked (test fixtures), and `session_replication_role = replica` skips it as
        # it skips every ordinary trigger.
        op.execute(APPEND_ONLY_FUNCTION)
        for table in ("ledger_journals", "ledger_entries"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("ledger_journals", "ledger_entries"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    op.drop_table('ledger_cursors')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_journal_id')
        batch_op.drop_index('ix_ledger_entries_account_id_id')

    op.drop_table('ledger_entries')
    with op.batch_alter_table('ledger_journals', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_journals_source')

    op.drop_table('ledger_journals')
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_index('uq_ledger_accounts_owner_purpose')

    op.drop_table('ledger_accounts')
