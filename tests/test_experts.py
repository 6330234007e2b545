"""Shared IT experts: the registry, matching with a fixed pool (ranking, reasons, conflict
exclusion, availability), proposals and assignments (one winner under concurrency), the expert
role (only assigned requests and threads), the expert's answers into threads and the library
record, cost reports and the CSV for the budget office."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import func, select

from app import policy
from app.extensions import db
from app.models import (
    Case, ExpertAssignment, ExpertRequest, Municipality, MunicipalityGroup, Question, Role, Skill,
)
from app.search.sync import apply_pending
from app.services import cases as case_service
from app.services import experts as service
from app.services import questions as question_service
from app.services.errors import Conflict, Forbidden, ValidationFailed
from tests.conftest import municipality


def skill_id(name: str) -> int:
    skill = db.session.scalar(select(Skill).where(Skill.name == name))
    return skill.id


def group_id(name: str) -> int:
    return db.session.scalar(select(MunicipalityGroup.id).where(MunicipalityGroup.name == name))


@pytest.fixture
def desk(make_user):
    return make_user(Role.HELPDESK)


@pytest.fixture
def vocabulary(desk):
    for name in ("ネットワーク設計", "セキュリティ監査", "調達仕様書の確認"):
        service.add_skill(desk, name)
    db.session.commit()


def add_expert(desk, **fields):
    data = {"name": "名前", "organisation": "所属", "kind": "external", "days_per_month": "4", "work_style": "both",
            "rate_min": "40000", "rate_max": "60000", "contract_forms": ["outsourcing"]}
    data.update(fields)
    expert = service.save_expert(desk, None, data)
    db.session.commit()
    return expert


@pytest.fixture
def pool(desk, vocabulary, make_user):
    """A fixed pool: 田中 (best fit), 佐藤 (affiliated with the vendor), 鈴木 (wrong skill, remote
    only), 高橋 (right skill, busy), 伊藤 (right skill, in another region, on site only)."""
    net, sec = skill_id("ネットワーク設計"), skill_id("セキュリティ監査")
    tanaka_user = make_user(Role.EXPERT, username="tanaka")
    experts = {
        "田中": add_expert(desk, name="田中", **{f"skill_{net}": "3", f"skill_{sec}": "2"}, days_per_month="8",
                         regions=["all"], username="tanaka"),
        "佐藤": add_expert(desk, name="佐藤", **{f"skill_{net}": "3"}, days_per_month="10", regions=["all"],
                         vendor_affiliations="株式会社ベンダーA（技術顧問）"),
        "鈴木": add_expert(desk, name="鈴木", **{f"skill_{sec}": "3"}, days_per_month="6", work_style="remote"),
        "高橋": add_expert(desk, name="高橋", **{f"skill_{net}": "3"}, days_per_month="4", regions=["all"]),
        "伊藤": add_expert(desk, name="伊藤", **{f"skill_{net}": "2"}, days_per_month="6", work_style="onsite",
                         regions=[str(group_id("共同利用1"))]),
    }
    return {"experts": experts, "tanaka_user": tanaka_user, "net": net, "sec": sec}


def file(user, question=None, **fields):
    data = {"title": "庁内ネットワークの更改", "body": "庁内LANのスイッチ更改の仕様を見てほしい",
            "period_start": "2027-04-01", "period_end": "2027-09-30", "days_per_month": "2", "work_style": "both",
            "budget": "1,000,000", "vendors": "ベンダーA（株）\nベンダーB"}
    data.update(fields)
    request = service.file_request(user, data, question)
    db.session.commit()
    return request


def propose_and_accept(desk, staff, request, expert, **terms):
    data = {"expert_id": str(expert.id), "start": "2027-04-01", "end": "2027-09-30", "days_per_month": "2",
            "total_days": "12", "daily_rate": "50000", "contract_form": "outsourcing",
            f"share_{request.municipality_id}": "100"}
    data.update(terms)
    proposal = service.propose(desk, request, data)
    db.session.commit()
    assignment = service.accept_proposal(staff, proposal)
    db.session.commit()
    return assignment


@pytest.fixture
def mihara(make_user):
    return make_user(Role.MUNICIPAL, "三原市")


# --- matching ---------------------------------------------------------------------------------

def test_matching_ranks_the_pool_with_reasons_and_sets_the_vendor_affiliated_expert_apart(pool, desk, mihara):
    busy_request = file(mihara, title="別の依頼", **{f"skill_{pool['net']}": "2"}, vendors="")
    propose_and_accept(desk, mihara, busy_request, pool["experts"]["高橋"], days_per_month="4",
                       start="2027-01-01", end="2027-12-31")
    request = file(mihara, **{f"skill_{pool['net']}": "2"}, work_style="onsite")
    matching = service.match(desk, request)

    names = [s.expert.name for s in matching.suggestions]
    assert names[0] == "田中"
    assert "佐藤" not in names
    (excluded,) = matching.excluded
    assert excluded.expert.name == "佐藤"
    assert "株式会社ベンダーA（技術顧問）" in excluded.reason and "ベンダーA（株）" in excluded.reason
    by_name = {s.expert.name: {c.key: c for c in s.criteria} for s in matching.suggestions}
    # Availability: 高橋 gives his 4 days a month to the other request in the period.
    assert by_name["高橋"]["availability"].score == 0
    assert "空き月0日" in by_name["高橋"]["availability"].reason and "三原市 月4日" in by_name["高橋"]["availability"].reason
    assert by_name["田中"]["availability"].score == 1
    # Skill fit: 鈴木 has none of the skills asked for; 伊藤 has it at the level asked for.
    assert by_name["鈴木"]["skill"].score == 0 and "×ネットワーク設計" in by_name["鈴木"]["skill"].reason
    assert by_name["伊藤"]["skill"].score == 1 and "○ネットワーク設計" in by_name["伊藤"]["skill"].reason
    # Region: on site in 三原市 (共同利用2, 備後圏域); 伊藤 covers only 共同利用1, 鈴木 works remotely only.
    assert by_name["伊藤"]["region"].score < 1 and "地域外" in by_name["伊藤"]["region"].reason
    assert by_name["鈴木"]["region"].score == 0
    assert by_name["田中"]["region"].reason.startswith("県内全域")
    # Load: 高橋 already serves 三原市.
    assert "1団体" in by_name["高橋"]["load"].reason and by_name["田中"]["load"].score == 1
    assert names.index("高橋") > names.index("伊藤") > names.index("鈴木") or names.index("鈴木") > names.index("高橋")
    assert names == [s.expert.name for s in sorted(matching.suggestions, key=lambda s: -s.score)]


def test_an_expert_outside_their_available_period_scores_no_availability(pool, desk, mihara):
    late = add_expert(desk, name="渡辺", **{f"skill_{pool['net']}": "3"}, days_per_month="8",
                      available_from="2027-06-01", regions=["all"])
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    suggestion = next(s for s in service.match(desk, request).suggestions if s.expert.id == late.id)
    availability = next(c for c in suggestion.criteria if c.key == "availability")
    assert availability.score == 0 and "2027-06-01からの対応" in availability.reason


def test_the_affiliated_expert_cannot_be_proposed_and_the_reason_is_given(pool, desk, mihara):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    with pytest.raises(ValidationFailed) as error:
        service.propose(desk, request, {"expert_id": str(pool["experts"]["佐藤"].id), "start": "2027-04-01",
                                        "end": "2027-09-30", "days_per_month": "2", "total_days": "12",
                                        "daily_rate": "50000", "contract_form": "outsourcing"})
    assert "ベンダーA" in error.value.errors["expert_id"]
    db.session.rollback()
    assert db.session.get(ExpertRequest, request.id).status == "open"


def test_the_library_record_counts_only_cases_the_expert_answered_on_the_topic(pool, desk, mihara, app):
    """Cases they answered on similar topics (the library's search engine), among readable ones."""
    tanaka = pool["tanaka_user"]
    question = question_service.ask_question(mihara, {"title": "庁内LANのスイッチ更改", "body": "庁内ネットワークのスイッチ更改の仕様",
                                                      "category": "network", "sharing_consent": "all"})
    db.session.commit()
    request = file(mihara, question=None, **{f"skill_{pool['net']}": "2"})
    # The help desk makes a request from the question; 田中 is assigned and answers in the thread.
    from_question = file(desk, question=question, **{f"skill_{pool['net']}": "2"}, vendors="")
    propose_and_accept(desk, mihara, from_question, pool["experts"]["田中"])
    answer = service.post_expert_answer(tanaka, from_question, {"body": "スイッチ更改の仕様ではポート数と冗長化を確認します。"})
    db.session.commit()
    draft = question_service.resolve_question(mihara, question, answer.id)
    db.session.commit()
    case_service.publish_case(desk, draft, "all")
    db.session.commit()
    apply_pending()
    record = next(c for s in service.match(desk, request).suggestions if s.expert.name == "田中"
                  for c in s.criteria if c.key == "record")
    assert record.score > 0 and [c.id for c in record.cases] == [draft.id]
    assert "1件回答" in record.reason
    # A reader who may not read the case does not get it counted.
    other = db.session.scalar(select(Municipality).where(Municipality.name == "庄原市"))
    draft.visibility = draft.sharing_consent = "private"
    db.session.commit()
    from app.services import accounts
    shobara = accounts.create_user("shobara-staff", "correct-horse-battery", "municipal", other)
    db.session.commit()
    assert service.answered_case_ids(shobara, pool["experts"]["田中"]) == set()
    assert service.answered_case_ids(desk, pool["experts"]["田中"]) == {draft.id}


# --- proposals, acceptance, concurrency -------------------------------------------------------

def test_propose_accept_records_the_assignment_and_its_split(pool, desk, mihara):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    sera = municipality("世羅町")
    assignment = propose_and_accept(desk, mihara, request, pool["experts"]["田中"],
                                    **{f"share_{request.municipality_id}": "60", f"share_{sera.id}": "40"},
                                    contract_form="special_part_time", cio_assistant="y")
    assert db.session.get(ExpertRequest, request.id).status == "assigned"
    assert [(s.municipality.name, s.percent) for s in assignment.shares] == [("三原市", 60), ("世羅町", 40)]
    assert assignment.total_cost == 600_000 and assignment.allocation_eligible
    assert service.share_amounts(1001, assignment.shares) == [(request.municipality_id, 601), (sera.id, 400)]


def test_the_split_must_add_up_to_100_and_include_the_requester(pool, desk, mihara):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    sera = municipality("世羅町")
    base = {"expert_id": str(pool["experts"]["田中"].id), "start": "2027-04-01", "end": "2027-09-30",
            "days_per_month": "2", "total_days": "12", "daily_rate": "50000", "contract_form": "outsourcing"}
    with pytest.raises(ValidationFailed) as error:
        service.propose(desk, request, {**base, f"share_{request.municipality_id}": "50", f"share_{sera.id}": "40"})
    assert "合計を100%" in error.value.errors["split"]
    db.session.rollback()
    with pytest.raises(ValidationFailed) as error:
        service.propose(desk, request, {**base, f"share_{sera.id}": "100"})
    assert "三原市の負担割合" in error.value.errors["split"]


@pytest.mark.parametrize("extra", [{"share_²": "50"}, {"share_99999999999999999999": "50"}, {"share_1": "²"},
                                   {"share_1": "101"}])
def test_a_split_with_odd_numbers_is_a_japanese_form_error(pool, desk, mihara, client, login, extra):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    base = {"expert_id": str(pool["experts"]["田中"].id), "start": "2027-04-01", "end": "2027-09-30",
            "days_per_month": "2", "total_days": "12", "daily_rate": "50000", "contract_form": "outsourcing",
            f"share_{request.municipality_id}": "50"}
    login(desk)
    response = client.post(f"/experts/requests/{request.id}/propose", data={**base, **extra})
    assert response.status_code in (409, 422)
    text = response.get_data(as_text=True)
    assert "負担割合は0〜100の整数" in text or "負担割合の合計を100%" in text or "負担する団体を選び直して" in text
    from app.models import ExpertProposal
    assert db.session.scalar(select(func.count()).select_from(ExpertProposal)) == 0


def test_only_one_proposal_waits_and_a_second_answer_is_a_conflict(pool, desk, mihara, client, login):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    data = {"expert_id": str(pool["experts"]["田中"].id), "start": "2027-04-01", "end": "2027-09-30",
            "days_per_month": "2", "total_days": "12", "daily_rate": "50000", "contract_form": "outsourcing"}
    proposal = service.propose(desk, request, data)
    db.session.commit()
    with pytest.raises(Conflict):
        service.propose(desk, request, {**data, "expert_id": str(pool["experts"]["高橋"].id)})
    db.session.rollback()
    login(mihara)
    assert client.post(f"/experts/proposals/{proposal.id}/accept").status_code == 302
    response = client.post(f"/experts/proposals/{proposal.id}/accept", follow_redirects=True)
    assert response.status_code == 200 and "すでに回答があるか" in response.get_data(as_text=True)
    assert len(db.session.scalars(select(ExpertAssignment)).all()) == 1


def test_a_stale_accept_after_a_withdrawal_writes_nothing(pool, desk, mihara):
    """The read-decide-write is a conditional update: an accept decided from a stale 'pending'
    loses against the withdrawal that committed first."""
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    proposal = service.propose(desk, request, {"expert_id": str(pool["experts"]["田中"].id), "start": "2027-04-01",
                                               "end": "2027-09-30", "days_per_month": "2", "total_days": "12",
                                               "daily_rate": "50000", "contract_form": "outsourcing"})
    db.session.commit()
    from sqlalchemy import update
    from app.models import ExpertProposal
    db.session.execute(update(ExpertProposal).where(ExpertProposal.id == proposal.id).values(status="withdrawn"))
    db.session.commit()
    from sqlalchemy.orm.attributes import set_committed_value
    set_committed_value(proposal, "status", "pending")  # what a slower request read before the withdrawal
    with pytest.raises(Conflict):
        service.accept_proposal(mihara, proposal)
    db.session.rollback()
    assert db.session.scalars(select(ExpertAssignment)).all() == []


def test_declining_reopens_the_request_for_another_proposal(pool, desk, mihara):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    proposal = service.propose(desk, request, {"expert_id": str(pool["experts"]["田中"].id), "start": "2027-04-01",
                                               "end": "2027-09-30", "days_per_month": "2", "total_days": "12",
                                               "daily_rate": "50000", "contract_form": "outsourcing"})
    db.session.commit()
    service.decline_proposal(mihara, proposal, {"reason": "日程が合わない"})
    db.session.commit()
    assert db.session.get(ExpertRequest, request.id).status == "open"
    assert policy.can_propose(desk, db.session.get(ExpertRequest, request.id))


# --- who sees what: role x relation ---------------------------------------------------------

ACTORS = ("requester_staff", "requester_viewer", "sharer_staff", "other_staff", "helpdesk", "admin",
          "assigned_expert", "other_expert", "proposed_expert")


@pytest.fixture
def world(pool, desk, mihara, make_user, make_question):
    question = make_question(mihara, title="基幹系システムの更改", body="更改の仕様書を見てほしい")
    question_service.post_note(desk, question, {"body": "内部メモの本文"})
    db.session.commit()
    other_question = make_question(mihara, title="別の相談")
    request = file(desk, question=question, **{f"skill_{pool['net']}": "2"}, vendors="")
    sera = municipality("世羅町")
    propose_and_accept(desk, mihara, request, pool["experts"]["田中"],
                       **{f"share_{request.municipality_id}": "70", f"share_{sera.id}": "30"})
    waiting = file(mihara, title="提案中の依頼", **{f"skill_{pool['net']}": "2"}, vendors="")
    proposed_user = make_user(Role.EXPERT, username="takahashi")
    pool["experts"]["高橋"].user = proposed_user
    db.session.commit()
    service.propose(desk, waiting, {"expert_id": str(pool["experts"]["高橋"].id), "start": "2027-04-01",
                                    "end": "2027-09-30", "days_per_month": "2", "total_days": "12",
                                    "daily_rate": "50000", "contract_form": "outsourcing"})
    db.session.commit()
    users = {
        "requester_staff": mihara, "requester_viewer": make_user(Role.VIEWER, "三原市"),
        "sharer_staff": make_user(Role.MUNICIPAL, "世羅町"), "other_staff": make_user(Role.MUNICIPAL, "庄原市"),
        "helpdesk": desk, "admin": make_user(Role.ADMIN), "assigned_expert": pool["tanaka_user"],
        "other_expert": make_user(Role.EXPERT), "proposed_expert": proposed_user,
    }
    return {"users": users, "request": request, "waiting": waiting, "question": question, "other": other_question}


EXPECTED = {
    #                    request, waiting, thread, other thread, notes, answer into thread, post message, accept
    "requester_staff": (True, True, True, True, False, False, True),
    "requester_viewer": (True, True, True, True, False, False, False),
    "sharer_staff": (True, False, False, False, False, False, False),
    "other_staff": (False, False, False, False, False, False, False),
    "helpdesk": (True, True, True, True, True, False, True),
    "admin": (True, True, True, True, True, False, False),
    "assigned_expert": (True, False, True, False, False, True, True),
    "other_expert": (False, False, False, False, False, False, False),
    "proposed_expert": (False, False, False, False, False, False, False),
}


@pytest.mark.parametrize("actor", ACTORS)
def test_each_role_and_relation_sees_what_the_rules_say(world, actor, client, login, token_for):
    user = world["users"][actor]
    request, waiting, question = world["request"], world["waiting"], world["question"]
    want = dict(zip(("request", "waiting", "thread", "other_thread", "notes", "answer", "message"), EXPECTED[actor]))
    got = {
        "request": policy.can_view_request(user, request),
        "waiting": policy.can_view_request(user, waiting),
        "thread": policy.can_view_question(user, question),
        "other_thread": policy.can_view_question(user, world["other"]),
        "notes": policy.can_view_question(user, question) and policy.can_read_internal_notes(user),
        "answer": policy.can_expert_answer(user, question),
        "message": policy.can_post_request_message(user, request),
    }
    assert got == want
    listed = set(db.session.scalars(select(ExpertRequest.id).where(policy.visible_requests_clause(user))))
    assert listed == {r.id for r, ok in ((request, want["request"]), (waiting, want["waiting"])) if ok}
    threads = set(db.session.scalars(select(Question.id).where(policy.visible_questions_clause(user))))
    assert (question.id in threads, world["other"].id in threads) == (want["thread"], want["other_thread"])
    # Pages and API: invisible is "not found", never an error page of another kind.
    login(user)
    assert client.get(f"/experts/requests/{request.id}").status_code == (200 if want["request"] else 404)
    assert client.get(f"/experts/requests/{waiting.id}").status_code == (200 if want["waiting"] else 404)
    page = client.get(f"/questions/{question.id}")
    assert page.status_code == (200 if want["thread"] else 404)
    if want["thread"]:
        assert ("内部メモの本文" in page.get_data(as_text=True)) == want["notes"]
    api = client.get(f"/api/v1/questions/{question.id}", headers=token_for(user))
    assert api.status_code == (200 if want["thread"] else 404)
    if want["thread"]:
        assert ("内部メモの本文" in api.get_data(as_text=True)) == want["notes"]
    listing = client.get("/experts/requests").get_data(as_text=True)
    assert ("提案中の依頼" in listing) == want["waiting"]
    # The expert role reads no case of the library.
    if actor.endswith("expert"):
        assert policy.case_scope(user).nothing


def test_the_expert_loses_the_thread_when_the_request_ends(world, client, login):
    desk = world["users"]["helpdesk"]
    expert = world["users"]["assigned_expert"]
    service.close_request(desk, world["request"])
    db.session.commit()
    assert not policy.can_view_question(expert, world["question"])
    login(expert)
    assert client.get(f"/experts/requests/{world['request'].id}").status_code == 404
    assert client.get(f"/questions/{world['question'].id}").status_code == 404


def test_the_expert_answers_into_the_thread_and_the_municipality_resolves_with_it(world, client, login):
    expert = world["users"]["assigned_expert"]
    login(expert)
    response = client.post(f"/experts/requests/{world['request'].id}/answer", data={"body": ""})
    assert response.status_code == 422 and "回答を入力してください" in response.get_data(as_text=True)
    response = client.post(f"/experts/requests/{world['request'].id}/answer", data={"body": "仕様書の第3章を確認します。"})
    assert response.status_code == 302
    question = db.session.get(Question, world["question"].id)
    (answer,) = [a for a in question.answers if a.author_id == expert.id]
    page = client.get(f"/questions/{question.id}").get_data(as_text=True)
    assert "仕様書の第3章を確認します。" in page and "専門人材" in page
    case = question_service.resolve_question(world["users"]["requester_staff"], question, answer.id)
    db.session.commit()
    assert case.state == "draft" and "第3章" in case.resolution
    # Other experts and other municipalities cannot post answers through the expert route.
    login(world["users"]["other_expert"])
    assert client.post(f"/experts/requests/{world['request'].id}/answer", data={"body": "x"}).status_code == 404


def test_only_the_requesting_municipality_accepts(world, client, login):
    waiting = db.session.get(ExpertRequest, world["waiting"].id)
    proposal = waiting.pending_proposal
    for actor in ("sharer_staff", "requester_viewer", "helpdesk"):
        with pytest.raises(Forbidden):
            service.accept_proposal(world["users"][actor], proposal)
        db.session.rollback()
    login(world["users"]["other_staff"])
    assert client.post(f"/experts/proposals/{proposal.id}/accept").status_code == 404


# --- pages ------------------------------------------------------------------------------------

def test_the_request_form_keeps_what_was_typed_and_says_what_is_wrong_in_japanese(vocabulary, mihara, client, login):
    login(mihara)
    assert client.get("/experts/requests/new").status_code == 200
    response = client.post("/experts/requests/new", data={"title": "セキュリティ監査をお願いしたい",
                                                          "body": "内容の説明", "period_start": "2027/04/01",
                                                          "period_end": "2027-03-01", "days_per_month": "２",
                                                          "budget": "abc"})
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "終了日は開始日より後にしてください" in text and "予算は半角または全角の数字" in text
    assert "必要なスキルを1つ以上選んでください" in text
    assert "セキュリティ監査をお願いしたい" in text and "内容の説明" in text
    assert db.session.scalars(select(ExpertRequest)).all() == []


def test_the_help_desk_pages_render(pool, desk, mihara, client, login):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    login(desk)
    for path in ("/experts", "/experts/new", f"/experts/{pool['experts']['田中'].id}",
                 f"/experts/{pool['experts']['田中'].id}/edit", "/experts/skills", "/experts/requests",
                 f"/experts/requests/{request.id}", f"/experts/requests/{request.id}/match",
                 f"/experts/requests/{request.id}/propose?expert={pool['experts']['田中'].id}", "/experts/reports",
                 "/procurement"):
        response = client.get(path)
        assert response.status_code == 200, path
    match = client.get(f"/experts/requests/{request.id}/match").get_data(as_text=True)
    assert "候補から外した人材" in match and "株式会社ベンダーA" in match and "田中" in match
    response = client.post(f"/experts/requests/{request.id}/propose",
                           data={"expert_id": str(pool["experts"]["田中"].id), "start": "2027-04-01", "end": "2027-09-30",
                                 "days_per_month": "2", "total_days": "", "daily_rate": "50000",
                                 "contract_form": "outsourcing", f"share_{request.municipality_id}": "100"})
    assert response.status_code == 422 and "延べ日数を入力してください" in response.get_data(as_text=True)


def test_municipal_staff_cannot_open_the_registry_or_the_suggestions(pool, mihara, client, login):
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    login(mihara)
    assert client.get("/experts").status_code == 302
    assert client.get(f"/experts/{pool['experts']['田中'].id}").status_code == 403
    assert client.get(f"/experts/requests/{request.id}/match").status_code == 403
    assert client.get("/experts/reports").status_code == 403
    assert client.get("/experts/reports/costs.csv").status_code == 403


def test_saving_an_expert_checks_the_account_and_the_vocabulary(desk, vocabulary, make_user):
    with pytest.raises(ValidationFailed) as error:
        service.save_expert(desk, None, {"name": "", "days_per_month": "40", "username": "nobody",
                                         "skill_999": "2"})
    assert set(error.value.errors) >= {"name", "days_per_month", "username", "skills"}
    db.session.rollback()
    with pytest.raises(ValidationFailed):
        service.add_skill(desk, "ネットワーク設計")


# --- reports ----------------------------------------------------------------------------------

def test_costs_per_municipality_split_prorated_with_the_special_allocation_at_half(pool, desk, mihara, client, login):
    sera = municipality("世羅町")
    first = file(mihara, **{f"skill_{pool['net']}": "2"}, vendors="")
    # Whole period in fiscal 2027, CIO補佐官 by 業務委託: eligible. 12 days x 50,000 = 600,000; 60/40.
    propose_and_accept(desk, mihara, first, pool["experts"]["田中"], cio_assistant="y",
                       **{f"share_{first.municipality_id}": "60", f"share_{sera.id}": "40"})
    second = file(mihara, title="別件", **{f"skill_{pool['net']}": "2"}, vendors="")
    # 兼業 is not covered by the measure, even as a CIO assistant; half of its days fall in 2027.
    propose_and_accept(desk, mihara, second, pool["experts"]["伊藤"], contract_form="side_job", cio_assistant="y",
                       start="2027-10-01", end="2028-09-30", total_days="20", daily_rate="30000")
    report = service.year_report(desk, 2027)
    rows = {c.municipality.name: c for c in report.costs}
    inside = (date(2028, 3, 31) - date(2027, 10, 1)).days + 1
    whole = (date(2028, 9, 30) - date(2027, 10, 1)).days + 1
    second_cost = 600_000 * inside // whole
    assert rows["三原市"].cost == 360_000 + second_cost and rows["三原市"].eligible == 360_000
    assert rows["三原市"].allocation == 180_000 and rows["三原市"].net == rows["三原市"].cost - 180_000
    assert (rows["世羅町"].cost, rows["世羅町"].eligible, rows["世羅町"].allocation) == (240_000, 240_000, 120_000)
    uses = {u.expert.name: u for u in report.uses}
    assert uses["田中"].cost == 600_000 and uses["田中"].municipalities == {"三原市": 360_000, "世羅町": 240_000}

    login(desk)
    response = client.get("/experts/reports/costs.csv?year=2027")
    assert response.status_code == 200 and response.data.startswith("\ufeff".encode("utf-8"))
    table = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    sera_row = next(r for r in table if r["市町"] == "世羅町")
    assert sera_row["特別交付税の見込み（措置率0.5）"] == "120000" and sera_row["団体コード"] == "344621"
    assert client.get("/experts/reports/usage.csv?year=2027").status_code == 200
    assert client.get("/experts/reports?year=abc").status_code == 400


def test_an_expert_account_gets_around_without_errors(world, client, login):
    login(world["users"]["assigned_expert"])
    for path in ("/", "/experts", "/experts/requests", "/search", "/notifications"):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
    assert "担当する依頼" in client.get("/experts/requests").get_data(as_text=True)
    assert client.get("/experts/requests/new").status_code == 403
    assert client.get("/procurement").status_code == 200


def test_each_step_of_a_request_notifies_those_it_concerns_and_nobody_else(pool, desk, mihara, make_user):
    from app.services import notifications

    def titles(user):
        return [rendered.subject for _n, rendered in notifications.visible_notifications(user)]

    colleague = make_user(Role.MUNICIPAL, "三原市")
    outsider = make_user(Role.MUNICIPAL, "呉市")
    request = file(mihara, **{f"skill_{pool['net']}": "2"})
    assert titles(desk) == ["新しい派遣依頼: 庁内ネットワークの更改"]
    propose_and_accept(desk, mihara, request, pool["experts"]["田中"])
    assert titles(colleague) == ["専門人材の提案: 庁内ネットワークの更改"]
    assert titles(desk)[0] == "提案が受け入れられました: 庁内ネットワークの更改"
    assert titles(pool["tanaka_user"]) == ["派遣が決まりました: 庁内ネットワークの更改"]
    assert titles(outsider) == []
    # a notification is shown (and mailed) only while its reader may see the request
    service.close_request(desk, db.session.get(ExpertRequest, request.id))
    db.session.commit()
    assert titles(pool["tanaka_user"]) == []   # the expert no longer sees the ended request
