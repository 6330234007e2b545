"""The check for details that must not leave a municipality (a plain function)."""
import pytest

from app.services.sensitive import find_sensitive, mask
from tests.sensitive.score import BLIND, INDEPENDENT, LABELLED, load, score, split


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


# --- Broader rules (security review): secrets in Japanese phrasing, zero-padded IPv4, owner names ---

@pytest.mark.parametrize("text,expected", [
    ("VPN装置のパスフレーズは「Kure#Vpn2024!」です", [("secret", "Kure#Vpn2024!")]),
    ("無線LANのパスフレーズ：sera-wifi-2024", [("secret", "sera-wifi-2024")]),
    ("パスフレーズ「Blue Sky 2024!」を設定", [("secret", "Blue Sky 2024!")]),
])
def test_passphrases(text, expected):
    assert kinds(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("SNMPコミュニティ名は kureRO2024 に設定しています", [("secret", "kureRO2024")]),
    ("SNMPのコミュニティ文字列を「shobara_mon」から変更", [("secret", "shobara_mon")]),
    ("snmp-server community Hk7rO2xq RO", [("secret", "Hk7rO2xq")]),
    ("SNMP community名: ShobaraNMS", [("secret", "ShobaraNMS")]),
])
def test_snmp_community_names(text, expected):
    assert kinds(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("パスワードを「P@ss!w0rd#2024」に変更しました", [("secret", "P@ss!w0rd#2024")]),
    ("初期パスワード『Welcome#01』のままでした", [("secret", "Welcome#01")]),
    ('config.ini の password="Qw3rty!@#" を確認', [("secret", "Qw3rty!@#")]),
    ("管理画面のログインはID「admin」PW「Kure@Admin99」", [("secret", "Kure@Admin99")]),
])
def test_quoted_passwords_with_symbols(text, expected):
    assert kinds(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("管理者PW：Adm1n!Kure", [("secret", "Adm1n!Kure")]),
    ("ID/PW は soumu01 / Soumu@2023 です", [("secret", "Soumu@2023")]),
    ("ログインID：kanri01　パスワード：Tk8#mq2Lz", [("secret", "Tk8#mq2Lz")]),
    ("WPA3のキーは Hiro-Net#5566 です", [("secret", "Hiro-Net#5566")]),
    ("事前共有キー（PSK）は VpnKey!2024 を使用", [("secret", "VpnKey!2024")]),
    ("金庫の暗証番号は 4826 です", [("secret", "4826")]),
    ("新しいパスワードが Nv8$kP2w になっています", [("secret", "Nv8$kP2w")]),
    ("username admin privilege 15 password 0 Cisco#9876", [("secret", "Cisco#9876")]),
    ("（ＰＷ：abc12345）", [("secret", "abc12345")]),
])
def test_secrets_in_japanese_and_config_phrasing(text, expected):
    assert kinds(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("ルータの管理画面 192.168.001.001 に入れない", [("ipv4", "192.168.001.001")]),
    ("プリンタのIPを010.000.000.001から010.000.000.050に変更",
     [("ipv4", "010.000.000.001"), ("ipv4", "010.000.000.050")]),
    ("DHCP範囲は192.168.001.100-200", [("ipv4", "192.168.001.100-200")]),
    ("複合機 192。168。10。21 が応答しない", [("ipv4", "192。168。10。21")]),
    ("端末IP：１９２。１６８。３。１５", [("ipv4", "１９２。１６８。３。１５")]),
    ("192.168.1.1。192.168.1.2も同じ", [("ipv4", "192.168.1.1"), ("ipv4", "192.168.1.2")]),
    ("ntp server 10.1.1.1", [("ipv4", "10.1.1.1")]),
])
def test_zero_padded_and_japanese_punctuated_ipv4(text, expected):
    assert kinds(text) == expected


OWNER_KURE = ["呉市", "342025", "kure"]


