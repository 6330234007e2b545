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
    return (sees_everything(user) or _member_of(user, question.municipality_id)
            or expert_assigned_to_question(user, question))


def visible_questions_clause(user: User | None) -> ColumnElement[bool]:
    if sees_everything(user):
        return true()
    if is_expert(user):
        return expert_questions_clause(user)
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


def can_write_article(user: User | None) -> bool:
    """Articles (お知らせ・手順書・注意喚起) are written by the help desk; afterwards they are cases."""
    return is_helpdesk(user)


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


# --- the life of a case: history, review, reports, reuse, tags and categories --------------------

def can_read_case_history(user: User | None, case: Case) -> bool:
    """Revisions (who, when, what) are for those who may edit the case: the help desk (an archived
    case's history too: the help desk restores it)."""
    return is_helpdesk(user)


def can_read_revision_text(user: User | None, case: Case, revision) -> bool:
    """A revision's text: never for anyone who could not read the case then (as that revision
    was shared) and now."""
    scope = case_scope(user)
    return can_read_case_history(user, case) and scope_allows(scope, case) and scope_allows(scope, revision)


def can_restore_revision(user: User | None, case: Case) -> bool:
    """Bring an earlier revision back as a new one: an edit, so whoever may edit the case."""
    return can_edit_case(user, case)


def can_review_cases(user: User | None) -> bool:
    """The list of cases past their review date, confirming them, the readers' reports queue."""
    return is_helpdesk(user)


def can_confirm_case(user: User | None, case: Case) -> bool:
    return is_helpdesk(user) and case.state == CaseState.PUBLISHED.value


def can_report_case(user: User | None, case: Case) -> bool:
    """Municipal staff who read a published case say it is outdated, wrong or incomplete. The help
    desk corrects it directly instead; viewers and observers only read, and administrators run
    accounts, not content."""
    return (case.state == CaseState.PUBLISHED.value and user is not None and user.is_enabled
            and user.role == Role.MUNICIPAL.value and can_view_case(user, case))


def can_handle_case_reports(user: User | None) -> bool:
    return is_helpdesk(user)


def can_supersede_case(user: User | None, case: Case) -> bool:
    """Point a case to the newer case that replaces it."""
    return is_helpdesk(user) and case.state != CaseState.ARCHIVED.value


def municipality_may_read(municipality_id: int, case: Case) -> bool:
    """Whether the members of a municipality read the case (the rule every page applies)."""
    return scope_allows(member_scope(municipality_id), case)


def can_link_case(user: User | None, question: Question, case: Case) -> bool:
    """「この事例で回答」: the help desk answers with a published case that the asking municipality
    may read (otherwise the answer would point to what the asker cannot open)."""
    return (can_answer(user, question) and case.state == CaseState.PUBLISHED.value
            and municipality_may_read(question.municipality_id, case))


def can_ask_about_case(user: User | None, case: Case) -> bool:
    """「この事例について相談する」: staff who may ask and may read the case."""
    return can_ask(user) and can_view_case(user, case)


def can_curate_taxonomy(user: User | None) -> bool:
    """Rename, merge and retire tags and categories, set review periods: the help desk."""
    return is_helpdesk(user)


def can_list_unused_taxonomy(user: User | None) -> bool:
    """Tags and categories no case or question uses: administrators (and the help desk)."""
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



# --- shared IT experts (issue 13) -------------------------------------------------------------
# Experts (role ``expert``) see only the requests they are assigned to (an active assignment)
# and, through them, the question threads those requests came from. They read no case of the
# library (their ``case_scope`` is empty). A request is seen by the help desk and administrators,
# the members of the requesting municipality and of every municipality that shares its cost.

from app.models.expert import (  # noqa: E402
    AssignmentShare, ExpertAssignment, ExpertProposal, ExpertRequest, ProposalStatus, RequestStatus,
)
from app.models.expert import Expert as _Expert  # noqa: E402


def is_expert(user: User | None) -> bool:
    return bool(user and user.is_enabled and user.role == Role.EXPERT.value)


def _expert_request_ids(user: User):
    """The requests the expert works on now (a select of ids)."""
    return (select(ExpertAssignment.request_id)
            .join(_Expert, _Expert.id == ExpertAssignment.expert_id)
            .where(_Expert.user_id == user.id, ExpertAssignment.is_active.is_(True)))


def expert_questions_clause(user: User | None) -> ColumnElement[bool]:
    """The threads an expert reads: those their active requests came from."""
    if not is_expert(user):
        return false()
    thread_ids = select(ExpertRequest.question_id).where(
        ExpertRequest.id.in_(_expert_request_ids(user)), ExpertRequest.question_id.is_not(None))
    return Question.id.in_(thread_ids)


