from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice

from app import policy
from app.extensions import db
from app.models import (
    CannedReply, Case, Category, Comment, Municipality, Priority, Question, QuestionKind, QuestionStatus, Role,
    User, as_utc, utcnow,
)
from app.params import int_param, parse_int
from app.questions import bp
from app.questions.forms import (
    AssignForm, CannedReplyForm, CloseForm, CommentForm, EditPostForm, HandlingForm, LinkCaseForm, LinkForm,
    QuestionForm, ReplyForm, ResolveForm, SimpleForm,
)
from app.rendering import render_markdown
from app.services import attachments as attachment_service
from app.services import curation, notifications, seen
from app.services import questions as question_service
from app.services.errors import ServiceError
from app.web import apply_service_error, category_choices, commit_or_flash, id_arg, page_arg, role_required, uploads_from

_LIST_LOADS = (
    selectinload(Question.tags), selectinload(Question.category), selectinload(Question.municipality),
    selectinload(Question.asker), selectinload(Question.owner), selectinload(Question.answers),
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
    return render_template("questions/index.html", page=page, status=status,
                           news=seen.threads_with_news(current_user, [q.id for q in page.items]))


@bp.route("/questions/new", methods=["GET", "POST"])
@role_required(policy.can_ask)
def ask():
    form = QuestionForm()
    form.category.choices = _active_category_choices()
    about = None
    if request.method == "GET" and request.args.get("case"):
        about = _readable_case_arg(request.args.get("case"))
        form.about_case.data = str(about.id)
        if not form.title.data:
            form.title.data = f"事例 #{about.id}「{about.title}」について"[:200]
    elif form.about_case.data:
        about = _readable_case_arg(form.about_case.data)
    preview_html = None
    if form.validate_on_submit():
        if form.preview.data:
            preview_html = render_markdown(form.body.data)
        else:
            try:
                question = question_service.ask_question(current_user, {
                    "title": form.title.data, "body": form.body.data, "category": form.category.data,
                    "tags": form.tags.data, "sharing_consent": form.sharing_consent.data, "kind": form.kind.data,
                    "priority": Priority.URGENT.value if form.urgent.data else Priority.NORMAL.value,
                    "urgent_reason": form.urgent_reason.data, "about_case": form.about_case.data,
                }, uploads_from(form.files.name))
            except ServiceError as error:
                db.session.rollback()
                apply_service_error(form, error)
            else:
                db.session.commit()
                flash("相談を受け付けました。県ヘルプデスクから回答があるとこのページに表示されます。", "success")
                return redirect(url_for("questions.show", question_id=question.id))
    return render_template("questions/ask.html", form=form, preview_html=preview_html, about=about)


def _active_category_choices() -> list[SelectChoice]:
    """Categories offered when asking: neither retired nor merged."""
    return [SelectChoice("", "選択してください")] + [SelectChoice(c.slug, c.name) for c in curation.active_categories()]


def _readable_case_arg(value) -> Case:
    """The case of 「この事例について相談する」: one the asker may read (anything else: not found)."""
    case_id = parse_int(value, minimum=1) if isinstance(value, str) else None
    case = policy.get_visible_case(current_user, case_id) if case_id is not None else None
    if case is None or not policy.can_ask_about_case(current_user, case):
        abort(404)
    return case


# --- the thread ---------------------------------------------------------------------------------

def _canned_choices() -> list[tuple[str, str]]:
    rows = db.session.execute(select(CannedReply.id, CannedReply.title).order_by(CannedReply.title)).all()
    return [("", "選んでください")] + [(str(row.id), row.title) for row in rows]


def _helpdesk_choices() -> list[tuple[str, str]]:
    users = db.session.scalars(
        select(User).where(User.role == Role.HELPDESK.value, User.is_enabled.is_(True)).order_by(User.username))
    return [("", "未割り当て")] + [(str(u.id), u.label) for u in users]


def _thread_page(question: Question, reply_form=None, comment_form=None, preview=None, status=200,
                 seen_before=None, link_case_form=None):
    reply_form = reply_form or ReplyForm(formdata=None, prefix="reply")
    reply_form.canned.choices = _canned_choices()
    assign_form = AssignForm(formdata=None, prefix="assign")
    assign_form.owner.choices = _helpdesk_choices()
    assign_form.owner.data = str(question.owner_id or "")
    assign_form.expected.data = str(question.owner_id or "")
    handling_form = HandlingForm(formdata=None, prefix="handling", obj=question)
    case = db.session.scalar(select(Case).where(Case.question_id == question.id))
    timeline = question_service.timeline(question, current_user)
    return render_template(
        "questions/show.html",
        question=question,
        attachments=attachment_service.of_thread(question, current_user),
        timeline=timeline,
        new_posts={(kind, post.id) for kind, post in timeline if seen.is_new(post, seen_before, current_user)},
        following=notifications.follows(current_user, "question", question.id),
        links=question_service.thread_links(question, current_user),
        consent=case.consent_enum if case is not None else question.consent_enum,
        reply_form=reply_form,
        comment_form=comment_form or CommentForm(formdata=None, prefix="comment"),
        resolve_form=ResolveForm(formdata=None),
        close_form=CloseForm(formdata=None),
        simple_form=SimpleForm(formdata=None),
        assign_form=assign_form,
        handling_form=handling_form,
        duplicate_form=LinkForm(formdata=None, prefix="duplicate"),
        merge_form=LinkForm(formdata=None, prefix="merge"),
        link_case_form=link_case_form or LinkCaseForm(formdata=None, prefix="link"),
        linked_cases={a.id: question_service.linked_case(a, current_user) for a in question.answers},
        about_case=question_service.case_asked_about(question, current_user),
        preview=preview,
    ), status


@bp.get("/questions/<int:question_id>")
@login_required
def show(question_id: int):
    """The thread; opening it records when the reader saw it, so what arrives later is 新着."""
    question = _visible_question_or_404(question_id)
    seen_before = seen.mark_thread_seen(current_user, question)
    db.session.commit()
    return _thread_page(question, seen_before=seen_before)


@bp.get("/questions/<int:question_id>/print")
@login_required
def print_view(question_id: int):
    """The thread for 回覧 and 決裁: no menu or buttons, with the date and the address."""
    question = _visible_question_or_404(question_id)
    return render_template("questions/print.html", question=question,
                           timeline=question_service.timeline(question, current_user), printed_at=utcnow(),
                           address=url_for("questions.show", question_id=question.id, _external=True))


def _posted(question: Question, anchor: str, message: str):
    flash(message, "success")
    return redirect(url_for("questions.show", question_id=question.id, _anchor=anchor))


@bp.post("/questions/<int:question_id>/reply")
@login_required
def reply(question_id: int):
    """The help desk's compose box: an answer, a comment or an internal note (or a canned text
    inserted into the box, or a preview)."""
    question = _visible_question_or_404(question_id)
    form = ReplyForm(prefix="reply")
    form.canned.choices = _canned_choices()
    if not form.validate_on_submit():
        abort(400)
    if not policy.is_helpdesk(current_user):
        abort(403)
    if form.insert.data:
        canned_id = parse_int(form.canned.data)
        canned = db.session.get(CannedReply, canned_id) if canned_id is not None else None
        if canned is not None:
            form.body.data = ((form.body.data or "").rstrip() + "\n\n" + canned.body).strip()
        return _thread_page(question, reply_form=form)
    if form.preview.data:
        return _thread_page(question, reply_form=form, preview=("reply", render_markdown(form.body.data)))
    kind = form.kind.data if form.kind.data in ("answer", "comment", "note") else "answer"
    service = {"answer": question_service.post_answer, "comment": question_service.post_comment,
               "note": question_service.post_note}[kind]
    try:
        post = service(current_user, question, {"body": form.body.data, "await_reply": bool(form.await_reply.data)},
                       uploads_from(form.files.name))
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        apply_service_error(form, error)
        return _thread_page(question, reply_form=form, status=422)
    db.session.commit()
    messages = {"answer": "回答を投稿しました。", "comment": "コメントを投稿しました。", "note": "内部メモを書きました。"}
    return _posted(question, f"{kind}-{post.id}", messages[kind])


@bp.post("/questions/<int:question_id>/comments")
@login_required
def comment(question_id: int):
    question = _visible_question_or_404(question_id)
    form = CommentForm(prefix="comment")
    if not form.validate_on_submit():
        abort(400)
    if form.preview.data:
        return _thread_page(question, comment_form=form, preview=("comment", render_markdown(form.body.data)))
    try:
        post = question_service.post_comment(current_user, question, {"body": form.body.data},
                                             uploads_from(form.files.name))
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        apply_service_error(form, error)
        return _thread_page(question, comment_form=form, status=422)
    db.session.commit()
    return _posted(question, f"comment-{post.id}", "コメントを投稿しました。")


@bp.get("/questions/<int:question_id>/reply")
@bp.get("/questions/<int:question_id>/comments")
@bp.get("/questions/<int:question_id>/resolve")
@bp.get("/questions/<int:question_id>/close")
@login_required
def back_to_thread(question_id: int):
    """These addresses only take form posts; opened directly (a reload) they lead to the thread."""
    return redirect(url_for("questions.show", question_id=question_id))


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
    if case.question_id != question.id:
        flash(f"事例 #{case.id} で解決済みにしました。", "success")
        return redirect(url_for("questions.show", question_id=question_id))
    if policy.can_edit_case(current_user, case):
        flash("解決済みにしました。この相談から事例の下書きを作成しました。内容を整えて公開してください。", "success")
        return redirect(url_for("cases.edit", case_id=case.id))
    flash("解決済みにしました。県ヘルプデスクが事例として整理します。", "success")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/close")
@login_required
def close(question_id: int):
    question = _visible_question_or_404(question_id)
    if not CloseForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: question_service.close_question(current_user, question), "相談を未解決のまま終了しました。")
    return redirect(url_for("questions.show", question_id=question_id))


