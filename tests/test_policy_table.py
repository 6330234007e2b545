"""The whole sharing table: every role x relation to the owner x case (visibility x state x
anonymity) x action, checked against an independent statement of the rules, through the policy,
the API and search. The world is built once for the module."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy import select

from app import create_app, policy
from app.content import load_reference
from app.extensions import db
from app.models import Case, Category, Municipality
from app.search.service import SearchParams, search_cases
from app.search.sync import apply_pending, queue_case
from app.services import accounts, municipalities
from app.services import questions as question_service
from config import TestingConfig

ROOT = Path(__file__).resolve().parent.parent
OWNER = "三原市"                       # groups: 共同利用2 (with 世羅町), 備後圏域
RELATIONS = {"same": "三原市", "neighbour": "竹原市", "group": "世羅町", "other": "庄原市", "observer": "倉敷市"}
VISIBILITIES, STATES = ("private", "neighbours", "all"), ("draft", "published", "archived")
ACTORS = [(role, rel) for role in ("municipal", "viewer") for rel in RELATIONS if not (role == "municipal" and rel == "observer")]
ACTORS += [("viewer", "observer"), ("helpdesk", None), ("admin", None), ("expert", None)]
ACTORS = list(dict.fromkeys(ACTORS))
CASES = list(itertools.product(VISIBILITIES, STATES, (False, True)))
# Rows that break visibility <= consent (which the services never write): readers must still see
# them shared no wider than the consent.
BAD_ROWS = [("all", "published", False, "private"), ("all", "published", False, "neighbours"),
            ("neighbours", "published", True, "private")]
WIDTH = {"private": 0, "neighbours": 1, "all": 2}


# --- the rules, stated independently of app/policy.py ------------------------------------------

def may_view(role, rel, visibility, state):
    if role in ("helpdesk", "admin"):
        return True
    if role == "expert":  # experts read only the requests and threads they are assigned to
        return False
    if state == "archived":
        return False
    if rel == "same":
        return True
    if state != "published":
        return False
    return visibility == "all" or (visibility == "neighbours" and rel in ("neighbour", "group"))


def expected(role, rel, visibility, state, anonymous):
    view = may_view(role, rel, visibility, state)
    return {
        "view": view,
        "search_hit": view and state == "published",
        "see_owner": view and (not anonymous or role in ("helpdesk", "admin") or rel == "same"),
        "see_route": view and (not anonymous or role in ("helpdesk", "admin") or rel == "same"),
        "edit": role == "helpdesk" and state != "archived",
        "publish": role == "helpdesk" and state == "draft",
        "change_visibility": role == "helpdesk" and state == "published",
        "change_consent": role == "municipal" and rel == "same" and state != "archived",
        "archive": role == "helpdesk" and state != "archived",
        "restore": role == "helpdesk" and state == "archived",
        "helpful": view and state == "published" and role in ("municipal", "viewer") and rel != "same",
        "export": role in ("helpdesk", "admin"),
    }


def expected_thread(role, rel):
    return {
        "view": role in ("helpdesk", "admin") or rel == "same",
        "comment": role == "helpdesk" or (role == "municipal" and rel == "same"),
        "answer": role == "helpdesk",
        "read_notes": role in ("helpdesk", "admin"),
        "write_note": role == "helpdesk",
        "run_desk": role == "helpdesk",
        "read_revisions": role in ("helpdesk", "admin"),
        "withdraw_others_post": role == "helpdesk",
    }


# --- the world, once ---------------------------------------------------------------------------

# Under pytest-xdist (`make test`) the whole table runs on one worker, so the world is built once.
pytestmark = pytest.mark.xdist_group("policy-table")

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table")

    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp / 'table.db'}"
        SEARCH_INDEX_DIR = str(tmp / "index")

    app = create_app(Config)
    with app.app_context():
        db.create_all()
        load_reference(ROOT / "content")
        municipalities.add_municipality("332020", "倉敷市", prefecture="岡山県", observer=True)
        by_name = {m.name: m for m in db.session.scalars(select(Municipality))}
        municipalities.link(by_name[OWNER], by_name["竹原市"])
        users = {}
        for role, rel in ACTORS:
            name = f"{role}-{rel or 'pref'}"
            users[(role, rel)] = accounts.create_user(name, "table-password-1", role,
                                                      by_name[RELATIONS[rel]] if rel else None).username
        asker = accounts.create_user("asker", "table-password-1", "municipal", by_name[OWNER])
        question = question_service.ask_question(asker, {"title": "表の相談", "body": "本文", "category": "network"})
        note_author = accounts.create_user("note-author", "table-password-1", "helpdesk")
        question_service.post_note(note_author, question, {"body": "表の内部メモ"})
        network = db.session.scalar(select(Category).where(Category.slug == "network"))
        case_ids = {}
        for n, (visibility, state, anonymous, consent) in enumerate([c + ("all",) for c in CASES] + BAD_ROWS):
            case = Case(title=f"検証事例 その{n}", issue="症状", resolution="対応", category=network,
                        municipality=by_name[OWNER], state=state, visibility=visibility, sharing_consent=consent,
                        anonymous=anonymous)
            db.session.add(case)
            db.session.flush()
            queue_case(case)
            case_ids[(visibility, state, anonymous, consent)] = case.id
        db.session.commit()
        apply_pending()
        tokens = {key: accounts.create_token(accounts.get_user(name)) for key, name in users.items()}
        db.session.commit()
        yield {"app": app, "users": users, "cases": case_ids, "question": question.id, "tokens": tokens}
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("role,rel", ACTORS)
def test_every_case_action_matches_the_rules(world, role, rel):
    app = world["app"]
    with app.app_context():
        user = accounts.get_user(world["users"][(role, rel)])
        client = app.test_client()
        headers = {"Authorization": f"Bearer {world['tokens'][(role, rel)]}"}
        hits = {h.case.id for h in search_cases(user, SearchParams(q="検証事例", per_page=100), log_misses=False).hits}
        for (visibility, state, anonymous, consent), case_id in world["cases"].items():
            case = db.session.get(Case, case_id)
            shared = visibility if WIDTH[visibility] <= WIDTH[consent] else consent
            want = expected(role, rel, shared, state, anonymous)
            got = {
                "view": policy.can_view_case(user, case),
                "search_hit": case_id in hits,
                "see_owner": policy.can_view_case(user, case) and policy.can_see_owner(user, case),
                "see_route": policy.can_view_case(user, case) and policy.can_see_sharing_route(user, case),
                "edit": policy.can_edit_case(user, case),
                "publish": policy.can_publish_case(user, case),
                "change_visibility": policy.can_change_visibility(user, case),
                "change_consent": policy.can_change_consent(user, case),
                "archive": policy.can_archive_case(user, case),
                "restore": policy.can_restore_case(user, case),
                "helpful": policy.can_mark_helpful(user, case),
                "export": policy.can_export_cases(user),
            }
            assert got == want, (visibility, state, anonymous, consent)
            response = client.get(f"/api/v1/cases/{case_id}", headers=headers)
            assert response.status_code == (200 if want["view"] else 404), (visibility, state, anonymous, consent)
            if want["view"]:
                owner = response.get_json()["municipality"]
                assert (owner is not None) == want["see_owner"], (visibility, state, anonymous, consent)
                assert (response.get_json()["visibility"] is not None) == want["see_route"], (visibility, state, anonymous, consent)
            listed = db.session.scalar(select(Case.id).where(Case.id == case_id, policy.visible_cases_clause(user)))
            assert (listed is not None) == want["view"]


@pytest.mark.parametrize("role,rel", ACTORS)
def test_the_question_thread_is_only_for_its_municipality_and_the_help_desk(world, role, rel):
    app = world["app"]
    with app.app_context():
        user = accounts.get_user(world["users"][(role, rel)])
        from app.models import Question

        question = db.session.get(Question, world["question"])
        want = expected_thread(role, rel)
        note = question.notes[0]
        got = {
            "view": policy.can_view_question(user, question),
            "comment": policy.can_comment(user, question),
            "answer": policy.can_answer(user, question),
            "read_notes": policy.can_read_internal_notes(user),
            "write_note": policy.can_write_internal_note(user, question),
            "run_desk": policy.can_run_desk(user, question),
            "read_revisions": policy.can_read_revisions(user),
            "withdraw_others_post": policy.can_withdraw_post(user, note) and policy.can_withdraw_post(user, question),
        }
        assert got == want
        response = app.test_client().get(f"/api/v1/questions/{world['question']}",
                                         headers={"Authorization": f"Bearer {world['tokens'][(role, rel)]}"})
        assert response.status_code == (200 if want["view"] else 404)
        if want["view"]:
            body = response.get_json()
            assert ("internal_notes" in body) == want["read_notes"]
            assert ("表の内部メモ" in response.get_data(as_text=True)) == want["read_notes"]


@pytest.mark.parametrize("role,rel", ACTORS)
def test_no_notification_or_mail_carries_what_its_recipient_may_not_read(world, role, rel, tmp_path):
    """Every case of the table announced to every actor (as if they followed its category), and
    every kind of thread event including one pointing at the internal note: what shows in the app
    and what arrives by mail (rendered at send time) follows the rules, anonymity included."""
    from app.models import MailOutbox, Notification, Question
    from app.services import notifications

    app = world["app"]
    app.config.update(MAIL_BACKEND="folder", MAIL_DIR=str(tmp_path))
    with app.app_context():
        user = accounts.get_user(world["users"][(role, rel)])
        user.email = f"{user.username}@example.lg.jp"
        question = db.session.get(Question, world["question"])
        note = question.notes[0]
        expected_mail = {}
        for (visibility, state, anonymous, consent), case_id in world["cases"].items():
            shared = visibility if WIDTH[visibility] <= WIDTH[consent] else consent
            want = expected(role, rel, shared, state, anonymous)
            n = Notification(user_id=user.id, kind="case_published", case_id=case_id)
            db.session.add(n)
            db.session.flush()
            rendered = notifications.describe(n, user)
            assert (rendered is not None) == (want["view"] and state == "published"), (visibility, state, anonymous)
            if rendered is not None:
                assert (OWNER in rendered.text) == want["see_owner"], (visibility, state, anonymous)
                expected_mail[f"検証事例 その{list(world['cases']).index((visibility, state, anonymous, consent))}」"] = \
                    want["see_owner"]
            db.session.add(MailOutbox(user_id=user.id, notification_id=n.id))
        thread = expected_thread(role, rel)
        events = [Notification(user_id=user.id, kind=kind, question_id=question.id, detail="waiting")
                  for kind in ("new_question", "status", "resolved")]
        events.append(Notification(user_id=user.id, kind="new_post", question_id=question.id, post_type="note",
                                   post_id=note.id))
        for n in events:
            db.session.add(n)
            db.session.flush()
            wanted = thread["read_notes"] if n.post_type == "note" else thread["view"]
            assert (notifications.describe(n, user) is not None) == wanted, n.kind
            db.session.add(MailOutbox(user_id=user.id, notification_id=n.id))
        db.session.commit()
        counts = notifications.deliver_pending(limit=1000)
        mails = [path.read_text(encoding="utf-8", errors="replace") for path in tmp_path.glob("*.eml")]
        import email
        from email import policy as email_policy
        bodies = [email.message_from_string(m, policy=email_policy.default).get_body().get_content() for m in mails]
        assert counts["sent"] == len(bodies) == len(expected_mail) + (3 * thread["view"]) + thread["read_notes"]
        for title_end, owner_shown in expected_mail.items():
            (body,) = [b for b in bodies if title_end in b]
            assert (OWNER in body) == owner_shown, title_end
        assert not any("表の内部メモ" in b for b in bodies)
        for row in db.session.scalars(select(MailOutbox).where(MailOutbox.user_id == user.id)):
            db.session.delete(row)
        for row in db.session.scalars(select(Notification).where(Notification.user_id == user.id)):
            db.session.delete(row)
        db.session.commit()


def test_the_table_covers_every_relation_and_case():
    assert {rel for _role, rel in ACTORS} == set(RELATIONS) | {None}
    assert len(CASES) == 18


# --- the life of a case: revisions, reports, reuse (issue 12) ------------------------------------

def expected_lifecycle(role, rel, visibility, state):
    view = may_view(role, rel, visibility, state)
    return {
        "history": role == "helpdesk",
        "revision_text": role == "helpdesk",
        "restore_revision": role == "helpdesk" and state != "archived",
        "report": view and state == "published" and role == "municipal",
        "handle_reports": role == "helpdesk",
        "confirm": role == "helpdesk" and state == "published",
        "supersede": role == "helpdesk" and state != "archived",
        "ask_about": view and role == "municipal" and rel != "observer",
        "asker_may_read_link": state == "published" and (visibility == "all" or rel in ("same",)
                                                         or (visibility == "neighbours" and rel in ("neighbour", "group"))),
    }


@pytest.mark.parametrize("role,rel", ACTORS)
def test_revision_report_and_reuse_rules_match_the_table(world, role, rel):
    from types import SimpleNamespace

    from app.models import Question

    app = world["app"]
    with app.app_context():
        user = accounts.get_user(world["users"][(role, rel)])
        asker_municipality = None
        if rel is not None:
            asker_municipality = db.session.scalar(select(Municipality.id).where(Municipality.name == RELATIONS[rel]))
        for (visibility, state, anonymous, consent), case_id in world["cases"].items():
            case = db.session.get(Case, case_id)
            shared = visibility if WIDTH[visibility] <= WIDTH[consent] else consent
            want = expected_lifecycle(role, rel, shared, state)
            # A revision as the case was then: the rule also asks whether the reader could read it then.
            then = SimpleNamespace(state=case.state, municipality_id=case.municipality_id,
                                   shared_visibility=case.shared_visibility)
            got = {
                "history": policy.can_read_case_history(user, case),
                "revision_text": policy.can_read_revision_text(user, case, then),
                "restore_revision": policy.can_restore_revision(user, case),
                "report": policy.can_report_case(user, case),
                "handle_reports": policy.can_handle_case_reports(user),
                "confirm": policy.can_confirm_case(user, case),
                "supersede": policy.can_supersede_case(user, case),
                "ask_about": policy.can_ask_about_case(user, case),
                "asker_may_read_link": (asker_municipality is not None
                                        and policy.municipality_may_read(asker_municipality, case)
                                        and case.state == "published"),
            }
            if rel is None:
                want["asker_may_read_link"] = False
            assert got == want, (visibility, state, anonymous, consent)
        # Reports and their outcomes reach only whom the rules allow (rendered when shown).
        from app.models import CaseReport, Notification
        from app.services import notifications

        for (visibility, state, anonymous, consent), case_id in world["cases"].items():
            shared = visibility if WIDTH[visibility] <= WIDTH[consent] else consent
            view = may_view(role, rel, shared, state)
            report = CaseReport(case_id=case_id, reporter_id=user.id, reason="outdated", comment="古い",
                                outcome="no_change")
            db.session.add(report)
            db.session.flush()
            for kind in ("case_report", "case_report_outcome"):
                n = Notification(user_id=user.id, kind=kind, case_id=case_id, post_type="case_report", post_id=report.id)
                db.session.add(n)
                db.session.flush()
                shown = notifications.describe(n, user) is not None
                wanted = view and (role == "helpdesk" if kind == "case_report" else True)
                assert shown == wanted, (kind, visibility, state, anonymous, consent)
        db.session.rollback()
        question = db.session.get(Question, world["question"])
        assert question is not None


# --- the expert role (issue 13): assigned threads only -----------------------------------------

def test_an_expert_reads_a_thread_only_while_assigned_to_a_request_made_from_it(world):
    """The same question of the table: the unassigned expert row above reads nothing; once a
    request made from the question is assigned to the expert, they read the thread (never its
    internal notes) and may answer; the other expert still reads nothing; ending the request ends it."""
    from app.models import Question, Skill
    from app.services import experts as expert_service

    app = world["app"]
    with app.app_context():
        desk = accounts.create_user("table-desk", "table-password-1", "helpdesk")
        staff = accounts.get_user("asker")
        expert_user = accounts.create_user("table-expert", "table-password-1", "expert")
        other_expert = accounts.get_user(world["users"][("expert", None)])
        skill = Skill(name="表のスキル", sort_order=99, is_active=True)
        db.session.add(skill)
        db.session.flush()
        expert = expert_service.save_expert(desk, None, {"name": "表の専門人材", "days_per_month": "4",
                                                         "work_style": "both", "username": "table-expert"})
        question = db.session.get(Question, world["question"])
        request = expert_service.file_request(desk, {"title": "表の依頼", "body": "本文", "period_start": "2027-04-01",
                                                     "period_end": "2027-06-30", "days_per_month": "1",
                                                     f"skill_{skill.id}": "2"}, question)
        assert not policy.can_view_question(expert_user, question)
        proposal = expert_service.propose(desk, request, {"expert_id": str(expert.id), "start": "2027-04-01",
                                                          "end": "2027-06-30", "days_per_month": "1", "total_days": "3",
                                                          "daily_rate": "1000", "contract_form": "outsourcing"})
        assert not policy.can_view_question(expert_user, question)
        expert_service.accept_proposal(staff, proposal)
        db.session.commit()
        for user, sees in ((expert_user, True), (other_expert, False)):
            assert policy.can_view_question(user, question) is sees
            assert policy.can_expert_answer(user, question) is sees
            assert not policy.can_comment(user, question) and not policy.can_answer(user, question)
            assert not policy.can_read_internal_notes(user) and not policy.can_run_desk(user, question)
            listed = db.session.scalar(select(Question.id).where(Question.id == question.id,
                                                                 policy.visible_questions_clause(user)))
            assert (listed is not None) is sees
        token = accounts.create_token(expert_user)
        db.session.commit()
        response = app.test_client().get(f"/api/v1/questions/{question.id}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and "表の内部メモ" not in response.get_data(as_text=True)
        expert_service.close_request(desk, request)
        db.session.commit()
        assert not policy.can_view_question(expert_user, question)
        response = app.test_client().get(f"/api/v1/questions/{question.id}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404
