"""Pages of the shared IT experts and the procurement knowledge. Views stay thin: the services
decide, the policy-scoped getters answer "not found" for what the user may not see."""
from __future__ import annotations

import io

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from app import policy
from app.experts import bp
from app.experts.forms import (
    CONTRACT_CHOICES, ActionForm, AnswerForm, DeclineForm, ExpertForm, MessageForm, ProcurementForm, ProposalForm,
    RequestForm, SkillForm, ToggleForm,
)
from app.extensions import db
from app.models import (
    Case, Expert, ExpertProposal, Municipality, MunicipalityGroup, ProposalStatus, RequestStatus, Skill,
)
from app.models.expert import SKILL_LEVELS
from app.models.procurement import SystemCategory
from app.params import int_param
from app.services import experts as service
from app.services import procurement as procurement_service
from app.services.errors import SensitiveDataFound, ServiceError
from app.services.spreadsheet import write_csv
from app.web import apply_service_error, commit_or_flash, role_required


@bp.app_context_processor
def _nav():
    def experts_nav_label(user) -> str:
        if policy.can_view_experts(user):
            return "専門人材"
        if policy.is_expert(user):
            return "担当する依頼"
        return "専門人材の派遣依頼"

    def has_procurement_details(case) -> bool:
        return procurement_service.details_of(case) is not None

    return {"experts_nav_label": experts_nav_label, "SKILL_LEVELS": SKILL_LEVELS,
            "has_procurement_details": has_procurement_details}


def _municipalities():
    return list(db.session.scalars(select(Municipality).where(Municipality.is_observer.is_(False))
                                   .order_by(Municipality.code)))


def _run(action, form) -> object | None:
    """One service call for a form: the result (to be committed), or None with the errors placed."""
    try:
        return action()
    except ServiceError as error:
        db.session.rollback()
        if error.status == 403:
            abort(403)
        apply_service_error(form, error)
        return None


# --- registry ---------------------------------------------------------------------------------

@bp.get("/experts")
@login_required
def index():
    if not policy.uses_expert_pages(current_user):
        abort(403)
    if not policy.can_view_experts(current_user):
        return redirect(url_for("experts.requests"))
    return render_template("experts/index.html", experts=service.experts(),
                           served={e.id: service.served_municipalities(e) for e in service.experts()})


def _expert_page(expert: Expert | None):
    form = ExpertForm(obj=expert if request.method == "GET" else None)
    values = request.form if request.method == "POST" else _expert_values(expert)
    if request.method == "POST":
        saved = _run(lambda: service.save_expert(current_user, expert, request.form), form)
        if saved is not None:
            db.session.commit()
            flash(f"{saved.name}さんを保存しました。", "success")
            return redirect(url_for("experts.expert_show", expert_id=saved.id))
    elif expert is not None:
        form.username.data = expert.user.username if expert.user else ""
        form.is_active.data = "1" if expert.is_active else "0"
    return render_template("experts/expert_form.html", form=form, expert=expert, values=values,
                           skills=service.skills(), groups=list(db.session.scalars(select(MunicipalityGroup)
                                                                                  .order_by(MunicipalityGroup.id))),
                           municipalities=_municipalities(), contract_choices=CONTRACT_CHOICES)


def _expert_values(expert: Expert | None) -> dict:
    if expert is None:
        return {"contract_forms": []}
    values = {f"skill_{s.skill_id}": str(s.level) for s in expert.skills}
    values["regions"] = (["all"] if expert.all_regions else []) + [str(g.id) for g in expert.regions]
    values["served"] = [str(m.id) for m in expert.served]
    values["contract_forms"] = [f.value for f in expert.contract_form_list]
    return values


@bp.route("/experts/new", methods=["GET", "POST"])
@role_required(policy.can_manage_experts)
def expert_new():
    return _expert_page(None)


@bp.route("/experts/<int:expert_id>/edit", methods=["GET", "POST"])
@role_required(policy.can_manage_experts)
def expert_edit(expert_id: int):
    return _expert_page(db.session.get(Expert, expert_id) or abort(404))


