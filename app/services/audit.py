"""The audit log: one call records who did what to which object."""
from __future__ import annotations

from app.extensions import db
from app.models import AuditEvent, User

CLI_ACTOR = "CLI（サーバー管理者）"

ACTION_LABELS = {
    "user.create": "アカウント作成",
    "user.disable": "アカウント無効化",
    "user.password": "パスワード変更",
    "user.reset_password": "パスワード再設定",
    "user.assign": "役割・所属の変更",
    "user.enable": "アカウント有効化",
    "token.create": "APIトークン発行",
    "token.revoke": "APIトークン失効",
    "neighbour.link": "近隣の設定",
    "neighbour.unlink": "近隣の解除",
    "municipality.add": "市町の追加",
    "group.add": "グループへの追加",
    "group.remove": "グループからの削除",
    "category.add": "分類の追加",
    "case.publish": "事例の公開",
    "case.edit": "事例の編集",
    "case.visibility": "公開範囲の変更",
    "case.consent": "共有への同意の変更",
    "case.archive": "事例のアーカイブ",
    "case.restore": "アーカイブからの復元",
    "synonym.add": "同義語の追加",
    "synonym.delete": "同義語の削除",
    "name.add": "チェックする氏名の追加",
    "name.delete": "チェックする氏名の削除",
    "case.import": "事例の取り込み",
    "case.export": "事例の書き出し",
    "case.mask": "伏せ字",
    "case.attachment_checked": "確認済みとしての添付（中身を自動で確認できないファイル）",
    "case.unmask": "伏せ字の取り消し",
    "post.withdraw": "投稿の取り下げ",
    "case.consent_request": "共有範囲を広げる依頼",
    "user.email": "通知先メールアドレスの変更",
    "case.review": "事例の内容確認（見直し）",
    "case.supersede": "新しい事例への置き換え",
    "case.report_answer": "事例への指摘への対応",
    "category.rename": "分類の名称変更",
    "category.merge": "分類の統合",
    "category.retire": "分類の使用停止",
    "category.unretire": "分類の使用再開",
    "category.review_months": "分類の見直し周期の変更",
    "tag.rename": "タグの名称変更",
    "tag.merge": "タグの統合",
    "tag.retire": "タグの使用停止",
    "tag.unretire": "タグの使用再開",
    "expert.save": "専門人材の登録・変更",
    "skill.add": "スキルの追加",
    "skill.toggle": "スキルの使用・停止",
    "expert_request.propose": "専門人材の提案",
    "expert_request.accept": "専門人材の受諾（派遣の決定）",
    "expert_request.close": "派遣依頼の終了",
    "procurement.save": "調達情報の保存",
    "procurement.delete": "調達情報の削除",
}


def record(actor: User | None, action: str, target=None, summary: str = "") -> AuditEvent:
    """Add an audit event to the current transaction (it commits with the change it describes)."""
    target_type, target_id = "", ""
    if target is not None:
        target_type = type(target).__name__.lower()
        target_id = str(getattr(target, "id", "") or "")
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_name=(actor.username if actor is not None else CLI_ACTOR),
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary,
    )
    db.session.add(event)
    return event
