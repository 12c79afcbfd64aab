"""一件事: one form fans out to child applications at the right halls; the parent follows them."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from app.applications.models import Application
from app.catalogue.models import Hall
from app.extensions import db
from tests.support.helpers import API, create_staff
from tests.support.applications import (JINAN, accept_files, apply, count_rows, id_card, new_key, person_in,
                                             upload)

ENTERPRISE_MEMBERS = ["企业设立登记", "公章刻制备案", "新办纳税人套餐式服务", "单位社会保险参保登记",
                      "单位医疗保险参保登记", "住房公积金单位缴存登记"]
NEWBORN_MEMBERS = ["出生医学证明签发", "预防接种证办理", "出生登记", "城乡居民医疗保险参保登记", "社会保障卡申领"]
# what only the market regulator's register knows of the new company's 营业执照, typed in on approval
BUSINESS_TERM = {"business_term": "长期"}


def _value(field, person, company_code=None):
    defaults = {"name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
                "agent_name": person["name"], "agent_phone": person["phone"],
                "company_name": "山东齐鲁测试有限公司", "credit_code": company_code}
    if field["name"] in defaults and defaults[field["name"]]:
        return defaults[field["name"]]
    return {"select": (field.get("options") or ["-"])[0], "number": 10, "date": "2026-01-05",
            "phone": person["phone"], "id_number": person["id_number"]}.get(field["type"], f"{field['label']}内容")


def _materials_from(client, headers, form):
    """Licenses the form found in the wallet; otherwise an uploaded scan for required materials."""
    materials = []
    for material in form["materials"]:
        if isinstance(material["satisfied_by"], dict):
            materials.append({"name": material["name"], "license_id": material["satisfied_by"]["license_id"]})
        elif material["required"]:
            materials.append({"name": material["name"], "file_id": upload(client, headers)})
    return materials


def _enterprise_body(client, headers, rep, credit_code):
    form = client.get(f"{API}/bundles/enterprise-opening/form", headers=headers)
    assert form.status_code == 200, form.get_json()
    spec = form.get_json()
    values = {f["name"]: _value(f, rep, credit_code) for f in spec["fields"]}
    materials = []
    for material in spec["materials"]:
        if material["required"] and material["commitment_allowed"]:
            materials.append({"name": material["name"], "commitment": True})
        elif material["required"]:  # 公司章程 and the application form: uploaded scans
            materials.append({"name": material["name"], "file_id": upload(client, headers)})
    return spec, {"form": values, "materials": materials}


def _approve(client, staff, child):
    accept_files(client, staff, child["application_id"])
    extra = {"license_fields": BUSINESS_TERM} if child["service_name"] == "企业设立登记" else {}
    return client.post(f"{API}/applications/{child['application_id']}/transitions", headers=staff,
                       json={"action": "approve", **extra})


def test_enterprise_opening_creates_six_children_and_follows_them(client, app, company):
    rep, credit_code, headers = company
    spec, body = _enterprise_body(client, headers, rep, credit_code)
    names = [f["name"] for f in spec["fields"]]
    assert len(names) == len(set(names)) and {"company_name", "proposed_name", "seal_types"} <= set(names)
    material_names = [m["name"] for m in spec["materials"]]
    # the 营业执照 the first member issues is not asked for again
    assert len(material_names) == len(set(material_names)) and "营业执照" not in material_names
    assert {"公司章程", "公司登记（备案）申请书"} <= set(material_names)
    assert [m["service_name"] for m in spec["members"]] == ENTERPRISE_MEMBERS

    response = apply(client, headers, body, path="/bundles/enterprise-opening/applications")
    assert response.status_code == 201, response.get_json()
    parent = response.get_json()
    assert parent["bundle_code"] == "enterprise-opening" and parent["status"] == "submitted"
    assert parent["hall_code"] == JINAN  # the company's city (credit code region 370102)
    children = parent["children"]
    assert [c["service_name"] for c in children] == ENTERPRISE_MEMBERS
    with app.app_context():
        counties = {h.code for h in db.session.scalars(db.select(Hall).where(Hall.parent_code == JINAN))}
    halls = {c["hall_code"] for c in children}
    assert len(halls) == 1 and halls <= counties  # county members run at one county of the city
    assert all(c["parent_application_id"] == parent["application_id"] for c in children)
    assert all(c["status"] == "submitted" and c["deadline"] for c in children)
    assert parent["deadline"] == max(c["deadline"] for c in children)
    seal = children[1]
    produced = next(m for m in seal["materials"] if m["name"] == "营业执照")
    assert produced["kind"] == "produced" and produced["produced_by"] == children[0]["application_id"]
    assert count_rows(app, Application) == 7

    # staff of the county hall work the children; the parent follows
    staff = create_staff(app, halls.pop(), "hall_staff")
    for child in children:
        assert client.post(f"{API}/applications/{child['application_id']}/transitions", headers=staff,
                           json={"action": "accept"}).status_code == 200
    assert client.post(f"{API}/applications/{parent['application_id']}/transitions", headers=staff,
                       json={"action": "accept"}).status_code in (404, 409)
    # the seal can wait for no license: the 营业执照 comes from the first member
    assert _approve(client, staff, children[1]).status_code == 409
    accept_files(client, staff, children[0]["application_id"])
    without_term = client.post(f"{API}/applications/{children[0]['application_id']}/transitions", headers=staff,
                               json={"action": "approve"})
    assert without_term.status_code == 422 and "license_fields.business_term" in without_term.get_json()["errors"]
    for child in children[:-1]:
        assert _approve(client, staff, child).status_code == 200
        assert client.get(f"{API}/applications/{parent['application_id']}",
                          headers=headers).get_json()["status"] == "submitted"
    issued = client.get(f"{API}/applications/{children[0]['application_id']}", headers=headers).get_json()
    business_license = issued["result"]["license_id"]
    wallet = client.get(f"{API}/wallet/licenses/{business_license}", headers=headers)
    assert wallet.status_code == 200, wallet.get_json()
    values = {item["name"]: item["value"] for item in wallet.get_json()["fields"]}
    assert values["entity_name"] == "山东齐鲁测试有限公司" and values["business_term"] == "长期"
    assert values["legal_representative"] == "法人甲" and values["issuing_authority"] == children[0]["department"]
    last = _approve(client, staff, children[-1])
    assert last.status_code == 200
    final = client.get(f"{API}/applications/{parent['application_id']}", headers=headers).get_json()
    assert final["status"] == "approved" and final["completed_at"]
    assert final["timeline"][-1]["action"] == "children_final"
    assert all(c["status"] == "approved" for c in final["children"])


def test_a_rejected_child_makes_the_parent_rejected(client, app, company):
    rep, credit_code, headers = company
    _spec, body = _enterprise_body(client, headers, rep, credit_code)
    parent = apply(client, headers, body, path="/bundles/enterprise-opening/applications").get_json()
    staff = create_staff(app, parent["children"][0]["hall_code"], "hall_admin")
    for index, child in enumerate(parent["children"]):
        action = "reject" if index == 2 else "accept"
        assert client.post(f"{API}/applications/{child['application_id']}/transitions", headers=staff,
                           json={"action": action, "comment": "不符合条件"}).status_code == 200
        if action == "accept":
            assert _approve(client, staff, child).status_code == 200
    final = client.get(f"{API}/applications/{parent['application_id']}", headers=headers).get_json()
    assert final["status"] == "rejected"


def test_bundle_hall_from_the_body_and_from_a_laiwu_id_number(client, app):
    # 3712 (莱芜, merged into 济南 in 2019) -> 济南
    mother = person_in(client, app, region="371202", name="王芳", gender="女")
    card = id_card(app, mother)
    form = client.get(f"{API}/bundles/newborn/form", headers=mother["headers"]).get_json()
    assert form["hall_code"] == JINAN
    values = {f["name"]: _value(f, mother) for f in form["fields"]}
    materials = _materials_from(client, mother["headers"], form)
    assert {"name": "母亲居民身份证", "license_id": card} in materials
    body = {"form": values, "materials": materials}
    response = apply(client, mother["headers"], body, path="/bundles/newborn/applications")
    assert response.status_code == 201, response.get_json()
    parent = response.get_json()
    assert parent["hall_code"] == JINAN and [c["service_name"] for c in parent["children"]] == NEWBORN_MEMBERS
    with app.app_context():
        halls = {c["hall_code"] for c in parent["children"]}
        assert all(db.session.get(Hall, code).parent_code == JINAN for code in halls)
    # one newborn bundle at a time: a second is 409 naming the first, until it is withdrawn
    again = apply(client, mother["headers"], {**body, "hall_code": "370112"}, path="/bundles/newborn/applications")
    assert again.status_code == 409 and again.get_json()["application_id"] == parent["application_id"]
    assert client.post(f"{API}/applications/{parent['application_id']}/withdraw",
                       headers=mother["headers"]).status_code == 200
    # a county in the body: every member runs there
    chosen = apply(client, mother["headers"], {**body, "hall_code": "370112"}, path="/bundles/newborn/applications")
    assert chosen.status_code == 201, chosen.get_json()
    assert chosen.get_json()["hall_code"] == "370112"
    assert {c["hall_code"] for c in chosen.get_json()["children"]} == {"370112"}
    assert apply(client, mother["headers"], {**body, "hall_code": "999999"},
                 path="/bundles/newborn/applications").status_code == 422
    assert apply(client, mother["headers"], {**body, "hall_code": "370000"},
                 path="/bundles/newborn/applications").status_code == 422


def test_bundle_withdrawal_and_errors(client, app, company):
    mother = person_in(client, app, name="王芳", gender="女")
    id_card(app, mother)
    form = client.get(f"{API}/bundles/newborn/form", headers=mother["headers"]).get_json()
    body = {"form": {f["name"]: _value(f, mother) for f in form["fields"]},
            "materials": _materials_from(client, mother["headers"], form)}
    key = new_key()
    first = apply(client, mother["headers"], body, key=key, path="/bundles/newborn/applications")
    assert first.status_code == 201, first.get_json()
    replay = apply(client, mother["headers"], body, key=key, path="/bundles/newborn/applications")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()
    # the same key for another endpoint is another request
    assert apply(client, mother["headers"], body, key=key).status_code == 422
    parent = first.get_json()
    child = parent["children"][0]["application_id"]
    assert client.post(f"{API}/applications/{child}/withdraw", headers=mother["headers"]).status_code == 409
    withdrawn = client.post(f"{API}/applications/{parent['application_id']}/withdraw", headers=mother["headers"])
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert withdrawn.get_json()["status"] == "withdrawn"
    assert {c["status"] for c in withdrawn.get_json()["children"]} == {"withdrawn"}
    # audience, unknown bundle, unknown fields
    _rep, _code, company_headers = company
    assert apply(client, company_headers, body, path="/bundles/newborn/applications").status_code == 422
    assert apply(client, mother["headers"], body, path="/bundles/enterprise-opening/applications").status_code == 422
    assert apply(client, mother["headers"], body, path="/bundles/no-such-bundle/applications").status_code == 404
    assert client.get(f"{API}/bundles/no-such-bundle/form", headers=mother["headers"]).status_code == 404
    extra = {**body, "form": {**body["form"], "favourite_colour": "blue"}}
    response = apply(client, mother["headers"], extra, path="/bundles/newborn/applications")
    assert response.status_code == 422 and "form.favourite_colour" in response.get_json()["errors"]
    assert count_rows(app, Application) == 6


def test_children_approved_concurrently_complete_the_parent_once(client, app, company):
    rep, credit_code, headers = company
    _spec, body = _enterprise_body(client, headers, rep, credit_code)
    parent = apply(client, headers, body, path="/bundles/enterprise-opening/applications").get_json()
    staff = create_staff(app, parent["children"][0]["hall_code"], "hall_staff")
    for child in parent["children"]:
        assert client.post(f"{API}/applications/{child['application_id']}/transitions", headers=staff,
                           json={"action": "accept"}).status_code == 200
        accept_files(client, staff, child["application_id"])
    first, rest = parent["children"][0], parent["children"][1:]
    assert _approve(client, staff, first).status_code == 200  # issues the 营业执照 the others wait for
    barrier = threading.Barrier(len(rest))

    def approve(child):
        local = app.test_client()
        barrier.wait()
        return local.post(f"{API}/applications/{child['application_id']}/transitions", headers=staff,
                          json={"action": "approve"}).status_code

    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        statuses = list(pool.map(approve, rest))
    assert statuses == [200] * 5
    final = client.get(f"{API}/applications/{parent['application_id']}", headers=headers).get_json()
    assert final["status"] == "approved"
    assert [e["action"] for e in final["timeline"]].count("children_final") == 1
