"""The check for details that must not leave a municipality (a plain function)."""
import pytest

from app.services.sensitive import find_sensitive, mask


def kinds(text, **kw):
    return [(f.kind, f.text) for f in find_sensitive(text, **kw)]


@pytest.mark.parametrize("text,expected", [
    ("ファイルサーバ 192.168.10.5 に接続できない", [("ipv4", "192.168.10.5")]),
    ("セグメントは10.20.0.0/16です", [("ipv4", "10.20.0.0/16")]),
    ("DHCP範囲は192.168.1.100-200", [("ipv4", "192.168.1.100-200")]),
    ("範囲 172.16.0.10～172.16.0.50", [("ipv4", "172.16.0.10～172.16.0.50")]),
    ("IPv6は fe80::1ff:fe23:4567:890a です", [("ipv6", "fe80::1ff:fe23:4567:890a")]),
    ("2001:db8::8a2e:370:7334/64 を割当", [("ipv6", "2001:db8::8a2e:370:7334/64")]),
    ("MAC 00:1A:2B:3C:4D:5E の端末", [("mac", "00:1A:2B:3C:4D:5E")]),
    ("MAC 00-1a-2b-3c-4d-5e", [("mac", "00-1a-2b-3c-4d-5e")]),
    ("Cisco形式 001a.2b3c.4d5e", [("mac", "001a.2b3c.4d5e")]),
    ("fs01.city.local のディスクが満杯", [("hostname", "fs01.city.local")]),
    ("ドメイン town.lan に参加", [("hostname", "town.lan")]),
    ("http://intra.city.local/wiki を参照", [("url", "http://intra.city.local/wiki")]),
    ("http://192.168.0.1/admin にログイン", [("url", "http://192.168.0.1/admin")]),
    (r"\\fs01\share を開く", [("url", r"\\fs01\share")]),
    ("担当 tanaka@city.example.lg.jp まで", [("email", "tanaka@city.example.lg.jp")]),
    ("電話 0823-25-3100 へ", [("phone", "0823-25-3100")]),
    ("携帯 090-1234-5678", [("phone", "090-1234-5678")]),
    ("password: Kure2024!", [("secret", "Kure2024!")]),
    ("管理者パスワードはHiroshima#123", [("secret", "Hiroshima#123")]),
    ("事前共有鍵=abcdEFGH1234", [("secret", "abcdEFGH1234")]),
    ("APIキー sk_live_51HxAbCdEfGhIjKlMnOpQrStUvWxYz0123 を設定", [("secret", "sk_live_51HxAbCdEfGhIjKlMnOpQrStUvWxYz0123")]),
    ("S/N: FGT60F1234567890 の機器", [("serial", "FGT60F1234567890")]),
    ("シリアル番号：ABC-123456", [("serial", "ABC-123456")]),
])
def test_finds_each_kind_of_sensitive_detail(text, expected):
    assert kinds(text) == expected


@pytest.mark.parametrize("text", [
    "ファームウェアを 10.2.1 に更新",
    "Windows 10 バージョン 10.0.19045.3803",
    "2024.4.1 から適用、2024/04/01 に通知",
    "令和6年4月1日に更新した",
    "FortiOS 7.4.3 と 7.2.8",
    "[IPアドレス] の機器を再起動",
    "https://www.soumu.go.jp/ のガイドラインを参照",
    "パスワードは[パスワード等]に変更した",
    "パスワード: なし",
    "電話で確認した（内線）",
    "VLAN 10 と VLAN 20",
    "メモリ 16GB、CPU 2.5GHz",
    "ポート 443/tcp を許可",
])
def test_does_not_flag_text_that_only_looks_similar(text):
    assert kinds(text) == []


def test_personal_names_listed_by_the_help_desk_are_found():
    assert kinds("担当の山田太郎さんが対応", personal_names=["山田太郎"]) == [("person", "山田太郎")]


def test_positions_point_at_the_text_and_mask_replaces_it():
    text = "サーバ 192.168.10.5（fs01.city.local）の管理者 password: P@ssw0rd99"
    findings = find_sensitive(text)
    for f in findings:
        assert text[f.start:f.end] == f.text
    assert mask(text, findings) == "サーバ [IPアドレス]（[ホスト名]）の管理者 password: [パスワード等]"
    assert find_sensitive(mask(text, findings)) == []


def test_overlapping_findings_keep_the_longer_one():
    assert kinds("http://fs01.city.local/share") == [("url", "http://fs01.city.local/share")]


@pytest.mark.parametrize("text", [
    "パスワードは初期値から変更していなかった",
    "ローカル管理者のパスワードは導入時から一度も変更されていませんでした",
    "パスワードはADに保存される",
])
def test_sentences_about_passwords_are_not_passwords(text):
    assert kinds(text) == []


@pytest.mark.parametrize("text,expected", [
    ("メールサーバ mail.town.sera.lg.jp に接続", [("hostname", "mail.town.sera.lg.jp")]),
    ("PW: Xyz12345 を設定", [("secret", "Xyz12345")]),
    ("パスワードは「Xyz12345」です", [("secret", "Xyz12345")]),
    ("パスワード：Ｘｙｚ１２３４５", [("secret", "Ｘｙｚ１２３４５")]),
    ("機器は１９２．１６８．０．１です", [("ipv4", "１９２．１６８．０．１")]),
])
def test_finds_common_variants_and_full_width_text(text, expected):
    assert kinds(text) == expected


def test_the_owner_name_is_a_finding_when_publishing_anonymously():
    assert kinds("呉市役所本庁舎の回線", owner_names=["呉市"]) == [("owner", "呉市")]
    text = "呉市役所本庁舎の回線"
    assert mask(text, find_sensitive(text, owner_names=["呉市"])) == "[市町名]役所本庁舎の回線"
