"""受审分离: the front desk accepts, the department that decides works its queue, results go back to
one pickup window.

Hall staff may belong to a department (`StaffAssignment.department`, `flask staff create
--department`). Department staff review the materials of and decide (approve; reject, or ask for
more, once accepted) only their department's applications and never accept: acceptance stays with
the front desk (staff without a department). The front desk reviews materials and decides only
where the hall has no staff for the application's department. Hall admins are not limited.
Accepting routes the application to the department's queue (`GET /halls/{code}/queues/{department}`,
a timeline entry where the hall has staff for it). A result collected in person (`delivery_method`
窗口领取) that the front desk releases (`dispatch`) is ready at the pickup window: the hall that took
the application in (全省通办) or else its own (`GET /halls/{code}/pickups`); staff there hand it over
(`handed_over`).
"""
from __future__ import annotations

from sqlalchemy import and_, or_, select

from ..errors import Conflict, Forbidden, NotFound
from ..extensions import db
from ..halls_access import page_of, require_staff_of_hall
from ..identity.actors import Actor
from ..identity.models import StaffAssignment
from ..identity.persons import hall_department_exists, person_by_subject_id
from ..notifications.service import notify
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import utcnow
from .forms import DELIVERY_FIELD, POSTAL_DELIVERY
from .models import ACCEPTED, Application
from ..halls_access import staff_role
from .service import ApplicationView, load_application, record_event, saved

READY, HANDED_OVER = "ready", "handed_over"
PICKUP_LABELS = {READY: "待领取", HANDED_OVER: "已领取"}
DEPARTMENT_ACTIONS = ("approve", "reject", "request_more")  # what department staff do, once accepted


def staff_card(subject_id: str, hall_code: str) -> dict:
    """How the timeline names a staff member: their subject id, name and hall."""
    person = person_by_subject_id(subject_id)
    return {"subject_id": subject_id, "name": person.name if person else None, "hall_code": hall_code}


def pickup_hall(app: Application) -> str:
    return app.accepting_hall_code or app.hall_code


def staff_department(subject_id: str, hall_code: str) -> str | None:
    """The department a hall_staff member decides for at the hall (None: the front desk)."""
    return db.session.scalar(select(StaffAssignment.department).where(
        StaffAssignment.subject_id == subject_id, StaffAssignment.hall_code == hall_code,
        StaffAssignment.role == "hall_staff"))


def department_staffed(hall_code: str, department: str | None) -> bool:
    return department is not None and db.session.scalar(select(StaffAssignment.id).where(
        StaffAssignment.hall_code == hall_code, StaffAssignment.department == department).limit(1)) is not None


def check_transition(app: Application, action: str, principal: Principal, role: str) -> None:
    """403 when 受审分离 keeps this staff member from `action` on the application."""
    if role == "hall_admin":
        return
    department = staff_department(principal.subject_id, app.hall_code)
    if department is not None:
        if action not in DEPARTMENT_ACTIONS or app.status != ACCEPTED:
            raise Forbidden(f"受审分离：受理、不予受理和领取由综合受理窗口办理，{department}在受理后审批")
        if department != app.department:
            raise Forbidden(f"您负责审批「{department}」的办件，该办件由「{app.department}」审批")
        return
    deciding = action == "approve" or (action in DEPARTMENT_ACTIONS and app.status == ACCEPTED)
    if deciding and department_staffed(app.hall_code, app.department):
        raise Forbidden(f"受审分离：该办件已转「{app.department}」审批，综合受理窗口不能办结")


def check_review(app: Application, principal: Principal, role: str) -> None:
    """403 when 受审分离 keeps this staff member from reviewing the application's materials: where the
    hall has staff for its department, they review it once the front desk accepted it."""
    if role == "hall_admin":
        return
    department = staff_department(principal.subject_id, app.hall_code)
    if department is not None:
        if department != app.department:
            raise Forbidden(f"您负责审批「{department}」的办件，该办件的材料由「{app.department}」审核")
        if app.status != ACCEPTED:
            raise Forbidden(f"受审分离：综合受理窗口受理后，办件转「{department}」审核材料")
        return
    if department_staffed(app.hall_code, app.department):
        raise Forbidden(f"受审分离：该办件的材料由「{app.department}」审核，综合受理窗口负责收件和受理")


