from flask_wtf import FlaskForm
from wtforms import BooleanField, MultipleFileField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice

from app.models import ReportReason, Visibility
from app.models.case import ArticleType


class CaseForm(FlaskForm):
    title = StringField("件名")
    category = SelectField("分類", validate_choice=False)
    tags = StringField("タグ（「,」または「、」区切り）")
    issue = TextAreaField("症状・質問")
    environment = TextAreaField("環境")
    cause = TextAreaField("原因")
    resolution = TextAreaField("対応")
    # Articles only (the edit page shows it for an article).
    article_type = RadioField("記事の種類", validate_choice=False,
                              choices=[SelectChoice(t.value, t.label) for t in ArticleType])
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
    files_checked = BooleanField("新しく付けるファイルを開き、個別の情報（IPアドレス、ホスト名、氏名、パスワードなど）がないことを確認しました")
    submit = SubmitField("添付ファイルを保存")


class ReportForm(FlaskForm):
    """A reader's report: outdated, wrong or incomplete, with what is meant."""

    reason = RadioField("どのような問題ですか", validate_choice=False,
                        choices=[SelectChoice(r.value, r.label) for r in ReportReason])
    comment = TextAreaField("どこが古い・誤り・不足なのか（ヘルプデスクに届きます）")
    submit = SubmitField("ヘルプデスクに知らせる")


class ArticleForm(FlaskForm):
    """「記事を書く」: an article written by the help desk, without a question."""

    title = StringField("件名")
    article_type = RadioField("記事の種類", validate_choice=False,
                              choices=[SelectChoice(t.value, t.label) for t in ArticleType])
    category = SelectField("分類", validate_choice=False)
    tags = StringField("タグ（「,」または「、」区切り）")
    body = TextAreaField("本文")
    files = MultipleFileField("添付ファイル")
    preview = SubmitField("プレビュー")
    submit = SubmitField("下書きとして保存")
    save_and_publish = SubmitField("保存して公開へ進む")