@pytest.mark.parametrize("text,expected", [
    ("vpn.city.kure.lg.jp に接続できない", [("owner", "kure")]),
    ("VPN.City.KURE.lg.jp に接続できない", [("owner", "KURE")]),
    ("公式サイト https://www.city.kure.lg.jp/ に掲載", [("owner", "kure")]),
    ("ファイルサーバ KURE-FS01 の容量不足", [("owner", "KURE")]),
    ("呉市役所の kure-dc01 が停止", [("owner", "呉市"), ("owner", "kure")]),
    ("団体コード342025の回線", [("owner", "342025")]),
    # an internal URL or an e-mail address is masked whole, which hides the owner too
    ("https://intra.kure.local/portal が表示されない", [("url", "https://intra.kure.local/portal")]),
    ("somu@city.kure.lg.jp へ", [("email", "somu@city.kure.lg.jp")]),
])
def test_romanised_owner_name_in_host_names(text, expected):
    assert kinds(text, owner_names=OWNER_KURE) == expected
    findings = find_sensitive(text, owner_names=OWNER_KURE)
    assert find_sensitive(mask(text, findings), owner_names=OWNER_KURE) == []


@pytest.mark.parametrize("text", [
    "kurenai.example.com の記事を参照",
    "securely に通信する",
    "番号 1342025 と 3420251",
    "fukuyamaya.co.jp の通販サイト",
])
def test_owner_name_inside_a_longer_word_is_not_the_owner(text):
    assert kinds(text, owner_names=OWNER_KURE + ["fukuyama"]) == []


def test_owner_host_name_without_owner_names_is_a_host_name():
    assert kinds("vpn.city.kure.lg.jp に接続できない") == [("hostname", "vpn.city.kure.lg.jp")]


@pytest.mark.parametrize("text", [
    "www.city.kure.lg.jp のお知らせを更新",
    "https://www.pref.hiroshima.lg.jp/ に掲載されています",
    "city.fukuyama.lg.jp のドメインで SPF を設定",
])
def test_a_municipality_domain_and_its_public_web_host_are_not_secret(text):
    assert kinds(text) == []


@pytest.mark.parametrize("text", [
    "パスフレーズの長さは12文字以上とすること",
    "パスワードはExcelで管理しないでください",
    "パスワードはSHA256でハッシュ化して保存",
    "SNMPコミュニティ名をpublicから変更してください",
    "ログの保存先パス：/var/log/httpd/access_log",
    "プロキシのバイパス: 有効",
    "パスワード：********",
    "サブネットマスク 255.255.255.0",
    "ファームウェア バージョン 2.1.0.3 を適用",
    "仕様書の 4.2.1.3 項を参照",
    "10.0.0.0/8 や 172.16.0.0/12 などのプライベートアドレス",
    "GPO {3F2504E0-4F89-11D3-9A0C-0305E82C3301} が適用されない",
    "SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "機種は FortiGate FG-60F と FG-100F",
    "手順1。2。3。4",
])
def test_new_rules_leave_look_alikes_alone(text):
    assert kinds(text) == []


def test_full_width_positions_and_mask_with_the_new_rules():
    text = "ＩＰ：１９２．１６８．００１．０１０、パスフレーズ「Ｓｅｒａ＃２０２４」、担当 山田　太郎"
    findings = find_sensitive(text, personal_names=["山田太郎"])
    assert [(f.kind, f.text) for f in findings] == [
        ("ipv4", "１９２．１６８．００１．０１０"), ("secret", "Ｓｅｒａ＃２０２４"), ("person", "山田　太郎")]
    for f in findings:
        assert text[f.start:f.end] == f.text
    assert mask(text, findings) == "ＩＰ：[IPアドレス]、パスフレーズ「[パスワード等]」、担当 [氏名]"


# --- Rules added after scoring the independent set (tests/sensitive/independent.jsonl) ---

@pytest.mark.parametrize("text,expected", [
    # a value ends before full-width brackets, 、。, trailing punctuation and an opening bracket
    ("旧サーバ（\\\\fs01\\zeimu）", [("url", "\\\\fs01\\zeimu")]),
    ("\\\\fs01\\共有\\税務課、\\\\fs02\\share。", [("url", "\\\\fs01\\共有\\税務課"), ("url", "\\\\fs02\\share")]),
    ("(http://intra.city.local/wiki) と http://intra.city.local/faq.", [("url", "http://intra.city.local/wiki"), ("url", "http://intra.city.local/faq")]),
    ("User Id=sa;Password=Xy9!abc;Database=jukidb", [("secret", "Xy9!abc")]),
    ("Pwd=Abc#9999;", [("secret", "Abc#9999")]),
    ("APIキー: 7f3c9a1e5b2d4f8a9c0e1b2d3f4a5c6e（再発行済み）", [("secret", "7f3c9a1e5b2d4f8a9c0e1b2d3f4a5c6e")]),
    ("パスワード：admin（初期値）", [("secret", "admin")]),
    ("password: abc123(旧)", [("secret", "abc123")]),
])
def test_values_end_before_brackets_and_punctuation(text, expected):
    assert kinds(text) == expected


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123DEF456ghi"


