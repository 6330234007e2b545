"""Finding details that must not leave a municipality: a plain function, used before a case is
published beyond its owner (neighbours / all).

``find_sensitive(text)`` returns every finding with its kind, text and position;
``mask(text, findings)`` replaces them with placeholders such as ``[IPアドレス]``. Text that only
looks similar is not flagged: version numbers (10.2.1, 10.0.19045.3803, バージョン 2.1.0.3), dates
(2024.4.1, 2024/04/01, 令和6年), netmasks, OIDs, GUIDs and file hashes, a municipality's own
lg.jp domain and public web host (city.kure.lg.jp, www.city.kure.lg.jp — other hosts under it are
flagged), the IPv6 loopback and well-known blocks (::1, fe80::/10), asset numbers (H-PC-0457, 資産番号),
prose about passwords (パスワードを変更した, パスワードはExcelで管理), placeholders that are already
masked (********) or filled in elsewhere (${DB_PASSWORD}). A value ends before Japanese punctuation, a
bracket or a label's colon typed full-width (ＰＳＫ：…) and trailing punctuation (``\\\\fs01\\zeimu）``,
``Password=x;``). Secrets are also found in device configs (radius-server … key, key-string, IKE
pre-shared keys, SNMP communities), ``net use`` commands, Authorization headers and JWTs, JSON keys
("token": "…"), Wi-Fi QR payloads (WIFI:…;P:…;;), password columns of pasted tables (tab, Markdown,
CSV; serial-number columns likewise), and as the new value of a change (… から … に変更).
``tests/sensitive/labelled.jsonl``, ``independent.jsonl`` and ``blind.jsonl`` are the labelled sets
the rules are measured against (recall and false alarms, see ``tests/sensitive/score.py``).
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field

PLACEHOLDERS = {
    "ipv4": "[IPアドレス]",
    "ipv6": "[IPアドレス]",
    "mac": "[MACアドレス]",
    "url": "[内部URL]",
    "email": "[メールアドレス]",
    "hostname": "[ホスト名]",
    "phone": "[電話番号]",
    "secret": "[パスワード等]",
    "serial": "[シリアル番号]",
    "person": "[氏名]",
    "owner": "[市町名]",
}

KIND_LABELS = {
    "ipv4": "IPv4アドレス", "ipv6": "IPv6アドレス", "mac": "MACアドレス", "url": "内部ホストのURL",
    "email": "メールアドレス", "hostname": "ホスト名・内部ドメイン名", "phone": "電話番号",
    "secret": "パスワード・鍵らしき文字列", "serial": "シリアル番号", "person": "個人名",
    "owner": "所有する市町の名称（匿名で公開）",
}

INTERNAL_SUFFIXES = ("local", "lan", "internal", "intra", "corp", "home", "localdomain", "private", "ad", "lgwan")
# Local-government domains are <type>.<name>.lg.jp; the domain itself (in every e-mail address) and
# its public web host www.<type>.<name>.lg.jp are not secrets, any other named host under it is.
LG_ORGANISATION_TYPES = ("pref", "city", "town", "vill")

_OCTET = r"(?:25[0-5]|2[0-4]\d|[01]?\d?\d)"  # zero-padded octets (192.168.001.010) too
_IPV4 = re.compile(
    rf"(?<![0-9A-Za-z_.])({_OCTET}(?P<sep>[.。]){_OCTET}(?P=sep){_OCTET}(?P=sep){_OCTET})"
    rf"(?P<cidr>/(?:3[0-2]|[12]?\d))?(?P<range>\s*[-～〜~]\s*{_OCTET}(?:\.{_OCTET}){{0,3}})?(?![0-9A-Za-z_])(?!(?P=sep)\d)"
)
# Netmask-like values, the loopback and the textbook private blocks say nothing about a municipality.
_GENERIC_NETWORKS = ("0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
_VERSION_BEFORE = re.compile(r"(?i)(?:バージョン|ファームウェア|ビルド|リリース|(?<![A-Za-z])(?:ver\.?|version|firmware|build|rev\.?))\s*[:]?\s*$")
_SECTION_AFTER = re.compile(r"\s*(?:項|節|章|条)")
_SECTION_BEFORE = re.compile(r"(?:第|§|仕様書の?|項番|節番号|章番号|図|表)\s*$")
# A colon before the address is only allowed when it was typed full-width, as a label's (IPv6：2001:db8::1).
_IPV6 = re.compile(r"(?<![0-9A-Za-z_])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?:/\d{1,3})?(?![0-9A-Za-z_:])")
# The loopback, the unspecified address, multicast groups and well-known blocks written as such
# (fe80::/10, 2001:db8::/32) are not host addresses, like 127.0.0.1 and 10.0.0.0/8.
_GENERIC_IPV6_NETWORKS = frozenset(ipaddress.IPv6Network(n) for n in (
    "::/0", "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "100::/64", "2000::/3", "2001::/32",
    "2001:db8::/32", "2002::/16", "fc00::/7", "fd00::/8", "fe80::/10", "fe80::/64", "ff00::/8"))
_MAC = re.compile(r"(?<![0-9A-Za-z_])(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![0-9A-Za-z_:-])|(?<![0-9A-Za-z_.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![0-9A-Za-z_.])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# UNC paths are also typed with yen signs (¥¥fs01¥share) on Japanese keyboards.
_URL = re.compile(r"(?:https?|ftp|sftp|smb|file|ldaps?)://[^\s<>\"'）」]+|(?:\\\\|¥¥)[A-Za-z0-9._-]+[\\¥][^\s<>\"']*")
_HOSTNAME = re.compile(r"(?<![0-9A-Za-z_@.-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z][A-Za-z0-9-]{1,30})(?![0-9A-Za-z_.-])")
# Host names without a domain, named the way municipal servers and PCs are: a prefix, then a role and
# a number (KURE-FS01, somu-pc0123, hq-dc-01). Model numbers (FG-60F, RTX1210) have no role part.
# A one-letter prefix (H-PC-0457) is an asset number's, and so is anything labelled or in a column
# named 資産番号 / 管理番号 / asset tag.
_NETBIOS_HOST = re.compile(
    r"(?i)(?<![0-9A-Za-z_.@\\/¥-])(?P<prefix>[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*?)"
    r"-(?:SV|SRV|SVR|FS|DC|AD|NAS|DB|AP|WEB|MAIL|PRT|PC|TC|VDI|RDS|WSUS|FW|RT|SW|UTM)-?\d{2,4}"
    r"(?![0-9A-Za-z_-]|\.[0-9A-Za-z])"
)
_ASSET_NUMBER = r"(?:資産(?:管理)?(?:番号|No\.?|ID)|管理番号|備品(?:番号|No\.?)|(?<![A-Za-z])asset[ _-]?(?:no\.?|number|tag|id)?)"
_ASSET_LABEL = re.compile(rf"(?i){_ASSET_NUMBER}[ \t]*[:]?[ \t]*$")
_PHONE = re.compile(
    r"(?<![\d-])(?:0\d{1,4}-\d{1,4}-\d{3,4}|\(0\d{1,4}\)\s?\d{1,4}-\d{4}|0\d{1,4}\(\d{1,4}\)\d{3,4}"
    r"|0[5789]0[- ]?\d{4}[- ]?\d{4}|0120-?\d{3}-?\d{3})(?![\d-])"
)
# International form: +65 6123 4567, +81-3-5555-0123, +81 (0)3-5555-0123 (8 to 15 digits in all).
_INTL_PHONE = re.compile(
    r"(?<![0-9A-Za-z+])\+[1-9]\d{0,2}(?:[ -]?\(0\)[ -]?|[ -])\d{1,4}(?:[ -]\d{2,5}){1,3}(?![0-9A-Za-z-])"
)
# Where a value (URL, UNC path, secret) ends: Japanese punctuation and brackets, and these characters
# when they were typed full-width (（）；，：) — text is folded, so they are found by their original.
_PROSE_STOPS = "、。「」『』【】〔〕《》〈〉"
_WIDE_STOPS = "（）［］｛｝；，："  # a full-width colon is a label's: ＰＳＫ：mT8#… is not one value

# Secrets: a keyword, a separator, then a value. Keywords in English (configs, logs) and Japanese.
_SECRET_KEYWORD = (
    r"(?:(?<![A-Za-z/\\])(?:password|passwd|passphrase|passcode|pwd|pass|pw|pin|psksecret|secret(?:[_-]?(?:access[_-]?)?key)?|token"
    r"|api[_ -]?key|pre-?shared-?key|psk|community(?:名|文字列|[ _-]?(?:name|string))?)(?![A-Za-z])"
    r"|パスワード|パスフレーズ|パスコード|(?<![ァ-ヴー])パス|暗証番号|認証(?:キー|鍵)|(?:事前)?共有(?:キー|鍵|シークレット)"
    r"|共通鍵|暗号化?キー|セキュリティキー|ネットワークキー|(?:WPA[23]?|WEP|Wi-?Fi)(?:-PSK)?\s*(?:の\s*)?(?:キー|パスワード)"
    r"|(?:SNMP\s*(?:の\s*)?)?コミュニティ(?:名|文字列)|SNMP\s*(?:の\s*)?コミュニティ|シークレット|(?:アクセス)?トークン"
    r"|API\s*キー)"
)
# A quoted key is a JSON one ("token": "…"). After a line break (a form copied as 「パスワード\nAbc#1234」)
# only a value standing alone on the next line counts. Words
# between a config keyword and its value: type numbers and text/ascii/hex/ENC, Palo Alto's
# ``pre-shared-key key X``, Yamaha's ``snmp community read-only X``.
_SECRET = re.compile(
    rf"(?i)(?P<keyword>{_SECRET_KEYWORD})(?:[ \t]*\([^()\n]{{1,12}}\))?[ \t]*】?"
    r"(?P<sep>[\"']?\s*[:=]\s*|\s*は\s*|\s*[をが]\s*|[ \t]*\n[ \t]*|[ \t]+|(?=[「『]))"
    r"(?P<prefix>(?:(?:\d{1,2}|text|ascii(?:-text)?|hex|ENC|key|read-?only|read-?write)[ \t]+){0,2})"
    r"(?:[「『\"'](?P<quoted>[^「『」』\"'\n]{1,64})[」』\"']|(?P<value>(?![\"'])[!-~]{4,}))"
)
# The new value of a change from a default or a date: 「コミュニティ名を本日付で初期値から snmpHsn2411 に変更」.
_CHANGED_FROM = re.compile(
    rf"(?i)(?P<keyword>{_SECRET_KEYWORD})[ \t]*[をは][^、。\n「」『』]{{0,20}}?から[ \t]*"
    r"(?:[「『\"'](?P<quoted>[^「『」』\"'\n]{1,64})[」』\"']|(?P<value>[!-~]{4,}?))[ \t]*に(?:変更|設定|更新|リセット)"
)
# "ID/PW: admin / P@ss" — only the part after the slash is the secret.
_ID_PASSWORD_PAIR = re.compile(
    r"(?i)(?<![A-Za-z])(?:ログイン|ユーザー?)?(?:ID|名)\s*[/・]\s*(?:PW|pass(?:word)?|パスワード)(?![A-Za-z])"
    r"\s*(?:[:=]|は)?\s*[「\"]?[!-.0-~]+?[」\"]?\s*/\s*[「\"]?(?P<value>[!-~]{4,}?)[」\"]?(?![!-~])"
)
# Network-device configs: the shared key of a RADIUS/TACACS+ server or an IKE peer (radius-server host … key X,
# tacacs-server key X, a "key 7 …" line under a server), key-string (key chains), OSPF/NTP keys.
_DEVICE_KEY = re.compile(
    r"(?im)(?:(?<![A-Za-z-])(?P<named>key-string|server-key|authentication-key|message-digest-key[ \t]+\d+[ \t]+md5)"
    r"|(?:^[ \t]*|(?<![A-Za-z-])(?:radius|tacacs|isakmp|ike)(?:-server|\+)?(?![A-Za-z])[^\n]*?[ \t])key)"
    r"[ \t]+(?P<type>\d[ \t]+)?(?P<value>[!-~]{4,})(?![!-~])"
)
# The community of an SNMP manager given by position: ``snmp-server host 10.1.1.1 version 2c X``,
# NEC IX ``snmp-agent ip host 10.1.9.50 X version 2`` (SNMPv3 names a user there, not a secret).
_SNMP_HOST = re.compile(
    r"(?im)^[ \t]*(?:snmp-server|snmp-agent(?:[ \t]+ip)?|snmp(?:v2c)?)[ \t]+host[ \t]+[0-9A-Za-z:._-]+"
    r"(?P<options>(?:[ \t]+(?:traps?|informs?|version[ \t]+[0-9a-z]+|vrf[ \t]+\S+))*)[ \t]+(?P<value>[!-~]{4,})"
)
# A Wi-Fi QR code's payload: WIFI:T:WPA;S:<ssid>;P:<key>;; (fields in any order, \; escapes a semicolon).
_WIFI_QR = re.compile(r"(?i)(?<![A-Za-z])WIFI:(?:[A-Z]{1,2}:(?:\\.|[^;\\\n])*;)*?P:(?P<value>(?:\\.|[^;\\\n])+)")
# net use [Z:] \\host\share <password> [/user:…]: the first argument after the path not starting with /.
_NET_USE = re.compile(r"(?im)(?<![A-Za-z])net[ \t]+use(?P<args>[ \t][^\n]*)")
# HTTP authorisation: "Authorization: Basic dXNl…", "Bearer <token>" (a JWT with its dots is one value).
_BEARER = re.compile(
    r"(?i)(?:(?<![A-Za-z])authorization[ \t]*[:=][ \t]*(?:(?:basic|bearer|token|digest)[ \t]+)?|(?<![A-Za-z])bearer[ \t]+)"
    r"(?P<value>[A-Za-z0-9._~+/-]{8,}=*)"
)
_JWT = re.compile(r"(?<![A-Za-z0-9_.-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?![A-Za-z0-9_-])")
# The new value after the old one: "パスワードを Abc#2024 から Abc#2025 に変更", "PW: old → new".
_CHANGED_TO = re.compile(
    r"[ \t]*(?:から|より|→|⇒|->|=>)[ \t]*(?:[「『\"'](?P<quoted>[^「『」』\"'\n]{1,64})[」』\"']|(?P<value>[!-~]{4,}))"
)
# A table pasted from Excel (tab-separated) or written in Markdown (| a | b |): a header cell naming a
# password column makes the cells below it secrets.
_SECRET_HEADER = re.compile(rf"(?i).{{0,12}}?{_SECRET_KEYWORD}(?:\s*\([^()]{{1,12}}\))?")
_AUTH_MYNAME = re.compile(r"(?i)(?<![A-Za-z])auth\s+myname\s+\S+\s+(?P<value>[!-~]{4,})")  # Yamaha RTX PPP
_BITLOCKER_KEY = re.compile(r"(?<![\d-])\d{6}(?:-\d{6}){7}(?![\d-])")
_PRODUCT_KEY = re.compile(r"(?<![A-Za-z0-9-])(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{5}(?:-[A-Z0-9]{5}){4}(?![A-Za-z0-9-])")
_KEY = re.compile(r"(?<![A-Za-z0-9+/=_-])(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/=_-])")
_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_HASH_LENGTHS = (32, 40, 56, 64, 96, 128)  # MD5, SHA-1, SHA-2: file hashes are shared, not secret
# Words and terms rather than passwords: Excel, SHA256, AES256, TLS1.2, v2.0, 256bit, 90days.
_TERM = re.compile(r"[A-Za-z]+|[A-Za-z]{1,4}[-.]?\d{1,3}(?:\.\d+)*|\d+[A-Za-z]{1,5}")
# After such a value, what shows it is the value itself ("…はabc123です", not "…はSHA256で保存").
_VALUE_ENDS = re.compile(r"[ \t]*(?:\n|$|[、。,.;()\]」』】!?]|です|でした|だった|のまま|に(?:変更|設定|リセット|更新))")
_NOT_VALUES = ("なし", "無し", "不明", "未設定", "null", "none", "nil", "true", "false", "undefined")
# Placeholders filled in elsewhere: ${DB_PASSWORD}, $(cat file), {{ vault_pw }}, %DB_PASS%, <password>, $DB_PASS.
_PLACEHOLDER = re.compile(
    r"\$\{[^{}\n]+\}|\$\([^\n]+\)|\{\{[^{}\n]+\}\}|%[A-Za-z_][A-Za-z0-9_]*%|<[^<>\n]{1,40}>"
    r"|\$[A-Z][A-Z0-9]*(?:_[A-Z][A-Z0-9]*)+|(?i:\$env:[A-Z_][A-Z0-9_]*)")
# After a bare シリアル only a value of 8+ capitals and digits (シリアル FGT60FTK20094417, not シリアル RS-232C).
_SERIAL = re.compile(
    r"(?i)(?:(?:s/n|serial(?:[ \t_-]*(?:no\.?|number|num|#))?|シリアル(?:番号|ナンバー|No\.?)|製造(?:番号|No\.?)|サービスタグ|service\s*tag)"
    r"\s*[:=]?|(?:シリアル|(?<![A-Za-z])SN)\s*:)\s*(?=[A-Z0-9-]*\d)([A-Z0-9][A-Z0-9-]{5,})(?![A-Za-z0-9])"
    r"|シリアル[ \t]+(?-i:(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])([A-Z0-9]{8,}))(?![A-Za-z0-9-])"
)
_SERIAL_VALUE = re.compile(r"(?i)(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{5,}")


@dataclass(frozen=True)
class Finding:
    kind: str
    text: str
    start: int
    end: int

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def placeholder(self) -> str:
        return PLACEHOLDERS[self.kind]


def _is_internal_host(name: str) -> bool:
    """Internal domains, and named hosts of local-government (LGWAN / .lg.jp) domains — not the
    organisation's own domain (city.kure.lg.jp) nor its public web host (www.city.kure.lg.jp)."""
    labels = name.lower().rstrip(".").split(".")
    if len(labels) >= 2 and (labels[-1] in INTERNAL_SUFFIXES or "lgwan" in labels):
        return True
    if labels[-2:] != ["lg", "jp"] or len(labels) < 4:
        return False
    if labels[-4] in LG_ORGANISATION_TYPES:
        return labels[:-4] not in ([], ["www"])
    return True


