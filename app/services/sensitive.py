"""Finding details that must not leave a municipality: a plain function, used before a case is
published beyond its owner (neighbours / all).

``find_sensitive(text)`` returns every finding with its kind, text and position;
``mask(text, findings)`` replaces them with placeholders such as ``[IPアドレス]``. Text that only
looks similar is not flagged: version numbers (10.2.1, 10.0.19045.3803, バージョン 2.1.0.3), dates
(2024.4.1, 2024/04/01, 令和6年), netmasks, OIDs, GUIDs and file hashes, a municipality's own
lg.jp domain and public web host (city.kure.lg.jp, www.city.kure.lg.jp — other hosts under it are
flagged), prose about passwords (パスワードを変更した, パスワードはExcelで管理), and placeholders
that are already masked (********). A value ends before Japanese punctuation, a bracket typed
full-width and trailing punctuation (``\\\\fs01\\zeimu）``, ``Password=x;``). Secrets are also found
in device configs (radius-server … key, key-string), ``net use`` commands, Authorization headers and
JWTs, password columns of pasted tables, and as the new value of a change (… から … に変更).
``tests/sensitive/labelled.jsonl`` and ``independent.jsonl`` are the labelled sets the rules are
measured against (recall and false alarms, see ``tests/sensitive/score.py``).
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

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
_IPV6 = re.compile(r"(?<![0-9A-Za-z_:])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?:/\d{1,3})?(?![0-9A-Za-z_:])")
_MAC = re.compile(r"(?<![0-9A-Za-z_])(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![0-9A-Za-z_:-])|(?<![0-9A-Za-z_.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![0-9A-Za-z_.])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# UNC paths are also typed with yen signs (¥¥fs01¥share) on Japanese keyboards.
_URL = re.compile(r"(?:https?|ftp|sftp|smb|file|ldaps?)://[^\s<>\"'）」]+|(?:\\\\|¥¥)[A-Za-z0-9._-]+[\\¥][^\s<>\"']*")
_HOSTNAME = re.compile(r"(?<![0-9A-Za-z_@.-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z][A-Za-z0-9-]{1,30})(?![0-9A-Za-z_.-])")
# Host names without a domain, named the way municipal servers and PCs are: a prefix, then a role and
# a number (KURE-FS01, somu-pc0123, hq-dc-01). Model numbers (FG-60F, RTX1210) have no role part.
_NETBIOS_HOST = re.compile(
    r"(?i)(?<![0-9A-Za-z_.@\\/¥-])[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*?"
    r"-(?:SV|SRV|SVR|FS|DC|AD|NAS|DB|AP|WEB|MAIL|PRT|PC|TC|VDI|RDS|WSUS|FW|RT|SW|UTM)-?\d{2,4}"
    r"(?![0-9A-Za-z_-]|\.[0-9A-Za-z])"
)
_PHONE = re.compile(
    r"(?<![\d-])(?:0\d{1,4}-\d{1,4}-\d{3,4}|\(0\d{1,4}\)\s?\d{1,4}-\d{4}|0\d{1,4}\(\d{1,4}\)\d{3,4}"
    r"|0[5789]0[- ]?\d{4}[- ]?\d{4}|0120-?\d{3}-?\d{3})(?![\d-])"
)
# International form: +65 6123 4567, +81-3-5555-0123, +81 (0)3-5555-0123 (8 to 15 digits in all).
_INTL_PHONE = re.compile(
    r"(?<![0-9A-Za-z+])\+[1-9]\d{0,2}(?:[ -]?\(0\)[ -]?|[ -])\d{1,4}(?:[ -]\d{2,5}){1,3}(?![0-9A-Za-z-])"
)
# Where a value (URL, UNC path, secret) ends: Japanese punctuation and brackets, and these characters
# when they were typed full-width (（）；，) — text is folded, so they are found by their original.
_PROSE_STOPS = "、。「」『』【】〔〕《》〈〉"
_WIDE_STOPS = "（）［］｛｝；，"

# Secrets: a keyword, a separator, then a value. Keywords in English (configs, logs) and Japanese.
_SECRET_KEYWORD = (
    r"(?:(?<![A-Za-z/\\])(?:password|passwd|passphrase|passcode|pwd|pass|pw|pin|psksecret|secret|token"
    r"|api[_ -]?key|pre-?shared-?key|psk|community(?:名|文字列|[ _-]?(?:name|string))?)(?![A-Za-z])"
    r"|パスワード|パスフレーズ|パスコード|(?<![ァ-ヴー])パス|暗証番号|認証(?:キー|鍵)|(?:事前)?共有(?:キー|鍵|シークレット)"
    r"|共通鍵|暗号化?キー|セキュリティキー|ネットワークキー|(?:WPA[23]?|WEP|Wi-?Fi)(?:-PSK)?\s*(?:の\s*)?(?:キー|パスワード)"
    r"|(?:SNMP\s*(?:の\s*)?)?コミュニティ(?:名|文字列)|SNMP\s*(?:の\s*)?コミュニティ|シークレット|(?:アクセス)?トークン"
    r"|API\s*キー)"
)
_SECRET = re.compile(
    rf"(?i)(?P<keyword>{_SECRET_KEYWORD})(?:\s*\([^()]{{1,12}}\))?\s*】?"
    r"(?P<sep>\s*[:=]\s*|\s*は\s*|\s*[をが]\s*|\s+|(?=[「『]))"
    r"(?P<prefix>(?:(?:\d{1,2}|text|ascii|hex|ENC)\s+){0,2})"
    r"(?:[「『\"'](?P<quoted>[^「『」』\"'\n]{1,64})[」』\"']|(?P<value>[!-~]{4,}))"
)
# "ID/PW: admin / P@ss" — only the part after the slash is the secret.
_ID_PASSWORD_PAIR = re.compile(
    r"(?i)(?<![A-Za-z])(?:ログイン|ユーザー?)?(?:ID|名)\s*[/・]\s*(?:PW|pass(?:word)?|パスワード)(?![A-Za-z])"
    r"\s*(?:[:=]|は)?\s*[「\"]?[!-.0-~]+?[」\"]?\s*/\s*[「\"]?(?P<value>[!-~]{4,}?)[」\"]?(?![!-~])"
)
# Network-device configs: the shared key of a RADIUS/TACACS+ server (radius-server host … key X,
# tacacs-server key X, a "key 7 …" line under a server), key-string (key chains), OSPF/NTP keys.
_DEVICE_KEY = re.compile(
    r"(?im)(?:(?<![A-Za-z-])(?P<named>key-string|server-key|authentication-key|message-digest-key[ \t]+\d+[ \t]+md5)"
    r"|(?:^[ \t]*|(?<![A-Za-z-])(?:radius|tacacs)(?:-server|\+)?(?![A-Za-z])[^\n]*?[ \t])key)"
    r"[ \t]+(?P<type>\d[ \t]+)?(?P<value>[!-~]{4,})(?![!-~])"
)
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
_NOT_VALUES = ("なし", "無し", "不明", "未設定")
_SERIAL = re.compile(
    r"(?i)(?:(?:s/n|serial(?:\s*(?:no\.?|number|#))?|シリアル(?:番号|ナンバー|No\.?)|製造(?:番号|No\.?)|サービスタグ|service\s*tag)"
    r"\s*[:]?|(?:シリアル|(?<![A-Za-z])SN)\s*:)\s*(?=[A-Z0-9-]*\d)([A-Z0-9][A-Z0-9-]{5,})(?![A-Za-z0-9])"
)


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
        candidate = m.group().split("/")[0]
        if candidate.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        add("ipv6", m.start(), m.end())
    for m in _MAC.finditer(text):
        if not _continues_a_hex_sequence(text, m.start()):
            add("mac", m.start(), m.end())
    for m in _HOSTNAME.finditer(text):
        if _is_internal_host(m.group()):
            add("hostname", m.start(), m.end())
    for m in _NETBIOS_HOST.finditer(text):
        add("hostname", m.start(), m.end())
    for m in _PHONE.finditer(text):
        add("phone", m.start(), m.end())
    for m in _INTL_PHONE.finditer(text):
        if 8 <= len(re.sub(r"\(0\)|\D", "", m.group())) <= 15:
            add("phone", m.start(), m.end())
    for start, end in _secrets(text, stops):
        add("secret", start, end)
    for m in _SERIAL.finditer(text):
        add("serial", m.start(1), m.end(1))
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


def _secrets(text: str, stops: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """Spans of passwords, keys and the like (a finding may overlap another; the caller resolves).
    ``stops`` are positions a value cannot extend over (Japanese punctuation, full-width brackets)."""
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
    for m in _SECRET.finditer(text):
        if any(s <= m.start("keyword") < e for s, e in paired):
            continue
        span = _secret_value(text, m, stops)
        while span:  # and the new value after the old one (… から … に変更)
            spans.append(span)
            span = _changed_to(text, span[1], stops)
    for m in _DEVICE_KEY.finditer(text):
        start = m.start("value")
        end = _secret_end(text, start, m.end("value"), stops)
        value = text[start:end]
        if _is_value(value) and (m.group("named") or m.group("type") or _looks_like_password(value)):
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
    spans.extend(_table_secrets(text, stops))
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
    cut = _NEXT_SETTING.search(text, start, end)
    return _value_end(text, start, cut.start() if cut else end, stops, punctuation=",;")


def _is_value(value: str) -> bool:
    """Not empty, a placeholder, 'なし', a path or an already masked value (********)."""
    return not (len(value) < 4 or value.startswith("[") or value in _NOT_VALUES or _is_path(value)
                or re.fullmatch(r"[*●xX•]+", value))


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
    if not _is_value(value):
        return None
    sep = m.group("sep")
    strong = bool(re.search(r"[:=は]", sep)) or text[m.end("keyword"):m.start("sep")].strip().endswith("】")
    if strong and not m.group("prefix"):
        if _TERM.fullmatch(value) and not _VALUE_ENDS.match(text, end):
            return None
        return start, end
    return (start, end) if _looks_like_password(value) else None


def _quoted_value(m: re.Match, group: str) -> tuple[int, int] | None:
    quoted = m.group(group)
    value, start = quoted.strip(), m.start(group) + len(quoted) - len(quoted.lstrip())
    if len(value) < 4 or not re.search(r"[A-Za-z0-9]", value) or value.startswith("[") or _is_path(value):
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


def _table_cells(text: str, start: int, end: int) -> list[tuple[int, int]] | None:
    """The cells of a tab-separated (pasted from Excel) or Markdown (| a | b |) row, else None."""
    line = text[start:end]
    if "\t" in line:
        sep = "\t"
    elif line.lstrip().startswith("|") and line.count("|") >= 2:
        sep = "|"
    else:
        return None
    cells, position = [], start
    for cell in line.split(sep):
        stripped = cell.strip()
        cell_start = position + (len(cell) - len(cell.lstrip()))
        cells.append((cell_start, cell_start + len(stripped)))
        position += len(cell) + 1
    return cells


def _table_secrets(text: str, stops: set[int] | frozenset[int]) -> list[tuple[int, int]]:
    """The cells under a header cell naming a password (パスワード, 管理者PW, 事前共有キー …) in the
    rows of the same table (until a line that is not a row)."""
    spans: list[tuple[int, int]] = []
    columns: list[int] = []
    line_start = 0
    while line_start <= len(text):
        line_end = text.find("\n", line_start)
        line_end = len(text) if line_end < 0 else line_end
        cells = _table_cells(text, line_start, line_end)
        if cells is None:
            columns = []
        else:
            header = [i for i, (s, e) in enumerate(cells) if _SECRET_HEADER.fullmatch(text[s:e])]
            if header:
                columns = header
            for i in [] if header else columns:
                if i >= len(cells):
                    continue
                start, end = cells[i]
                end = _secret_end(text, start, end, stops)
                value = text[start:end]
                if re.fullmatch(r"[!-~]+", value) and _is_value(value) and not re.fullmatch(r":?-+:?", value):
                    spans.append((start, end))
        line_start = line_end + 1
    return spans


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
