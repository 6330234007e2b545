from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import policy
from app.cases import bp
from app.cases.forms import ArchiveForm, CaseForm, ConsentForm, NameForm, PublishForm, SimpleForm
from app.extensions import db
from app.models import CASE_TEXT_FIELDS, Case, CaseState, Category, SensitiveName, Visibility
from app.rendering import render_markdown
from app.search.service import similar_cases
from app.services import audit
from app.services import cases as case_service
from app.services.errors import ServiceError
from app.params import parse_int
from app.web import apply_service_error, category_choices, commit_or_flash, page_arg, role_required


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
    query = select(Case).where(policy.visible_cases_clause(current_user))
    if not policy.sees_everything(current_user):
        # 「自団体の事例」: the municipality's own cases; shared ones are found through 事例検索.
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
        "cases/index.html", page=page, state=state, category_slug=category_slug, categories=categories
    )


@bp.get("/cases/<int:case_id>")
@login_required
def show(case_id: int):
    case = _visible_case_or_404(case_id)
    consent_form = ConsentForm(formdata=None)
    consent_form.consent.data = case.sharing_consent
    related = similar_cases(current_user, f"{case.title}\n{case.issue}", limit=5, exclude=case.id)
    return render_template(
        "cases/show.html", case=case, fields=CASE_TEXT_FIELDS, consent_form=consent_form, related=related,
        simple_form=SimpleForm(formdata=None), archive_form=ArchiveForm(formdata=None),
        helpful_count=case_service.helpful_count(case),
        already_helpful=case_service.has_marked_helpful(current_user, case),
    )


@bp.route("/cases/<int:case_id>/edit", methods=["GET", "POST"])
@login_required
def edit(case_id: int):
    case = _visible_case_or_404(case_id)
    if not policy.can_edit_case(current_user, case):
        abort(403)
    form = CaseForm(obj=None if request.method == "POST" else case)
    form.category.choices = category_choices()
    if request.method == "GET":
        form.category.data = case.category.slug
        form.tags.data = "、".join(t.name for t in case.tags)
    previews = None
    if form.validate_on_submit():
        if form.preview.data:
            previews = {name: render_markdown(getattr(form, name).data) for name, _ in CASE_TEXT_FIELDS}
        else:
            data = {name: getattr(form, name).data for name in
                    ("title", "category", "tags", "issue", "environment", "cause", "resolution")}
            publishing = bool(form.save_and_publish.data)
            try:
                case_service.update_case(current_user, case, data)
            except ServiceError as error:
                db.session.rollback()
                apply_service_error(form, error)
            else:
                db.session.commit()
                if publishing:
                    flash("事例を保存しました。公開範囲を選んで公開してください。", "success")
                    return redirect(url_for("cases.publish", case_id=case.id, _anchor="share"))
                flash("事例を保存しました。", "success")
                return redirect(url_for("cases.show", case_id=case.id, _anchor="case"))
    return render_template(
        "cases/edit.html", case=case, form=form, fields=CASE_TEXT_FIELDS, previews=previews,
    )


def _sharing_page(case: Case, form: PublishForm, mode: str, status: int = 200, error: str | None = None):
    anonymous = bool(form.anonymous.data) if form.anonymous.data is not None else case.anonymous
    findings = case_service.sensitive_findings(case, anonymous)
    by_field = {}
    for index, finding in enumerate(findings):
        finding["index"] = index
        by_field.setdefault(finding["field"], []).append(finding)
    return render_template(
        "cases/publish.html", case=case, form=form, mode=mode, findings=findings, by_field=by_field,
        fields=[("title", "件名")] + list(CASE_TEXT_FIELDS) + [("tags", "タグ")], error=error,
        kept={k: v for k, v in _keep_from_form().items()} if request.method == "POST" else {},
        mask_form=SimpleForm(formdata=None),
    ), status


def _keep_from_form() -> dict[str, str]:
    """Findings to keep: ticked, or with a reason typed (a reason alone means keep)."""
    kept = {}
    for key in request.form:
        if key.startswith("keep_text_") and key[10:].isdigit():
            index = key[10:]
            reason = request.form.get(f"keep_reason_{index}", "")
            if request.form.get(f"keep_{index}") or reason.strip():
                kept[request.form.get(key, "")] = reason
    return kept


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
        form.visibility.data = chosen if chosen in {v.value for v in Visibility} else (
            case.visibility if mode == "visibility" else Visibility.PRIVATE.value)
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
        message = " ".join(error.errors.values()) or error.message
        return _sharing_page(case, form, mode, status=409 if error.status == 409 else 422, error=message)
    db.session.commit()
    flash("事例を公開しました。" if mode == "publish" else "公開範囲を変更しました。", "success")
    return redirect(url_for("cases.show", case_id=case.id))


@bp.post("/cases/<int:case_id>/mask")
@login_required
def mask(case_id: int):
    """Replace one finding with its placeholder, then back to the review."""
    case = _visible_case_or_404(case_id)
    if not SimpleForm().validate_on_submit():
        abort(400)
    position = parse_int(request.form.get("position"), minimum=0)
    commit_or_flash(lambda: case_service.mask_finding(
        current_user, case, request.form.get("field", ""), -1 if position is None else position,
        request.form.get("text", "")), "伏せ字にしました。")
    mode = "visibility" if request.form.get("mode") == "visibility" else "publish"
    chosen = request.form.get("visibility")
    return redirect(url_for(f"cases.{mode}", case_id=case.id, _anchor="findings",
                            **({"visibility": chosen, "anonymous": request.form.get("anonymous", "")} if chosen else {})))


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