# --- the help desk's handling -------------------------------------------------------------------

@bp.post("/questions/<int:question_id>/take")
@login_required
def take(question_id: int):
    question = _visible_question_or_404(question_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: question_service.assign(current_user, question, current_user.id,
                                                    expected_owner_id=question.owner_id),
                    "この相談を担当します。")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/assign")
@login_required
def assign(question_id: int):
    question = _visible_question_or_404(question_id)
    form = AssignForm(prefix="assign")
    form.owner.choices = _helpdesk_choices()
    if not form.validate_on_submit():
        abort(400)
    expected = parse_int(form.expected.data)
    commit_or_flash(lambda: question_service.assign(current_user, question, form.owner.data,
                                                    expected_owner_id=expected),
                    lambda q: f"担当者を「{q.owner.label if q.owner else '未割り当て'}」にしました。")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/handling")
@login_required
def handling(question_id: int):
    question = _visible_question_or_404(question_id)
    form = HandlingForm(prefix="handling")
    if not form.validate_on_submit():
        abort(400)
    commit_or_flash(lambda: question_service.set_handling(current_user, question, {
        "priority": form.priority.data, "urgent_reason": form.urgent_reason.data, "kind": form.kind.data}),
        "優先度と種類を変更しました。")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/waiting")
@login_required
def waiting(question_id: int):
    question = _visible_question_or_404(question_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: question_service.await_municipality(current_user, question),
                    "回答待ち（市町からの返事を待つ状態）にしました。")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/duplicate")
