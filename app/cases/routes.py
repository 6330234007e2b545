from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import policy
from app.cases import bp
from app.cases.forms import CaseForm, PublishForm
from app.extensions import db
from app.models import CASE_TEXT_FIELDS, Case, CaseState, Category
from app.rendering import render_markdown
from app.services import cases as case_service
from app.services.errors import ServiceError
from app.web import apply_service_error, category_choices, int_arg


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
    page = db.paginate(query, page=int_arg("page", 1), per_page=20, error_out=False)
    categories = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)).all()
    return render_template(
        "cases/index.html", page=page, state=state, category_slug=category_slug, categories=categories
    )


@bp.get("/cases/<int:case_id>")
@login_required
def show(case_id: int):
    case = _visible_case_or_404(case_id)
    return render_template(
        "cases/show.html", case=case, fields=CASE_TEXT_FIELDS, publish_form=PublishForm(formdata=None)
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
                if publishing:
                    case_service.publish_case(current_user, case)
            except ServiceError as error:
                db.session.rollback()
                apply_service_error(form, error)
            else:
                db.session.commit()
                flash("事例を保存して公開しました。" if publishing else "事例を保存しました。", "success")
                return redirect(url_for("cases.show", case_id=case.id, _anchor="case"))
    return render_template(
        "cases/edit.html", case=case, form=form, fields=CASE_TEXT_FIELDS, previews=previews,
        publish_form=PublishForm(formdata=None),
    )


@bp.post("/cases/<int:case_id>/publish")
@login_required
def publish(case_id: int):
    case = _visible_case_or_404(case_id)
    form = PublishForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        case_service.publish_case(current_user, case)
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        message = " ".join(error.errors.values()) or error.message
        flash(f"公開できません: {message}", "error")
        return redirect(url_for("cases.edit", case_id=case_id) if error.errors else url_for("cases.show", case_id=case_id))
    db.session.commit()
    flash("事例を公開しました。", "success")
    return redirect(url_for("cases.show", case_id=case.id))
