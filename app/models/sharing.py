from __future__ import annotations

import enum


class Visibility(str, enum.Enum):
    """The one sharing scale: how far a case is shared (its visibility) and how far its owner
    agrees it may be (the consent); a visibility is never wider than the consent."""

    PRIVATE = "private"
    NEIGHBOURS = "neighbours"
    ALL = "all"

    @property
    def label(self) -> str:
        return {"private": "自団体と県のみ", "neighbours": "近隣・グループの市町", "all": "全市町"}[self.value]

    @property
    def consent_label(self) -> str:
        """The same choice as the asking municipality reads it."""
        return {"private": "共有しない（自団体と県のみ）", "neighbours": "近隣・グループの市町まで", "all": "全市町"}[self.value]

    @property
    def width(self) -> int:
        return {"private": 0, "neighbours": 1, "all": 2}[self.value]

    @classmethod
    def narrower(cls, a: "Visibility", b: "Visibility") -> "Visibility":
        return a if a.width <= b.width else b

    @classmethod
    def at_least(cls, width: int) -> tuple[str, ...]:
        """The values at least this wide (for SQL: ``visibility IN at_least(1)``)."""
        return tuple(v.value for v in cls if v.width >= width)