@login_required
def duplicate(question_id: int):
    question = _visible_question_or_404(question_id)
    form = LinkForm(prefix="duplicate")
    if not form.validate_on_submit():
        abort(400)
    commit_or_flash(lambda: question_service.close_as_duplicate(current_user, question, form.target.data),
                    lambda q: f"相談 #{q.duplicate_of_id} の重複として終了しました。")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.post("/questions/<int:question_id>/merge")
@login_required
def merge(question_id: int):
    question = _visible_question_or_404(question_id)
    form = LinkForm(prefix="merge")
    if not form.validate_on_submit():
        abort(400)
    ok = commit_or_flash(lambda: question_service.merge_into(current_user, question, form.target.data),
                         lambda target: f"相談 #{target.id} に統合しました。")
    if ok:
        return redirect(url_for("questions.show", question_id=db.session.get(Question, question_id).merged_into_id))
    return redirect(url_for("questions.show", question_id=question_id))


# --- edits, withdrawals and earlier versions ---------------------------------------------------

def _post_or_404(question: Question, kind: str, post_id: int):
    post = question_service.find_post(question, kind, post_id)
    if post is None or (kind == "note" and not policy.can_read_internal_notes(current_user)):
        abort(404)
    return post


@bp.route("/questions/<int:question_id>/posts/<kind>/<int:post_id>/edit", methods=["GET", "POST"])
@login_required
def edit_post(question_id: int, kind: str, post_id: int):
    question = _visible_question_or_404(question_id)
    post = _post_or_404(question, kind, post_id)
    if not policy.can_edit_post(current_user, post):
        abort(403)
    form = EditPostForm(obj=None if request.method == "POST" else post)
    preview = None
    if form.validate_on_submit():
        if form.preview.data:
            preview = render_markdown(form.body.data)
        else:
            data = {"body": form.body.data}
            if kind == "question":
                data["title"] = form.title.data
            try:
                question_service.edit_post(current_user, post, data)
            except ServiceError as error:
                db.session.rollback()
                if error.status == 403:
                    abort(403)
                apply_service_error(form, error)
            else:
                db.session.commit()
                return _posted(question, f"{kind}-{post.id}" if kind != "question" else "thread", "投稿を編集しました。")
    return render_template("questions/edit_post.html", question=question, post=post, kind=kind, form=form,
                           preview=preview)


