"""hall services: service points, appointments, complaints

Revision ID: b17ha11a0004
Revises: b18o1dc0a003
Create Date: 2026-12-01 22:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b17ha11a0004'
down_revision = 'b18o1dc0a003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('halls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lon', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('open_hours', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('windows', sa.Integer(), nullable=True))

    op.create_table('service_points',
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=150), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('county_code', sa.String(length=12), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('open_hours', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['county_code'], ['halls.code'], name=op.f('fk_service_points_county_code_halls')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_service_points'))
    )
    with op.batch_alter_table('service_points', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_points_county_code'), ['county_code'], unique=False)

    op.create_table('appointment_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.String(length=40), nullable=False),
    sa.Column('hall_code', sa.String(length=12), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.Column('issued', sa.Integer(), nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name=op.f('ck_appointment_slots_booked_within_capacity')),
    sa.ForeignKeyConstraint(['hall_code'], ['halls.code'], name=op.f('fk_appointment_slots_hall_code_halls')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_slots')),
    sa.UniqueConstraint('slot_id', name=op.f('uq_appointment_slots_slot_id'))
    )
    with op.batch_alter_table('appointment_slots', schema=None) as batch_op:
        batch_op.create_index('ix_appointment_slots_hall_code_day', ['hall_code', 'day'], unique=False)

    op.create_table('appointments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.String(length=40), nullable=False),
    sa.Column('slot_pk', sa.Integer(), nullable=False),
    sa.Column('active_slot_id', sa.Integer(), nullable=True),
    sa.Column('subject_id', sa.String(length=40), nullable=False),
    sa.Column('hall_code', sa.String(length=12), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('service_code', sa.String(length=40), nullable=False),
    sa.Column('service_name', sa.String(length=200), nullable=False),
    sa.Column('ticket', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['slot_pk'], ['appointment_slots.id'], name=op.f('fk_appointments_slot_pk_appointment_slots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments')),
    sa.UniqueConstraint('active_slot_id', 'subject_id', name=op.f('uq_appointments_active_slot_id_subject_id')),
    sa.UniqueConstraint('appointment_id', name=op.f('uq_appointments_appointment_id'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_hall_code_day', ['hall_code', 'day'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_slot_pk'), ['slot_pk'], unique=False)
        batch_op.create_index('ix_appointments_subject_id_status', ['subject_id', 'status'], unique=False)

    op.create_table('complaints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('complaint_id', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=40), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=True),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('content_enc', sa.Text(), nullable=False),
    sa.Column('contact_enc', sa.Text(), nullable=True),
    sa.Column('hall_code', sa.String(length=12), nullable=False),
    sa.Column('service_code', sa.String(length=40), nullable=True),
    sa.Column('application_id', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('rating_comment', sa.Text(), nullable=True),
    sa.Column('rated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['hall_code'], ['halls.code'], name=op.f('fk_complaints_hall_code_halls')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaints')),
    sa.UniqueConstraint('complaint_id', name=op.f('uq_complaints_complaint_id')),
    sa.UniqueConstraint('external_id', name=op.f('uq_complaints_external_id'))
    )
    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.create_index('ix_complaints_hall_code_status_due_date', ['hall_code', 'status', 'due_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaints_subject_id'), ['subject_id'], unique=False)

    op.create_table('complaint_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reply_id', sa.String(length=40), nullable=False),
    sa.Column('complaint_pk', sa.Integer(), nullable=False),
    sa.Column('content_enc', sa.Text(), nullable=False),
    sa.Column('closes', sa.Boolean(), nullable=False),
    sa.Column('author_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hotline_status', sa.String(length=10), nullable=True),
    sa.Column('hotline_attempts', sa.Integer(), nullable=False),
    sa.Column('hotline_error', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['complaint_pk'], ['complaints.id'], name=op.f('fk_complaint_replies_complaint_pk_complaints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaint_replies')),
    sa.UniqueConstraint('reply_id', name=op.f('uq_complaint_replies_reply_id'))
    )
    with op.batch_alter_table('complaint_replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_complaint_replies_complaint_pk'), ['complaint_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_replies_hotline_status'), ['hotline_status'], unique=False)


def downgrade():
    with op.batch_alter_table('complaint_replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_complaint_replies_hotline_status'))
        batch_op.drop_index(batch_op.f('ix_complaint_replies_complaint_pk'))
    op.drop_table('complaint_replies')

    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_complaints_subject_id'))
        batch_op.drop_index('ix_complaints_hall_code_status_due_date')
    op.drop_table('complaints')

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_subject_id_status')
        batch_op.drop_index(batch_op.f('ix_appointments_slot_pk'))
        batch_op.drop_index('ix_appointments_hall_code_day')
    op.drop_table('appointments')

    with op.batch_alter_table('appointment_slots', schema=None) as batch_op:
        batch_op.drop_index('ix_appointment_slots_hall_code_day')
    op.drop_table('appointment_slots')

    with op.batch_alter_table('service_points', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_points_county_code'))
    op.drop_table('service_points')

    with op.batch_alter_table('halls', schema=None) as batch_op:
        batch_op.drop_column('windows')
        batch_op.drop_column('phone')
        batch_op.drop_column('open_hours')
        batch_op.drop_column('lon')
        batch_op.drop_column('lat')