@pytest.mark.parametrize("text,expected", [
    (f'curl -H "Authorization: Bearer {JWT}"', [("secret", JWT)]),
    (f"token {JWT}", [("secret", JWT)]),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", [("secret", "dXNlcjpwYXNzd29yZA==")]),
    ("radius-server host 10.1.1.50 key R4d!usKure", [("ipv4", "10.1.1.50"), ("secret", "R4d!usKure")]),
    ("tacacs-server key T4c@cs!Key", [("secret", "T4c@cs!Key")]),
    ("radius server R1\n key 7 0822455D0A16", [("secret", "0822455D0A16")]),
    ("key chain OSPF\n key 1\n  key-string Ospf#Key1", [("secret", "Ospf#Key1")]),
    ("net use Z: \\\\192.168.10.20\\share Passw0rd!Kure /user:KURE\\helpdesk",
     [("url", "\\\\192.168.10.20\\share"), ("secret", "Passw0rd!Kure")]),
    ("net use \\\\fs01\\share /user:kure\\admin P@ss1234", [("url", "\\\\fs01\\share"), ("secret", "P@ss1234")]),
    ("パスワードを Utm_Adm!n2024 から Utm_Adm!n2025 に変更", [("secret", "Utm_Adm!n2024"), ("secret", "Utm_Adm!n2025")]),
    ("PW: Old#Pass1 → New#Pass2", [("secret", "Old#Pass1"), ("secret", "New#Pass2")]),
    ("パスワードを「Abc#1234」から「Def#5678」に変更", [("secret", "Abc#1234"), ("secret", "Def#5678")]),
    ("機器名\tIPアドレス\t管理ID\tパスワード\nコアSW\t192.168.0.2\tadmin\tC0re#Sw!2023",
     [("ipv4", "192.168.0.2"), ("secret", "C0re#Sw!2023")]),
    ("| 機器 | 管理者PW |\n|---|---|\n| FW | Fw#Pass2024 |\n| SW | ******** |", [("secret", "Fw#Pass2024")]),
    ("連絡先 +65 6123 4567、国内 +81-3-5555-0123", [("phone", "+65 6123 4567"), ("phone", "+81-3-5555-0123")]),
    ("TEL +81 (0)82-555-0147", [("phone", "+81 (0)82-555-0147")]),
])
def test_secrets_in_commands_configs_tables_and_changes(text, expected):
    assert kinds(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("パスワード: ********（マスク済み）", []),
    ("仕様書 4.2.1.3 「ログの保存期間」に従い", []),
    ("第 1.2.3.4 項", []),
    ("Bearer token-based auth を使う", []),
    ("Authorization: Basic 認証を使う", []),
    ("2024-04-03T10:15:22+09:00 に発生", []),
    ("UTC+9 の時刻、予算 +10 20 30", []),
    ("key Vault を使う", []),
    ("net use Z: \\\\fs01\\share * /user:kure\\admin", [("url", "\\\\fs01\\share")]),
    ("パスワードを Abc#1234 から Excel 管理に変更", [("secret", "Abc#1234")]),
    ("項目\t値\n件数\t37\nパス\t/var/log/app", []),
])
def test_the_added_rules_leave_look_alikes_alone(text, expected):
    assert kinds(text) == expected


# --- Rules added after scoring the blind set (tests/sensitive/blind.jsonl) ---