@bp.post("/questions/<int:question_id>/posts/<kind>/<int:post_id>/withdraw")
@login_required
def withdraw_post(question_id: int, kind: str, post_id: int):
    question = _visible_question_or_404(question_id)
    post = _post_or_404(question, kind, post_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: question_service.withdraw_post(current_user, post),
                    "投稿を取り下げました。本文はどの画面からも消え、以前の版も削除しました。")
    return redirect(url_for("questions.show", question_id=question_id))


@bp.get("/questions/<int:question_id>/posts/<kind>/<int:post_id>/revisions")
@login_required
def post_revisions(question_id: int, kind: str, post_id: int):
    question = _visible_question_or_404(question_id)
    post = _post_or_404(question, kind, post_id)
    if not policy.can_read_revisions(current_user):
        abort(403)
    return render_template("questions/revisions.html", question=question, post=post, kind=kind,
                           revisions=question_service.revisions(post))


# --- the queue ----------------------------------------------------------------------------------

QUEUE_VIEWS = {"all": "すべて", "unassigned": "未割り当て", "mine": "自分の担当"}
QUEUE_MOVES = {"helpdesk": "県の対応が必要（受付・対応中）", "municipality": "市町の返事待ち（回答待ち）"}
QUEUE_SORTS = {"oldest": "古い順", "newest": "新しい順", "activity": "最近動きがあった順", "priority": "至急を先に"}


MAX_AGE_DAYS = 36_500   # 「○日以上前の相談」: a century is every question there is


@bp.get("/helpdesk/queue")
@role_required(policy.is_helpdesk)
def queue():
    """Active questions by whose move it is: the help desk's (default) or the municipality's, never
    mixed. Security incidents first, then urgent ones, then the chosen order."""
    args = request.args
    view = args.get("view") or "all"
    move = args.get("move") or "helpdesk"
    sort = args.get("sort") or "oldest"
    if view not in QUEUE_VIEWS or move not in QUEUE_MOVES or sort not in QUEUE_SORTS:
        abort(400)
    statuses = [s.value for s in QuestionStatus if s.whose_move == move]
    status = args.get("status") or ""
    if status:
        if status not in statuses:
            abort(400)
        statuses = [status]
    query = select(Question).where(policy.visible_questions_clause(current_user), Question.status.in_(statuses))
    if view == "unassigned":
        query = query.where(Question.owner_id.is_(None))
    elif view == "mine":
        query = query.where(Question.owner_id == current_user.id)
    category_slug = args.get("category") or ""
    if category_slug:
        query = query.join(Category).where(Category.slug == category_slug)
    municipality_id = id_arg("municipality", "市町")
    if municipality_id:
        query = query.where(Question.municipality_id == municipality_id)
    owner_id = id_arg("owner", "担当者")
    if owner_id:
        query = query.where(Question.owner_id == owner_id)
    priority = args.get("priority") or ""
    if priority:
        if priority not in {p.value for p in Priority}:
            abort(400)
        query = query.where(Question.priority == priority)
    kind = args.get("kind") or ""
    if kind:
        if kind not in {k.value for k in QuestionKind}:
            abort(400)
        query = query.where(Question.kind == kind)
    older_than = int_param(request.args, "days", "経過日数", None, maximum=MAX_AGE_DAYS)
    if older_than:
        query = query.where(Question.created_at <= utcnow() - timedelta(days=older_than))
    incident_first = sql_case((Question.kind == QuestionKind.INCIDENT.value, 0), else_=1)
    urgent_first = sql_case((Question.priority == Priority.URGENT.value, 0), else_=1)
    order = {"oldest": [Question.created_at.asc()], "newest": [Question.created_at.desc()],
             "activity": [Question.updated_at.desc()], "priority": [Question.created_at.asc()]}[sort]
    query = query.order_by(incident_first, urgent_first, *order, Question.id.asc()).options(*_LIST_LOADS)
    page = db.paginate(query, page=page_arg(), per_page=30, error_out=False)
    counts = dict(db.session.execute(
        select(Question.status, func.count()).where(policy.visible_questions_clause(current_user),
                                                    Question.status.in_(QuestionStatus.active()))
        .group_by(Question.status)).all())
    return render_template(
        "questions/queue.html", page=page, view=view, move=move, sort=sort, status=status,
        views=QUEUE_VIEWS, moves=QUEUE_MOVES, sorts=QUEUE_SORTS, counts=counts,
        category_slug=category_slug, municipality_id=municipality_id, owner_id=owner_id, priority=priority,
        kind=kind, days=older_than, news=seen.threads_with_news(current_user, [q.id for q in page.items]),
        categories=db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)).all(),
        municipalities=db.session.scalars(
            select(Municipality).where(Municipality.is_observer.is_(False)).order_by(Municipality.code)).all(),
        helpdesk_users=db.session.scalars(
            select(User).where(User.role == Role.HELPDESK.value).order_by(User.username)).all(),
        last_posts={q.id: _last_post(q) for q in page.items},
        now=utcnow(),
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


