"""The one answer to "may this user do X to Y?" and "which objects may they see?".

Views, the API and (later) search ask this module and nothing else. Every rule about who sees a
question thread or a case lives here, both as a predicate on one object (``can_view_case``) and as
a SQL filter for listings (``visible_cases_clause``), and the two must always agree; the test
suite checks them against each other.

Who sees a case (``CaseScope``): the help desk and administrators see every case; the owning
municipality's staff and viewers see its drafts and published cases; other municipalities see a
published case when it is shared with ``all``, or with ``neighbours`` and they are linked to the
owner as neighbours or share a group with it. A case is shared as far as the narrower of its
visibility and its owner's consent (``Case.shared_visibility``), so a row that broke the rule
``visibility <= consent`` would still leak nothing. Archived cases are for the help desk only. The page
predicates, the SQL filter and the search filter are all derived from the same ``CaseScope``.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_app_context

from sqlalchemy import and_, false, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Attachment, Case, CaseState, Question, QuestionStatus, Role, User, Visibility, case_attachments
from app.models.municipality import Municipality, sharing_partner_ids


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
    return is_helpdesk(user) and question.is_active


def can_comment(user: User | None, question: Question) -> bool:
    if not question.is_active:
        return False
    return is_helpdesk(user) or _staff_of(user, question.municipality_id)


def can_resolve(user: User | None, question: Question) -> bool:
    """The asking municipality or the help desk marks the answer that resolved the question."""
    if not question.is_active:
        return False
    return is_helpdesk(user) or _staff_of(user, question.municipality_id)


def can_close(user: User | None, question: Question) -> bool:
    return can_resolve(user, question)


def can_run_desk(user: User | None, question: Question | None = None) -> bool:
    """Take or hand over a question, set its priority and kind, ask the municipality for
    information, close it as a duplicate, merge threads: the help desk's own work."""
    return is_helpdesk(user) and (question is None or question.is_active)


def can_read_internal_notes(user: User | None) -> bool:
    """内部メモ: the help desk and administrators; never the municipality."""
    return sees_everything(user)


def can_write_internal_note(user: User | None, question: Question) -> bool:
    return is_helpdesk(user)


def can_edit_post(user: User | None, post) -> bool:
    """Authors edit their own question, answer, comment or note while it is not withdrawn and the
    thread has not ended (a note: while the author is on the help desk)."""
    if user is None or not user.is_enabled or post.is_withdrawn:
        return False
    author_id = post.asker_id if isinstance(post, Question) else post.author_id
    thread = post if isinstance(post, Question) else post.question
    if author_id != user.id or thread.merged_into_id is not None:
        return False
    if not (is_helpdesk(user) or _staff_of(user, thread.municipality_id)):
        return False
    return thread.is_active or thread.status == QuestionStatus.RESOLVED.value


def can_withdraw_post(user: User | None, post) -> bool:
    """Its author, or the help desk (a password pasted by mistake must go whoever pasted it)."""
    if user is None or not user.is_enabled or post.is_withdrawn:
        return False
    author_id = post.asker_id if isinstance(post, Question) else post.author_id
    thread = post if isinstance(post, Question) else post.question
    if is_helpdesk(user):
        return True
    return author_id == user.id and _staff_of(user, thread.municipality_id)


def can_read_revisions(user: User | None) -> bool:
    """Earlier texts of edited posts."""
    return sees_everything(user)


def can_read_attachment(user: User | None, attachment: Attachment) -> bool:
    """A file is read by whoever may read the post it is on (an internal note's file: the help
    desk), or any case that carries it."""
    if attachment.question_id is not None and attachment.post_type != "case":
        question = db.session.get(Question, attachment.question_id)
        if question is not None and can_view_question(user, question) and (
                attachment.post_type != "note" or can_read_internal_notes(user)):
            return True
    carried_by_readable_case = db.session.scalar(
        select(Case.id).join(case_attachments, case_attachments.c.case_id == Case.id)
        .where(case_attachments.c.attachment_id == attachment.id, visible_cases_clause(user)).limit(1))
    return carried_by_readable_case is not None


def can_manage_canned_replies(user: User | None) -> bool:
    return is_helpdesk(user)


# --- cases ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseScope:
    """Which cases a user may read, in a form that pages, SQL and the search index all apply."""

    everything: bool = False
    own: int | None = None                      # owning municipality: its drafts and published cases
    neighbour_owners: frozenset[int] = frozenset()  # owners whose `neighbours` cases are visible
    shared_with_all: bool = False               # published cases with visibility `all`

    @property
    def nothing(self) -> bool:
        return not self.everything and self.own is None and not self.shared_with_all


NO_CASES = CaseScope()


def case_scope(user: User | None) -> CaseScope:
    if sees_everything(user):
        return CaseScope(everything=True)
    if user is None or not user.is_enabled or user.municipality_id is None:
        return NO_CASES
    if user.role not in (Role.MUNICIPAL.value, Role.VIEWER.value):
        return NO_CASES
    return member_scope(user.municipality_id)


def member_scope(municipality_id: int) -> CaseScope:
    """What the members (staff and viewers) of one municipality may read."""
    # Within one request the partners of a municipality do not change: ask the database once.
    key = ("case_scope", municipality_id)
    cache = g.setdefault("_policy_cache", {}) if has_app_context() else {}
    if key not in cache:
        cache[key] = CaseScope(
            own=municipality_id,
            neighbour_owners=frozenset(sharing_partner_ids(municipality_id)),
            shared_with_all=True,
        )
    return cache[key]


@dataclass(frozen=True)
class _PublishedAs:
    """A case as it would be once published with a visibility: all that ``scope_allows`` reads."""

    municipality_id: int | None
    shared_visibility: Visibility
    state: str = CaseState.PUBLISHED.value