@bp.get("/experts/<int:expert_id>")
@role_required(policy.can_view_experts)
def expert_show(expert_id: int):
    expert = db.session.get(Expert, expert_id) or abort(404)
    answered = service.answered_case_ids(current_user, expert)
    cases = list(db.session.scalars(select(Case).where(Case.id.in_(answered)).order_by(Case.id.desc()).limit(20))) \
        if answered else []
    return render_template("experts/expert_show.html", expert=expert, served=service.served_municipalities(expert),
                           assignments=service.expert_assignments(expert), cases=cases, answered=len(answered))


@bp.route("/experts/skills", methods=["GET", "POST"])
@role_required(policy.can_view_experts)
def skills():
    form = SkillForm()
    if request.method == "POST":
        if not policy.can_manage_experts(current_user):
            abort(403)
        if _run(lambda: service.add_skill(current_user, request.form.get("name")), form) is not None:
            db.session.commit()
            flash("スキルを追加しました。", "success")
            return redirect(url_for("experts.skills"))
    return render_template("experts/skills.html", form=form, skills=service.skills(), toggle=ToggleForm())


@bp.post("/experts/skills/<int:skill_id>/toggle")
@role_required(policy.can_manage_experts)
def skill_toggle(skill_id: int):
    skill = db.session.get(Skill, skill_id) or abort(404)
    wanted = request.form.get("active") == "1"
    commit_or_flash(lambda: service.set_skill_active(current_user, skill, wanted),
                    f"「{skill.name}」を{'使用する' if wanted else '停止'}にしました。")
    return redirect(url_for("experts.skills"))


# --- requests ---------------------------------------------------------------------------------

@bp.get("/experts/requests")
@login_required
def requests():
    if not policy.uses_expert_pages(current_user):
        abort(403)
    status = request.args.get("status", "")
    return render_template("experts/requests.html", items=service.visible_requests(current_user, status),
                           status=status, statuses=list(RequestStatus))


@bp.route("/experts/requests/new", methods=["GET", "POST"])
@login_required
def request_new():
    question_id = int_param(request.args, "question", "相談", None)
    question = None
    if question_id is not None:
        question = policy.get_visible_question(current_user, question_id)
        if question is None:
            abort(404)
        if not policy.can_convert_question(current_user, question):
            abort(403)
    elif not policy.can_file_request(current_user):
        abort(403)
    form = RequestForm(data=service.request_form_defaults(question) if request.method == "GET" else None)
    if request.method == "POST":
        made = _run(lambda: service.file_request(current_user, request.form, question), form)
        if made is not None:
            db.session.commit()
            flash("派遣依頼を受け付けました。県が候補を探して提案します。", "success")
            return redirect(url_for("experts.request_show", request_id=made.id))
    return render_template("experts/request_form.html", form=form, question=question,
                           values=request.form if request.method == "POST" else {},
                           skills=service.skills(active_only=True))


def _visible_request(request_id: int):
    found = policy.get_visible_request(current_user, request_id)
    if found is None:
        abort(404)
    return found


@bp.get("/experts/requests/<int:request_id>")
@login_required
def request_show(request_id: int):
    item = _visible_request(request_id)
    return _request_page(item)


def _request_page(item, message_form=None, answer_form=None, decline_form=None, status=200):
    thread_visible = item.question is not None and policy.can_view_question(current_user, item.question)
    proposals = [p for p in item.proposals if policy.sees_everything(current_user)
                 or p.status in (ProposalStatus.PENDING.value, ProposalStatus.ACCEPTED.value)]
    municipalities = {m.id: m for m in _municipalities()}
    return render_template(
        "experts/request_show.html", item=item, proposals=proposals, municipalities=municipalities,
        thread_visible=thread_visible, message_form=message_form or MessageForm(),
        answer_form=answer_form or AnswerForm(), decline_form=decline_form or DeclineForm(), action=ActionForm(),
        expert=service.expert_for_user(current_user),
        can_answer_thread=item.question is not None and policy.can_expert_answer(current_user, item.question),
    ), status


@bp.post("/experts/requests/<int:request_id>/messages")
@login_required
def request_message(request_id: int):
    item = _visible_request(request_id)
    form = MessageForm()
    if _run(lambda: service.post_message(current_user, item, request.form), form) is None:
        return _request_page(_visible_request(request_id), message_form=form, status=422)
    db.session.commit()
    flash("書き込みました。", "success")
    return redirect(url_for("experts.request_show", request_id=request_id) + "#messages")


