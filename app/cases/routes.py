from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice

from app import policy
from app.cases import bp
from app.cases.forms import (
    ArchiveForm, ArticleForm, CaseAttachmentsForm, CaseForm, ConsentForm, NameForm, PublishForm, ReportForm,
    SimpleForm,
)
from app.extensions import db
from app.models import (
    Case, CaseState, Category, ConsentRequest, ReportOutcome, ReportReason, SensitiveName, Tag,
    Visibility, utcnow,
)
from app.models.case import CaseKind
from app.rendering import render_markdown
from app.search.service import similar_cases
from app.services import attachments as attachment_service
from app.services import audit
from app.services import cases as case_service
from app.services import curation, history, masking, review
from app.services import questions as question_service
from app.services import notifications as notification_service
from app.services.errors import ServiceError
from app.params import parse_int
from app.web import (
    apply_service_error, commit_or_flash, local_path, page_arg, role_required, uploads_from,
)


def _visible_case_or_404(case_id: int) -> Case:
    case = policy.get_visible_case(current_user, case_id)
    if case is None:
        abort(404)
    return case


@bp.get("/cases")
@login_required
def index():
    state = request.args.get("state") or ""
    category_slug = request.args.get("category") or ""
    kind = request.args.get("kind") or ""
    if kind and kind not in {k.value for k in CaseKind}:
        abort(400)
    query = select(Case).where(policy.visible_cases_clause(current_user))
    if kind:
        query = query.where(Case.kind == kind)
    if not policy.sees_everything(current_user) and kind != CaseKind.ARTICLE.value:
        # 「自団体の事例」: the municipality's own cases; shared ones are found through 事例検索.
        # The prefecture's articles shared with it are listed apart (kind=article).
        query = query.where(Case.municipality_id == current_user.municipality_id)
    if state:
        if state not in {s.value for s in CaseState}:
            abort(400)
        query = query.where(Case.state == state)
    if category_slug:
        query = query.join(Category).where(Category.slug == category_slug)
    query = query.order_by(func.coalesce(Case.published_at, Case.updated_at).desc(), Case.id.desc()).options(
        selectinload(Case.tags), selectinload(Case.category), selectinload(Case.municipality)
    )
    page = db.paginate(query, page=page_arg(), per_page=20, error_out=False)
    categories = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)).all()
    return render_template(
        "cases/index.html", page=page, state=state, category_slug=category_slug, categories=categories,
        kind=kind, kinds=list(CaseKind),
    )


@bp.get("/cases/<int:case_id>")
@login_required
def show(case_id: int):
    case = _visible_case_or_404(case_id)
    # The page is rendered first and the view recorded after: a commit before rendering would
    # expire every loaded object and load it again. A view that cannot be recorded (the database
    # busy) does not cost the reader the page.
    page = _case_page(case)
    if case_service.record_view(current_user, case, request.headers.get("User-Agent", "")):
        try:
            db.session.commit()
        except Exception:
            db.session.rollback()
            current_app.logger.warning("case view of case %s not recorded", case.id)
    return page


RELATED_TEXT_CHARS = 300


def _case_page(case: Case, report_form=None, status: int = 200):
    consent_form = ConsentForm(formdata=None)
    consent_form.consent.data = case.sharing_consent
    # Related cases from the title and the opening of the question: the topic is there, and a long
    # log pasted further down would only make the page slow (each word is looked up).
    related = similar_cases(current_user, f"{case.title}\n{(case.issue or '')[:RELATED_TEXT_CHARS]}", limit=5,
                            exclude=case.id)
    return render_template(
        "cases/show.html", case=case, fields=case.text_fields, consent_form=consent_form, related=related,
        simple_form=SimpleForm(formdata=None), archive_form=ArchiveForm(formdata=None),
        helpful_count=case_service.helpful_count(case),
        already_helpful=case_service.has_marked_helpful(current_user, case),
        open_request=case_service.open_consent_request(case), wider_choices=[
            v for v in Visibility if v.width > case.consent_enum.width],
        following_category=notification_service.follows(current_user, "category", case.category.slug),
        newer_case=review.newer_case_for(current_user, case), past_due=review.is_past_due(case),
        last_checked=review.last_checked_label(case), answered_count=question_service.questions_answered(current_user, case),
        report_form=report_form or ReportForm(formdata=None), reports=review.reports_of_case(current_user, case),
        superseded_by=(case.superseded_by if case.superseded_by is not None
                       and policy.can_view_case(current_user, case.superseded_by) else None),
    ), status