def _width_folded(text: str) -> tuple[str, list[int]]:
    """NFKC per character (full-width ＩＰ and digits become ASCII), with each folded character's
    position in ``text`` so findings point at what the user typed."""
    out: list[str] = []
    positions: list[int] = []
    for index, char in enumerate(text):
        folded = unicodedata.normalize("NFKC", char) if ord(char) > 0x7F else char
        out.append(folded)
        positions.extend([index] * len(folded))
    positions.append(len(text))
    return "".join(out), positions


def find_sensitive(text: str, personal_names: list[str] | tuple[str, ...] = (),
                   owner_names: list[str] | tuple[str, ...] = ()) -> list[Finding]:
    """Every sensitive detail in ``text``, in order, without overlaps (the longer finding wins).
    ``owner_names`` (the owning municipality, when a case is published anonymously) are findings too:
    Japanese names wherever they occur, ASCII names (a romanised name such as ``kure``, or the code)
    case-insensitively as a whole word, e.g. a label of ``vpn.city.kure.lg.jp``. An owner name inside
    a host name is reported instead of the host name (masking it is what hides the owner)."""
    if not text:
        return []
    original = text
    text, positions = _width_folded(original)
    found: list[Finding] = []

    def add(kind: str, start: int, end: int) -> None:
        o_start, o_end = positions[start], positions[end] if end < len(positions) else len(original)
        found.append(Finding(kind, original[o_start:o_end], o_start, o_end))

    stops = {i for i, char in enumerate(text)
             if char in _PROSE_STOPS or original[positions[i]] in _WIDE_STOPS}
    position = 0
    while m := _URL.search(text, position):  # searching on after where the value ends: （\\a\b、\\c\d）
        end = max(_value_end(text, m.start(), m.end(), stops, punctuation=".,;:!?"), m.start() + 1)
        position = end
        host = re.split(r"[/\\¥:]", re.sub(r"^[a-z]+://|^\\\\|^¥¥", "", text[m.start():end], flags=re.I))[0]
        if _is_internal_host(host) or _looks_like_ip(host) or "." not in host:
            add("url", m.start(), end)
    for m in _EMAIL.finditer(text):
        add("email", m.start(), m.end())
    for m in _IPV4.finditer(text):
        if _is_address(m, text):
            add("ipv4", m.start(), m.end())
    for m in _IPV6.finditer(text):
        if m.start() and text[m.start() - 1] == ":" and m.start() - 1 not in stops:
            continue  # the tail of a longer colon-separated run
        if _is_ipv6_host(m.group()):
            add("ipv6", m.start(), m.end())
    for m in _MAC.finditer(text):
        if not _continues_a_hex_sequence(text, m.start()):
            add("mac", m.start(), m.end())
    for m in _HOSTNAME.finditer(text):
        if _is_internal_host(m.group()):
            add("hostname", m.start(), m.end())
    tables = _tables(text, stops)
    for m in _NETBIOS_HOST.finditer(text):
        if len(m.group("prefix")) > 1 and not _ASSET_LABEL.search(text, max(0, m.start() - 16), m.start()) \
                and not any(s <= m.start() < e for s, e in tables.assets):
            add("hostname", m.start(), m.end())
    for m in _PHONE.finditer(text):
        add("phone", m.start(), m.end())
    for m in _INTL_PHONE.finditer(text):
        if 8 <= len(re.sub(r"\(0\)|\D", "", m.group())) <= 15:
            add("phone", m.start(), m.end())
    for start, end in _secrets(text, stops, tables):
        add("secret", start, end)
    for m in _SERIAL.finditer(text):
        group = 1 if m.group(1) is not None else 2
        add("serial", m.start(group), m.end(group))
    for start, end in tables.serials:
        add("serial", start, end)
    for name in personal_names:
        for start, end in _name_spans(text, name, personal=True):
            add("person", start, end)
    owners = []
    for name in owner_names:
        for start, end in _name_spans(text, name, personal=False):
            add("owner", start, end)
            owners.append(found[-1])
    if owners:  # the owner's name wins over the host name it is part of
        found = [f for f in found if f.kind != "hostname"
                 or not any(f.start <= o.start and o.end <= f.end for o in owners)]

    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for finding in found:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def _name_spans(text: str, name: str, personal: bool) -> list[tuple[int, int]]:
    """Where ``name`` occurs in (folded) ``text``. A personal name may be written with a space between
    its parts (山田 太郎 for 山田太郎). An ASCII owner name (romanised name, code) is found in any case
    but only as a whole word: ``kure`` in ``vpn.city.kure.lg.jp``, ``KURE-FS01`` or ``kure1``, not in
    ``kurenai``; a code not inside a longer number."""
    name = unicodedata.normalize("NFKC", name.strip())
    if personal:
        name = re.sub(r"\s+", "", name)
    if len(name) < 2:
        return []
    if personal:
        return [m.span() for m in re.finditer(r"\s?".join(map(re.escape, name)), text)]
    if not name.isascii():
        return [m.span() for m in re.finditer(re.escape(name), text)]
    pattern = re.escape(name)
    if name[0].isalnum():
        pattern = ("(?<![A-Za-z])" if name[0].isalpha() else "(?<![0-9])") + pattern
    if name[-1].isalnum():
        pattern += "(?![A-Za-z])" if name[-1].isalpha() else "(?![0-9])"
    return [m.span() for m in re.finditer(pattern, text, re.IGNORECASE)]


