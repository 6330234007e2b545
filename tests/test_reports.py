"""Reports: the prefecture's dashboard, a municipality's own report and the spreadsheets behind them.
Counts are checked against the data written here; every count over cases stays inside the reader's
scope, and the CSV files open in Excel (UTF-8 with a BOM) with formula cells neutralised."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app import policy
from app.extensions import db
from app.models import CaseHelpful, CaseView, utcnow
from app.services import cases as case_service
from app.services import questions as question_service
from app.services import reports


@pytest.fixture
def world(make_user):
    people = {
        "kure": make_user("municipal", "呉市", username="kure"),
        "fukuyama": make_user("municipal", "福山市", username="fukuyama"),
        "miyoshi": make_user("municipal", "三次市", username="miyoshi"),
        "desk": make_user("helpdesk", None, username="desk"),
    }
    return people


def resolved_case(people, asker, title, consent="all"):
    question = question_service.ask_question(people[asker], {"title": title, "body": f"{title}の詳細です。",
                                                             "category": "network", "sharing_consent": consent})
    answer = question_service.post_answer(people["desk"], question, {"body": "設定を見直してください。"})
    case = question_service.resolve_question(people["desk"], question, answer.id)
    db.session.commit()
    return question, case


def read_csv(response) -> list[dict]:
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_dashboard_counts_questions_per_month_and_times(world, login, client):
    resolved_case(world, "kure", "VPN が切れる")
    resolved_case(world, "fukuyama", "プリンタが遅い")
    question_service.ask_question(world["kure"], {"title": "未回答の相談", "body": "本文", "category": "security"})
    db.session.commit()
    data = reports.dashboard(world["desk"], reports.Period.last_months(12))
    month = utcnow().astimezone(reports.JST).strftime("%Y-%m")
    assert sum(data.by_month["municipality"][month].values()) == 3
    assert data.by_month["municipality"][month]["呉市"] == 2
    assert sum(sum(c.values()) for c in data.backlog.values()) == 1   # the unanswered one
    assert data.median_first_response[month] is not None
    login(world["desk"])
    page = client.get("/reports").get_data(as_text=True)
    assert "<svg" in page and "呉市" in page and "未完了の相談" in page


def test_most_read_cases_never_include_a_case_the_reader_may_not_see(world):
    _q, shared = resolved_case(world, "kure", "共有する事例", consent="all")
    _q, private = resolved_case(world, "kure", "呉市だけの事例", consent="private")
    case_service.publish_case(world["desk"], shared, "all")
    case_service.publish_case(world["desk"], private, "private")
    db.session.commit()
    today = date.today()
    for day in range(5):   # the private case is read far more often (by the help desk)
        db.session.add(CaseView(case_id=private.id, user_id=world["desk"].id, day=today - timedelta(days=day)))
    db.session.add(CaseView(case_id=shared.id, user_id=world["fukuyama"].id, day=today))
    db.session.commit()
    period = reports.Period.last_months(2)
    desk_top = [(c.id, n) for c, n in reports.dashboard(world["desk"], period).most_viewed]
    assert desk_top == [(private.id, 5), (shared.id, 1)]
    # the same ranking for another municipality: the private case is neither listed nor in the way
    views = select(CaseView.case_id, func.count())
    assert [(c.id, n) for c, n in reports._top_cases(views, policy.visible_cases_clause(world["miyoshi"]), 1)] \
        == [(shared.id, 1)]
    assert [r["番号"] for r in reports.case_rows(world["miyoshi"], period)] == [shared.id]


def test_municipal_report_shows_own_questions_and_use_by_others(world, login, client):
    _q, case = resolved_case(world, "kure", "ファイアウォールの更新", consent="all")
    case_service.publish_case(world["desk"], case, "all")
    db.session.add(CaseHelpful(case_id=case.id, user_id=world["fukuyama"].id))
    db.session.add(CaseView(case_id=case.id, user_id=world["fukuyama"].id, day=date.today()))
    resolved_case(world, "fukuyama", "福山市の相談")
    db.session.commit()
    data = reports.municipal_report(world["kure"], reports.Period.last_months(12))
    assert sum(sum(c.values()) for c in data.questions_by_month.values()) == 1
    assert data.cases_published == 1 and data.cases_shared == 1
    assert [(c.id, n) for c, n in data.helpful_from_others] == [(case.id, 1)]
    assert data.views_from_others == 1
    login(world["kure"])
    page = client.get("/reports").get_data(as_text=True)
    assert "呉市の相談件数" in page and "福山市の相談" not in page


def test_municipal_staff_cannot_open_the_yearly_summary(world, login, client):
    login(world["kure"])
    assert client.get("/reports/yearly.csv?year=2026").status_code == 403


def test_questions_csv_for_municipal_staff_holds_only_their_own_questions(world, login, client):
    resolved_case(world, "kure", "=HYPERLINK(\"http://evil\")")
    resolved_case(world, "fukuyama", "福山市の相談")
    login(world["kure"])
    response = client.get("/reports/questions.csv")
    assert response.mimetype == "text/csv"
    rows = read_csv(response)
    assert len(rows) == 1 and rows[0]["市町"] == "呉市"
    assert rows[0]["件名"].startswith("'=")   # Excel does not run it
    assert rows[0]["担当"] == ""               # the help desk's internal assignment stays inside


def test_cases_csv_hides_the_owner_of_anonymous_cases(world, login, client):
    _q, case = resolved_case(world, "kure", "匿名の事例", consent="all")
    case_service.publish_case(world["desk"], case, "all", anonymous=True)
    db.session.commit()
    login(world["fukuyama"])
    rows = read_csv(client.get("/reports/cases.csv"))
    assert [(r["番号"], r["市町"]) for r in rows] == [(str(case.id), "市町名非公開")]
    login(world["desk"])
    rows = read_csv(client.get("/reports/cases.csv"))
    assert rows[0]["市町"] == "呉市"


def test_yearly_summary_has_a_row_per_municipality_and_a_total(world, login, client):
    resolved_case(world, "kure", "一件目")
    resolved_case(world, "kure", "二件目")
    login(world["desk"])
    today = utcnow().astimezone(reports.JST).date()
    rows = read_csv(client.get(f"/reports/yearly.csv?year={reports.fiscal_year_of(today)}"))
    by_name = {r["市町"]: r for r in rows}
    assert by_name["呉市"]["相談件数"] == "2" and by_name["呉市"]["解決"] == "2"
    assert by_name["合計"]["相談件数"] == "2"
    assert "広島市" in by_name and by_name["広島市"]["相談件数"] == "0"
    assert rows[-1]["市町"] == "合計"


@pytest.mark.parametrize("query", ["from=2026-13-01", "from=2026-05-01&to=2026-01-01", "from=1900-01-01",
                                   "from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-01-01", "to=x" * 3])
def test_a_bad_period_is_a_clear_message_not_an_error(world, login, client, query):
    login(world["desk"])
    page = client.get(f"/reports?{query}")
    assert page.status_code == 200 and "期間" in page.get_data(as_text=True)
    assert client.get(f"/reports/questions.csv?{query}").status_code == 400


@pytest.mark.parametrize("year", ["1999", "２０２６", "20260", "", "-1", "2026.0"])
def test_yearly_summary_rejects_a_bad_year(world, login, client, year):
    login(world["desk"])
    assert client.get(f"/reports/yearly.csv?year={year}").status_code == 400


def test_reports_need_a_login(client):
    for path in ("/reports", "/reports/questions.csv", "/reports/cases.csv", "/reports/yearly.csv?year=2026"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