@bp.route("/cases/<int:case_id>/edit", methods=["GET", "POST"])
@login_required
def edit(case_id: int):
    case = _visible_case_or_404(case_id)
    if not policy.can_edit_case(current_user, case):
        abort(403)
    form = _case_form(case, posted=request.method == "POST")
    fields = case.text_fields
    previews = None
    if form.validate_on_submit():
        if form.preview.data:
            previews = {name: render_markdown(getattr(form, name).data) for name, _ in fields}
        else:
            names = ["title", "category", "tags", *(name for name, _ in fields)]
            if case.is_article:
                names.append("article_type")
            data = {name: getattr(form, name).data for name in names}
            publishing = bool(form.save_and_publish.data)
            try:
                case_service.update_case(current_user, case, data)
            except ServiceError as error:
                db.session.rollback()
                apply_service_error(form, error)
            else:
                db.session.commit()
                noun = case.kind_label
                if publishing:
                    flash(f"{noun}を保存しました。公開範囲を選んで公開してください。", "success")
                    return redirect(url_for("cases.publish", case_id=case.id, _anchor="share"))
                flash(f"{noun}を保存しました。", "success")
                return redirect(url_for("cases.show", case_id=case.id, _anchor="case"))
    return _edit_page(case, form, previews=previews)


def _case_form(case: Case, posted: bool) -> CaseForm:
    """The editor's form: the posted values, or the case's; categories in use (and the case's own,
    retired); each text field labelled as this kind of case calls it."""
    form = CaseForm(obj=None if posted else case)
    form.category.choices = [SelectChoice("", "選択してください")] + [
        SelectChoice(c.slug, c.name) for c in curation.active_categories() or [case.category]]
    if case.category.slug not in {choice.value for choice in form.category.choices}:
        form.category.choices.append(SelectChoice(case.category.slug, f"{case.category.name}（使用停止）"))
    if not posted:
        form.category.data = case.category.slug
        form.tags.data = "、".join(t.name for t in case.tags)
    for name, label in case.text_fields:
        form[name].label.text = label  # an article's body is its ``issue``
    return form


def _edit_page(case: Case, form: CaseForm, previews=None, attachment_form=None, carried=None,
               attachment_error: str | None = None, status: int = 200):
    return render_template(
        "cases/edit.html", case=case, form=form, fields=case.text_fields, previews=previews,
        attachment_form=attachment_form or CaseAttachmentsForm(formdata=None),
        choosable=attachment_service.choosable_for_case(case),
        carried={a.id for a in case.attachments} if carried is None else carried, attachment_error=attachment_error,
    ), status


@bp.route("/cases/articles/new", methods=["GET", "POST"])
@role_required(policy.can_write_article)
def new_article():
    """「記事を書く」: お知らせ・手順書・注意喚起, written directly (no question); saved as a draft, then
    published through the same review of sensitive details as a case."""
    form = ArticleForm()
    form.category.choices = [SelectChoice("", "選択してください")] + [
        SelectChoice(c.slug, c.name) for c in curation.active_categories()]
    preview = None
    if form.validate_on_submit():
        if form.preview.data:
            preview = render_markdown(form.body.data or "")
        else:
            data = {name: getattr(form, name).data for name in ("title", "article_type", "category", "tags", "body")}
            uploads = uploads_from(form.files.name)
            try:
                case = case_service.create_article(current_user, data, uploads)
            except ServiceError as error:
                db.session.rollback()
                apply_service_error(form, error)
                if uploads:
                    flash("添付ファイルは保存されていません。もう一度選んでください。", "error")
            else:
                db.session.commit()
                if form.save_and_publish.data:
                    flash("記事を下書きとして保存しました。公開範囲を選んで公開してください。", "success")
                    return redirect(url_for("cases.publish", case_id=case.id, _anchor="share"))
                flash("記事を下書きとして保存しました。", "success")
                return redirect(url_for("cases.show", case_id=case.id, _anchor="case"))
    elif request.method == "POST":
        flash("送信を確認できませんでした（画面を開いてから時間が経った可能性があります）。内容を確かめて、もう一度送信してください。", "error")
    return render_template("cases/new_article.html", form=form, preview=preview)