def _secrets(text: str, stops: set[int] | frozenset[int] = frozenset(),
             tables: _Tables | None = None) -> list[tuple[int, int]]:
    """Spans of passwords, keys and the like (a finding may overlap another; the caller resolves).
    ``stops`` are positions a value cannot extend over (Japanese punctuation, full-width brackets)."""
    tables = tables if tables is not None else _tables(text, stops)
    spans: list[tuple[int, int]] = []
    paired: list[tuple[int, int]] = []
    for m in _ID_PASSWORD_PAIR.finditer(text):
        paired.append((m.start(), m.end()))
        start = m.start("value")
        end = _secret_end(text, start, m.end("value"), stops)
        if _is_value(text[start:end]):
            spans.append((start, end))
    for m in _AUTH_MYNAME.finditer(text):
        spans.append(m.span("value"))
    position = 0
    while m := _SECRET.search(text, position):
        # a match without a value may have taken the next keyword as its value: search on after its own
        position = m.end("keyword")
        if any(s <= m.start("keyword") < e for s, e in paired) or ("\n" in m.group("sep") and any(
                s <= m.start("keyword") < e for s, e in tables.headers)):
            continue  # below a table's header is a row, read by _tables (ID,パスワード\nadmin,Abc#1)
        span = _secret_value(text, m, stops)
        if span:
            position = max(position, m.end())
        while span:  # and the new value after the old one (… から … に変更)
            spans.append(span)
            span = _changed_to(text, span[1], stops)
    for m in _CHANGED_FROM.finditer(text):
        if m.group("quoted") is not None:
            span = _quoted_value(m, "quoted")
        else:
            value = m.group("value")
            span = m.span("value") if _is_value(value) and _looks_like_password(value) else None
        if span:
            spans.append(span)
    for m in _DEVICE_KEY.finditer(text):
        start = m.start("value")
        end = _secret_end(text, start, m.end("value"), stops)
        value = text[start:end]
        if _is_value(value) and (m.group("named") or m.group("type") or _looks_like_password(value)):
            spans.append((start, end))
    for m in _SNMP_HOST.finditer(text):
        value = m.group("value")
        if not re.search(r"(?i)version[ \t]+3", m.group("options")) and _is_value(value) and _looks_like_password(value):
            spans.append(m.span("value"))
    for m in _WIFI_QR.finditer(text):
        start = m.start("value")
        end = _value_end(text, start, m.end("value"), stops, punctuation="")
        if _is_value(text[start:end]):
            spans.append((start, end))
    for m in _NET_USE.finditer(text):
        spans.extend(_net_use_password(text, m, stops))
    for m in _BEARER.finditer(text):
        start = m.start("value")
        end = _value_end(text, start, m.end("value"), stops, punctuation=".,;:")
        value = text[start:end]
        if len(value) >= 8 and _TERM.fullmatch(value) is None and (
                re.search(r"\d", value) or (re.search(r"[a-z]", value[1:]) and re.search(r"[A-Z]", value[1:]))):
            spans.append((start, end))
    for m in _JWT.finditer(text):
        spans.append(m.span())
    spans.extend(tables.secrets)
    for m in _BITLOCKER_KEY.finditer(text):
        spans.append(m.span())
    for m in _PRODUCT_KEY.finditer(text):
        spans.append(m.span())
    for m in _KEY.finditer(text):
        value = m.group()
        if _GUID.fullmatch(value) or (len(value) in _HASH_LENGTHS and re.fullmatch(r"[0-9A-Fa-f]+", value)):
            continue
        spans.append(m.span())
    return spans


