"""Shipped reference data: the 23 municipalities with valid codes, the document's groups."""
from pathlib import Path

from sqlalchemy import func, select

from app.content import load_reference
from app.extensions import db
from app.models import Category, Municipality, MunicipalityGroup
from app.services.municipalities import check_digit, is_valid_code


def test_check_digit_matches_known_codes():
    assert check_digit("34100") == 2  # 広島市 341002
    assert check_digit("34207") == 6  # 福山市 342076
    assert is_valid_code("345458")
    assert not is_valid_code("345459")
    assert not is_valid_code("34545")


def test_twenty_three_member_municipalities_with_valid_codes(app):
    members = db.session.scalars(select(Municipality).where(Municipality.is_observer.is_(False))).all()
    assert len(members) == 23
    assert sum(m.kind == "市" for m in members) == 14
    assert sum(m.kind == "町" for m in members) == 9
    assert all(is_valid_code(m.code) for m in members)
    assert {m.prefecture for m in members} == {"広島県"}


def test_observers_are_other_prefecture_members_of_the_bingo_region(app):
    observers = db.session.scalars(select(Municipality).where(Municipality.is_observer.is_(True))).all()
    assert {m.name for m in observers} == {"笠岡市", "井原市"}
    assert all(is_valid_code(m.code) and m.prefecture == "岡山県" for m in observers)


def group_names(name):
    group = db.session.scalar(select(MunicipalityGroup).where(MunicipalityGroup.name == name))
    return {m.name for m in group.members}


def test_groups_match_the_planning_document(app):
    assert group_names("共同利用1") == {"廿日市市", "大竹市", "江田島市", "熊野町", "安芸太田町", "北広島町"}
    assert group_names("共同利用2") == {"三原市", "世羅町"}
    assert group_names("共同利用3") == {"三次市", "安芸高田市"}
    assert group_names("共同利用4") == {"神石高原町"}
    assert group_names("備後圏域") == {"三原市", "尾道市", "福山市", "府中市", "世羅町", "神石高原町", "笠岡市", "井原市"}


def test_categories_have_slugs_and_japanese_names(app):
    categories = {c.slug: c.name for c in db.session.scalars(select(Category))}
    assert categories == {"network": "ネットワーク", "security": "情報セキュリティ", "optimization": "システム最適化", "other": "その他"}


def test_loading_twice_changes_nothing(app):
    before = db.session.scalar(select(func.count()).select_from(Municipality))
    report = load_reference(Path(app.config["CONTENT_DIR"]))
    db.session.commit()
    assert report.created == {} and report.updated == {}
    assert db.session.scalar(select(func.count()).select_from(Municipality)) == before


def test_demo_content_walks_every_state_and_loads_once(app):
    from app.content import load_demo
    from app.models import Case, Question

    directory = Path(app.config["CONTENT_DIR"])
    load_demo(directory)
    db.session.commit()
    statuses = {status: count for status, count in db.session.execute(
        select(Question.status, func.count()).group_by(Question.status))}
    assert statuses == {"new": 3, "in_progress": 3, "waiting": 1, "resolved": 5}
    from_threads = {state: count for state, count in db.session.execute(
        select(Case.state, func.count()).where(Case.question_id.is_not(None)).group_by(Case.state))}
    assert from_threads == {"draft": 2, "published": 3}
    library = db.session.scalar(select(func.count()).select_from(Case).where(Case.question_id.is_(None)))
    assert library == 176
    assert any("<script>alert(1)</script>" in q.body for q in db.session.scalars(select(Question)))
    report = load_demo(directory)
    db.session.commit()
    assert report.created == {}
    assert db.session.scalar(select(func.count()).select_from(Question)) == 12
