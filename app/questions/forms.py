"""Page forms. They carry CSRF and keep what was typed; the services validate the content."""
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice

from app.models import Visibility


class QuestionForm(FlaskForm):
    title = StringField("件名")
    category = SelectField("分類", validate_choice=False)
    tags = StringField("タグ（「,」または「、」区切り）")
    body = TextAreaField("相談内容（Markdown）")
    sharing_consent = RadioField(
        "解決後の事例の共有",
        choices=[SelectChoice(c.value, c.consent_label) for c in Visibility],
        default=Visibility.PRIVATE.value,
        validate_choice=False,
    )
    preview = SubmitField("プレビュー")
    submit = SubmitField("相談を送信")


class AnswerForm(FlaskForm):
    body = TextAreaField("回答（Markdown）")
    preview = SubmitField("プレビュー")
    submit = SubmitField("回答を投稿")


class CommentForm(FlaskForm):
    body = TextAreaField("コメント（Markdown）")
    preview = SubmitField("プレビュー")
    submit = SubmitField("コメントを投稿")


class ResolveForm(FlaskForm):
    answer_id = HiddenField()
    submit = SubmitField("この回答で解決")


class CloseForm(FlaskForm):
    submit = SubmitField("未解決のまま終了する")