def _value_end(text: str, start: int, end: int, stops: set[int] | frozenset[int], punctuation: str) -> int:
    """Where a value matched as ``text[start:end]`` ends: before a stop (、。「 or a bracket typed
    full-width), and without trailing ``punctuation``, an opening bracket or a closing bracket that
    closes nothing inside it (``(PW: abc12345)``, ``\\\\fs01\\zeimu）``, ``c6e（漏えい時…``)."""
    end = next((i for i in range(start, end) if i in stops), end)
    while end > start:
        last = text[end - 1]
        if last in punctuation or last in "([{":
            end -= 1
        elif last in ")]}" and text.count("([{"[")]}".index(last)], start, end) < text.count(last, start, end):
            end -= 1
        else:
            break
    return end


_NEXT_SETTING = re.compile(r";(?=[ \t]*[A-Za-z][A-Za-z0-9 _]*=)")  # Password=x;Database=y (connection strings)


def _secret_end(text: str, start: int, end: int, stops: set[int] | frozenset[int]) -> int:
    """A trailing colon ends a YAML key, not a value (``password:\n  sslmode: require``)."""
    cut = _NEXT_SETTING.search(text, start, end)
    return _value_end(text, start, cut.start() if cut else end, stops, punctuation=",;:")


def _is_value(value: str) -> bool:
    """Not empty, a placeholder ([パスワード等], ${DB_PASSWORD}), 'なし', null, a path or an already masked
    value (********)."""
    return not (len(value) < 4 or value.startswith("[") or value.lower() in _NOT_VALUES or _is_path(value)
                or re.fullmatch(r"[*●xX•]+", value) or _PLACEHOLDER.fullmatch(value))