@pytest.mark.parametrize("text,expected", [
    # IPv6 after a label's full-width colon; a full-width colon ends a value (the label is not in it)
    ("・HA管理IPv6：2001:db8:aa:1::fe", [("ipv6", "2001:db8:aa:1::fe")]),
    ("ＩＰｖ６：２００１：ｄｂ８：：１", [("ipv6", "２００１：ｄｂ８：：１")]),
    ("暗号化方式：WPA2-PSK（AES）\nＰＳＫ：mT8#vW2q!Lk4", [("secret", "mT8#vW2q!Lk4")]),
    ("パスワード\nAbc#1234", [("secret", "Abc#1234")]),
    # serial numbers after a bare シリアル, Serial-Number:, SerialNumber, serial_no=
    ("既設UTM（FortiGate 60F、シリアル FGT60FTK20094417）", [("serial", "FGT60FTK20094417")]),
    ("# get system status → Serial-Number: FGT60FTK22031567", [("serial", "FGT60FTK22031567")]),
    ("SerialNumber : 5CG1234XYZ", [("serial", "5CG1234XYZ")]),
    ("serial_no=ABC12345", [("serial", "ABC12345")]),
    # CSV tables: serial and password columns; an asset-number column holds no host names
    ("資産番号,品名,型番,シリアル,設置場所\nH-PC-0457,ノートPC,FMV LIFEBOOK U9313,R3Y04521,市民課",
     [("serial", "R3Y04521")]),
    ('"資産番号","シリアル"\n"KR-PC-0457","R3Y04521"', [("serial", "R3Y04521")]),
    ("ID,パスワード\nadmin,Abc#1234\nguest,Gst#5678", [("secret", "Abc#1234"), ("secret", "Gst#5678")]),
    # Wi-Fi QR payloads, JSON keys, config keywords
    ("QRコードの中身：WIFI:T:WPA;S:HSN-Kaigi;P:Kaigi$2024#3F;;", [("secret", "Kaigi$2024#3F")]),
    ("WIFI:S:My\\;Net;T:WPA;P:ab\\;cd12;;", [("secret", "ab\\;cd12")]),
    ('{"api": {"token": "b3f1e7a9c2d84f06a1e5c9b7d2f4a813"}, "timeout": 30}',
     [("secret", "b3f1e7a9c2d84f06a1e5c9b7d2f4a813")]),
    ("{'api_key': 'sk_abc123def'}", [("secret", "sk_abc123def")]),
    ("SECRET_KEY = 'django-insecure-abc123xyz'", [("secret", "django-insecure-abc123xyz")]),
    ("set network ike gateway GW-Kenchou authentication pre-shared-key key Pa1oAlt0-Psk!93",
     [("secret", "Pa1oAlt0-Psk!93")]),
    ("crypto isakmp key 0 MyS3cret! address 203.0.113.1", [("secret", "MyS3cret!"), ("ipv4", "203.0.113.1")]),
    ("snmp-agent ip host 10.1.9.50 Nk3sh0Ro7731 version 2", [("ipv4", "10.1.9.50"), ("secret", "Nk3sh0Ro7731")]),
    ("snmp-server host 10.1.1.1 traps version 2c Comm#2024", [("ipv4", "10.1.1.1"), ("secret", "Comm#2024")]),
    ("snmp community read-only Xyz#1234", [("secret", "Xyz#1234")]),
    # the new value of a change from a default or a date
    ("ＳＮＭＰのコミュニティ名を本日付で初期値から snmpHsn2411 に変更しました。", [("secret", "snmpHsn2411")]),
    ("パスワードを4月1日から Abc#2025 に変更", [("secret", "Abc#2025")]),
])
def test_rules_added_after_the_blind_set(text, expected):
    assert kinds(text) == expected


@pytest.mark.parametrize("text", [
    # the IPv6 loopback, unspecified address, multicast groups and well-known blocks written as such
    "# /etc/hosts\n127.0.0.1   localhost\n::1         localhost ip6-localhost",
    "IPv6 の ::1（ループバック）は対象外。fe80::/10 のリンクローカルも除外する。",
    "ff02::1 と :: と fe80::/64 と 2001:db8::/32",
    "thumbprint aa:bb:cc:dd:ee:ff:00:11:22",
    # placeholders filled in elsewhere, null, an empty YAML key
    "db:\n  host: ${DB_HOST}\n  password: ${DB_PASSWORD}\n  sslmode: require",
    '{"password": "${DB_PASSWORD}", "token": null}',
    "password: <your password>",
    "PASSWORD=$DB_PASS と $env:DB_PASSWORD と %DB_PASS%",
    "export FLASK_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')",
    "password:\n  sslmode: require",
    '"token_expiry": "2024-01-01", "password":"", "user":"x1234"',
    # asset numbers are not host names; a bare シリアル names an interface, not a number
    "H-PC-0457 が起動しない",
    "資産番号：KR-PC-0457 のPC",
    "資産番号\t品名\nKR-PC-0457\tノートPC",
    "シリアル RS-232C ケーブルで接続",
    "interface Serial0/0/0",
    # SNMP: the vendor default, an SNMPv3 user; prose with commas; a change to a term
    "snmp-server host 10.1.1.1 version 2c public\nsnmp-server host 10.1.1.2 version 3 priv admin01",
    "snmp community read-write public",
    "jobs=12,files=184,220",
    "パスワードは来月から SSO に変更",
    "コミュニティ名を初期値から public に変更",
    "ポリシー: パスワード\nWindows10 の更新",
])
def test_rules_added_after_the_blind_set_leave_look_alikes_alone(text):
    assert [k for k in kinds(text) if k[0] != "ipv4"] == []  # (the SNMP managers' addresses are findings)


