from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField


class SynonymForm(FlaskForm):
    terms = StringField("同義語（「=」で区切る）")
    submit = SubmitField("追加")


class DeleteForm(FlaskForm):
    submit = SubmitField("削除")
