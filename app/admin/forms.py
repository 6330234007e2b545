from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField, SubmitField


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


class UserForm(FlaskForm):
    username = StringField("ユーザー名")
    display_name = StringField("表示名（例: 呉市 情報政策課（田中））")
    role = SelectField("役割", validate_choice=False)
    municipality = SelectField("所属する市町", validate_choice=False)
    password = PasswordField("初期パスワード")
    submit = SubmitField("アカウントを作成")


class AssignForm(FlaskForm):
    role = SelectField("役割", validate_choice=False)
    municipality = SelectField("所属する市町", validate_choice=False)
    display_name = StringField("表示名")
    submit = SubmitField("変更する")


class ResetPasswordForm(FlaskForm):
    password = PasswordField("新しいパスワード")
    submit = SubmitField("パスワードを再設定")


class ToggleForm(FlaskForm):
    action = HiddenField()  # what the admin saw and chose: "disable" or "enable"
    submit = SubmitField("変更")


class MunicipalityForm(FlaskForm):
    code = StringField("団体コード（6桁）")
    name = StringField("名称")
    prefecture = StringField("都道府県", default="広島県")
    roman_names = StringField("ローマ字表記（ホスト名などに使われる綴り。例: kasaoka）")
    observer = BooleanField("オブザーバー（閲覧のみ）")
    submit = SubmitField("市町を追加")


class GroupMemberForm(FlaskForm):
    municipality = SelectField("市町", validate_choice=False)
    submit = SubmitField("グループに追加")
