"""Page forms. They carry CSRF and keep what was typed; the services validate the content. Forms
shown together on one page have their own prefix, so every field has a unique id and label."""
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, HiddenField, MultipleFileField, RadioField, SelectField, StringField, SubmitField, TextAreaField,
)
from wtforms.fields.choices import SelectChoice

from app.models import Priority, QuestionKind, Visibility


class QuestionForm(FlaskForm):
    title = StringField("件名")
    category = SelectField("分類", validate_choice=False)
    kind = RadioField("相談の種類", choices=[SelectChoice(k.value, k.label) for k in QuestionKind],
                      default=QuestionKind.QUESTION.value, validate_choice=False)
    urgent = BooleanField("至急（業務が止まっている、攻撃を受けているおそれがあるなど）")
    urgent_reason = StringField("至急の理由")
    tags = StringField("タグ（「,」または「、」区切り）")
    body = TextAreaField("相談内容")
    files = MultipleFileField("添付ファイル")
    sharing_consent = RadioField(
        "解決後の事例の共有",
        choices=[SelectChoice(c.value, c.consent_label) for c in Visibility],
        default=Visibility.PRIVATE.value,
        validate_choice=False,
    )
    about_case = HiddenField()
    preview = SubmitField("プレビュー")
    submit = SubmitField("相談を送信")


class ReplyForm(FlaskForm):
    """The help desk's one compose box: an answer, a comment or an internal note."""

    body = TextAreaField("本文")
    kind = RadioField("投稿の種類", choices=[
        SelectChoice("answer", "回答（解決策）"), SelectChoice("comment", "コメント（確認・補足）"),
        SelectChoice("note", "内部メモ（市町には見えません）"),
    ], default="answer", validate_choice=False)
    await_reply = BooleanField("市町からの返事を待つ（回答待ちにする）")
    files = MultipleFileField("添付ファイル")
    canned = SelectField("定型文", validate_choice=False)
    insert = SubmitField("定型文を挿入")
    preview = SubmitField("プレビュー")
    submit = SubmitField("投稿する")


class CommentForm(FlaskForm):
    body = TextAreaField("コメント")
    files = MultipleFileField("添付ファイル")
    preview = SubmitField("プレビュー")
    submit = SubmitField("コメントを投稿")


class EditPostForm(FlaskForm):
    title = StringField("件名")
    body = TextAreaField("本文")
    preview = SubmitField("プレビュー")
    submit = SubmitField("保存する")


class ResolveForm(FlaskForm):
    answer_id = HiddenField()
    submit = SubmitField("この回答で解決")


class CloseForm(FlaskForm):
    submit = SubmitField("未解決のまま終了する")


class SimpleForm(FlaskForm):
    """A button that only needs the CSRF token (withdraw, take, 回答待ち)."""


class AssignForm(FlaskForm):
    owner = SelectField("担当者", validate_choice=False)
    expected = HiddenField()   # the owner the page showed: a change made meanwhile is not overwritten
    submit = SubmitField("担当を変更")


class HandlingForm(FlaskForm):
    priority = SelectField("優先度", choices=[SelectChoice(p.value, p.label) for p in Priority], validate_choice=False)
    urgent_reason = StringField("至急の理由")
    kind = SelectField("種類", choices=[SelectChoice(k.value, k.label) for k in QuestionKind], validate_choice=False)
    submit = SubmitField("変更する")


class LinkForm(FlaskForm):
    target = StringField("相談番号（#なしの数字）")
    submit = SubmitField("実行する")


class CannedReplyForm(FlaskForm):
    title = StringField("名前（一覧に表示）")
    body = TextAreaField("本文")
    submit = SubmitField("保存する")


class LinkCaseForm(FlaskForm):
    """「この事例で回答」: the help desk answers with a case of the library."""

    case_id = StringField("事例番号")
    body = TextAreaField("添える文（空欄なら定型の文）")
    await_reply = BooleanField("市町からの返事を待つ")
    submit = SubmitField("この事例で回答")
