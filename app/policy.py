"""The one answer to "may this user do X to Y?" and "which objects may they see?".

Views, the API and (later) search ask this module and nothing else. Every rule about who sees a
question thread or a case lives here, both as a predicate on one object (``can_view_case``) and as
a SQL filter for listings (``visible_cases_clause``), and the two must always agree; the test
suite checks them against each other.

Current sharing rule for cases: the owning municipality's staff and the help desk (and
administrators). A later issue widens ``visible_cases_clause``/``can_view_case`` with visibility.
"""
from __future__ import annotations

from sqlalchemy import and_, false, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Case, CaseState, Question, QuestionStatus, Role, User


# --- who is who -------------------------------------------------------------------------------

def is_helpdesk(user: User | None) -> bool:
    return bool(user and user.is_enabled and user.role == Role.HELPDESK.value)


def is_admin(user: User | None) -> bool:
    return bool(user and user.is_enabled and user.role == Role.ADMIN.value)


def sees_everything(user: User | None) -> bool:
    """The help desk and administrators read every thread and case."""
    return is_helpdesk(user) or is_admin(user)


def _member_of(user: User | None, municipality_id: int | None) -> bool:
    return bool(
        user
        and user.is_enabled
        and municipality_id is not None
        and user.municipality_id == municipality_id
        and user.role in (Role.MUNICIPAL.value, Role.VIEWER.value)
    )


def _staff_of(user: User | None, municipality_id: int | None) -> bool:
    """Municipal staff (not viewers) of that municipality: they may write on its threads."""
    return _member_of(user, municipality_id) and user.role == Role.MUNICIPAL.value


# --- questions --------------------------------------------------------------------------------

def can_ask(user: User | None) -> bool:
    return bool(
        user
        and user.is_enabled
        and user.role == Role.MUNICIPAL.value
        and user.municipality is not None
        and not user.municipality.is_observer
    )


def can_view_question(user: User | None, question: Question) -> bool:
    return sees_everything(user) or _member_of(user, question.municipality_id)


def visible_questions_clause(user: User | None) -> ColumnElement[bool]:
    if sees_everything(user):
        return true()
    if user is None or not user.is_enabled or user.role not in (Role.MUNICIPAL.value, Role.VIEWER.value):
        return false()
    if user.municipality_id is None:
        return false()
    return Question.municipality_id == user.municipality_id


def can_answer(user: User | None, question: Question) -> bool:
    return is_helpdesk(user) and question.status in (QuestionStatus.OPEN.value, QuestionStatus.ANSWERED.value)


def can_comment(user: User | None, question: Question) -> bool:
    if question.status == QuestionStatus.CLOSED.value:
        return False
    return is_helpdesk(user) or _staff_of(user, question.municipality_id)


def can_resolve(user: User | None, question: Question) -> bool:
    """The asking municipality or the help desk marks the answer that resolved the question."""
    if question.status not in (QuestionStatus.OPEN.value, QuestionStatus.ANSWERED.value):
        return False
    return is_helpdesk(user) or _staff_of(user, question.municipality_id)


def can_close(user: User | None, question: Question) -> bool:
    return can_resolve(user, question)


def can_view_thread_authors(user: User | None, question: Question) -> bool:
    return can_view_question(user, question)


# --- cases ------------------------------------------------------------------------------------

def can_view_case(user: User | None, case: Case) -> bool:
    if sees_everything(user):
        return True
    if case.state == CaseState.ARCHIVED.value:
        return False
    return _member_of(user, case.municipality_id)


def visible_cases_clause(user: User | None) -> ColumnElement[bool]:
    if sees_everything(user):
        return true()
    if user is None or not user.is_enabled or user.municipality_id is None:
        return false()
    if user.role not in (Role.MUNICIPAL.value, Role.VIEWER.value):
        return false()
    return and_(Case.municipality_id == user.municipality_id, Case.state != CaseState.ARCHIVED.value)


def can_edit_case(user: User | None, case: Case) -> bool:
    return is_helpdesk(user) and case.state != CaseState.ARCHIVED.value


def can_publish_case(user: User | None, case: Case) -> bool:
    return is_helpdesk(user) and case.state == CaseState.DRAFT.value


# --- administration ---------------------------------------------------------------------------

def can_administer(user: User | None) -> bool:
    return is_admin(user)


# --- policy-scoped getters (an invisible object is "not found") -------------------------------

def get_visible_question(user: User | None, question_id: int) -> Question | None:
    return db.session.scalar(
        select(Question).where(Question.id == question_id, visible_questions_clause(user))
    )


def get_visible_case(user: User | None, case_id: int) -> Case | None:
    return db.session.scalar(select(Case).where(Case.id == case_id, visible_cases_clause(user)))


def any_of(*clauses: ColumnElement[bool]) -> ColumnElement[bool]:
    return or_(*clauses)