@bp.post("/experts/requests/<int:request_id>/answer")
@login_required
def request_answer(request_id: int):
    item = _visible_request(request_id)
    form = AnswerForm()
    answer = _run(lambda: service.post_expert_answer(current_user, item, request.form), form)
    if answer is None:
        return _request_page(_visible_request(request_id), answer_form=form, status=422)
    db.session.commit()
    flash("相談のスレッドに回答しました。", "success")
    return redirect(url_for("questions.show", question_id=item.question_id) + f"#answer-{answer.id}")


@bp.post("/experts/requests/<int:request_id>/close")
@login_required
def request_close(request_id: int):
    item = _visible_request(request_id)
    commit_or_flash(lambda: service.close_request(current_user, item), "依頼を終了しました。")
    return redirect(url_for("experts.request_show", request_id=request_id))


@bp.get("/experts/requests/<int:request_id>/match")
@login_required
def request_match(request_id: int):
    item = _visible_request(request_id)
    if not policy.is_helpdesk(current_user):
        abort(403)
    if not policy.can_see_suggestions(current_user, item):
        flash("この依頼はすでに決定済みか終了しています。", "error")
        return redirect(url_for("experts.request_show", request_id=request_id))
    matching = service.match(current_user, item)
    return render_template("experts/match.html", item=item, matching=matching, criteria=service.CRITERIA,
                           weights=service.WEIGHTS)


@bp.route("/experts/requests/<int:request_id>/propose", methods=["GET", "POST"])
@login_required
def request_propose(request_id: int):
    item = _visible_request(request_id)
    if not policy.is_helpdesk(current_user):
        abort(403)
    if request.method == "GET":
        defaults = service.default_dates(item)
        expert_id = int_param(request.args, "expert", "専門人材", None)
        expert = db.session.get(Expert, expert_id) if expert_id else None
        if expert is not None and expert.rate_min is not None:
            defaults["daily_rate"] = expert.rate_max or expert.rate_min
        if expert is not None and expert.contract_form_list:
            defaults["contract_form"] = expert.contract_form_list[0].value
        defaults["expert_id"] = str(expert_id or "")
        form = ProposalForm(data=defaults)
        values = {f"share_{item.municipality_id}": "100"}
    else:
        form = ProposalForm()
        values = request.form
    form.expert_id.choices = [SelectChoice("", "選択してください")] + [
        SelectChoice(str(e.id), f"{e.name}（{e.organisation}）") for e in service.experts(active_only=True)]
    if request.method == "POST":
        made = _run(lambda: service.propose(current_user, item, request.form), form)
        if made is not None:
            db.session.commit()
            flash(f"{made.expert.name}さんを{item.municipality.name}に提案しました。", "success")
            return redirect(url_for("experts.request_show", request_id=request_id))
    return render_template("experts/propose.html", item=item, form=form, values=values,
                           municipalities=_municipalities()), (422 if form.errors or request.method == "POST" else 200)


def _visible_proposal(proposal_id: int) -> ExpertProposal:
    proposal = db.session.get(ExpertProposal, proposal_id)
    if proposal is None or not policy.can_view_request(current_user, proposal.request):
        abort(404)
    return proposal


@bp.post("/experts/proposals/<int:proposal_id>/accept")
@login_required
def proposal_accept(proposal_id: int):
    proposal = _visible_proposal(proposal_id)
    request_id = proposal.request_id
    commit_or_flash(lambda: service.accept_proposal(current_user, proposal),
                    "提案を受け入れました。派遣が決まりました。")
    return redirect(url_for("experts.request_show", request_id=request_id))


@bp.post("/experts/proposals/<int:proposal_id>/decline")
@login_required
def proposal_decline(proposal_id: int):
    proposal = _visible_proposal(proposal_id)
    request_id = proposal.request_id
    form = DeclineForm()
    if _run(lambda: service.decline_proposal(current_user, proposal, request.form), form) is None:
        return _request_page(_visible_request(request_id), decline_form=form, status=409)
    db.session.commit()
    flash("提案を辞退しました。県が別の候補を探します。", "success")
    return redirect(url_for("experts.request_show", request_id=request_id))


