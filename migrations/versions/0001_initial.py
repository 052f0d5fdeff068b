"""groups, trials, metrics and idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-12-03 17:13:12.692553
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Frozen here on purpose: a migration must not change when app/db/tables.py does.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('groups',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('algorithm', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('spec', JSON, nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('objective_name', sa.String(length=200), nullable=True),
    sa.Column('objective_direction', sa.String(length=10), nullable=False),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('planned_trials', sa.Integer(), nullable=True),
    sa.Column('next_index', sa.Integer(), nullable=False),
    sa.Column('warnings', JSON, nullable=False),
    sa.Column('early_stopping', JSON, nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.Column('started_at', TS, nullable=True),
    sa.Column('finished_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups'))
    )
    op.create_index(op.f('ix_groups_status_id'), 'groups', ['status', 'id'], unique=False)
    op.create_table('idempotency_keys',
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', JSON, nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_table('trials',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('group_id', BIG_ID, nullable=False),
    sa.Column('config_index', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('params', JSON, nullable=False),
    sa.Column('params_hash', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('lease_expires_at', TS, nullable=True),
    sa.Column('objective', sa.Float(), nullable=True),
    sa.Column('values', JSON, nullable=True),
    sa.Column('stop_reason', sa.Text(), nullable=True),
    sa.Column('replaces_id', BIG_ID, nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('started_at', TS, nullable=True),
    sa.Column('finished_at', TS, nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_trials_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trials')),
    sa.UniqueConstraint('group_id', 'config_index', 'attempt', name=op.f('uq_trials_group_id_config_index_attempt'))
    )
    op.create_index(op.f('ix_trials_group_id_objective'), 'trials', ['group_id', 'objective'], unique=False)
    op.create_index(op.f('ix_trials_group_id_params_hash'), 'trials', ['group_id', 'params_hash'], unique=False)
    op.create_index(op.f('ix_trials_group_id_status'), 'trials', ['group_id', 'status'], unique=False)
    op.create_table('metrics',
    sa.Column('trial_id', BIG_ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_metrics_trial_id_trials'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trial_id', 'name', 'step', name=op.f('pk_metrics'))
    )


def downgrade() -> None:
    op.drop_table('metrics')
    op.drop_index(op.f('ix_trials_group_id_status'), table_name='trials')
    op.drop_index(op.f('ix_trials_group_id_params_hash'), table_name='trials')
    op.drop_index(op.f('ix_trials_group_id_objective'), table_name='trials')
    op.drop_table('trials')
    op.drop_table('idempotency_keys')
    op.drop_index(op.f('ix_groups_status_id'), table_name='groups')
    op.drop_table('groups')
