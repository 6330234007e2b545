from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from app import policy
from app.extensions import db
from app.library import bp
from app.library.forms import DeleteForm, SynonymForm
from app.models import Category, SearchMiss, SearchSynonym
from app.params import search_params_from
from app.search.service import search_cases, similar_cases
from app.services import synonyms as synonym_service
from app.services.errors import ServiceError
from app.web import apply_service_error, commit_or_flash, role_required


@bp.get("/search")
@login_required
def search():
    params, errors = search_params_from(request.args)
    for message in errors.values():
        flash(message, "error")
    result = search_cases(current_user, params, log_misses=not errors)
    categories = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)).all()
    return render_template("library/search.html", params=params, result=result, categories=categories,
                           args=request.args)


@bp.post("/search/similar")
@login_required
def similar():
    """Published cases like the question being typed (title and body), as JSON for the form. A POST
    (with the CSRF token): what is typed into a draft never travels in a URL."""
    text = " ".join([(request.form.get("title") or "")[:200], (request.form.get("body") or "")[:2000]])
    hits = similar_cases(current_user, text, limit=5)
    return jsonify(results=[
        {"id": h.case.id, "title": h.case.title, "url": url_for("cases.show", case_id=h.case.id),
         "category": h.case.category.name, "snippet": str(h.snippet)}
        for h in hits
    ])


@bp.get("/search/misses")
@role_required(policy.is_helpdesk)
def misses():
    """Queries that found nothing, most frequent first (no user names are kept)."""
    rows = db.session.execute(
        select(SearchMiss.query, func.count().label("n"), func.max(SearchMiss.created_at).label("last"))
        .group_by(SearchMiss.query).order_by(func.count().desc(), func.max(SearchMiss.created_at).desc())
        .limit(200)
    ).all()
    return render_template("library/misses.html", rows=rows)


@bp.route("/search/synonyms", methods=["GET", "POST"])
@role_required(policy.is_helpdesk)
def synonyms():
    form = SynonymForm()
    if form.validate_on_submit():
        try:
            group = synonym_service.add_group(form.terms.data, actor=current_user)
        except ServiceError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            flash(f"同義語「{group.terms}」を追加しました。次の検索から使われます。", "success")
            return redirect(url_for("library.synonyms"))
    groups = db.session.scalars(select(SearchSynonym).order_by(SearchSynonym.source.desc(), SearchSynonym.id)).all()
    return render_template("library/synonyms.html", form=form, groups=groups, delete_form=DeleteForm(formdata=None))


@bp.post("/search/synonyms/<int:group_id>/delete")
@role_required(policy.is_helpdesk)
def delete_synonym(group_id: int):
    if not DeleteForm().validate_on_submit():
        abort(400)
    group = db.session.get(SearchSynonym, group_id) or abort(404)
    commit_or_flash(lambda: synonym_service.delete_group(group, actor=current_user), "同義語を削除しました。",
                    error_status_aborts=())
    return redirect(url_for("library.synonyms"))