# --- sharing: choose how far, review the findings, mask, publish --------------------------------

def _default_visibility(case: Case, mode: str) -> str:
    """What the page starts with: the case's visibility (a published case) or private, never wider
    than the owner's consent."""
    start = Visibility(case.visibility) if mode == "visibility" else Visibility.PRIVATE
    return Visibility.narrower(start, case.consent_enum).value


def _visibility_choices(case: Case, chosen: str | None) -> list[dict]:
    """Each visibility with who would read the case (``policy.readers_if_published``), whether the
    owner's consent allows it and, if not, why."""
    consent = case.consent_enum
    owner = case.municipality.name if case.municipality else "県ヘルプデスク"
    choices = []
    for visibility in Visibility:
        readers = policy.readers_if_published(case, visibility)
        others = [m for m in readers if m.id != case.municipality_id]
        choices.append({
            "value": visibility.value,
            "label": visibility.label,
            "checked": chosen == visibility.value,
            "allowed": visibility.width <= consent.width,
            "owner": owner,
            "members": [m for m in others if not m.is_observer],
            "observers": [m for m in others if m.is_observer],
            "others": others,
            "consent_label": consent.consent_label,
        })
    return choices


def _text_of(case: Case, field: str) -> str | None:
    if field == "tags":
        return "、".join(t.name for t in case.tags)
    if field in case_service.SHARED_FIELDS:
        return getattr(case, field) or ""
    return None


def _keep_from_form() -> dict[str, str]:
    """Findings to keep: ticked, or with a reason typed (a reason alone means keep). The same text
    found twice keeps the reason typed for either."""
    kept: dict[str, str] = {}
    for key in request.form:
        if key.startswith("keep_text_") and key[10:].isdigit():
            index = key[10:]
            reason = request.form.get(f"keep_reason_{index}", "")
            text = request.form.get(key, "")
            if (request.form.get(f"keep_{index}") or reason.strip()) and not (kept.get(text) or "").strip():
                kept[text] = reason
    return kept


def _entered_from_form() -> dict[str, dict]:
    """What the page held for each finding's text: the tick and the reason, as typed."""
    entered: dict[str, dict] = {}
    for key in request.form:
        if key.startswith("keep_text_") and key[10:].isdigit():
            index = key[10:]
            row = entered.setdefault(request.form.get(key, ""), {"ticked": False, "reason": ""})
            row["ticked"] = row["ticked"] or bool(request.form.get(f"keep_{index}"))
            row["reason"] = row["reason"] or request.form.get(f"keep_reason_{index}", "")
    return entered


