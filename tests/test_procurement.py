"""Procurement knowledge: structured fields on a case, the comparison of amount per user per year
over only the cases the reader may read, the buyer hidden for anonymous cases, and the
sensitive-data check over the fields."""
from __future__ import annotations

import statistics

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, Category, ProcurementDetails, Role
from app.services import municipalities as municipality_service
from app.services import procurement as service
from app.services.errors import Forbidden, SensitiveDataFound, ValidationFailed
from tests.conftest import municipality

FIELDS = {"system_category": "groupware", "system_name": "グループウェア（クラウド）", "vendor": "ベンダーX",
          "contract_form": "subscription", "period_months": "60", "amount": "11,000,000", "tax_included": "included",
          "count": "500", "count_unit": "users", "spec_items": "メール\nスケジュール\n掲示板"}


def make_case(owner: str, title: str, state="published", visibility="all", anonymous=False) -> Case:
    category = db.session.scalar(select(Category).where(Category.slug == "optimization")) or \
        db.session.scalar(select(Category))
    case = Case(title=title, issue="調達の相談", resolution="比較した", category=category,
                municipality=municipality(owner), state=state, visibility=visibility, sharing_consent=visibility,
                anonymous=anonymous)
    db.session.add(case)
    db.session.commit()
    return case


@pytest.fixture
def desk(make_user):
    return make_user(Role.HELPDESK)


def save(desk, case, **fields):
    details = service.save_details(desk, case, {**FIELDS, **fields})
    db.session.commit()
    return details


@pytest.fixture
def library(desk):
    """三原市 owns five procurement cases; 竹原市 is its neighbour; 庄原市 is unrelated."""
    municipality_service.link(municipality("三原市"), municipality("竹原市"))
    db.session.commit()
    cases = {
        "all": make_case("三原市", "全市町に共有"),
        "neighbours": make_case("三原市", "近隣に共有", visibility="neighbours"),
        "private": make_case("三原市", "自団体だけ", visibility="private"),
        "draft": make_case("三原市", "下書き", state="draft", visibility="private"),
        "anonymous": make_case("三原市", "匿名で共有", anonymous=True),
        "archived": make_case("三原市", "アーカイブ"),
    }
    amounts = {"all": "11,000,000", "neighbours": "5,500,000", "private": "22,000,000", "draft": "1,100,000",
               "anonymous": "6,600,000", "archived": "1"}
    for key, case in cases.items():
        save(desk, case, amount=amounts[key], system_name=f"グループウェア {key}")
    cases["archived"].state = "archived"
    db.session.commit()
    return cases


EXPECTED = {
    "same": {"all", "neighbours", "private", "draft", "anonymous"},
    "neighbour": {"all", "neighbours", "anonymous"},
    "other": {"all", "anonymous"},
}


@pytest.mark.parametrize("rel,owner", [("same", "三原市"), ("neighbour", "竹原市"), ("other", "庄原市")])
@pytest.mark.parametrize("role", [Role.MUNICIPAL, Role.VIEWER])
def test_the_comparison_covers_only_what_the_reader_may_read(library, make_user, rel, owner, role, client, login):
    reader = make_user(role, owner)
    table = service.comparison(reader)
    titles = {r.case.id for r in table.rows}
    assert titles == {library[k].id for k in EXPECTED[rel]}
    # Counts per kind of system and the statistics come from those rows only.
    assert dict((v, n) for v, _l, n in table.categories)["groupware"] == len(EXPECTED[rel])
    assert table.median == round(statistics.median(table.values))
    anonymous = next(r for r in table.rows if r.case.id == library["anonymous"].id)
    assert anonymous.buyer == ("三原市" if rel == "same" else "市町名非公開")
    login(reader)
    page = client.get("/procurement").get_data(as_text=True)
    assert ("自団体だけ" in page) == (rel == "same")
    assert "アーカイブ" not in page.replace("アーカイブ）", "")
    for key, case in library.items():
        status = client.get(f"/procurement/cases/{case.id}").status_code
        assert status == (200 if key in EXPECTED[rel] else 404), key


def test_the_help_desk_compares_everything_but_archived_cases(library, desk):
    table = service.comparison(desk)
    assert {r.case.id for r in table.rows} == {c.id for k, c in library.items() if k != "archived"}
    assert all(r.buyer == "三原市" for r in table.rows)


def test_amount_per_user_per_year_excludes_tax_and_spreads_the_period(library, desk):
    details = service.details_of(library["all"])
    # 11,000,000 tax included = 10,000,000 excluding tax, over 5 years and 500 users: 4,000 yen.
    assert details.amount_excluding_tax == 10_000_000 and details.per_unit_per_year == 4000
    other = make_case("呉市", "端末のリース")
    devices = save(desk, other, system_category="pc", amount="3,000,000", tax_included="excluded", count="100",
                   count_unit="devices", period_months="48")
    assert devices.per_unit_per_year == 7500
    table = service.comparison(desk, system_category="pc")
    assert [r.case.id for r in table.rows] == [other.id]
    assert [r.case.id for r in service.comparison(desk, system="anonymous").rows] == [library["anonymous"].id]


