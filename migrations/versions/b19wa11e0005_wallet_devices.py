"""wallet: holder devices and bindings, verifier requests, the development license library, cancelled presentations

Revision ID: b19wa11e0005
Revises: b20ca7a10006
Create Date: 2026-12-01 23:38:17.873782

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b19wa11e0005'
down_revision = 'b20ca7a10006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('license_library_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.String(length=120), nullable=False),
    sa.Column('holder_index', sa.String(length=64), nullable=False),
    sa.Column('record_enc', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_library_records')),
    sa.UniqueConstraint('identifier', name=op.f('uq_license_library_records_identifier'))
    )
    with op.batch_alter_table('license_library_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_license_library_records_holder_index'), ['holder_index'], unique=False)

    op.create_table('wallet_devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=False),
    sa.Column('owner_subject_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('public_jwk', sa.JSON(), nullable=False),
    sa.Column('jkt', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_devices')),
    sa.UniqueConstraint('device_id', name=op.f('uq_wallet_devices_device_id')),
    sa.UniqueConstraint('jkt', name=op.f('uq_wallet_devices_jkt'))
    )
    with op.batch_alter_table('wallet_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_devices_owner_subject_id'), ['owner_subject_id'], unique=False)

    op.create_table('license_bindings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('license_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('jkt', sa.String(length=64), nullable=False),
    sa.Column('bound_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['wallet_devices.id'], name=op.f('fk_license_bindings_device_id_wallet_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_bindings_license_id_licenses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_bindings')),
    sa.UniqueConstraint('license_id', 'device_id', name=op.f('uq_license_bindings_license_id_device_id'))
    )
    with op.batch_alter_table('license_bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_license_bindings_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_license_bindings_jkt'), ['jkt'], unique=False)
        batch_op.create_index(batch_op.f('ix_license_bindings_license_id'), ['license_id'], unique=False)

    op.create_table('verification_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('verifier_client_id', sa.String(length=40), nullable=False),
    sa.Column('license_type_code', sa.String(length=32), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('require_device_binding', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('license_id', sa.Integer(), nullable=True),
    sa.Column('result_enc', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_verification_requests_license_id_licenses'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_requests')),
    sa.UniqueConstraint('nonce', name=op.f('uq_verification_requests_nonce')),
    sa.UniqueConstraint('request_id', name=op.f('uq_verification_requests_request_id'))
    )
    with op.batch_alter_table('verification_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verification_requests_verifier_client_id'), ['verifier_client_id'], unique=False)

    with op.batch_alter_table('license_presentations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))



def downgrade():
    with op.batch_alter_table('license_presentations', schema=None) as batch_op:
        batch_op.drop_column('cancelled_at')

    with op.batch_alter_table('verification_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verification_requests_verifier_client_id'))

    op.drop_table('verification_requests')
    with op.batch_alter_table('license_bindings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_license_bindings_license_id'))
        batch_op.drop_index(batch_op.f('ix_license_bindings_jkt'))
        batch_op.drop_index(batch_op.f('ix_license_bindings_device_id'))

    op.drop_table('license_bindings')
    with op.batch_alter_table('wallet_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wallet_devices_owner_subject_id'))

    op.drop_table('wallet_devices')
    with op.batch_alter_table('license_library_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_license_library_records_holder_index'))

    op.drop_table('license_library_records')
