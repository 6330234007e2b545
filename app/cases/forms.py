from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField, TextAreaField


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
    submit = SubmitField("公開する")