def test_filtering_by_system_never_matches_on_what_the_reader_may_not_see(library, make_user):
    reader = make_user(Role.MUNICIPAL, "庄原市")
    assert service.comparison(reader, system="private").rows == []
    assert [r.case.id for r in service.comparison(reader, system="グループウェア all").rows] == [library["all"].id]


def test_the_sensitive_check_covers_the_fields(desk):
    case = make_case("呉市", "仕様の比較", state="draft", visibility="private")
    with pytest.raises(SensitiveDataFound) as found:
        service.save_details(desk, case, {**FIELDS, "spec_items": "管理画面 192.168.10.5 に接続\n担当 kure@example.lg.jp"})
    kinds = {f["kind"] for f in found.value.findings}
    assert {"ipv4", "email"} <= kinds and {f["field"] for f in found.value.findings} == {"spec_items"}
    db.session.rollback()
    assert db.session.get(ProcurementDetails, case.id) is None
    masked = save(desk, case, spec_items="管理画面 192.168.10.5 に接続", mask_all="1")
    assert "192.168" not in masked.spec_items and "[IPアドレス]" in masked.spec_items
    kept = save(desk, case, spec_items="保守窓口 082-000-1234", keep_reason="事業者の代表番号で公開情報")
    assert "082-000-1234" in kept.spec_items and "事業者の代表番号" in kept.kept


def test_a_case_shared_with_other_municipalities_takes_no_unmasked_detail(desk):
    case = make_case("呉市", "共有中の事例")
    with pytest.raises(SensitiveDataFound) as found:
        service.save_details(desk, case, {**FIELDS, "vendor": "ベンダーX 10.1.2.3", "keep_reason": "必要"})
    assert "伏せてから保存" in found.value.message
    db.session.rollback()
    assert service.details_of(case) is None


def test_an_anonymous_case_hides_the_buyer_in_its_fields_too(desk, make_user):
    case = make_case("三原市", "匿名の調達", anonymous=True)
    with pytest.raises(SensitiveDataFound) as found:
        service.save_details(desk, case, {**FIELDS, "system_name": "三原市グループウェア"})
    assert {f["kind"] for f in found.value.findings} == {"owner"}
    db.session.rollback()
    # Saved while the case was not anonymous, then made anonymous: other readers still see no name.
    named = make_case("三原市", "後から匿名")
    save(desk, named, system_name="三原市グループウェア")
    named.anonymous = True
    db.session.commit()
    reader = make_user(Role.MUNICIPAL, "庄原市")
    (row,) = [r for r in service.comparison(reader).rows if r.case.id == named.id]
    assert "三原市" not in row.text["system_name"] and row.buyer == "市町名非公開"
    owner = make_user(Role.MUNICIPAL, "三原市")
    (own,) = [r for r in service.comparison(owner).rows if r.case.id == named.id]
    assert own.text["system_name"] == "三原市グループウェア" and own.buyer == "三原市"


def test_only_the_help_desk_edits_and_the_form_keeps_what_was_typed(desk, make_user, client, login):
    case = make_case("呉市", "編集の確認")
    staff = make_user(Role.MUNICIPAL, "呉市")
    with pytest.raises(Forbidden):
        service.save_details(staff, case, FIELDS)
    db.session.rollback()
    login(staff)
    assert client.post(f"/procurement/cases/{case.id}", data=FIELDS).status_code == 403
    login(desk)
    response = client.post(f"/procurement/cases/{case.id}", data={**FIELDS, "amount": "たくさん", "count": ""})
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "金額は半角または全角の数字で入力してください" in text and "利用者数・台数を入力してください" in text
    assert "グループウェア（クラウド）" in text and "たくさん" in text
    response = client.post(f"/procurement/cases/{case.id}", data={**FIELDS, "spec_items": "sv01.kure.local を利用"})
    assert response.status_code == 409 and "すべて伏せて保存" in response.get_data(as_text=True)
    assert "sv01.kure.local を利用" in response.get_data(as_text=True)
    response = client.post(f"/procurement/cases/{case.id}", data={**FIELDS, "spec_items": "sv01.kure.local を利用",
                                                                  "mask_all": "1"})
    assert response.status_code == 302
    assert "[ホスト名]" in service.details_of(case).spec_items
    with pytest.raises(ValidationFailed):
        service.save_details(desk, case, {**FIELDS, "period_months": "0"})