def _looks_like_password(value: str) -> bool:
    """Without a strong separator: at least 6 characters, letters with digits or symbols, not a term."""
    has_letter = re.search(r"[A-Za-z]", value) is not None
    has_other = re.search(r"[0-9!-/:-@\[-`{-~]", value) is not None
    return len(value) >= 6 and has_letter and has_other and _TERM.fullmatch(value) is None


def _secret_value(text: str, m: re.Match, stops: set[int] | frozenset[int] = frozenset()) -> tuple[int, int] | None:
    """The value after a secret keyword, or None when what follows is prose, a path or a placeholder.
    After ':' '=' 'は' or in quotes any value counts; after 'を' 'が' or a bare space (config lines such
    as ``password 0 Cisco#9876``) only one that looks like a password (letters with digits/symbols)."""
    if m.group("quoted") is not None:
        return _quoted_value(m, "quoted")
    start = m.start("value")
    end = _secret_end(text, start, m.end("value"), stops)
    value = text[start:end]
    if not _is_value(value) or _PLACEHOLDER.match(text, start):
        return None  # password: <your password>, SECRET_KEY=$(python -c '…')
    sep = m.group("sep")
    strong = bool(re.search(r"[:=は]", sep)) or text[m.end("keyword"):m.start("sep")].strip().endswith("】")
    line_end = text.find("\n", end)
    if not strong and "\n" in sep and (m.group("prefix") or (
            text[end:None if line_end < 0 else line_end].strip() and not _VALUE_ENDS.match(text, end))):
        return None  # after a line break only a value that stands alone on the next line
    if strong and not m.group("prefix"):
        if _TERM.fullmatch(value) and not _VALUE_ENDS.match(text, end):
            return None
        return start, end
    return (start, end) if _looks_like_password(value) else None


