"""catalogue guides: handling situations (办理项) of base items, source of imported items

Revision ID: b20ca7a10006
Revises: b17ha11a0004
Create Date: 2026-12-02 00:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b20ca7a10006'
down_revision = 'b17ha11a0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_item', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('source_ref', sa.String(length=100), nullable=True))

    op.create_table('service_situations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('base_code', sa.String(length=20), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('materials', sa.JSON(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_situations')),
    sa.UniqueConstraint('base_code', 'code', name=op.f('uq_service_situations_base_code_code'))
    )
    with op.batch_alter_table('service_situations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_situations_base_code'), ['base_code'], unique=False)


def downgrade():
    with op.batch_alter_table('service_situations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_situations_base_code'))
    op.drop_table('service_situations')

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('source_ref')
        batch_op.drop_column('parent_item')
