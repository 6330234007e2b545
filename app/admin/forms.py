from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField


class NeighbourForm(FlaskForm):
    first = SelectField("市町", validate_choice=False)
    second = SelectField("近隣の市町", validate_choice=False)
    submit = SubmitField("近隣に設定")


class UnlinkForm(FlaskForm):
    submit = SubmitField("解除")


class CategoryForm(FlaskForm):
    slug = StringField("識別子（英字、API で使用）")
    name = StringField("名称")
    submit = SubmitField("分類を追加")
