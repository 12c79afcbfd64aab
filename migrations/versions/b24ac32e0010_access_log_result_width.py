"""an access-log entry's result holds the longest reason a verification gives (device_binding_required)

A refused verification of a platform-held code under require_device_binding journalled a 23-character
result into a 20-character column: PostgreSQL refused the entry and the holder's log never showed it.

Revision ID: b24ac32e0010
Revises: b23se55a0009
Create Date: 2026-12-04 18:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b24ac32e0010'
down_revision = 'b23se55a0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('license_access_log', schema=None) as batch_op:
        batch_op.alter_column('result', existing_type=sa.String(length=20), type_=sa.String(length=32),
                              existing_nullable=False)


def downgrade():
    with op.batch_alter_table('license_access_log', schema=None) as batch_op:
        batch_op.alter_column('result', existing_type=sa.String(length=32), type_=sa.String(length=20),
                              existing_nullable=False)
