"""新着: what in a thread arrived since the reader last opened it.

Opening a thread records the moment (``QuestionSeen``, one row per reader and thread, upserted so
two tabs at once do not collide). A thread is new to a reader when someone else wrote in it after
that moment (or it was never opened); the posts newer than it get a 新着 mark. Only posts the reader
may see count: internal notes only for the help desk.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, union_all
from sqlalchemy.exc import IntegrityError

from app import policy
from app.extensions import db
from app.models import Answer, Comment, InternalNote, Question, QuestionSeen, User, as_utc, utcnow


def mark_thread_seen(user: User, question: Question) -> datetime | None:
    """Record that the user opened the thread now; return when they had opened it before (None:
    never)."""
    row = db.session.scalar(select(QuestionSeen).where(QuestionSeen.user_id == user.id,
                                                       QuestionSeen.question_id == question.id))
    now = utcnow()
    if row is not None:
        before = as_utc(row.seen_at)
        row.seen_at = now
        return before
    try:
        with db.session.begin_nested():  # the same reader in two tabs: the second finds the first
            db.session.add(QuestionSeen(user_id=user.id, question_id=question.id, seen_at=now))
    except IntegrityError:
        pass
    return None


def _activity(user: User):
    """(question_id, created_at) of every post by someone else that the user may see."""
    parts = [select(Answer.question_id.label("question_id"), Answer.created_at.label("at"))
             .where(Answer.author_id != user.id),
             select(Comment.question_id, Comment.created_at).where(Comment.author_id != user.id),
             select(Question.id, Question.created_at).where(Question.asker_id != user.id)]
    if policy.can_read_internal_notes(user):
        parts.append(select(InternalNote.question_id, InternalNote.created_at).where(InternalNote.author_id != user.id))
    return union_all(*parts).subquery()


def threads_with_news(user: User, question_ids) -> set[int]:
    """Of these (already visible) threads, those with something the user has not seen yet."""
    ids = [int(i) for i in question_ids]
    if not ids:
        return set()
    activity = _activity(user)
    latest = dict(db.session.execute(
        select(activity.c.question_id, func.max(activity.c.at)).where(activity.c.question_id.in_(ids))
        .group_by(activity.c.question_id)).all())
    seen = dict(db.session.execute(select(QuestionSeen.question_id, QuestionSeen.seen_at).where(
        QuestionSeen.user_id == user.id, QuestionSeen.question_id.in_(ids))).all())
    return {qid for qid, at in latest.items()
            if at is not None and (qid not in seen or as_utc(at) > as_utc(seen[qid]))}


def is_new(post, seen_before: datetime | None, user: User) -> bool:
    """A post the user did not write, after they last opened the thread (all of it on a first visit
    is not marked: everything would be)."""
    author_id = getattr(post, "author_id", None)
    return (seen_before is not None and author_id != user.id
            and as_utc(post.created_at) > seen_before)