def _sharing_page(case: Case, form: PublishForm, mode: str, status: int = 200, error=None, notice=None,
                  undo_token: str | None = None):
    """The review page. On a post (publish, mask, undo) everything typed and chosen is shown again:
    the visibility, anonymity, the ticks and the reasons."""
    anonymous = bool(form.anonymous.data) if form.anonymous.data is not None else case.anonymous
    findings = case_service.sensitive_findings(case, anonymous)
    kept = _keep_from_form() if request.method == "POST" else {}
    entered = _entered_from_form() if request.method == "POST" else {}
    open_flagged = error is not None and getattr(error, "code", "") == "sensitive_data"
    reasonless_flagged = error is not None and "keep" in getattr(error, "errors", {})
    by_field: dict[str, list[dict]] = {}
    for index, finding in enumerate(findings):
        text = finding["text"]
        finding["index"] = index
        finding["maskable"] = finding["field"] in case_service.SHARED_FIELDS
        finding["kept"] = text in kept
        finding["ticked"] = entered.get(text, {}).get("ticked", False)
        finding["reason"] = entered.get(text, {}).get("reason", "")
        source = _text_of(case, finding["field"])
        if source is not None:
            finding["before"] = source[max(0, finding["position"] - 20):finding["position"]]
            finding["after"] = source[finding["end"]:finding["end"] + 20]
        finding["problem"] = (
            ("開いて確認し、理由を書いて残すか、事例から外してください。" if finding["kind"] == case_service.UNCHECKED
             else "伏せるか、理由を書いて残してください。") if open_flagged and not finding["kept"]
            else "残す理由を書いてください。" if reasonless_flagged and finding["kept"] and not finding["reason"].strip()
            else "")
        by_field.setdefault(finding["field"], []).append(finding)
    open_maskable = [f for f in findings if f["maskable"] and not f["kept"]]
    message = (" ".join(error.errors.values()) or error.message) if error is not None else None
    fields = [("title", "件名")] + list(case.text_fields) + [("tags", "タグ"), ("attachments", "添付ファイル")]
    return render_template(
        "cases/publish.html", case=case, form=form, mode=mode, findings=findings, by_field=by_field,
        fields=fields, error=message, notice=notice, undo_token=undo_token, open_maskable=open_maskable,
        choices=_visibility_choices(case, form.visibility.data),
    ), status


@bp.route("/cases/<int:case_id>/publish", methods=["GET", "POST"])
@login_required
def publish(case_id: int):
    """Choose how far to share, review the sensitive-data findings, publish."""
    return _share(case_id, "publish")


@bp.route("/cases/<int:case_id>/visibility", methods=["GET", "POST"])
@login_required
def visibility(case_id: int):
    return _share(case_id, "visibility")


def _share(case_id: int, mode: str):
    case = _visible_case_or_404(case_id)
    allowed = policy.can_publish_case if mode == "publish" else policy.can_change_visibility
    if not allowed(current_user, case):
        if mode == "publish" and case.state == CaseState.PUBLISHED.value and policy.is_helpdesk(current_user):
            flash("この事例はすでに公開されています。", "error")
            return redirect(url_for("cases.show", case_id=case.id))
        abort(403)
    form = PublishForm()
    if request.method == "GET":
        chosen = request.args.get("visibility")
        if chosen in {v.value for v in Visibility}:
            form.visibility.data = Visibility.narrower(Visibility(chosen), case.consent_enum).value
        else:
            form.visibility.data = _default_visibility(case, mode)
        form.anonymous.data = request.args.get("anonymous") == "1" if chosen else case.anonymous
        return _sharing_page(case, form, mode)
    if not form.validate_on_submit():
        abort(400)
    keep = [{"text": text, "reason": reason} for text, reason in _keep_from_form().items()]
    try:
        action = case_service.publish_case if mode == "publish" else case_service.change_visibility
        action(current_user, case, form.visibility.data, bool(form.anonymous.data), keep)
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        return _sharing_page(case, form, mode, status=409 if error.status == 409 else 422, error=error)
    db.session.commit()
    flash(f"{case.kind_label}を公開しました。" if mode == "publish" else "公開範囲を変更しました。", "success")
    return redirect(url_for("cases.show", case_id=case.id))


def _review_post(case_id: int, act, done):
    """Mask, mask all, undo: one change to the case's text, then the review again with everything
    the page held (visibility, anonymity, ticks, reasons), landing on the findings."""
    case = _visible_case_or_404(case_id)
    if not policy.can_edit_case(current_user, case):
        abort(403)
    form = PublishForm()
    if not form.validate_on_submit():
        abort(400)
    mode = "visibility" if request.form.get("mode") == "visibility" else "publish"
    if form.visibility.data not in {v.value for v in Visibility}:
        form.visibility.data = _default_visibility(case, mode)
    try:
        result = act(case, form)
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        return _sharing_page(case, form, mode, status=409 if error.status == 409 else 422, error=error)
    db.session.commit()
    notice, token = done(case, result)
    return _sharing_page(case, form, mode, notice=notice, undo_token=token)


