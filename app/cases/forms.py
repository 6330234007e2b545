from flask_wtf import FlaskForm
from wtforms import BooleanField, MultipleFileField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice

from app.models import Visibility


class CaseForm(FlaskForm):
    title = StringField("件名")
    category = SelectField("分類", validate_choice=False)
    tags = StringField("タグ（「,」または「、」区切り）")
    issue = TextAreaField("症状・質問")
    environment = TextAreaField("環境")
    cause = TextAreaField("原因")
    resolution = TextAreaField("対応")
    preview = SubmitField("プレビュー")
    submit = SubmitField("保存")
    save_and_publish = SubmitField("保存して公開")


class PublishForm(FlaskForm):
    visibility = RadioField("公開範囲", validate_choice=False,
                            choices=[SelectChoice(v.value, v.label) for v in Visibility])
    anonymous = BooleanField("市町名を伏せる（匿名）")
    submit = SubmitField("公開する")


class ConsentForm(FlaskForm):
    consent = SelectField("共有への同意", validate_choice=False,
                          choices=[SelectChoice(v.value, v.label) for v in Visibility])
    submit = SubmitField("同意を変更")


class SimpleForm(FlaskForm):
    submit = SubmitField("送信")


class ArchiveForm(FlaskForm):
    reason = StringField("理由（例: 個別の情報を含んだまま共有していた）")
    submit = SubmitField("アーカイブする")


class NameForm(FlaskForm):
    name = StringField("氏名")
    submit = SubmitField("追加")


class CaseAttachmentsForm(FlaskForm):
    """Which files the case carries (its thread's files, files uploaded while curating)."""

    files = MultipleFileField("ファイルを追加")
    submit = SubmitField("添付ファイルを保存")