# --- canned replies -----------------------------------------------------------------------------

@bp.route("/helpdesk/canned", methods=["GET", "POST"])
@role_required(policy.can_manage_canned_replies)
def canned_replies():
    form = CannedReplyForm()
    if form.validate_on_submit():
        try:
            reply = question_service.save_canned_reply(current_user, None, form.title.data, form.body.data)
        except ServiceError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            flash(f"定型文「{reply.title}」を追加しました。", "success")
            return redirect(url_for("questions.canned_replies"))
    replies = db.session.scalars(select(CannedReply).order_by(CannedReply.title)).all()
    return render_template("questions/canned.html", form=form, replies=replies, delete_form=SimpleForm(formdata=None))


@bp.route("/helpdesk/canned/<int:reply_id>", methods=["GET", "POST"])
@role_required(policy.can_manage_canned_replies)
def edit_canned_reply(reply_id: int):
    reply = db.session.get(CannedReply, reply_id) or abort(404)
    form = CannedReplyForm(obj=None if request.method == "POST" else reply)
    if form.validate_on_submit():
        try:
            question_service.save_canned_reply(current_user, reply, form.title.data, form.body.data)
        except ServiceError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            flash(f"定型文「{reply.title}」を保存しました。", "success")
            return redirect(url_for("questions.canned_replies"))
    return render_template("questions/canned_edit.html", form=form, reply=reply)


@bp.post("/helpdesk/canned/<int:reply_id>/delete")
@role_required(policy.can_manage_canned_replies)
def delete_canned_reply(reply_id: int):
    reply = db.session.get(CannedReply, reply_id) or abort(404)
    if not SimpleForm().validate_on_submit():
        abort(400)
    title = reply.title
    db.session.delete(reply)
    db.session.commit()
    flash(f"定型文「{title}」を削除しました。", "success")
    return redirect(url_for("questions.canned_replies"))


@bp.post("/questions/<int:question_id>/link-case")
@login_required
def link_case(question_id: int):
    """「この事例で回答」: answer with a case the asking municipality may read; otherwise the form
    says why it cannot be linked for this municipality."""
    question = _visible_question_or_404(question_id)
    form = LinkCaseForm(prefix="link")
    if not form.validate_on_submit():
        abort(400)
    if not policy.is_helpdesk(current_user):
        abort(403)
    try:
        answer = question_service.answer_with_case(current_user, question, {
            "case_id": form.case_id.data, "body": form.body.data, "await_reply": bool(form.await_reply.data)})
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        apply_service_error(form, error)
        return _thread_page(question, link_case_form=form, status=422)
    db.session.commit()
    return _posted(question, f"answer-{answer.id}", "事例で回答しました。")