def _masked_notice(case: Case, masked: list) -> tuple[str, str | None]:
    if len(masked) == 1:
        item = masked[0]
        notice = f"{item.field_label}の{item.label}を {item.placeholder} に置き換えました。"
    else:
        counts: dict[str, int] = {}
        for item in masked:
            counts[item.field_label] = counts.get(item.field_label, 0) + 1
        notice = f"{len(masked)}件を伏せ字にしました（" + "、".join(f"{k} {v}件" for k, v in counts.items()) + "）。"
    token = masking.undo_token(current_user, case, masked) if masking.can_undo(case) else None
    return notice, token


def _finding_target() -> tuple[str, int, str]:
    """The finding a 「伏せる」 button names (its index in the review), or the fields of one."""
    index = request.form.get("mask", "")
    if index.isdigit():
        field, _, position = request.form.get(f"finding_{index}", "").partition(":")
        text = request.form.get(f"keep_text_{index}", "")
    else:
        field, position, text = request.form.get("field", ""), request.form.get("position"), request.form.get("text", "")
    parsed = parse_int(position, minimum=0)
    return field, -1 if parsed is None else parsed, text


@bp.post("/cases/<int:case_id>/mask")
@login_required
def mask(case_id: int):
    """Replace one finding with its placeholder (「伏せる」), then the review again."""
    def act(case, form):
        field, position, text = _finding_target()
        return masking.mask_one(current_user, case, field, position, text)
    return _review_post(case_id, act, _masked_notice)


@bp.post("/cases/<int:case_id>/mask-all")
@login_required
def mask_all(case_id: int):
    """「すべて伏せる」: every finding of the text fields that is not kept, in one post."""
    def act(case, form):
        return masking.mask_all(current_user, case, bool(form.anonymous.data), _keep_from_form())
    return _review_post(case_id, act, _masked_notice)


@bp.post("/cases/<int:case_id>/unmask")
@login_required
def unmask(case_id: int):
    """「元に戻す」: the text the last mask replaced, if the fields are as the mask left them."""
    def act(case, form):
        return masking.undo(current_user, case, request.form.get("undo", ""))
    return _review_post(case_id, act, lambda case, restored: (f"伏せ字を元に戻しました（{len(restored)}件）。", None))


@bp.get("/cases/<int:case_id>/print")
@login_required
def print_view(case_id: int):
    """The case for 回覧 and 決裁: no menu or buttons, with the date and the address; only for those
    who may read it (anyone else: not found), the owner hidden where the case is anonymous."""
    case = _visible_case_or_404(case_id)
    return render_template(
        "cases/print.html", case=case, fields=case.text_fields, printed_at=utcnow(),
        address=url_for("cases.show", case_id=case.id, _external=True),
    )


@bp.post("/cases/<int:case_id>/consent")
@login_required
def consent(case_id: int):
    case = _visible_case_or_404(case_id)
    form = ConsentForm()
    if not form.validate_on_submit():
        abort(400)
    commit_or_flash(lambda: case_service.change_consent(current_user, case, form.consent.data),
                    "共有への同意を変更しました。")
    return redirect(url_for("cases.show", case_id=case.id))


@bp.post("/cases/<int:case_id>/archive")
@login_required
def archive(case_id: int):
    case = _visible_case_or_404(case_id)
    form = ArchiveForm()
    if not form.validate_on_submit():
        abort(400)
    commit_or_flash(lambda: case_service.archive_case(current_user, case, form.reason.data or ""),
                    "事例をアーカイブしました。ヘルプデスク以外からは見えなくなり、検索からも外れます。")
    return redirect(url_for("cases.show", case_id=case.id))


@bp.post("/cases/<int:case_id>/restore")
@login_required
def restore(case_id: int):
    case = _visible_case_or_404(case_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: case_service.restore_case(current_user, case), "事例を下書きに戻しました。")
    return redirect(url_for("cases.show", case_id=case.id))