def after_transition(app: Application, action: str, *, actor_id: str) -> None:
    """Routing that follows a staff transition: to the department's queue on acceptance (where the
    hall has staff for that department), to the pickup window when a result collected in person is
    released (`dispatch`: 窗口领取)."""
    if action == "accept" and department_staffed(app.hall_code, app.department):
        record_event(app, "routed", from_status=ACCEPTED, to_status=ACCEPTED, actor_id=None, actor_role="system",
                     comment=f"受审分离：转「{app.department}」审批", data={"department": app.department})
    elif action == "dispatch" and app.pickup_status is None and _collected_in_person(app):
        app.pickup_status = READY


def _collected_in_person(app: Application) -> bool:
    choice = app.form.get(DELIVERY_FIELD)
    return bool(choice) and choice != POSTAL_DELIVERY


def hand_over(*, actor: Actor, application_id: str, identity_check: str, comment: str | None = None) -> ApplicationView:
    """The pickup window hands the result to the applicant: staff of the pickup hall only (404 for
    anyone who may not see the application, 403 for the other hall's staff), 409 unless ready."""
    app = load_application(application_id, fresh=True)
    principal = actor.principal
    seen = app is not None and actor.subject_type == "person" and any(
        staff_role(principal, hall) for hall in app.halls)
    if not seen:
        raise NotFound("办件不存在")
    hall = pickup_hall(app)
    if staff_role(principal, hall) is None:
        raise Forbidden(f"办理结果在大厅 {hall} 的领取窗口发放")
    if app.revoked_at is not None:
        raise Conflict("办理结果已被撤销，不能发放")
    if app.pickup_status != READY:
        raise Conflict("办理结果已领取" if app.pickup_status == HANDED_OVER else "该办件没有待领取的办理结果",
                       extra={"pickup_status": app.pickup_status})
    app.pickup_status, app.updated_at = HANDED_OVER, utcnow()
    record_event(app, "handed_over", from_status=app.status, to_status=app.status, actor_id=principal.subject_id,
                 actor_role="staff", comment=comment or "已在领取窗口交付办理结果",
                 data={"pickup_hall": hall, "identity_check": identity_check,
                       "staff": staff_card(principal.subject_id, hall)})
    notify(app.subject_id, kind="application_pickup", title=f"办理结果已领取：{app.service_name}",
           body=f"您的「{app.service_name}」办理结果已在领取窗口交付。",
           data={"application_id": app.application_id, "pickup_hall": hall})
    audit.record("application.handed_over", subject_id=app.subject_id, actor=principal.subject_id,
                 details={"application_id": app.application_id, "hall_code": hall, "identity_check": identity_check})
    return saved(app, "staff")


def department_queue(*, actor: Actor, hall_code: str, department: str, status: str | None = None,
                     page: int = 1, page_size: int = 20):
    """A department's work at a hall: accepted applications waiting for its decision (or `status`),
    cross-region ones handed to the hall included, earliest deadline first."""
    require_staff_of_hall(actor.principal, hall_code, what="查看审批队列")
    if not hall_department_exists(hall_code, department):
        raise NotFound("该大厅没有此部门")
    query = select(Application).where(Application.hall_code == hall_code, Application.department == department,
                                      Application.service_code.is_not(None),
                                      Application.status == (status or ACCEPTED))
    return page_of(query, Application.deadline.asc(), Application.id.asc(), page=page, page_size=page_size)


def pickups(*, actor: Actor, hall_code: str, page: int = 1, page_size: int = 20):
    """Results waiting at the hall's pickup window, oldest first."""
    require_staff_of_hall(actor.principal, hall_code, what="查看待领取的办理结果")
    return page_of(select(Application).where(Application.pickup_status == READY, at_pickup_hall(hall_code)),
                   Application.updated_at.asc(), Application.id.asc(), page=page, page_size=page_size)


def at_pickup_hall(hall_code: str):
    """SQL: the application's result is handed out at `hall_code`."""
    return or_(Application.accepting_hall_code == hall_code,
               and_(Application.accepting_hall_code.is_(None), Application.hall_code == hall_code))