def expert_assigned_to_question(user: User | None, question: Question) -> bool:
    if not is_expert(user):
        return False
    return db.session.scalar(select(Question.id).where(Question.id == question.id,
                                                       expert_questions_clause(user))) is not None


def can_expert_answer(user: User | None, question: Question) -> bool:
    """The assigned expert answers into the thread their request came from while it is open."""
    return question.is_active and expert_assigned_to_question(user, question)


def can_manage_experts(user: User | None) -> bool:
    """The registry, the skills vocabulary, proposals: the prefecture's help desk."""
    return is_helpdesk(user)


def can_view_experts(user: User | None) -> bool:
    """The registry and the reports: the help desk and administrators."""
    return sees_everything(user)


def can_file_request(user: User | None) -> bool:
    """Municipal staff of a member municipality ask for an expert."""
    return can_ask(user)


def can_convert_question(user: User | None, question: Question) -> bool:
    """The help desk turns a question into a request when it needs deeper expertise."""
    return is_helpdesk(user) and can_view_question(user, question)


def uses_expert_pages(user: User | None) -> bool:
    return bool(user and user.is_enabled and (
        sees_everything(user) or is_expert(user)
        or (user.role in (Role.MUNICIPAL.value, Role.VIEWER.value) and user.municipality_id is not None)))


def visible_requests_clause(user: User | None) -> ColumnElement[bool]:
    if sees_everything(user):
        return true()
    if is_expert(user):
        return ExpertRequest.id.in_(_expert_request_ids(user))
    if user is None or not user.is_enabled or user.role not in (Role.MUNICIPAL.value, Role.VIEWER.value):
        return false()
    if user.municipality_id is None:
        return false()
    sharing = (select(ExpertAssignment.request_id)
               .join(AssignmentShare, AssignmentShare.assignment_id == ExpertAssignment.id)
               .where(AssignmentShare.municipality_id == user.municipality_id))
    return or_(ExpertRequest.municipality_id == user.municipality_id, ExpertRequest.id.in_(sharing))


def can_view_request(user: User | None, request: ExpertRequest) -> bool:
    return db.session.scalar(select(ExpertRequest.id).where(
        ExpertRequest.id == request.id, visible_requests_clause(user))) is not None


def get_visible_request(user: User | None, request_id: int) -> ExpertRequest | None:
    return db.session.scalar(select(ExpertRequest).where(ExpertRequest.id == request_id,
                                                         visible_requests_clause(user)))


def is_requester_staff(user: User | None, request: ExpertRequest) -> bool:
    return _staff_of(user, request.municipality_id)


def can_see_suggestions(user: User | None, request: ExpertRequest) -> bool:
    """Ranked suggestions (with every expert's reasons) are the prefecture's working view."""
    return is_helpdesk(user) and request.status in (RequestStatus.OPEN.value, RequestStatus.PROPOSED.value)


def can_propose(user: User | None, request: ExpertRequest) -> bool:
    return is_helpdesk(user) and request.status == RequestStatus.OPEN.value


def can_withdraw_proposal(user: User | None, proposal: ExpertProposal) -> bool:
    return is_helpdesk(user) and proposal.status == ProposalStatus.PENDING.value


def can_answer_proposal(user: User | None, proposal: ExpertProposal) -> bool:
    """The requesting municipality's staff accept or decline the expert the prefecture proposes."""
    return proposal.status == ProposalStatus.PENDING.value and _staff_of(user, proposal.request.municipality_id)


def can_close_request(user: User | None, request: ExpertRequest) -> bool:
    """The help desk or the requesting municipality's staff end a request (and its assignment)."""
    if request.status == RequestStatus.CLOSED.value:
        return False
    return is_helpdesk(user) or _staff_of(user, request.municipality_id)


def can_post_request_message(user: User | None, request: ExpertRequest) -> bool:
    if request.status == RequestStatus.CLOSED.value:
        return False
    if is_helpdesk(user) or _staff_of(user, request.municipality_id):
        return True
    return is_expert(user) and can_view_request(user, request)


def can_view_expert_reports(user: User | None) -> bool:
    return sees_everything(user)


# --- procurement knowledge ----------------------------------------------------------------------

def can_edit_procurement(user: User | None, case: Case) -> bool:
    """The structured fields of a procurement case: the help desk, as it curates the case."""
    return can_edit_case(user, case)


def can_view_procurement(user: User | None, case: Case) -> bool:
    """Whoever may read the case reads its procurement fields (the buyer as ``can_see_owner``)."""
    return can_view_case(user, case)


def is_owner_member(user: User | None, case: Case) -> bool:
    """Staff or viewers of the municipality that owns the case."""
    return _member_of(user, case.municipality_id)
