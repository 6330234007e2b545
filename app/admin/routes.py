from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from app import policy
from app.admin import bp
from app.admin.audit_format import format_summary
from app.admin.forms import (
    AssignForm, CategoryForm, GroupMemberForm, MunicipalityForm, NeighbourForm, ResetPasswordForm, ToggleForm,
    UnlinkForm, UserForm,
)
from app.extensions import db
from app.models import AuditEvent, Category, Municipality, MunicipalityGroup, Role, User
from app.models.municipality import neighbour_map
from app.services import accounts
from app.services import municipalities as municipality_service
from app.services import taxonomy as taxonomy_service
from app.services.errors import ServiceError
from app.services.audit import ACTION_LABELS
from app.params import parse_int
from app.web import apply_service_error, commit_or_flash, page_arg, role_required


def _municipalities() -> list[Municipality]:
    return db.session.scalars(select(Municipality).order_by(Municipality.is_observer, Municipality.code)).all()


@bp.get("/municipalities")
@role_required(policy.can_administer)
def municipalities():
    items = _municipalities()
    form = NeighbourForm()
    choices = [SelectChoice("", "選択してください")] + [SelectChoice(str(m.id), f"{m.name}（{m.code}）") for m in items]
    form.first.choices = choices
    form.second.choices = choices
    by_id = {m.id: m for m in items}
    neighbours = {
        mid: sorted((by_id[n] for n in ids), key=lambda m: m.code)
        for mid, ids in neighbour_map().items()
    }
    return render_template(
        "admin/municipalities.html", municipalities=items, neighbours=neighbours, form=form,
        unlink_form=UnlinkForm(formdata=None), add_form=MunicipalityForm(formdata=None),
    )


def _get_municipality(municipality_id) -> Municipality | None:
    if isinstance(municipality_id, str):
        municipality_id = parse_int(municipality_id)
    return db.session.get(Municipality, municipality_id) if municipality_id else None


def _get_municipality_or_400(municipality_id) -> Municipality:
    municipality = _get_municipality(municipality_id)
    if municipality is None:
        abort(400)
    return municipality


@bp.post("/neighbours")
@role_required(policy.can_administer)
def link():
    form = NeighbourForm()
    form.first.choices = form.second.choices = []
    if not form.validate_on_submit():
        abort(400)
    a, b = _get_municipality(form.first.data), _get_municipality(form.second.data)
    if a is None or b is None:
        flash("近隣に設定する2つの市町を選んでください。", "error")
        return redirect(url_for("admin.municipalities"))
    commit_or_flash(lambda: municipality_service.link(a, b, actor=current_user),
                    f"{a.name}と{b.name}を近隣に設定しました。")
    return redirect(url_for("admin.municipalities"))


@bp.post("/neighbours/<int:first_id>/<int:second_id>/delete")
@role_required(policy.can_administer)
def unlink(first_id: int, second_id: int):
    if not UnlinkForm().validate_on_submit():
        abort(400)
    a, b = _get_municipality_or_400(first_id), _get_municipality_or_400(second_id)
    commit_or_flash(lambda: municipality_service.unlink(a, b, actor=current_user),
                    f"{a.name}と{b.name}の近隣設定を解除しました。")
    return redirect(url_for("admin.municipalities"))


@bp.route("/categories", methods=["GET", "POST"])
@role_required(policy.can_administer)
def categories():
    form = CategoryForm()
    if form.validate_on_submit():
        try:
            category = taxonomy_service.add_category(form.slug.data, form.name.data, actor=current_user)
        except ServiceError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            flash(f"分類「{category.name}」を追加しました。", "success")
            return redirect(url_for("admin.categories"))
    items = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)).all()
    return render_template("admin/categories.html", categories=items, form=form)


@bp.get("/taxonomy/unused")
@role_required(policy.can_list_unused_taxonomy)
def unused_taxonomy():
    """Tags and categories that no case or question uses (candidates to retire)."""
    from app.services import curation

    return render_template("admin/unused.html", tags=curation.tag_rows(current_user, only_unused=True),
                           categories=curation.category_rows(current_user, only_unused=True))


@bp.get("/audit")
@role_required(policy.can_administer)
def audit_log():
    """The audit log, newest first, read-only (filter by action)."""
    action = request.args.get("action") or ""
    query = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if action:
        query = query.where(AuditEvent.action == action)
    page = db.paginate(query, page=page_arg(), per_page=50, error_out=False)
    return render_template("admin/audit.html", page=page, action=action, labels=ACTION_LABELS,
                           summary=format_summary)


# --- accounts ---------------------------------------------------------------------------------

def _role_choices():
    return [SelectChoice(r.value, r.label) for r in Role]


def _show_service_error(form, error: ServiceError) -> None:
    """The service's messages, with role codes written for the command line (閲覧者（viewer）)
    shown as the page names the roles (閲覧者)."""
    for name, message in list(error.errors.items()):
        for role in Role:
            message = message.replace(f"{role.label}（{role.value}）", role.label)
        error.errors[name] = message
    apply_service_error(form, error)