def readers_if_published(case: Case, visibility: Visibility | str) -> list[Municipality]:
    """The municipalities whose members would read ``case`` if it were published with
    ``visibility`` (the help desk and administrators read every case): each municipality's
    ``member_scope`` through ``scope_allows``, the rule every page, SQL filter and search apply."""
    as_published = _PublishedAs(case.municipality_id, Visibility(visibility))
    municipalities = db.session.scalars(select(Municipality).order_by(Municipality.is_observer, Municipality.code))
    return [m for m in municipalities if scope_allows(member_scope(m.id), as_published)]


def forget_cached_scopes() -> None:
    """Called when neighbour links or groups change within a request."""
    if has_app_context():
        g.pop("_policy_cache", None)


def scope_allows(scope: CaseScope, case: Case) -> bool:
    if scope.everything:
        return True
    if case.state == CaseState.ARCHIVED.value:
        return False
    if scope.own is not None and case.municipality_id == scope.own:
        return True
    if case.state != CaseState.PUBLISHED.value:
        return False
    shared = case.shared_visibility  # never wider than the owner's consent, whatever the row says
    if shared is Visibility.ALL:
        return scope.shared_with_all
    if shared is Visibility.NEIGHBOURS:
        return case.municipality_id in scope.neighbour_owners
    return False


def scope_clause(scope: CaseScope) -> ColumnElement[bool]:
    if scope.everything:
        return true()
    if scope.nothing:
        return false()
    # A case counts as shared as far as the narrower of its visibility and its owner's consent.
    shared = []
    if scope.shared_with_all:
        shared.append(and_(Case.visibility == Visibility.ALL.value, Case.sharing_consent == Visibility.ALL.value))
    if scope.neighbour_owners:
        wide_enough = Visibility.at_least(Visibility.NEIGHBOURS.width)
        shared.append(and_(Case.visibility.in_(wide_enough), Case.sharing_consent.in_(wide_enough),
                           Case.municipality_id.in_(sorted(scope.neighbour_owners))))
    clauses = []
    if scope.own is not None:
        clauses.append(and_(Case.municipality_id == scope.own, Case.state != CaseState.ARCHIVED.value))
    if shared:
        clauses.append(and_(Case.state == CaseState.PUBLISHED.value, or_(*shared)))
    return or_(*clauses) if clauses else false()


def can_view_case(user: User | None, case: Case) -> bool:
    return scope_allows(case_scope(user), case)


def visible_cases_clause(user: User | None) -> ColumnElement[bool]:
    return scope_clause(case_scope(user))




def can_edit_case(user: User | None, case: Case) -> bool:
    return is_helpdesk(user) and case.state != CaseState.ARCHIVED.value


def can_publish_case(user: User | None, case: Case) -> bool:
    return is_helpdesk(user) and case.state == CaseState.DRAFT.value


def can_change_visibility(user: User | None, case: Case) -> bool:
    """The help desk sets how far a published case is shared (within the owner's consent)."""
    return is_helpdesk(user) and case.state == CaseState.PUBLISHED.value


def is_owner_staff(user: User | None, case: Case) -> bool:
    """Municipal staff of the municipality that owns the case."""
    return _staff_of(user, case.municipality_id)


def can_change_consent(user: User | None, case: Case) -> bool:
    """The owning municipality's staff decide how far its case may be shared (drafts too)."""
    return case.state != CaseState.ARCHIVED.value and _staff_of(user, case.municipality_id)


def can_request_consent(user: User | None, case: Case) -> bool:
    """The help desk asks the owning municipality to agree to wider sharing."""
    return is_helpdesk(user) and case.state != CaseState.ARCHIVED.value and case.municipality_id is not None


def can_archive_case(user: User | None, case: Case) -> bool:
    return is_helpdesk(user) and case.state != CaseState.ARCHIVED.value


def can_restore_case(user: User | None, case: Case) -> bool:
    return is_helpdesk(user) and case.state == CaseState.ARCHIVED.value


def can_mark_helpful(user: User | None, case: Case) -> bool:
    """Readers of other municipalities say a case helped them (the owner's own marks would not say much)."""
    return (
        case.state == CaseState.PUBLISHED.value
        and user is not None
        and user.role in (Role.MUNICIPAL.value, Role.VIEWER.value)
        and not _member_of(user, case.municipality_id)
        and can_view_case(user, case)
    )


def can_see_owner(user: User | None, case: Case) -> bool:
    """An anonymous case's municipality is shown only to itself, the help desk and admins."""
    return not case.anonymous or sees_everything(user) or _member_of(user, case.municipality_id)


def can_see_sharing_route(user: User | None, case: Case) -> bool:
    """How far a case is shared (neighbours / all, and the consent) is shown to whoever may see its
    owner: for an anonymous case, "shared with neighbours" would tell a reader with one partner
    who the owner is."""
    return can_see_owner(user, case)


def can_export_cases(user: User | None) -> bool:
    return sees_everything(user)


# --- reports ----------------------------------------------------------------------------------

def can_view_dashboard(user: User | None) -> bool:
    """The prefecture's dashboard and the yearly summary: the help desk and administrators."""
    return sees_everything(user)


def can_view_municipal_report(user: User | None) -> bool:
    """A municipality's own report: its staff and viewers."""
    return bool(user and user.is_enabled and user.role in (Role.MUNICIPAL.value, Role.VIEWER.value)
                and user.municipality_id is not None)


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


def get_readable_attachment(user: User | None, attachment_id: int) -> Attachment | None:
    attachment = db.session.get(Attachment, attachment_id)
    return attachment if attachment is not None and can_read_attachment(user, attachment) else None

