"""Forms of the expert and procurement pages. Choices are checked by the services (one place for
the rules and their Japanese messages); skills, regions and the cost split are rendered from the
posted values, so nothing typed is lost when a page comes back with errors."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice

from app.models import ContractForm, ExpertKind, WorkStyle
from app.models.procurement import CountUnit, ProcurementContract, SystemCategory

DATE = {"type": "date"}
NUMBER = {"inputmode": "numeric"}


def _choices(enum_class):
    return [SelectChoice(e.value, e.label) for e in enum_class]


class ExpertForm(FlaskForm):
    name = StringField("氏名")
    organisation = StringField("所属（会社・大学・団体）")
    kind = SelectField("区分", choices=_choices(ExpertKind), validate_choice=False)
    days_per_month = StringField("対応できる日数（月あたり）", render_kw=NUMBER)
    work_style = SelectField("勤務形態", choices=_choices(WorkStyle), validate_choice=False, default="both")
    available_from = StringField("対応できる期間の始め（任意）", render_kw=DATE)
    available_until = StringField("対応できる期間の終わり（任意）", render_kw=DATE)
    rate_min = StringField("単価の下限（円／日）", render_kw=NUMBER)
    rate_max = StringField("単価の上限（円／日）", render_kw=NUMBER)
    vendor_affiliations = TextAreaField("事業者との関係（申告。1行に1社。兼業先・出身企業・役員など）")
    notes = TextAreaField("備考")
    username = StringField("アカウント（役割「専門人材」のユーザー名。任意）")
    is_active = SelectField("状態", choices=[SelectChoice("1", "登録中（候補に出す）"), SelectChoice("0", "休止（候補に出さない）")],
                            validate_choice=False, default="1")
    submit = SubmitField("保存する")


CONTRACT_CHOICES = _choices(ContractForm)


class SkillForm(FlaskForm):
    name = StringField("スキルの名称")
    submit = SubmitField("スキルを追加")


class ToggleForm(FlaskForm):
    submit = SubmitField("変更")


class RequestForm(FlaskForm):
    title = StringField("課題（例: 基幹系システムの更改に向けた仕様の確認）")
    body = TextAreaField("内容（いまの状況、してほしいこと）")
    period_start = StringField("期間の始め", render_kw=DATE)
    period_end = StringField("期間の終わり", render_kw=DATE)
    days_per_month = StringField("頻度（月あたりの日数）", render_kw=NUMBER)
    work_style = SelectField("勤務形態", choices=_choices(WorkStyle), validate_choice=False, default="both")
    budget = StringField("予算（期間全体、円。任意）", render_kw=NUMBER)
    systems = TextAreaField("対象のシステム")
    vendors = TextAreaField("関係する事業者（1行に1社。この事業者と関係のある人材は候補から外れます）")
    submit = SubmitField("依頼する")


class ProposalForm(FlaskForm):
    expert_id = SelectField("専門人材", validate_choice=False)
    start = StringField("派遣の始め", render_kw=DATE)
    end = StringField("派遣の終わり", render_kw=DATE)
    days_per_month = StringField("月あたりの日数", render_kw=NUMBER)
    total_days = StringField("延べ日数", render_kw=NUMBER)
    daily_rate = StringField("単価（円／日）", render_kw=NUMBER)
    contract_form = SelectField("契約の形", choices=CONTRACT_CHOICES, validate_choice=False)
    cio_assistant = BooleanField("CIO補佐官として任用・委託する（特別職非常勤・業務委託なら特別交付税の対象）")
    note = TextAreaField("提案の説明（市町に表示）")
    submit = SubmitField("この内容で提案する")


class DeclineForm(FlaskForm):
    reason = TextAreaField("辞退の理由（任意）")
    submit = SubmitField("辞退する")


class ActionForm(FlaskForm):
    submit = SubmitField("実行")


class MessageForm(FlaskForm):
    body = TextAreaField("本文")
    submit = SubmitField("書き込む")


class AnswerForm(FlaskForm):
    body = TextAreaField("回答（相談のスレッドに載ります）")
    submit = SubmitField("スレッドに回答する")


class ProcurementForm(FlaskForm):
    system_category = SelectField("システムの種類", choices=_choices(SystemCategory), validate_choice=False)
    system_name = StringField("システム・サービス名")
    vendor = StringField("事業者")
    contract_form = SelectField("契約の形", choices=_choices(ProcurementContract), validate_choice=False)
    period_months = StringField("契約期間（月数）", render_kw=NUMBER)
    amount = StringField("金額（期間全体、円）", render_kw=NUMBER)
    tax_included = SelectField("税", choices=[SelectChoice("included", "税込"), SelectChoice("excluded", "税抜")], validate_choice=False)
    count = StringField("利用者数・台数", render_kw=NUMBER)
    count_unit = SelectField("数える単位", choices=_choices(CountUnit), validate_choice=False)
    spec_items = TextAreaField("主な仕様（1行に1項目）")
    keep_reason = StringField("見つかった情報を残す理由（残すときだけ）")
    mask_all = HiddenField()
    submit = SubmitField("保存する")
