"""a sign-in session holds its live refresh token (hash and generation), so a refresh is one UPDATE

Tokens issued before this revision stay in refresh_tokens and are honoured once each until they
expire; their session then holds the rotated token.

Revision ID: b23se55a0009
Revises: b17wi4d0a008
Create Date: 2026-12-02 05:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b23se55a0009'
down_revision = 'b17wi4d0a008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refresh_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('refresh_generation', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_auth_sessions_refresh_hash'), ['refresh_hash'])


def downgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_auth_sessions_refresh_hash'), type_='unique')
        batch_op.drop_column('refresh_generation')
        batch_op.drop_column('refresh_hash')