@bp.post("/experts/proposals/<int:proposal_id>/withdraw")
@login_required
def proposal_withdraw(proposal_id: int):
    proposal = _visible_proposal(proposal_id)
    request_id = proposal.request_id
    commit_or_flash(lambda: service.withdraw_proposal(current_user, proposal), "提案を取り下げました。")
    return redirect(url_for("experts.request_show", request_id=request_id))


# --- reports ----------------------------------------------------------------------------------

def _year() -> int:
    return int_param(request.args, "year", "年度", service.current_fiscal_year(), minimum=2000, maximum=2100)


@bp.get("/experts/reports")
@role_required(policy.can_view_expert_reports)
def reports():
    year = _year()
    return render_template("experts/reports.html", report=service.year_report(current_user, year), year=year)


def _csv(filename: str, columns: list[str], rows: list[dict]) -> Response:
    buffer = io.StringIO()
    buffer.write("\ufeff")
    write_csv(buffer, columns, rows)
    response = Response(buffer.getvalue().encode("utf-8"), mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{filename}"
    return response


@bp.get("/experts/reports/costs.csv")
@role_required(policy.can_view_expert_reports)
def reports_costs_csv():
    year = _year()
    report = service.year_report(current_user, year)
    return _csv(f"expert-costs-{year}.csv", service.COST_COLUMNS, service.cost_rows(report))


@bp.get("/experts/reports/usage.csv")
@role_required(policy.can_view_expert_reports)
def reports_usage_csv():
    year = _year()
    report = service.year_report(current_user, year)
    return _csv(f"expert-usage-{year}.csv", service.USE_COLUMNS, service.use_rows(report))


# --- procurement --------------------------------------------------------------------------------

@bp.get("/procurement")
@login_required
def procurement():
    category = request.args.get("category", "")
    if category and category not in SystemCategory._value2member_map_:
        category = ""
    system = request.args.get("system", "")[:100]
    sort = request.args.get("sort", "per_unit")
    table = procurement_service.comparison(current_user, category, system, sort)
    return render_template("experts/procurement.html", table=table, category=category, system=system, sort=sort)


@bp.route("/procurement/cases/<int:case_id>", methods=["GET", "POST"])
@login_required
def procurement_case(case_id: int):
    case = policy.get_visible_case(current_user, case_id)
    if case is None:
        abort(404)
    details = procurement_service.details_of(case)
    editable = policy.can_edit_procurement(current_user, case)
    if request.method == "POST" and not editable:
        abort(403)
    form = ProcurementForm(obj=details if request.method == "GET" else None)
    if request.method == "GET" and details is not None:
        form.tax_included.data = "included" if details.tax_included else "excluded"
    findings, status = [], 200
    if request.method == "POST":
        try:
            procurement_service.save_details(current_user, case, request.form)
        except SensitiveDataFound as error:
            db.session.rollback()
            findings, status = error.findings, 409
            flash(error.message, "error")
        except ServiceError as error:
            db.session.rollback()
            if error.status == 403:
                abort(403)
            apply_service_error(form, error)
            status = 422
        else:
            db.session.commit()
            flash("調達の情報を保存しました。", "success")
            return redirect(url_for("experts.procurement_case", case_id=case.id))
        case = policy.get_visible_case(current_user, case_id)
        details = procurement_service.details_of(case)
    shown = procurement_service.shown_text(current_user, case, details) if details is not None else None
    return render_template("experts/procurement_case.html", case=case, details=details, shown=shown, form=form,
                           editable=editable, findings=findings,
                           buyer=procurement_service.buyer_label(current_user, case), action=ActionForm()), status


@bp.post("/procurement/cases/<int:case_id>/delete")
@login_required
def procurement_delete(case_id: int):
    case = policy.get_visible_case(current_user, case_id)
    if case is None:
        abort(404)
    commit_or_flash(lambda: procurement_service.delete_details(current_user, case), "調達の情報を削除しました。")
    return redirect(url_for("experts.procurement_case", case_id=case_id))
