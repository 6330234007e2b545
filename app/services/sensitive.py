"""Finding details that must not leave a municipality: a plain function, used before a case is
published beyond its owner (neighbours / all).

``find_sensitive(text)`` returns every finding with its kind, text and position;
``mask(text, findings)`` replaces them with placeholders such as ``[IPアドレス]``. Text that only
looks similar is not flagged: version numbers (10.2.1, 10.0.19045.3803), dates (2024.4.1,
2024/04/01, 令和6年), and placeholders that are already masked.
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

_IPV4 = re.compile(
    r"(?<![0-9A-Za-z_.])((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})"
    r"(?:/(?:3[0-2]|[12]?\d))?(?:\s*[-～〜~]\s*(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){0,3}))?(?![0-9A-Za-z_]|\.\d)"
)
_IPV6 = re.compile(r"(?<![0-9A-Za-z_:])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?:/\d{1,3})?(?![0-9A-Za-z_:])")
_MAC = re.compile(r"(?<![0-9A-Za-z_:-])(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![0-9A-Za-z_:-])|(?<![0-9A-Za-z_.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![0-9A-Za-z_.])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_URL = re.compile(r"(?:https?|ftp|smb|file)://[^\s<>\"'）」]+|\\\\[A-Za-z0-9._-]+\\[^\s<>\"']*")
_HOSTNAME = re.compile(r"(?<![0-9A-Za-z_@.-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z][A-Za-z0-9-]{1,30})(?![0-9A-Za-z_.-])")
_PHONE = re.compile(r"(?<![\d-])(?:0\d{1,4}-\d{1,4}-\d{3,4}|\(0\d{1,4}\)\s?\d{1,4}-\d{4}|0[5789]0-?\d{4}-?\d{4}|0120-?\d{3}-?\d{3})(?![\d-])")
_SECRET = re.compile(
    r"(?i)(?:password|passwd|pwd|pass|pw|パスワード|パス|暗証番号|pin|secret|token|api[_ -]?key|共有キー|事前共有鍵|psk)"
    r"\s*[:：=＝は]\s*[「『\"']?([!-~]{4,}?)[」』\"']?(?![!-~])"
)
_KEY = re.compile(r"(?<![A-Za-z0-9+/=_-])(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/=_-])")
_SERIAL = re.compile(r"(?i)(?:s/n|serial(?:\s*no\.?)?|シリアル(?:番号|No\.?)?|製造番号)\s*[:：]?\s*([A-Z0-9][A-Z0-9-]{5,})")


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
    """Internal domains, and named hosts of local-government (LGWAN / .lg.jp) domains."""
    labels = name.lower().rstrip(".").split(".")
    if len(labels) >= 2 and labels[-1] in INTERNAL_SUFFIXES:
        return True
    return len(labels) >= 4 and labels[-2:] == ["lg", "jp"]


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
    ``owner_names`` (the owning municipality, when a case is published anonymously) are findings too."""
    if not text:
        return []
    original = text
    text, positions = _width_folded(original)
    found: list[Finding] = []

    def add(kind: str, start: int, end: int) -> None:
        o_start, o_end = positions[start], positions[end] if end < len(positions) else len(original)
        found.append(Finding(kind, original[o_start:o_end], o_start, o_end))

    for m in _URL.finditer(text):
        host = re.sub(r"^[a-z]+://|^\\\\", "", m.group(), flags=re.I).split("/")[0].split("\\")[0].split(":")[0]
        if _is_internal_host(host) or _looks_like_ip(host) or "." not in host:
            add("url", m.start(), m.end())
    for m in _EMAIL.finditer(text):
        add("email", m.start(), m.end())
    for m in _IPV4.finditer(text):
        if _looks_like_ip(m.group(1)):
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
        add("mac", m.start(), m.end())
    for m in _HOSTNAME.finditer(text):
        if _is_internal_host(m.group()):
            add("hostname", m.start(), m.end())
    for m in _PHONE.finditer(text):
        add("phone", m.start(), m.end())
    for m in _SECRET.finditer(text):
        value = m.group(1)
        if value.startswith("[") or value in ("なし", "不明", "未設定"):
            continue
        add("secret", m.start(1), m.end(1))
    for m in _KEY.finditer(text):
        add("secret", m.start(), m.end())
    for m in _SERIAL.finditer(text):
        add("serial", m.start(1), m.end(1))
    for kind, names in (("person", personal_names), ("owner", owner_names)):
        for name in names:
            name = unicodedata.normalize("NFKC", name.strip())
            if len(name) < 2:
                continue
            start = text.find(name)
            while start != -1:
                add(kind, start, start + len(name))
                start = text.find(name, start + len(name))

    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for finding in found:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


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
