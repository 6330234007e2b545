"""Synonym groups the help desk maintains (query-time: no reindex needed)."""
from __future__ import annotations

import unicodedata

from sqlalchemy import select

from app.extensions import db
from app.models import SearchSynonym
from app.search.analysis import normalise
from app.services import audit
from app.services.errors import Forbidden, ValidationFailed


def parse_group(text: str) -> str:
    terms = []
    for raw in (text or "").replace("＝", "=").split("="):
        term = unicodedata.normalize("NFKC", raw).strip()
        if term and term not in terms:
            terms.append(term)
    return "=".join(terms)


def add_group(text: str, actor=None) -> SearchSynonym:
    terms = parse_group(text)
    if terms.count("=") < 1:
        raise ValidationFailed({"terms": "2語以上を「=」で区切って入力してください（例: UTM=統合脅威管理）。"})
    if len(terms) > 500 or any(len(t) > 50 for t in terms.split("=")):
        raise ValidationFailed({"terms": "1語は50文字以内、全体で500文字以内にしてください。"})
    if db.session.scalar(select(SearchSynonym.id).where(SearchSynonym.terms == terms)):
        raise ValidationFailed({"terms": f"「{terms}」はすでに登録されています。"})
    wanted = {normalise(t) for t in terms.split("=")}
    for group in db.session.scalars(select(SearchSynonym)):
        shared = [t for t in group.term_list if normalise(t) in wanted]
        if shared:
            raise ValidationFailed({"terms": f"「{shared[0]}」はすでに「{group.terms}」に登録されています。"
                                             "その組を削除してから、まとめて登録し直してください。"})
    group = SearchSynonym(terms=terms, source="helpdesk")
    db.session.add(group)
    db.session.flush()
    audit.record(actor, "synonym.add", group, terms)
    return group


def delete_group(group: SearchSynonym, actor=None) -> None:
    if group.source != "helpdesk":
        raise Forbidden("content/ から読み込んだ同義語は、content/search/synonyms.txt で変更してください。")
    audit.record(actor, "synonym.delete", group, group.terms)
    db.session.delete(group)
    db.session.flush()
