"""Attachments: types decided from the content, limits, who may download, thumbnails and text
previews, withdrawals, the sensitive-data check before sharing, and the API."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import Attachment, AuditEvent, Case, Question
from app.services import attachments as attachment_service
from app.services import questions as question_service


def png_bytes(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def xlsx_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


LOG = "2026-12-01 09:00:01 接続開始\n2026-12-01 09:00:02 認証エラー\n" + "".join(f"行{i}\n" for i in range(40))


@pytest.fixture
def people(make_user):
    return {"kure": make_user("municipal", "呉市", username="kure-a"),
            "fukuyama": make_user("municipal", "福山市", username="fuku-a"),
            "desk": make_user("helpdesk", username="desk-a")}


def download(client, url, **kwargs) -> bytes:
    """The body of a file response, closed afterwards (a streamed file stays open until then)."""
    with client.get(url, **kwargs) as response:
        assert response.status_code == 200, response.status_code
        return response.data


def ask_with(client, files, **fields):
    data = {"title": "画面が固まる", "body": "スクリーンショットを添付します。", "category": "network", **fields,
            "files": files}
    return client.post("/questions/new", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize("data,name,expected", [
    (png_bytes(), "screen.PNG", "image/png"),
    (b"\xff\xd8\xff\xe0" + b"x" * 10, "photo.jpg", "image/jpeg"),
    (b"GIF89a" + b"x" * 10, "anim.gif", "image/gif"),
    (b"%PDF-1.7\n...", "見積書.pdf", "application/pdf"),
    (LOG.encode("utf-8"), "vpn.log", "text/plain"),
    (LOG.encode("cp932"), "vpn_sjis.txt", "text/plain"),
    ("列1,列2\n1,2\n".encode("utf-8-sig"), "一覧.csv", "text/csv"),
    (xlsx_bytes(), "台帳.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (b"MZ\x90\x00\x03" + b"\x00" * 50, "setup.png", None),          # an executable named as an image
    (b"<html><script>alert(1)</script></html>\x00", "page.txt", None),  # binary-ish
    (b"\x00\x01\x02\x03", "data.csv", None),
])
def test_the_type_is_decided_from_the_content_not_the_name(data, name, expected):
    assert attachment_service.detect_type(data, name) == expected


def test_a_screenshot_and_a_log_are_attached_shown_and_downloaded(client, login, people):
    login(people["kure"])
    response = ask_with(client, [(io.BytesIO(png_bytes()), "画面の様子.png"), (io.BytesIO(LOG.encode()), "接続ログ.log")])
    assert response.status_code == 302
    question = db.session.scalar(select(Question))
    image, log = db.session.scalars(select(Attachment).order_by(Attachment.id)).all()
    assert (image.post_type, image.post_id, image.content_type, image.has_thumbnail) == ("question", question.id, "image/png", True)
    assert image.storage_key not in image.filename and "/" not in image.storage_key
    html = client.get(f"/questions/{question.id}").get_data(as_text=True)
    assert f'/attachments/{image.id}/thumbnail' in html and 'alt="画面の様子.png"' in html
    assert "認証エラー" in html and "行30" not in html  # the first lines of the log only
    with client.get(f"/attachments/{image.id}") as shown:
        assert shown.status_code == 200 and shown.mimetype == "image/png" and shown.data.startswith(b"\x89PNG")
        assert shown.headers["X-Content-Type-Options"] == "nosniff"
        assert not shown.headers.get("Content-Disposition", "").startswith("attachment")
    with client.get(f"/attachments/{log.id}") as downloaded:
        assert downloaded.mimetype == "text/plain" and downloaded.headers["Content-Disposition"].startswith("attachment")
        assert "filename*=UTF-8''" in downloaded.headers["Content-Disposition"]
        assert downloaded.data == LOG.encode()


def test_a_bad_file_changes_nothing_and_keeps_what_was_typed(client, login, people, app):
    login(people["kure"])
    response = ask_with(client, [(io.BytesIO(png_bytes()), "ok.png"), (io.BytesIO(b"MZ\x90\x00" * 20), "tool.png")],
                        title="入力した件名")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "「tool.png」は添付できない種類のファイルです" in html
    assert 'value="入力した件名"' in html
    assert db.session.scalar(select(Question)) is None and db.session.scalar(select(Attachment)) is None
    stored = [p for p in Path(app.config["ATTACHMENT_DIR"]).rglob("*") if p.is_file()] if Path(app.config["ATTACHMENT_DIR"]).exists() else []
    assert stored == []


def test_size_limits_per_file_and_per_post(client, login, people, app):
    app.config.update(ATTACHMENT_MAX_BYTES=2000, ATTACHMENT_MAX_POST_BYTES=3000)
    login(people["kure"])
    big = ask_with(client, [(io.BytesIO(b"a" * 2500), "big.txt")])
    assert "1ファイル" in big.get_data(as_text=True)
    many = ask_with(client, [(io.BytesIO(b"a" * 1800), "one.txt"), (io.BytesIO(b"b" * 1800), "two.txt")])
    assert "合計" in many.get_data(as_text=True)
    assert db.session.scalar(select(Attachment)) is None


def test_files_are_only_for_who_may_read_their_post(client, login, people, make_question, token_for):
    question = make_question(people["kure"])
    public = question_service.post_comment(people["kure"], question, {"body": "ログです"},
                                           [attachment_service.Upload("a.log", LOG.encode())])
    note = question_service.post_note(people["desk"], question, {"body": "内部の資料"},
                                      [attachment_service.Upload("内部.txt", b"internal only")])
    db.session.commit()
    comment_file = db.session.scalar(select(Attachment).where(Attachment.post_type == "comment"))
    note_file = db.session.scalar(select(Attachment).where(Attachment.post_type == "note"))
    login(people["fukuyama"])  # another municipality, by URL
    assert client.get(f"/attachments/{comment_file.id}").status_code == 404
    assert client.get(f"/attachments/{comment_file.id}/thumbnail").status_code == 404
    login(people["kure"])
    assert download(client, f"/attachments/{comment_file.id}") == LOG.encode()
    assert client.get(f"/attachments/{note_file.id}").status_code == 404  # an internal note's file
    assert "内部.txt" not in client.get(f"/questions/{question.id}").get_data(as_text=True)
    api = client.get(f"/api/v1/questions/{question.id}", headers=token_for(people["kure"])).get_json()
    assert "内部.txt" not in str(api) and api["comments"][0]["attachments"][0]["filename"] == "a.log"
    assert client.get(f"/api/v1/attachments/{note_file.id}", headers=token_for(people["kure"])).status_code == 404
    assert download(client, f"/api/v1/attachments/{note_file.id}", headers=token_for(people["desk"])) == b"internal only"
    assert public and note


def test_a_case_carries_only_the_files_the_help_desk_chose(client, login, people, make_question, token_for):
    question = make_question(people["kure"], sharing_consent="all")
    answer = question_service.post_answer(people["desk"], question, {"body": "設定例です"},
                                          [attachment_service.Upload("設定例.txt", b"set timeout 60"),
                                           attachment_service.Upload("screen.png", png_bytes())])
    case = question_service.resolve_question(people["desk"], question, answer.id)
    db.session.commit()
    text_file, image = db.session.scalars(select(Attachment).order_by(Attachment.id)).all()
    login(people["desk"])
    client.post(f"/cases/{case.id}/attachments", data={"attachment": [str(text_file.id)]})
    client.post(f"/cases/{case.id}/publish", data={"visibility": "all"})
    db.session.expire_all()
    assert [a.filename for a in db.session.get(Case, case.id).attachments] == ["設定例.txt"]
    headers = token_for(people["fukuyama"])
    assert download(client, f"/api/v1/attachments/{text_file.id}", headers=headers) == b"set timeout 60"
    assert client.get(f"/api/v1/attachments/{image.id}", headers=headers).status_code == 404  # not chosen
    body = client.get(f"/api/v1/cases/{case.id}", headers=headers).get_json()
    assert [a["filename"] for a in body["attachments"]] == ["設定例.txt"]


def test_files_are_checked_for_sensitive_details_before_sharing(client, login, people, make_question, token_for):
    question = make_question(people["kure"], sharing_consent="all")
    answer = question_service.post_answer(people["desk"], question, {"body": "ログを確認しました"},
                                          [attachment_service.Upload("障害ログ（fs01.city.local）.log", b"connect 192.168.10.5 failed")])
    case = question_service.resolve_question(people["desk"], question, answer.id)
    attachment = db.session.scalar(select(Attachment))
    attachment_service.choose_for_case(people["desk"], case, [attachment.id])
    db.session.commit()
    response = client.post(f"/api/v1/cases/{case.id}/publish", headers=token_for(people["desk"]), json={"visibility": "all"})
    assert response.status_code == 409
    findings = {(f["field"], f["kind"], f["text"]) for f in response.get_json()["error"]["findings"]}
    assert ("attachments", "ipv4", "192.168.10.5") in findings
    assert ("attachments", "hostname", "fs01.city.local") in findings
    assert db.session.get(Case, case.id).state == "draft"


def test_a_shared_case_takes_no_file_with_sensitive_details(client, people, make_question, token_for):
    question = make_question(people["kure"], sharing_consent="all")
    answer = question_service.post_answer(people["desk"], question, {"body": "回答"})
    case = question_service.resolve_question(people["desk"], question, answer.id)
    db.session.commit()
    headers = token_for(people["desk"])
    assert client.post(f"/api/v1/cases/{case.id}/publish", headers=headers, json={"visibility": "all"}).status_code == 200
    bad = client.post(f"/api/v1/cases/{case.id}/attachments", headers=headers,
                      data={"file": (io.BytesIO(b"admin password: Kure#2024"), "memo.txt")}, content_type="multipart/form-data")
    assert bad.status_code == 409 and bad.get_json()["error"]["code"] == "sensitive_data"
    assert db.session.scalar(select(Attachment)) is None
    # An image the check cannot read: only when the help desk says it opened it (audited).
    unread = client.post(f"/api/v1/cases/{case.id}/attachments", headers=headers,
                         data={"file": (io.BytesIO(png_bytes()), "構成図.png")}, content_type="multipart/form-data")
    assert unread.status_code == 409 and unread.get_json()["error"]["code"] == "sensitive_data"
    assert [(f["kind"], f["text"]) for f in unread.get_json()["error"]["findings"]] == [("unchecked", "構成図.png")]
    assert db.session.scalar(select(Attachment)) is None
    good = client.post(f"/api/v1/cases/{case.id}/attachments", headers=headers,
                       data={"file": (io.BytesIO(png_bytes()), "構成図.png"), "files_checked": "true"},
                       content_type="multipart/form-data")
    assert good.status_code == 201 and good.get_json()["attachments"][0]["filename"] == "構成図.png"
    checked = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.attachment_checked"))
    assert checked is not None and "構成図.png" in checked.summary and checked.actor_id == people["desk"].id


def test_a_withdrawn_post_takes_its_files_with_it(client, login, people, make_question, app):
    question = make_question(people["kure"])
    comment = question_service.post_comment(people["kure"], question, {"body": "パスワード入りのスクショ"},
                                            [attachment_service.Upload("pw.png", png_bytes())])
    db.session.commit()
    attachment = db.session.scalar(select(Attachment))
    attachment_id, key = attachment.id, attachment.storage_key
    path = Path(app.config["ATTACHMENT_DIR"])
    assert {p.name for p in path.rglob("*") if p.is_file()} == {key, key + "-thumb"}
    login(people["kure"])
    client.post(f"/questions/{question.id}/posts/comment/{comment.id}/withdraw")
    assert client.get(f"/attachments/{attachment_id}").status_code == 404
    assert db.session.scalar(select(Attachment)) is None
    assert [p for p in path.rglob("*") if p.is_file()] == []


def test_files_written_for_a_transaction_that_rolls_back_are_removed(app, people, make_question):
    question = make_question(people["kure"])
    attachment_service.store(people["kure"], [attachment_service.Upload("a.txt", b"hello")], question=question,
                             post_type="question", post_id=question.id)
    stored = [p for p in Path(app.config["ATTACHMENT_DIR"]).rglob("*") if p.is_file()]
    assert len(stored) == 1
    db.session.rollback()
    assert not stored[0].exists()


def test_the_api_attaches_files_to_the_authors_own_post(client, people, make_question, token_for):
    question = make_question(people["kure"])
    kure, fukuyama = token_for(people["kure"]), token_for(people["fukuyama"])
    response = client.post(f"/api/v1/questions/{question.id}/attachments", headers=kure,
                           data={"file": (io.BytesIO(LOG.encode()), "ログ.log")}, content_type="multipart/form-data")
    assert response.status_code == 201
    url = response.get_json()["attachments"][0]["url"]
    assert download(client, url, headers=kure) == LOG.encode()
    assert client.get(url, headers=fukuyama).status_code == 404
    desk = token_for(people["desk"])
    not_author = client.post(f"/api/v1/questions/{question.id}/attachments", headers=desk,
                             data={"file": (io.BytesIO(b"x"), "x.txt")}, content_type="multipart/form-data")
    assert not_author.status_code == 403
    json_body = client.post(f"/api/v1/questions/{question.id}/attachments", headers=kure, json={"file": "x"})
    assert json_body.status_code == 415


def test_a_file_the_check_cannot_read_is_shared_only_when_kept_with_a_reason(client, login, people, make_question,
                                                                           token_for):
    """A PDF or ZIP can carry the owner's name, a password and an IP address: the check cannot
    read it, so publishing it beyond the owner needs a person to open it and keep it with a reason."""
    question = make_question(people["kure"], sharing_consent="all")
    secret = b"%PDF-1.4\n\xe5\x91\x89\xe5\xb8\x82 admin password: Kure#2026! 10.20.30.40\n%%EOF"
    answer = question_service.post_answer(people["desk"], question, {"body": "見積書を確認しました"},
                                          [attachment_service.Upload("quote.pdf", secret)])
    case = question_service.resolve_question(people["desk"], question, answer.id)
    attachment = db.session.scalar(select(Attachment))
    attachment_service.choose_for_case(people["desk"], case, [attachment.id])
    db.session.commit()
    headers = token_for(people["desk"])
    refused = client.post(f"/api/v1/cases/{case.id}/publish", headers=headers,
                          json={"visibility": "all", "anonymous": True})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "sensitive_data"
    assert [(f["field"], f["kind"], f["text"], f["attachment_id"]) for f in refused.get_json()["error"]["findings"]] \
        == [("attachments", "unchecked", "quote.pdf", attachment.id)]
    message = refused.get_json()["error"]["message"]
    assert "中身を自動で確認できないファイルが 1 件" in message and "伏せる" not in message   # a file cannot be masked
    assert db.session.get(Case, case.id).state == "draft"

    login(people["desk"])
    page = client.get(f"/cases/{case.id}/publish").get_data(as_text=True)
    assert "中身を自動で確認できないファイル" in page and "quote.pdf" in page
    assert f'href="/attachments/{attachment.id}"' in page   # 開いて確認する

    kept = client.post(f"/api/v1/cases/{case.id}/publish", headers=headers, json={
        "visibility": "all", "anonymous": True, "keep": [{"text": "quote.pdf", "reason": "開いて確認した。個別の情報なし"}]})
    assert kept.status_code == 200 and db.session.get(Case, case.id).state == "published"


def test_a_file_the_check_cannot_read_needs_no_reason_when_the_case_stays_with_its_owner(
        client, people, make_question, token_for):
    question = make_question(people["kure"], sharing_consent="all")
    answer = question_service.post_answer(people["desk"], question, {"body": "回答"},
                                          [attachment_service.Upload("画面.png", png_bytes())])
    case = question_service.resolve_question(people["desk"], question, answer.id)
    attachment_service.choose_for_case(people["desk"], case, [db.session.scalar(select(Attachment.id))])
    db.session.commit()
    done = client.post(f"/api/v1/cases/{case.id}/publish", headers=token_for(people["desk"]), json={"visibility": "private"})
    assert done.status_code == 200


def test_the_case_editor_adds_an_image_to_a_shared_case_only_when_it_was_opened(client, login, people, make_question,
                                                                              token_for):
    question = make_question(people["kure"], sharing_consent="all")
    answer = question_service.post_answer(people["desk"], question, {"body": "回答"})
    case = question_service.resolve_question(people["desk"], question, answer.id)
    db.session.commit()
    assert client.post(f"/api/v1/cases/{case.id}/publish", headers=token_for(people["desk"]),
                       json={"visibility": "all"}).status_code == 200
    login(people["desk"])
    editor = client.get(f"/cases/{case.id}/edit").get_data(as_text=True)
    assert 'name="files_checked"' in editor
    refused = client.post(f"/cases/{case.id}/attachments", data={"files": (io.BytesIO(png_bytes()), "画面.png")},
                          content_type="multipart/form-data")
    # the message beside the files (the page is scrolled to them), and what to do again
    assert refused.status_code == 409
    html = refused.get_data(as_text=True)
    section = html[html.index('id="attachments"'):]
    assert "中身を自動で確認できないもの" in section and "もう一度選んでください" in section
    assert db.session.scalar(select(Attachment)) is None
    saved = client.post(f"/cases/{case.id}/attachments",
                        data={"files": (io.BytesIO(png_bytes()), "画面.png"), "files_checked": "y"},
                        content_type="multipart/form-data")
    assert saved.status_code == 302 and saved.headers["Location"].endswith("#attachments")
    assert [a.filename for a in db.session.get(Case, case.id).attachments] == ["画面.png"]
    editor = client.get(f"/cases/{case.id}/edit").get_data(as_text=True)
    head, section = editor.split('id="attachments"', 1)
    assert "添付ファイルを保存しました。" in section and "添付ファイルを保存しました。" not in head


def _photo(orientation: int = 1) -> bytes:
    """A JPEG as a phone writes it: EXIF with the author, the GPS position and an orientation."""
    image = Image.new("RGB", (80, 40), (20, 120, 200))
    exif = Image.Exif()
    exif[0x013B] = "呉市 情報政策課 山田"      # Artist
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (34.0, 14.0, 57.0)    # GPSLatitudeRef, GPSLatitude
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, exif=exif, comment=b"kure-office-3F")
    return out.getvalue()


@pytest.mark.parametrize("orientation,size", [(1, (80, 40)), (6, (40, 80))])
def test_a_photo_is_stored_without_its_author_gps_and_comment_and_upright(app, people, make_question, orientation, size):
    """A photo of a rack shared with all could give its municipality's office away through its GPS
    position: images keep the picture, not what the camera wrote about it."""
    question = make_question(people["kure"])
    (stored,) = attachment_service.store(people["kure"], [attachment_service.Upload("ラック.jpg", _photo(orientation))],
                                         question=question, post_type="question", post_id=question.id)
    data = attachment_service.attachment_store().read(stored.storage_key)
    assert b"kure-office-3F" not in data and "山田".encode() not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == size
        assert dict(image.getexif()) == {} and "comment" not in image.info
    assert stored.size == len(data)


def test_a_png_loses_its_text_chunks_and_keeps_its_pixels(app, people, make_question):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "呉市 山田", zip=False)
    info.add_itxt("Comment", "fs01.city.kure.local のスクリーンショット")
    out = io.BytesIO()
    original = Image.new("RGBA", (30, 20), (10, 20, 30, 128))
    original.save(out, format="PNG", pnginfo=info)
    question = make_question(people["kure"])
    (stored,) = attachment_service.store(people["kure"], [attachment_service.Upload("画面.png", out.getvalue())],
                                         question=question, post_type="question", post_id=question.id)
    data = attachment_service.attachment_store().read(stored.storage_key)
    with Image.open(io.BytesIO(data)) as image:
        assert image.text == {} and image.tobytes() == original.tobytes()
