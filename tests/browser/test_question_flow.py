"""A question from a municipality to a published case, through the forms a person uses."""
from __future__ import annotations

import re
import uuid

from tests.browser.helpers import ask_question, expect, login, main_nav, shot


def _unique(text: str) -> str:
    return f"{text}（ブラウザテスト {uuid.uuid4().hex[:6]}）"


def test_municipal_user_asks_a_question_and_sees_it_on_the_thread(page):
    title = _unique("庁内LANで特定のフロアだけ通信が遅い")
    body = "3階の端末だけ、ファイルサーバーへのコピーが極端に遅くなります。\n\nほかのフロアは問題ありません。"
    login(page, "kure1")
    shot(page, "logged-in")

    question_id = ask_question(page, title, body, category="ネットワーク", tags="LAN、速度低下")

    # (The redirect keeps the form's "#preview" fragment: harmless, so any fragment is accepted.)
    expect(page).to_have_url(re.compile(rf"/questions/{question_id}(#.*)?$"))
    expect(page.get_by_role("status")).to_contain_text("相談を受け付けました")
    thread = page.locator("article.thread")
    expect(thread.get_by_role("heading", name=title, level=1)).to_be_visible()
    expect(thread.locator(".question-body")).to_contain_text("3階の端末だけ、ファイルサーバーへのコピーが極端に遅くなります。")
    expect(thread.locator(".question-body")).to_contain_text("ほかのフロアは問題ありません。")
    meta = thread.locator(".meta")
    expect(meta).to_contain_text("受付")
    expect(meta).to_contain_text("県の番")
    expect(meta).to_contain_text("ネットワーク")
    expect(meta).to_contain_text("LAN")
    expect(page.get_by_role("heading", name="やり取り（0件）")).to_be_visible()
    shot(page, "thread")

    # The thread is listed among the municipality's own questions.
    main_nav(page).get_by_role("link", name="自団体の相談").click()
    expect(page.get_by_role("link", name=title)).to_be_visible()
    shot(page, "own-questions")


def test_helpdesk_answers_asker_resolves_and_helpdesk_publishes_the_case_privately(new_page, live_server):
    title = _unique("UTMのファームウェア更新後にVPNがつながらない")
    body = "UTMのファームウェアを更新したところ、テレワーク端末からVPNに接続できなくなりました。"
    answer = "更新で暗号スイートの既定値が変わっています。VPN設定で以前の暗号方式を許可するか、クライアントを更新してください。"

    # 1. kure1 asks.
    asker = new_page()
    login(asker, "kure1")
    question_id = ask_question(asker, title, body, category="ネットワーク")
    asker.context.close()

    # 2. helpdesk1 finds it in the queue and answers it on the thread.
    helpdesk = new_page()
    login(helpdesk, "helpdesk1")
    expect(helpdesk.get_by_role("heading", name="対応待ちの相談")).to_be_visible()
    row = helpdesk.get_by_role("row").filter(has=helpdesk.get_by_role("link", name=title))
    expect(row).to_contain_text("受付")
    expect(row).to_contain_text("呉市")
    shot(helpdesk, "queue")
    row.get_by_role("link", name=title).click()
    expect(helpdesk.get_by_role("heading", name=title, level=1)).to_be_visible()
    helpdesk.get_by_label("本文").fill(answer)
    shot(helpdesk, "answer-typed")
    helpdesk.get_by_role("button", name="投稿する").click()
    expect(helpdesk.get_by_role("status")).to_contain_text("回答を投稿しました")
    expect(helpdesk.get_by_role("heading", name="やり取り（1件）")).to_be_visible()
    expect(helpdesk.locator("#timeline .answer")).to_contain_text("暗号スイートの既定値が変わっています")
    shot(helpdesk, "answered")
    helpdesk.context.close()

    # 3. kure1 marks the answer as the resolution: この回答で解決 → confirmation → 解決済みにする.
    asker = new_page()
    login(asker, "kure1")
    main_nav(asker).get_by_role("link", name="自団体の相談").click()
    asker.get_by_role("link", name=title).click()
    expect(asker.locator(".thread-head .meta")).to_contain_text("対応中")
    answer_post = asker.locator("#timeline .answer").filter(has_text="暗号スイート")
    confirm = answer_post.get_by_role("button", name="解決済みにする")
    expect(confirm).to_be_hidden()
    answer_post.get_by_text("この回答で解決", exact=True).click()
    expect(answer_post.get_by_text("この回答で解決済みにします。")).to_be_visible()
    expect(confirm).to_be_visible()
    shot(asker, "resolve-confirmation")
    confirm.click()
    expect(asker.get_by_role("status")).to_contain_text("解決済みにしました")
    expect(asker.locator(".thread-head .meta")).to_contain_text("解決")
    expect(asker.locator("#timeline")).to_contain_text("解決した回答")
    notice = asker.locator("p.notice").filter(has_text="この相談から作成された事例")
    expect(notice).to_contain_text("下書き")
    shot(asker, "resolved")
    asker.context.close()
    case = live_server.case_for_question(question_id)
    assert case is not None and case[1] == "draft", case

    # 4. helpdesk1 opens the drafted case from the thread and publishes it as private.
    helpdesk = new_page()
    login(helpdesk, "helpdesk1")
    helpdesk.goto(f"/questions/{question_id}")
    helpdesk.locator("p.notice").filter(has_text="この相談から作成された事例").get_by_role("link").click()
    expect(helpdesk.get_by_role("heading", name=title, level=1)).to_be_visible()
    expect(helpdesk.locator("#case .meta")).to_contain_text("下書き")
    shot(helpdesk, "draft-case")
    helpdesk.get_by_role("link", name="公開範囲を選んで公開").click()
    expect(helpdesk.get_by_role("heading", name=re.compile("^事例の公開"))).to_be_visible()
    helpdesk.get_by_role("radio", name="自団体と県のみ").check()
    shot(helpdesk, "publish-form")
    helpdesk.get_by_role("button", name="この内容で公開する").click()
    expect(helpdesk.get_by_role("status")).to_contain_text("事例を公開しました")
    meta = helpdesk.locator("#case .meta")
    expect(meta).to_contain_text("公開範囲: 自団体と県のみ")
    expect(helpdesk.get_by_role("link", name="公開範囲を選んで公開")).to_have_count(0)
    shot(helpdesk, "published")
    assert live_server.case_for_question(question_id)[1:] == ("published", "private")