def _municipality_choices():
    return [SelectChoice("", "なし（県・管理者）")] + [
        SelectChoice(str(m.id), f"{m.name}{'（オブザーバー）' if m.is_observer else ''}") for m in _municipalities()
    ]


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/users", methods=["GET", "POST"])
@role_required(policy.can_administer)
def users():
    form = UserForm()
    form.role.choices, form.municipality.choices = _role_choices(), _municipality_choices()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.username.data, form.password.data or "", form.role.data,
                                        _get_municipality(form.municipality.data),
                                        display_name=(form.display_name.data or "").strip(), actor=current_user)
        except ServiceError as error:
            db.session.rollback()
            _show_service_error(form, error)
        else:
            db.session.commit()
            flash(f"アカウント {user.username} を作成しました。", "success")
            return redirect(url_for("admin.users"))
    listing = db.session.scalars(select(User).order_by(User.is_enabled.desc(), User.username)).all()
    return render_template("admin/users.html", form=form, users=listing)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@role_required(policy.can_administer)
def user_detail(user_id: int):
    user = _user_or_404(user_id)
    assign_form = AssignForm(prefix="assign")
    assign_form.role.choices, assign_form.municipality.choices = _role_choices(), _municipality_choices()
    password_form = ResetPasswordForm(prefix="password")
    if request.method == "GET" or not assign_form.submit.data:
        assign_form.role.data = user.role
        assign_form.municipality.data = str(user.municipality_id or "")
        assign_form.display_name.data = user.display_name
    if request.method == "GET":
        pass
    elif assign_form.submit.data and assign_form.validate_on_submit():
        try:
            accounts.assign(user, assign_form.role.data, _get_municipality(assign_form.municipality.data),
                            actor=current_user, display_name=assign_form.display_name.data)
        except ServiceError as error:
            db.session.rollback()
            _show_service_error(assign_form, error)
        else:
            db.session.commit()
            flash("役割・所属を変更しました。権限はすぐに切り替わります。", "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    elif password_form.submit.data and password_form.validate_on_submit():
        try:
            accounts.reset_password(user, password_form.password.data or "", actor=current_user)
        except ServiceError as error:
            db.session.rollback()
            apply_service_error(password_form, error)
        else:
            db.session.commit()
            flash("パスワードを再設定しました。本人にお伝えください。", "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return render_template("admin/user.html", user=user, assign_form=assign_form, password_form=password_form,
                           toggle_form=ToggleForm(formdata=None))


@bp.post("/users/<int:user_id>/toggle")
@role_required(policy.can_administer)
def toggle_user(user_id: int):
    user = _user_or_404(user_id)
    form = ToggleForm()
    if not form.validate_on_submit() or form.action.data not in ("disable", "enable"):
        abort(400)
    if user.id == current_user.id:
        flash("自分のアカウントは無効にできません。", "error")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    if form.action.data == "disable":
        commit_or_flash(lambda: accounts.disable_user(user, actor=current_user),
                        f"{user.username} を無効にしました（ログインとすべてのセッション・API トークンは使えなくなります）。")
    else:
        commit_or_flash(lambda: accounts.enable_user(user, actor=current_user),
                        f"{user.username} を有効にしました（API トークンは作り直してください）。")
    return redirect(url_for("admin.user_detail", user_id=user.id))


# --- municipalities and groups ----------------------------------------------------------------

@bp.post("/municipalities")
@role_required(policy.can_administer)
def add_municipality():
    form = MunicipalityForm()
    if not form.validate_on_submit():
        abort(400)
    commit_or_flash(
        lambda: municipality_service.add_municipality(
            form.code.data, form.name.data, prefecture=(form.prefecture.data or "広島県").strip(),
            observer=bool(form.observer.data), roman_names=form.roman_names.data or "", actor=current_user),
        lambda added: f"{added.name}（{added.code}）を追加しました。",
    )
    return redirect(url_for("admin.municipalities"))


@bp.get("/groups")
@role_required(policy.can_administer)
def groups():
    items = db.session.scalars(select(MunicipalityGroup).order_by(MunicipalityGroup.name)).all()
    form = GroupMemberForm()
    form.municipality.choices = [SelectChoice("", "選択してください")] + [
        SelectChoice(str(m.id), m.name) for m in _municipalities()]
    return render_template("admin/groups.html", groups=items, form=form, remove_form=UnlinkForm(formdata=None))


def _group_or_404(group_id: int) -> MunicipalityGroup:
    group = db.session.get(MunicipalityGroup, group_id)
    if group is None:
        abort(404)
    return group


@bp.post("/groups/<int:group_id>/members")
@role_required(policy.can_administer)
def add_group_member(group_id: int):
    group = _group_or_404(group_id)
    form = GroupMemberForm()
    if not form.validate_on_submit():
        abort(400)
    member = _get_municipality(form.municipality.data)
    if member is None:
        flash("市町を選んでください。", "error")
        return redirect(url_for("admin.groups"))
    commit_or_flash(lambda: municipality_service.add_to_group(group, member, actor=current_user),
                    f"{member.name}を「{group.name}」に追加しました。")
    return redirect(url_for("admin.groups"))


@bp.post("/groups/<int:group_id>/members/<int:municipality_id>/delete")
@role_required(policy.can_administer)
def remove_group_member(group_id: int, municipality_id: int):
    group = _group_or_404(group_id)
    if not UnlinkForm().validate_on_submit():
        abort(400)
    member = _get_municipality_or_400(municipality_id)
    commit_or_flash(lambda: municipality_service.remove_from_group(group, member, actor=current_user),
                    f"{member.name}を「{group.name}」から外しました。")
    return redirect(url_for("admin.groups"))
