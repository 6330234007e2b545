from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import policy
from app.extensions import db
from app.models import Category, Comment, Municipality, Question, QuestionStatus, as_utc
from app.questions import bp
from app.questions.forms import AnswerForm, CloseForm, CommentForm, QuestionForm, ResolveForm
from app.rendering import render_markdown
from app.services import questions as question_service
from app.services.errors import ServiceError
from app.web import apply_service_error, category_choices, id_arg, page_arg, role_required


_LIST_LOADS = (
    selectinload(Question.tags), selectinload(Question.category), selectinload(Question.municipality),
    selectinload(Question.asker), selectinload(Question.answers),
    selectinload(Question.comments).selectinload(Comment.author),
)


def _visible_question_or_404(question_id: int) -> Question:
    question = policy.get_visible_question(current_user, question_id)
    if question is None:
        abort(404)
    return question


@bp.get("/questions")
@login_required
def index():
    """My municipality's questions (all questions for the help desk), newest first."""
    status = request.args.get("status") or ""
    query = select(Question).where(policy.visible_questions_clause(current_user))
    if status:
        if status not in {s.value for s in QuestionStatus}:
            abort(400)
        query = query.where(Question.status == status)
    query = query.order_by(Question.created_at.desc(), Question.id.desc()).options(*_LIST_LOADS)
    page = db.paginate(query, page=page_arg(), per_page=20, error_out=False)
    return render_template("questions/index.html", page=page, status=status)


@bp.route("/questions/new", methods=["GET", "POST"])
@role_required(policy.can_ask)
def ask():
    form = QuestionForm()
    form.category.choices = category_choices()
    preview_html = None
    if form.validate_on_submit():
        if form.preview.data:
            preview_html = render_markdown(form.body.data)
        else:
            try:
                question = question_service.ask_question(current_user, {
                    "title": form.title.data, "body": form.body.data, "category": form.category.data,
                    "tags": form.tags.data, "sharing_consent": form.sharing_consent.data,
                })
            except ServiceError as error:
                db.session.rollback()
                apply_service_error(form, error)
            else:
                db.session.commit()
                flash("相談を受け付けました。県ヘルプデスクから回答があるとこのページに表示されます。", "success")
                return redirect(url_for("questions.show", question_id=question.id))
    return render_template("questions/ask.html", form=form, preview_html=preview_html)


def _thread_page(question: Question, answer_form=None, comment_form=None, preview=None, status=200):
    return render_template(
        "questions/show.html",
        question=question,
        answer_form=answer_form or AnswerForm(formdata=None),
        comment_form=comment_form or CommentForm(formdata=None),
        resolve_form=ResolveForm(formdata=None),
        close_form=CloseForm(formdata=None),
        preview=preview,
    ), status


@bp.get("/questions/<int:question_id>")
@login_required
def show(question_id: int):
    return _thread_page(_visible_question_or_404(question_id))


def _post_to_thread(question_id: int, form_class, service, kind: str, done_message: str):
    question = _visible_question_or_404(question_id)
    form = form_class()
    if not form.validate_on_submit():
        abort(400)
    forms = {"answer_form": form} if kind == "answer" else {"comment_form": form}
    if form.preview.data:
        return _thread_page(question, preview=(kind, render_markdown(form.body.data)), **forms)
    try:
        service(current_user, question, {"body": form.body.data})
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        apply_service_error(form, error)
        return _thread_page(question, status=422, **forms)
    db.session.commit()
    flash(done_message, "success")
    return redirect(url_for("questions.show", question_id=question.id, _anchor=kind + "s"))


@bp.get("/questions/<int:question_id>/answers")
@bp.get("/questions/<int:question_id>/comments")
@bp.get("/questions/<int:question_id>/resolve")
@bp.get("/questions/<int:question_id>/close")
@login_required
def back_to_thread(question_id: int):
    """These addresses only take form posts; opened directly (a reload) they lead to the thread."""
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/answers")
@login_required
def answer(question_id: int):
    return _post_to_thread(question_id, AnswerForm, question_service.post_answer, "answer", "回答を投稿しました。")


@bp.post("/questions/<int:question_id>/comments")
@login_required
def comment(question_id: int):
    return _post_to_thread(question_id, CommentForm, question_service.post_comment, "comment", "コメントを投稿しました。")


@bp.post("/questions/<int:question_id>/resolve")
@login_required
def resolve(question_id: int):
    question = _visible_question_or_404(question_id)
    form = ResolveForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        case = question_service.resolve_question(current_user, question, form.answer_id.data)
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        flash(error.errors.get("answer_id") or error.message, "error")
        return redirect(url_for("questions.show", question_id=question_id))
    db.session.commit()
    if policy.can_edit_case(current_user, case):
        flash("解決済みにしました。この相談から事例の下書きを作成しました。内容を整えて公開してください。", "success")
        return redirect(url_for("cases.edit", case_id=case.id))
    flash("解決済みにしました。県ヘルプデスクが事例として整理します。", "success")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/close")
@login_required
def close(question_id: int):
    question = _visible_question_or_404(question_id)
    form = CloseForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        question_service.close_question(current_user, question)
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        flash(error.message, "error")
        return redirect(url_for("questions.show", question_id=question_id))
    db.session.commit()
    flash("相談を未解決のまま終了しました。", "success")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.get("/helpdesk/queue")
@role_required(policy.is_helpdesk)
def queue():
    """Open and answered questions, oldest first, filterable by category and municipality."""
    category_slug = request.args.get("category") or ""
    municipality_id = id_arg("municipality", "市町")
    status = request.args.get("status") or ""
    waiting = [QuestionStatus.OPEN.value, QuestionStatus.ANSWERED.value]
    if status and status not in waiting:
        abort(400)
    query = (
        select(Question)
        .where(policy.visible_questions_clause(current_user))
        .where(Question.status.in_([status] if status else waiting))
    )
    if category_slug:
        query = query.join(Category).where(Category.slug == category_slug)
    if municipality_id:
        query = query.where(Question.municipality_id == municipality_id)
    query = query.order_by(Question.created_at.asc(), Question.id.asc()).options(*_LIST_LOADS)
    page = db.paginate(query, page=page_arg(), per_page=30, error_out=False)
    categories = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)).all()
    municipalities = db.session.scalars(
        select(Municipality).where(Municipality.is_observer.is_(False)).order_by(Municipality.code)
    ).all()
    return render_template(
        "questions/queue.html", page=page, categories=categories, municipalities=municipalities,
        category_slug=category_slug, municipality_id=municipality_id, status=status,
        last_posts={q.id: _last_post(q) for q in page.items},
    )


def _last_post(question: Question) -> tuple[str, object] | None:
    """Who posted last on the thread (help desk or municipality) and when."""
    posts = [(a.created_at, "helpdesk") for a in question.answers] + [
        (c.created_at, "helpdesk" if c.author.role == "helpdesk" else "municipality") for c in question.comments
    ]
    if not posts:
        return None
    moment, side = max(posts, key=lambda p: as_utc(p[0]))
    return side, moment
