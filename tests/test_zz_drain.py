import cProfile, io, pstats, time
from sqlalchemy import select
from app import journal
from app.extensions import db
from app.identity.models import ApiClient
from app.wallet import access_log
from app.wallet.models import License, Presentation
from tests.support.wallet import ID_CARD, id_card_fields, issue, issuer_headers, present, verifier_headers


def test_drain_cost(app, client, alice):
    police = issuer_headers(app, client, types=(ID_CARD,))
    card = issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields())
    verifier_headers(app, client, types=(ID_CARD,))
    shown = present(client, alice["headers"], card["license_id"], purpose="入住登记")
    with app.app_context():
        pk = db.session.scalar(select(License.id).where(License.license_id == card["license_id"]))
        pid = db.session.scalar(select(Presentation.presentation_id))
        cid = db.session.scalar(select(ApiClient.client_id).where(ApiClient.kind == "verifier"))
        journal.catch_up()
        def fill(n):
            for _ in range(n):
                journal.push(access_log.journal_line(license_pk=pk, presentation_id=pid, verifier_client_id=cid,
                             result="valid", disclosed=["name", "id_number"], actor=cid, ip="127.0.0.1",
                             readers=[alice["subject_id"]]), readers=[alice["subject_id"]])
        fill(500); journal.drain()
        for rep in range(3):
            fill(1000)
            t = time.process_time(); n = journal.drain(); dt = time.process_time() - t
            print(f"\nDRAIN {n} entries: {dt / n * 1e6:.1f} us cpu per entry")
        fill(1000)
        pr = cProfile.Profile(time.process_time); pr.enable(); journal.drain(); pr.disable()
        s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(35); print(s.getvalue())