@bp.post("/cases/<int:case_id>/helpful")
@login_required
def helpful(case_id: int):
    case = _visible_case_or_404(case_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    try:
        case_service.mark_helpful(current_user, case)
    except ServiceError as error:
        db.session.rollback()
        abort(error.status if error.status in (403, 409) else 400)
    db.session.commit()
    flash("「参考になった」を記録しました。", "success")
    return redirect(url_for("cases.show", case_id=case.id))


@bp.route("/cases/sensitive-names", methods=["GET", "POST"])
@role_required(policy.is_helpdesk)
def sensitive_names():
    """Personal names the check before sharing looks for."""
    form = NameForm()
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        if len(name) < 2 or len(name) > 100:
            form.name.errors = ["氏名は2〜100文字で入力してください。"]
        elif db.session.scalar(select(SensitiveName.id).where(SensitiveName.name == name)):
            form.name.errors = [f"「{name}」はすでに登録されています。"]
        else:
            db.session.add(SensitiveName(name=name))
            audit.record(current_user, "name.add", None, name)
            db.session.commit()
            flash(f"「{name}」を登録しました。", "success")
            return redirect(url_for("cases.sensitive_names"))
    names = db.session.scalars(select(SensitiveName).order_by(SensitiveName.name)).all()
    return render_template("cases/names.html", form=form, names=names, delete_form=SimpleForm(formdata=None))


@bp.post("/cases/sensitive-names/<int:name_id>/delete")
@role_required(policy.is_helpdesk)
def delete_sensitive_name(name_id: int):
    if not SimpleForm().validate_on_submit():
        abort(400)
    row = db.session.get(SensitiveName, name_id) or abort(404)
    audit.record(current_user, "name.delete", None, row.name)
    db.session.delete(row)
    db.session.commit()
    flash("削除しました。", "success")
    return redirect(url_for("cases.sensitive_names"))


@bp.post("/cases/<int:case_id>/attachments")
@login_required
def attachments(case_id: int):
    """Choose the files the case carries and add new ones (the help desk, while curating)."""
    case = _visible_case_or_404(case_id)
    form = CaseAttachmentsForm()
    if not form.validate_on_submit():
        abort(400)
    chosen = request.form.getlist("attachment")
    uploads = uploads_from(form.files.name)
    try:
        case_service.update_attachments(current_user, case, chosen, uploads, files_checked=bool(form.files_checked.data))
    except ServiceError as error:
        # The page again, the message beside the files (not at the top of a page scrolled down to
        # them), the ticks as they were; a browser cannot keep a chosen file, so say so.
        db.session.rollback()
        if error.status == 403:
            abort(403)
        message = " ".join(error.errors.values()) or error.message
        if uploads:
            message += " 新しく付けるファイルは、もう一度選んでください。"
        ticked = {i for i in map(parse_int, chosen) if i is not None}
        return _edit_page(case, _case_form(case, posted=False), attachment_form=form, carried=ticked,
                          attachment_error=message, status=error.status)
    db.session.commit()
    flash("添付ファイルを保存しました。", "inline-attachments")
    return redirect(url_for("cases.edit", case_id=case.id, _anchor="attachments"))


@bp.post("/cases/<int:case_id>/consent-requests")
@login_required
def request_consent(case_id: int):
    """The help desk asks the owning municipality to agree to wider sharing."""
    case = _visible_case_or_404(case_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: case_service.request_wider_consent(
        current_user, case, request.form.get("requested"), request.form.get("reason", "")),
        "所有する市町に、共有範囲を広げてよいか依頼しました。返事があるとお知らせが届きます。", error_status_aborts=(403,))
    return redirect(url_for("cases.show", case_id=case.id, _anchor="consent"))


@bp.post("/cases/<int:case_id>/consent-requests/<int:request_id>")
@login_required
def answer_consent(case_id: int, request_id: int):
    """The owner's staff accept or decline the help desk's request."""
    case = _visible_case_or_404(case_id)
    consent_request = db.session.get(ConsentRequest, request_id)
    if consent_request is None or consent_request.case_id != case.id or not SimpleForm().validate_on_submit():
        abort(404)
    decision = request.form.get("decision")
    if decision not in ("accept", "decline"):
        abort(400)
    commit_or_flash(lambda: case_service.answer_consent_request(current_user, consent_request, decision == "accept"),
                    "共有範囲を広げることに同意しました。" if decision == "accept" else "依頼をお断りしました。")
    return redirect(url_for("cases.show", case_id=case.id, _anchor="consent"))


# --- history ----------------------------------------------------------------------------------------

def _history_case_or_404(case_id: int) -> Case:
    case = _visible_case_or_404(case_id)
    if not policy.can_read_case_history(current_user, case):
        abort(403)
    return case


@bp.get("/cases/<int:case_id>/history")
@login_required
def history_view(case_id: int):
    """Every revision: who, when, what; pick two to compare."""
    case = _history_case_or_404(case_id)
    revisions = history.revisions(db.session, case)
    readable = {r.id for r in revisions if policy.can_read_revision_text(current_user, case, r)}
    return render_template("cases/history.html", case=case, revisions=revisions, readable=readable,
                           simple_form=SimpleForm(formdata=None))


@bp.get("/cases/<int:case_id>/history/compare")
@login_required
def history_compare(case_id: int):
    """Two revisions side by side; within a changed line, the characters that changed."""
    case = _history_case_or_404(case_id)
    numbers = [parse_int(request.args.get(name), minimum=1) for name in ("a", "b")]
    if any(n is None for n in numbers):
        flash("比べる2つの版を選んでください。", "error")
        return redirect(url_for("cases.history_view", case_id=case.id))
    older_no, newer_no = sorted(numbers)
    by_number = {r.number: r for r in history.revisions(db.session, case)}
    older, newer = by_number.get(older_no), by_number.get(newer_no)
    if older is None or newer is None:
        abort(404)
    if not (policy.can_read_revision_text(current_user, case, older)
            and policy.can_read_revision_text(current_user, case, newer)):
        abort(403)
    return render_template("cases/compare.html", case=case, older=older, newer=newer,
                           fields=history.compare(db.session, older, newer), simple_form=SimpleForm(formdata=None))


@bp.post("/cases/<int:case_id>/history/<int:number>/restore")
@login_required
def history_restore(case_id: int, number: int):
    """Bring an earlier revision back as a new one (through the same checks as an edit)."""
    case = _history_case_or_404(case_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    revision = next((r for r in history.revisions(db.session, case) if r.number == number), None)
    if revision is None:
        abort(404)
    if commit_or_flash(lambda: case_service.restore_revision(current_user, case, revision),
                       f"版{number}の内容を新しい版として復元しました。", error_status_aborts=(403,)):
        return redirect(url_for("cases.show", case_id=case.id))
    return redirect(url_for("cases.history_view", case_id=case.id))


# --- review, reports, supersedes ----------------------------------------------------------------------

@bp.get("/cases/review")
@role_required(policy.can_review_cases)
def review_queue():
    """The help desk's list: cases past their review date, and readers' open reports."""
    return render_template("cases/review.html", overdue=review.past_due(current_user),
                           reports=review.open_reports(current_user), outcomes=list(ReportOutcome),
                           simple_form=SimpleForm(formdata=None), last_checked=review.last_checked_label)


@bp.post("/cases/<int:case_id>/confirm")
@login_required
def confirm(case_id: int):
    """「内容を確認した（変更なし）」: a new review date."""
    case = _visible_case_or_404(case_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: review.confirm(current_user, case),
                    lambda c: f"確認済みにしました。次の見直しは {c.review_due.year}年{c.review_due.month}月{c.review_due.day}日です。")
    back = local_path(request.form.get("back"))
    return redirect(back or url_for("cases.show", case_id=case.id))


@bp.post("/cases/<int:case_id>/reports")
@login_required
def report(case_id: int):
    """A reader reports the case as outdated, wrong or incomplete."""
    case = _visible_case_or_404(case_id)
    form = ReportForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        review.report(current_user, case, form.reason.data, form.comment.data)
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        apply_service_error(form, error)
        return _case_page(case, report_form=form, status=422 if error.status == 422 else 409)
    db.session.commit()
    flash("指摘を送りました。ヘルプデスクが対応すると、お知らせで結果をお伝えします。", "success")
    return redirect(url_for("cases.show", case_id=case.id, _anchor="reports"))


@bp.post("/cases/reports/<int:report_id>")
@role_required(policy.can_handle_case_reports)
def answer_report(report_id: int):
    row = review.get_report(report_id)
    if row is None or not SimpleForm().validate_on_submit():
        abort(404)
    commit_or_flash(lambda: review.answer_report(current_user, row, request.form.get("outcome"),
                                                 request.form.get("note", "")),
                    "指摘への対応を記録し、指摘した人に知らせました。")
    return redirect(url_for("cases.review_queue", _anchor="reports"))


@bp.post("/cases/<int:case_id>/supersede")
@login_required
def supersede(case_id: int):
    case = _visible_case_or_404(case_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    commit_or_flash(lambda: review.set_superseded_by(current_user, case, request.form.get("superseded_by", "").strip()),
                    lambda c: (f"事例 #{c.superseded_by_id} に置き換えられた事例として設定しました。" if c.superseded_by_id
                               else "置き換えの設定を外しました。"))
    return redirect(url_for("cases.show", case_id=case.id, _anchor="lifecycle"))


# --- tags and categories ----------------------------------------------------------------------------------

@bp.get("/cases/taxonomy")
@role_required(policy.can_curate_taxonomy)
def taxonomy():
    """Tags and categories with their counts: rename, merge, retire; review periods."""
    return render_template("cases/taxonomy.html", tags=curation.tag_rows(current_user),
                           categories=curation.category_rows(current_user),
                           active_categories=curation.active_categories(), simple_form=SimpleForm(formdata=None))


@bp.post("/cases/taxonomy/tags/<int:tag_id>")
@role_required(policy.can_curate_taxonomy)
def taxonomy_tag(tag_id: int):
    tag = db.session.get(Tag, tag_id)
    if tag is None or not SimpleForm().validate_on_submit():
        abort(404)
    action = request.form.get("action")
    actions = {
        "rename": (lambda: curation.rename_tag(current_user, tag, request.form.get("name")), "タグの名前を変えました。"),
        "merge": (lambda: curation.merge_tag(current_user, tag, request.form.get("target")),
                  "タグを統合しました。元の名前は検索の同義語として残ります。"),
        "retire": (lambda: curation.retire_tag(current_user, tag, True), "タグを使用停止にしました。"),
        "unretire": (lambda: curation.retire_tag(current_user, tag, False), "タグを使用中に戻しました。"),
    }
    if action not in actions:
        abort(400)
    commit_or_flash(*actions[action])
    return redirect(url_for("cases.taxonomy", _anchor=f"tag-{tag.id}"))


@bp.post("/cases/taxonomy/categories/<int:category_id>")
@role_required(policy.can_curate_taxonomy)
def taxonomy_category(category_id: int):
    category = db.session.get(Category, category_id)
    if category is None or not SimpleForm().validate_on_submit():
        abort(404)
    action = request.form.get("action")
    actions = {
        "rename": (lambda: curation.rename_category(current_user, category, request.form.get("name")),
                   "分類の名前を変えました。"),
        "merge": (lambda: curation.merge_category(current_user, category, request.form.get("target")),
                  "分類を統合しました。元の名前は検索の同義語として残ります。"),
        "retire": (lambda: curation.retire_category(current_user, category, True), "分類を使用停止にしました。"),
        "unretire": (lambda: curation.retire_category(current_user, category, False), "分類を使用中に戻しました。"),
        "review": (lambda: review.set_review_months(current_user, category, request.form.get("review_months", "").strip()),
                   "見直しの間隔を保存しました。"),
    }
    if action not in actions:
        abort(400)
    commit_or_flash(*actions[action])
    return redirect(url_for("cases.taxonomy", _anchor=f"category-{category.id}"))
