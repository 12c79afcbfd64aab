"""files, material reviews, decision documents, seals and the e-archive

Revision ID: b15f11e5a001
Revises: 75e1008329c0
Create Date: 2026-12-01 22:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b15f11e5a001'
down_revision = '75e1008329c0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('file_blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('storage_key', sa.String(length=200), nullable=False),
    sa.Column('wrapped_key', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_file_blobs')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_file_blobs_storage_key'))
    )
    op.create_table('files',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner_subject_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attached_to', sa.String(length=80), nullable=True),
    sa.Column('attached_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['sha256'], ['file_blobs.sha256'], name=op.f('fk_files_sha256_file_blobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_files'))
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_files_attached_to'), ['attached_to'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_owner_subject_id'), ['owner_subject_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_sha256'), ['sha256'], unique=False)

    op.create_table('seal_certificates',
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('slot', sa.String(length=260), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('department', sa.String(length=200), nullable=True),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('private_key_enc', sa.Text(), nullable=False),
    sa.Column('issuer_serial', sa.String(length=40), nullable=True),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('serial', name=op.f('pk_seal_certificates')),
    sa.UniqueConstraint('slot', name=op.f('uq_seal_certificates_slot'))
    )
    with op.batch_alter_table('seal_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seal_certificates_department'), ['department'], unique=False)

    op.create_table('decision_documents',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('application_id', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('department', sa.String(length=200), nullable=False),
    sa.Column('file_id', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('seal_serial', sa.String(length=40), nullable=False),
    sa.Column('timestamped', sa.Boolean(), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_decision_documents_file_id_files')),
    sa.ForeignKeyConstraint(['seal_serial'], ['seal_certificates.serial'],
                            name=op.f('fk_decision_documents_seal_serial_seal_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decision_documents')),
    sa.UniqueConstraint('application_id', 'decision', name=op.f('uq_decision_documents_application_id_decision'))
    )
    with op.batch_alter_table('decision_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_documents_application_id'), ['application_id'], unique=False)

    op.create_table('archive_packages',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('application_id', sa.String(length=64), nullable=False),
    sa.Column('retention', sa.String(length=8), nullable=False),
    sa.Column('retain_until', sa.Date(), nullable=True),
    sa.Column('manifest', sa.Text(), nullable=False),
    sa.Column('package_hash', sa.String(length=64), nullable=False),
    sa.Column('audit_seq', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_archive_packages')),
    sa.UniqueConstraint('application_id', name=op.f('uq_archive_packages_application_id'))
    )
    upgrade_applications_review()


def downgrade():
    downgrade_applications_review()
    op.drop_table('archive_packages')
    with op.batch_alter_table('decision_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_documents_application_id'))
    op.drop_table('decision_documents')
    with op.batch_alter_table('seal_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seal_certificates_department'))
    op.drop_table('seal_certificates')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_files_sha256'))
        batch_op.drop_index(batch_op.f('ix_files_owner_subject_id'))
        batch_op.drop_index(batch_op.f('ix_files_created_at'))
        batch_op.drop_index(batch_op.f('ix_files_attached_to'))
    op.drop_table('files')
    op.drop_table('file_blobs')


# applications review: uploaded files as materials, staff review per material, rounds of 补正,
# 容缺 reminders, one open application per service, 抽查 and revocation (app/applications/models.py)

def upgrade_applications_review():
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('open_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('round', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('spot_check', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_applications_open_key'), ['open_key'])
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.alter_column('round', server_default=None)
    with op.batch_alter_table('application_materials', schema=None) as batch_op:
        batch_op.drop_column('attachment')
        batch_op.add_column(sa.Column('file_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('produced_by', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('round', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('review', sa.String(length=12), nullable=False, server_default='pending'))
        batch_op.add_column(sa.Column('review_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_application_materials_file_id'), ['file_id'], unique=False)
    with op.batch_alter_table('application_materials', schema=None) as batch_op:
        batch_op.alter_column('round', server_default=None)
        batch_op.alter_column('review', server_default=None)
        batch_op.alter_column('requested', server_default=None)


def downgrade_applications_review():
    with op.batch_alter_table('application_materials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_materials_file_id'))
        batch_op.drop_column('requested')
        batch_op.drop_column('reviewed_at')
        batch_op.drop_column('reviewed_by')
        batch_op.drop_column('review_reason')
        batch_op.drop_column('review')
        batch_op.drop_column('round')
        batch_op.drop_column('reminded_at')
        batch_op.drop_column('produced_by')
        batch_op.drop_column('file_id')
        batch_op.add_column(sa.Column('attachment', sa.String(length=200), nullable=True))
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_applications_open_key'), type_='unique')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('spot_check')
        batch_op.drop_column('round')
        batch_op.drop_column('open_key')
