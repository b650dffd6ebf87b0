"""cases: the closed loop (events, escalations, reporters, API keys, responsibility lists)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sa.Text(), nullable=False),
    sa.Column('prefix', sa.Text(), nullable=False),
    sa.Column('role', sa.Enum('reporter', 'grid_worker', 'dispatcher', 'department', 'planner', 'admin', name='api_key_role'), nullable=False),
    sa.Column('grid_code', sa.Text(), nullable=True),
    sa.Column('department', sa.Text(), nullable=True),
    sa.Column('label', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.CheckConstraint("(role <> 'grid_worker' OR grid_code IS NOT NULL) AND (role <> 'department' OR department IS NOT NULL)", name=op.f('ck_api_keys_scope_present')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('responsibility_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_responsibility_lists'))
    )
    op.create_table('case_escalations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('department', sa.Text(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('ack_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('report_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reported_back_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('comment', sa.Text(), server_default='', nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['reports.id'], name=op.f('fk_case_escalations_case_id_reports'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['api_keys.id'], name=op.f('fk_case_escalations_requested_by_api_keys'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_escalations')),
    sa.UniqueConstraint('case_id', 'department', name=op.f('uq_case_escalations_case_id_department'))
    )
    op.create_index('ix_case_escalations_department_acknowledged_at', 'case_escalations', ['department', 'acknowledged_at'], unique=False)
    op.create_table('case_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('from_status', sa.Text(), nullable=True),
    sa.Column('to_status', sa.Text(), nullable=False),
    sa.Column('actor_key_id', sa.Integer(), nullable=True),
    sa.Column('actor_role', sa.Text(), nullable=False),
    sa.Column('actor_scope', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('comment', sa.Text(), server_default='', nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['actor_key_id'], ['api_keys.id'], name=op.f('fk_case_events_actor_key_id_api_keys'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['case_id'], ['reports.id'], name=op.f('fk_case_events_case_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_events'))
    )
    op.create_index('ix_case_events_case_id_at', 'case_events', ['case_id', 'at'], unique=False)
    op.create_table('case_reporters',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=True),
    sa.Column('first_name', sa.Text(), nullable=True),
    sa.Column('last_name', sa.Text(), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('device_id', sa.Text(), nullable=True),
    sa.Column('account_id', sa.Text(), nullable=True),
    sa.Column('address_string', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['reports.id'], name=op.f('fk_case_reporters_case_id_reports'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['key_id'], ['api_keys.id'], name=op.f('fk_case_reporters_key_id_api_keys'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_case_reporters'))
    )
    op.create_index(op.f('ix_case_reporters_key_id'), 'case_reporters', ['key_id'], unique=False)
    op.add_column('reports', sa.Column('registered_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('reports', sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('reports', sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('reports', sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('reports', sa.Column('satisfaction', sa.SmallInteger(), nullable=True))
    op.add_column('reports', sa.Column('reopened', sa.Integer(), server_default='0', nullable=False))
    op.add_column('reports', sa.Column('assignee', sa.Text(), nullable=True))
    # autogenerate does not see check constraints added to an existing table.
    op.create_check_constraint(op.f('ck_reports_satisfaction_1_5'), 'reports', 'satisfaction BETWEEN 1 AND 5')
    op.create_index('ix_reports_district_id_reported_at', 'reports', ['district_id', 'reported_at'], unique=False)
    op.create_index('ix_reports_district_id_status', 'reports', ['district_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reports_district_id_status', table_name='reports')
    op.drop_index('ix_reports_district_id_reported_at', table_name='reports')
    op.drop_constraint(op.f('ck_reports_satisfaction_1_5'), 'reports', type_='check')
    op.drop_column('reports', 'assignee')
    op.drop_column('reports', 'reopened')
    op.drop_column('reports', 'satisfaction')
    op.drop_column('reports', 'verified_at')
    op.drop_column('reports', 'handled_at')
    op.drop_column('reports', 'due_at')
    op.drop_column('reports', 'registered_at')
    op.drop_index(op.f('ix_case_reporters_key_id'), table_name='case_reporters')
    op.drop_table('case_reporters')
    op.drop_index('ix_case_events_case_id_at', table_name='case_events')
    op.drop_table('case_events')
    op.drop_index('ix_case_escalations_department_acknowledged_at', table_name='case_escalations')
    op.drop_table('case_escalations')
    op.drop_table('responsibility_lists')
    op.drop_table('api_keys')
    # drop_table leaves the enum type behind; the next upgrade would fail on it.
    sa.Enum(name='api_key_role').drop(op.get_bind(), checkfirst=True)
