"""hall desk: window intake, 受审分离, 帮办代办, 全省通办

Applications record how they came in (channel, the staff member, the hall that took them in for
another) and their result at the pickup window; hall staff may belong to a department; services
carry the 全省通办 flag (set here for the items the seed flags, on rows that exist already); assisted
applications wait for the applicant's confirmation.

Revision ID: b17wi4d0a008
Revises: b22pa47e0007
Create Date: 2026-12-02 00:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b17wi4d0a008'
down_revision = 'b22pa47e0007'
branch_labels = None
depends_on = None

# base items flagged `cross_region` in app/catalogue/data/base_items.json when this revision was written
CROSS_REGION_BASE_CODES = ("000705002000", "000705003000", "000705004000", "000705015000", "000706001000",
                           "000706002000", "000107001000", "000107002000", "002011001000", "002011003000",
                           "002012001000")


def upgrade():
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=12), server_default='online', nullable=False))
        batch_op.add_column(sa.Column('intake_staff_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('accepting_hall_code', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('pickup_status', sa.String(length=12), nullable=True))
        batch_op.create_index(batch_op.f('ix_applications_accepting_hall_code'), ['accepting_hall_code'], unique=False)

    with op.batch_alter_table('staff_assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('department', sa.String(length=100), nullable=True))

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cross_region', sa.Boolean(), server_default=sa.false(), nullable=False))
    services = sa.table('services', sa.column('base_code', sa.String()), sa.column('cross_region', sa.Boolean()))
    op.execute(services.update().where(services.c.base_code.in_(CROSS_REGION_BASE_CODES))
               .values(cross_region=sa.true()))

    op.create_table('assisted_applications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('service_code', sa.String(length=40), nullable=False),
    sa.Column('service_name', sa.String(length=200), nullable=False),
    sa.Column('hall_code', sa.String(length=12), nullable=False),
    sa.Column('helper_id', sa.String(length=40), nullable=False),
    sa.Column('contact', sa.String(length=10), nullable=False),
    sa.Column('request_enc', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assisted_applications')),
    sa.UniqueConstraint('application_id', name=op.f('uq_assisted_applications_application_id'))
    )
    with op.batch_alter_table('assisted_applications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assisted_applications_hall_code'), ['hall_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_assisted_applications_subject_id'), ['subject_id'], unique=False)


def downgrade():
    with op.batch_alter_table('assisted_applications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assisted_applications_subject_id'))
        batch_op.drop_index(batch_op.f('ix_assisted_applications_hall_code'))
    op.drop_table('assisted_applications')

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('cross_region')

    with op.batch_alter_table('staff_assignments', schema=None) as batch_op:
        batch_op.drop_column('department')

    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_applications_accepting_hall_code'))
        batch_op.drop_column('pickup_status')
        batch_op.drop_column('accepting_hall_code')
        batch_op.drop_column('intake_staff_id')
        batch_op.drop_column('channel')
