"""Who besides the uploader may read a stored file: the staff of the hall handling an application
that uses it (as a material, or as its decision document). Registered in app.files.access."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from .models import Application, ApplicationMaterial
from ..halls_access import staff_role

REFERENCE_PREFIX = "application:"


def handling_staff_may_read(*, principal, stored_file) -> bool:
    """True for hall staff (or their city's admins) of an application that uses the file."""
    if principal.subject_type != "person" or not principal.halls:
        return False
    apps = set(db.session.scalars(select(Application).join(ApplicationMaterial).where(
        ApplicationMaterial.file_id == stored_file.id)))
    reference = stored_file.attached_to or ""
    if reference.startswith(REFERENCE_PREFIX):
        apps.update(db.session.scalars(select(Application).where(
            Application.application_id == reference[len(REFERENCE_PREFIX):])))
    return any(staff_role(principal, hall) for app in apps for hall in app.halls)  # 全省通办: both halls
