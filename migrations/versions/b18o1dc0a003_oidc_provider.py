"""OpenID Connect provider: clients, codes, tokens, consents

Revision ID: b18o1dc0a003
Revises: b16acc0a0002
Create Date: 2026-12-01 22:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b18o1dc0a003'
down_revision = 'b16acc0a0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('oidc_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=True),
    sa.Column('token_endpoint_auth_method', sa.String(length=32), nullable=False),
    sa.Column('jwks', sa.JSON(), nullable=True),
    sa.Column('redirect_uris', sa.JSON(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.JSON(), nullable=False),
    sa.Column('backchannel_logout_uri', sa.Text(), nullable=True),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('sector_identifier', sa.String(length=200), nullable=True),
    sa.Column('acr_minimum', sa.Integer(), nullable=False),
    sa.Column('resource_server', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_clients')),
    sa.UniqueConstraint('client_id', name=op.f('uq_oidc_clients_client_id'))
    )
    op.create_table('oidc_authorization_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('actor_id', sa.String(length=40), nullable=True),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('nonce', sa.String(length=255), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('code_challenge_method', sa.String(length=8), nullable=False),
    sa.Column('auth_time', sa.Integer(), nullable=False),
    sa.Column('acr', sa.String(length=8), nullable=False),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_authorization_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_oidc_authorization_codes_code_hash'))
    )
    with op.batch_alter_table('oidc_authorization_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_authorization_codes_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_authorization_codes_subject_id'), ['subject_id'], unique=False)

    op.create_table('oidc_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('actor_id', sa.String(length=40), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('access_token_hash', sa.String(length=64), nullable=False),
    sa.Column('refresh_token_hash', sa.String(length=64), nullable=True),
    sa.Column('auth_time', sa.Integer(), nullable=False),
    sa.Column('acr', sa.String(length=8), nullable=False),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('access_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refresh_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refresh_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_tokens')),
    sa.UniqueConstraint('access_token_hash', name=op.f('uq_oidc_tokens_access_token_hash')),
    sa.UniqueConstraint('refresh_token_hash', name=op.f('uq_oidc_tokens_refresh_token_hash'))
    )
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_tokens_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_sid'), ['sid'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_subject_id'), ['subject_id'], unique=False)

    op.create_table('oidc_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_consents')),
    sa.UniqueConstraint('subject_id', 'client_id', name=op.f('uq_oidc_consents_subject_id_client_id'))
    )
    with op.batch_alter_table('oidc_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_consents_subject_id'), ['subject_id'], unique=False)


def downgrade():
    with op.batch_alter_table('oidc_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_consents_subject_id'))

    op.drop_table('oidc_consents')
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_subject_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_sid'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_family_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_client_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_actor_id'))

    op.drop_table('oidc_tokens')
    with op.batch_alter_table('oidc_authorization_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_authorization_codes_subject_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_authorization_codes_client_id'))

    op.drop_table('oidc_authorization_codes')
    op.drop_table('oidc_clients')
