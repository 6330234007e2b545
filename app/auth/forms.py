from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField


class LoginForm(FlaskForm):
    username = StringField("ユーザー名")
    password = PasswordField("パスワード")
    submit = SubmitField("ログイン")


class PasswordForm(FlaskForm):
    current_password = PasswordField("現在のパスワード")
    new_password = PasswordField("新しいパスワード")
    confirm_password = PasswordField("新しいパスワード（確認）")
    submit = SubmitField("変更する")
