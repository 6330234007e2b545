from flask_wtf import FlaskForm
from wtforms import SelectField, SubmitField


class NeighbourForm(FlaskForm):
    first = SelectField("市町", coerce=int, validate_choice=False)
    second = SelectField("近隣の市町", coerce=int, validate_choice=False)
    submit = SubmitField("近隣に設定")


class UnlinkForm(FlaskForm):
    submit = SubmitField("解除")