def _quoted_value(m: re.Match, group: str) -> tuple[int, int] | None:
    quoted = m.group(group)
    value, start = quoted.strip(), m.start(group) + len(quoted) - len(quoted.lstrip())
    if len(value) < 4 or not re.search(r"[A-Za-z0-9]", value) or value.startswith("[") or _is_path(value) \
            or _PLACEHOLDER.fullmatch(value):
        return None
    return start, start + len(value)


def _changed_to(text: str, end: int, stops: set[int] | frozenset[int]) -> tuple[int, int] | None:
    """The new value written after an old one: ``… を Abc#2024 から Abc#2025 に変更``, ``old → new``."""
    if text[end:end + 1] in ("」", "』", '"', "'"):
        end += 1
    m = _CHANGED_TO.match(text, end)
    if not m:
        return None
    if m.group("quoted") is not None:
        return _quoted_value(m, "quoted")
    start = m.start("value")
    value_end = _secret_end(text, start, m.end("value"), stops)
    value = text[start:value_end]
    if not _is_value(value) or (_TERM.fullmatch(value) and not _VALUE_ENDS.match(text, value_end)):
        return None
    return start, value_end


_NET_USE_ARGUMENT = re.compile(r'"[^"\n]*"|[^\s"]+')


def _net_use_password(text: str, m: re.Match, stops: set[int] | frozenset[int]) -> list[tuple[int, int]]:
    """``net use Z: \\\\host\\share <password> /user:…``: the first argument after the path that is not
    an option (``/user:…``) nor ``*`` (asks for it); prose after the command ends the search."""
    after_path = False
    for token in _NET_USE_ARGUMENT.finditer(text, m.start("args"), m.end("args")):
        value = token.group()
        if not after_path:
            after_path = value.startswith(("\\\\", "¥¥"))
            continue
        if value.startswith("/"):
            continue
        if value == "*" or not re.fullmatch(r'"[ -~]+"|[!-~]+', value):
            return []
        start, end = token.span()
        if value.startswith('"'):
            start, end = start + 1, end - 1
        end = _secret_end(text, start, end, stops)
        return [(start, end)] if _is_value(text[start:end]) else []
    return []