def test_asset_numbers_and_host_names_side_by_side():
    assert kinds("資産番号\tホスト名\nKR-PC-0457\tKOSEI-PC05") == [("hostname", "KOSEI-PC05")]


# --- The labelled sets: recall and false alarms, on the tuning part, the held-out part, the
# independent set and the blind set (both written without seeing the code; tuned on since, so no
# longer held out) ---

MIN_RECALL = 0.95
MAX_LOOKALIKE_ALARMS = 1


def test_labelled_set_is_well_formed():
    rows = load()
    positives = [r for r in rows if r["expected"]]
    assert len(positives) >= 60 and len(rows) - len(positives) >= 40
    for row in rows:
        assert row["source"] == "own" and row["note"] and row["split"] in ("tune", "holdout")
        for expected in row["expected"]:
            assert expected["text"] in row["text"], row
            assert expected["kind"] in ("ipv4", "ipv6", "mac", "url", "email", "hostname", "phone",
                                        "secret", "serial", "person", "owner"), row


def test_independent_set_is_well_formed():
    rows = load(INDEPENDENT)
    positives = [r for r in rows if r["expected"]]
    assert len(positives) >= 40 and len(rows) - len(positives) >= 30
    for row in rows:
        assert row["note"] and "split" not in row
        for expected in row["expected"]:
            assert expected["text"] in row["text"], row


def test_blind_set_is_well_formed():
    rows = load(BLIND)
    positives = [r for r in rows if r["expected"]]
    assert len(positives) >= 50 and len(rows) - len(positives) >= 40
    for row in rows:
        assert row["note"] and "split" not in row
        for expected in row["expected"]:
            assert expected["text"] in row["text"], row


def test_labelled_set_recall_and_false_alarms():
    rows = load()
    parts = {name: score(find_sensitive, split(rows, name)) for name in ("tune", "holdout")}
    whole = score(find_sensitive, rows)
    independent = score(find_sensitive, load(INDEPENDENT))
    blind = score(find_sensitive, load(BLIND))
    report = "\n".join([f"labelled set {LABELLED.name}:"]
                       + [f"  {name:8} {result.summary()}" for name, result in parts.items()]
                       + [f"  {'all':8} {whole.summary()}"]
                       + [f"  missed {miss} in {text!r}" for text, miss in whole.misses]
                       + [f"  false alarm {alarm} in {text!r}" for text, alarm in whole.alarms]
                       + [f"independent set {INDEPENDENT.name} (tuned on, no longer held out):",
                          f"  {'all':8} {independent.summary()}"]
                       + [f"  missed {miss} in {text!r}" for text, miss in independent.misses]
                       + [f"  false alarm {alarm} in {text!r}" for text, alarm in independent.alarms]
                       + [f"blind set {BLIND.name} (first scoring 0.872 / 3 alarms; tuned on since, no longer blind):",
                          f"  {'all':8} {blind.summary()}"]
                       + [f"  missed {miss} in {text!r}" for text, miss in blind.misses]
                       + [f"  false alarm {alarm} in {text!r}" for text, alarm in blind.alarms])
    print("\n" + report)
    for result in [*parts.values(), whole, independent, blind]:
        assert result.recall >= MIN_RECALL, report
        assert result.lookalike_alarms <= MAX_LOOKALIKE_ALARMS, report
