"""accounts: sessions, exports, closure, family proxies

Revision ID: b16acc0a0002
Revises: b15f11e5a001
Create Date: 2026-12-01 22:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b16acc0a0002'
down_revision = 'b15f11e5a001'
branch_labels = None
depends_on = None


def upgrade():
    upgrade_part_a()
    upgrade_part_b()


def downgrade():
    downgrade_part_b()
    downgrade_part_a()


# part B: data exports, account closures, family proxy grants (app/identity/account_models.py)


def upgrade_part_b():
    op.create_table('data_exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('payload_enc', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_exports')),
    sa.UniqueConstraint('export_id', name=op.f('uq_data_exports_export_id'))
    )
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_exports_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_data_exports_subject_id'), ['subject_id'], unique=False)

    op.create_table('account_closures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_closures')),
    sa.UniqueConstraint('subject_id', name=op.f('uq_account_closures_subject_id'))
    )
    op.create_table('proxy_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proxy_id', sa.String(length=40), nullable=False),
    sa.Column('grantor_subject_id', sa.String(length=40), nullable=False),
    sa.Column('grantee_id_number_enc', sa.Text(), nullable=False),
    sa.Column('grantee_id_number_index', sa.String(length=64), nullable=False),
    sa.Column('grantee_name', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proxy_grants')),
    sa.UniqueConstraint('proxy_id', name=op.f('uq_proxy_grants_proxy_id'))
    )
    with op.batch_alter_table('proxy_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proxy_grants_grantee_id_number_index'), ['grantee_id_number_index'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_proxy_grants_grantor_subject_id'), ['grantor_subject_id'], unique=False)


def downgrade_part_b():
    with op.batch_alter_table('proxy_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proxy_grants_grantor_subject_id'))
        batch_op.drop_index(batch_op.f('ix_proxy_grants_grantee_id_number_index'))
    op.drop_table('proxy_grants')
    op.drop_table('account_closures')
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_exports_subject_id'))
        batch_op.drop_index(batch_op.f('ix_data_exports_expires_at'))
    op.drop_table('data_exports')


# part A: sign-in sessions, credentials versions, face checks (app/identity/models.py)


def upgrade_part_a():
    op.create_table('auth_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('actor_id', sa.String(length=40), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('credentials_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_sessions')),
    sa.UniqueConstraint('session_id', name=op.f('uq_auth_sessions_session_id'))
    )
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_sessions_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_auth_sessions_subject_id'), ['subject_id'], unique=False)
    # every live refresh family becomes a session
    op.execute("""
        INSERT INTO auth_sessions (session_id, subject_id, actor_id, channel, credentials_version, created_at,
                                   last_used_at, expires_at)
        SELECT family_id, MIN(subject_id), MIN(actor_id), MIN(channel), 0, MIN(created_at), MAX(created_at),
               MAX(expires_at)
        FROM refresh_tokens WHERE revoked_at IS NULL GROUP BY family_id
    """)
    op.create_table('face_verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('verification_id', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('provider_token', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_face_verifications')),
    sa.UniqueConstraint('provider_token', name=op.f('uq_face_verifications_provider_token')),
    sa.UniqueConstraint('verification_id', name=op.f('uq_face_verifications_verification_id'))
    )
    with op.batch_alter_table('face_verifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_face_verifications_subject_id'), ['subject_id'], unique=False)
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credentials_version', sa.Integer(), server_default='0', nullable=False))


def downgrade_part_a():
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('credentials_version')
    with op.batch_alter_table('face_verifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_face_verifications_subject_id'))
    op.drop_table('face_verifications')
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_sessions_subject_id'))
        batch_op.drop_index(batch_op.f('ix_auth_sessions_actor_id'))
    op.drop_table('auth_sessions')
