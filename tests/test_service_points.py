"""就近办: GET /service-points returns the nearest halls and township/village points, nearest first,
with distances that agree with an independent great-circle computation (Vincenty's formula on the
sphere, written here from scratch), and only points that offer the item when `base_code` is given."""
from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from app.catalogue.models import Hall, Service, ServicePoint
from app.catalogue.points import seed as points_seed
from app.extensions import db
from tests.support.helpers import API

EARTH_KM = 6371.0088
QUANCHENG_SQUARE = (36.6617, 117.0210)  # 泉城广场, 济南


def sphere_km(lat1, lon1, lat2, lon2) -> float:
    """Great-circle distance by Vincenty's special case for the sphere (atan2 form)."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.hypot(math.cos(p2) * math.sin(dl), math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl))
    x = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return EARTH_KM * math.atan2(y, x)


def nearest(client, **params):
    return client.get(f"{API}/service-points", query_string=params)


def _all_points(app) -> list[tuple[str, float, float, str]]:
    with app.app_context():
        halls = [(h.code, h.lat, h.lon, h.level) for h in db.session.scalars(
            select(Hall).where(Hall.level.in_(("province", "city", "county")), Hall.lat.is_not(None)))]
        points = [(p.code, p.lat, p.lon, p.level) for p in db.session.scalars(select(ServicePoint))]
    return halls + points


def test_every_city_and_county_hall_is_located_and_points_are_seeded(app):
    with app.app_context():
        unlocated = db.session.scalar(select(func.count()).select_from(Hall).where(
            Hall.level.in_(("province", "city", "county")), Hall.lat.is_(None)))
        assert unlocated == 0
        jinan = db.session.get(Hall, "370100")
        assert abs(jinan.lat - 36.65) < 0.1 and abs(jinan.lon - 117.12) < 0.1
        assert jinan.open_hours and jinan.phone.startswith("0531-") and jinan.windows > 0
        counts = dict(db.session.execute(select(ServicePoint.level, func.count()).group_by(ServicePoint.level)).all())
        assert counts["township"] > 1000 and counts["village"] > counts["township"] * 2
        # every generated point lies in Shandong's bounding box and near its county seat
        for point in db.session.scalars(select(ServicePoint).where(ServicePoint.county_code == "370102")):
            seat = db.session.get(Hall, "370102")
            assert sphere_km(seat.lat, seat.lon, point.lat, point.lon) <= 5.0 + 3.0 + 0.01
            assert 34.3 < point.lat < 38.5 and 114.7 < point.lon < 122.8
        # the names and codes are the benchmark generator's
        first = db.session.get(ServicePoint, "370102001")
        assert first.name == "济南市历下区第1街道便民服务中心" and first.level == "township"
        assert db.session.get(ServicePoint, "370102001001").name == "济南市历下区第1街道第1社区便民服务站"


def test_seeding_again_changes_nothing(app):
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(ServicePoint))
        assert points_seed.seed_service_points() == "0 halls located, 0 service points added"
        assert db.session.scalar(select(func.count()).select_from(ServicePoint)) == before


def test_nearest_points_are_ordered_and_distances_match_an_independent_formula(app, client):
    lat, lon = QUANCHENG_SQUARE
    response = nearest(client, lat=lat, lon=lon, limit=15)
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    assert len(items) == 15
    distances = [item["distance_km"] for item in items]
    assert distances == sorted(distances)
    for item in items:
        assert set(item) == {"code", "name", "level", "address", "lat", "lon", "distance_km", "open_hours", "phone"}
        assert item["distance_km"] == pytest.approx(sphere_km(lat, lon, item["lat"], item["lon"]), abs=0.002)
    # brute force over every point: the same 15, in the same order
    expected = sorted(_all_points(app), key=lambda p: (sphere_km(lat, lon, p[1], p[2]), p[0]))[:15]
    assert [item["code"] for item in items] == [code for code, *_ in expected]


def test_a_point_queried_at_its_own_coordinates_comes_first_at_zero(app, client):
    with app.app_context():
        hall = db.session.get(Hall, "371002")  # 环翠区, 威海
        lat, lon = hall.lat, hall.lon
    items = nearest(client, lat=lat, lon=lon, limit=3).get_json()["items"]
    assert items[0]["code"] == "371002" and items[0]["distance_km"] == 0.0
    assert items[0]["level"] == "county" and items[0]["name"] == "威海市环翠区"


def test_base_code_keeps_only_points_that_offer_the_item(app, client):
    lat, lon = QUANCHENG_SQUARE
    with app.app_context():
        base = next(b for b in points_seed.seed_data.load_base_items() if b["grassroots"] and b["online_depth"] != "全程网办")
        offering_halls = set(db.session.scalars(select(Service.hall_code).where(Service.base_code == base["base_code"],
                                                                                Service.status == "published")))
    items = nearest(client, lat=lat, lon=lon, base_code=base["base_code"], limit=50).get_json()["items"]
    assert len(items) == 50
    for item in items:
        assert item["level"] != "village"  # not fully online: not at village stations
        assert item["level"] == "township" or item["code"] in offering_halls
    everything = nearest(client, lat=lat, lon=lon, limit=50).get_json()["items"]
    assert any(item["level"] == "village" for item in everything)
    assert items[0]["distance_km"] >= everything[0]["distance_km"]


def test_a_city_level_item_is_only_at_halls(app, client):
    with app.app_context():
        base = next(b for b in points_seed.seed_data.load_base_items() if b["level"] == "city" and not b["grassroots"])
    items = nearest(client, lat=37.5, lon=121.4, base_code=base["base_code"], limit=5).get_json()["items"]
    assert items and all(item["level"] == "city" for item in items)
    assert items[0]["code"] == "370600"  # 烟台市 is nearest to that point among the city halls


@pytest.mark.parametrize("params, field", [
    ({"lat": 91, "lon": 117}, "lat"), ({"lat": 36, "lon": -181}, "lon"), ({"lat": "north", "lon": 117}, "lat"),
    ({"lon": 117}, "lat"), ({"lat": 36}, "lon"), ({"lat": "nan", "lon": 117}, "lat"),
    ({"lat": 36, "lon": 117, "limit": 0}, "limit"), ({"lat": 36, "lon": 117, "base_code": "000000000000"}, "base_code"),
])
def test_bad_input_is_422_naming_the_field(client, params, field):
    response = nearest(client, **params)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