_CSV_FIELD = re.compile(r'[ \t]*(?:"(?:[^"\n]|"")*"|[^,"\n]*)[ \t]*')
_SERIAL_HEADER = re.compile(
    r"(?i).{0,12}?(?:シリアル(?:番号|ナンバー|No\.?)?|製造(?:番号|No\.?)|(?<![A-Za-z])S/?N|serial(?:[ _-]?(?:no\.?|number|#))?"
    r"|サービスタグ|service[ _-]?tag)")
_ASSET_HEADER = re.compile(rf"(?i).{{0,6}}?{_ASSET_NUMBER}")


@dataclass
class _Tables:
    """What the header row of a pasted table says about its columns: the cells under a password
    column (secrets), under a serial-number column (serials), under an asset-number column (not host
    names), and where the header rows are (their keywords are not followed by a value)."""
    secrets: list[tuple[int, int]] = field(default_factory=list)
    serials: list[tuple[int, int]] = field(default_factory=list)
    assets: list[tuple[int, int]] = field(default_factory=list)
    headers: list[tuple[int, int]] = field(default_factory=list)


def _table_cells(text: str, start: int, end: int) -> tuple[str, list[tuple[int, int]]] | None:
    """The separator and cells of a tab-separated (pasted from Excel), Markdown (| a | b |) or
    comma-separated (CSV, quoted fields too) row, else None."""
    line = text[start:end]
    if "\t" in line:
        sep = "\t"
    elif line.lstrip().startswith("|") and line.count("|") >= 2:
        sep = "|"
    elif "," in line:
        return ",", _csv_cells(text, start, end)
    else:
        return None
    cells, position = [], start
    for cell in line.split(sep):
        stripped = cell.strip()
        cell_start = position + (len(cell) - len(cell.lstrip()))
        cells.append((cell_start, cell_start + len(stripped)))
        position += len(cell) + 1
    return sep, cells


def _csv_cells(text: str, start: int, end: int) -> list[tuple[int, int]]:
    cells, position = [], start
    while True:
        m = _CSV_FIELD.match(text, position, end)
        cell_start, cell_end = m.start() + len(m.group()) - len(m.group().lstrip()), m.start() + len(m.group().rstrip())
        if cell_end - cell_start >= 2 and text[cell_start] == '"' and text[cell_end - 1] == '"':
            cell_start, cell_end = cell_start + 1, cell_end - 1
        cells.append((cell_start, cell_end))
        if m.end() >= end or text[m.end()] != ",":
            return cells
        position = m.end() + 1


def _is_csv_header(text: str, cells: list[tuple[int, int]]) -> bool:
    """A comma-separated line is a header row only when every cell is short (not a sentence)."""
    return all(e - s <= 24 and not re.search(r"[。、]", text[s:e]) for s, e in cells)


def _tables(text: str, stops: set[int] | frozenset[int]) -> _Tables:
    """The columns of a table named by its header row — パスワード, 管理者PW, 事前共有キー … (secrets),
    シリアル, 製造番号, S/N (serials), 資産番号, 管理番号 (asset numbers) — in the rows of the same table
    (until a line that is not a row; a CSV row must have as many cells as its header)."""
    tables = _Tables()
    columns: dict[int, str] = {}
    width = 0
    line_start = 0
    while line_start <= len(text):
        line_end = text.find("\n", line_start)
        line_end = len(text) if line_end < 0 else line_end
        row = _table_cells(text, line_start, line_end)
        if row is None or (row[0] == "," and columns and len(row[1]) != width):
            columns = {}
        if row is not None:
            sep, cells = row
            header = {}
            if sep != "," or _is_csv_header(text, cells):
                for i, (s, e) in enumerate(cells):
                    cell = text[s:e]
                    if _SECRET_HEADER.fullmatch(cell):
                        header[i] = "secret"
                    elif _SERIAL_HEADER.fullmatch(cell):
                        header[i] = "serial"
                    elif _ASSET_HEADER.fullmatch(cell):
                        header[i] = "asset"
            if header:
                columns, width = header, len(cells)
                tables.headers.append((line_start, line_end))
            else:
                for i, kind in columns.items():
                    if i < len(cells):
                        _table_cell(text, cells[i], kind, stops, tables)
        line_start = line_end + 1
    return tables


def _table_cell(text: str, cell: tuple[int, int], kind: str, stops: set[int] | frozenset[int],
                tables: _Tables) -> None:
    start, end = cell
    if kind == "asset":
        tables.assets.append((start, end))
    elif kind == "serial":
        if _SERIAL_VALUE.fullmatch(text, start, end):
            tables.serials.append((start, end))
    else:
        end = _secret_end(text, start, end, stops)
        value = text[start:end]
        if re.fullmatch(r"[!-~]+", value) and _is_value(value) and not re.fullmatch(r":?-+:?", value):
            tables.secrets.append((start, end))


def _is_path(value: str) -> bool:
    return (value.startswith(("/", "\\\\", "~/", "./", "¥¥")) or "://" in value
            or re.match(r"[A-Za-z]:[\\¥/]", value) is not None)


def _is_address(m: re.Match, text: str) -> bool:
    """An IPv4 match that is an address: not a netmask or wildcard, the loopback, a textbook private
    block, a four-part version number (バージョン 2.1.0.3) or a section number (4.2.1.3 項, 第 4.2.1.3,
    any four one-digit parts)."""
    parts = m.group(1).split(m.group("sep"))
    if m.group("sep") == "。" and (len(parts[0]) < 2 or re.fullmatch(r"\d。", text[max(0, m.start() - 2):m.start()])):
        return False  # 。 also ends sentences: 手順1。2。3。4 is not an address
    octets = [int(part) for part in parts]
    value = int.from_bytes(bytes(octets), "big")
    plain = f"{'.'.join(map(str, octets))}{m.group('cidr') or ''}"
    if plain in _GENERIC_NETWORKS or octets[0] == 127:
        return False
    if not m.group("cidr") and not m.group("range") and (_is_mask(value) or _is_mask(~value & 0xFFFFFFFF)):
        return False
    if all(len(part) == 1 for part in parts):
        return False  # 4.2.1.3: a section number; no internal address has four one-digit parts
    before = text[max(0, m.start() - 16):m.start()]
    if _VERSION_BEFORE.search(before) or _SECTION_BEFORE.search(before) or _SECTION_AFTER.match(text, m.end()):
        return False
    return True


def _is_ipv6_host(value: str) -> bool:
    """An IPv6 address (with or without a prefix length) that is a host's or a network's of its own:
    not the loopback, the unspecified address, a multicast group or a well-known block as such."""
    address, _, prefix = value.partition("/")
    if address.count(":") < 2:
        return False
    try:
        parsed = ipaddress.IPv6Address(address)
        network = ipaddress.IPv6Network(value, strict=False) if prefix else None
    except ValueError:
        return False
    if parsed.is_loopback or parsed.is_unspecified or parsed.is_multicast:
        return False
    return not (network is not None and network.network_address == parsed and network in _GENERIC_IPV6_NETWORKS)


def _is_mask(value: int) -> bool:
    inverted = ~value & 0xFFFFFFFF
    return inverted & (inverted + 1) == 0


def _continues_a_hex_sequence(text: str, start: int) -> bool:
    """A MAC-like match that is the tail of a longer ``aa:bb:...`` run (a certificate thumbprint)."""
    return (start >= 3 and text[start - 1] in ":-" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[start - 3:start - 1]) is not None
            and (start == 3 or not re.match(r"[0-9A-Za-z]", text[start - 4])))


def _looks_like_ip(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def mask(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding replaced by its placeholder (positions from ``find_sensitive``)."""
    out, cursor = [], 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start < cursor or text[finding.start:finding.end] != finding.text:
            continue
        out.append(text[cursor:finding.start])
        out.append(finding.placeholder)
        cursor = finding.end
    out.append(text[cursor:])
    return "".join(out)
