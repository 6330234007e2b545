"""Can a municipal user tell from a search's time what words are in cases it may not read?

    .venv/bin/python bench/timing_leak.py [--hidden 2000] [--queries 200] [--shared 500] [--backend whoosh|postgres]

Builds a library: ``--hidden`` private cases of 呉市 that all contain the same ``--queries``
made-up words, and ``--shared`` cases of 福山市 shared with everybody (the demo texts). A user of
三原市, who may read none of the private ones, then searches, in random order, three kinds of word
that all find nothing (and get the same answer):

- hidden: a word of the private cases;
- near: a word in no case, but one or two letters away from several words of the private cases
  (what 「もしかして」 looks at);
- far: a word in no case and far from every word of the private cases.

All are zq + three letters + ahost, so their letters (and bigrams) are alike: hidden and near
words take their letters from a–m (split at random), far words from n–z. Prints the quartiles of
each kind and, for "hidden against near" (the word itself) and "near against far" (the words
near it), the AUC (the chance that a search of the first kind is the slower of a pair; 0.5 = no
difference) and a permutation test's p. In one process, with no network in between: the most an
attacker could hope to measure. For PostgreSQL, a throwaway cluster (tests/pg_cluster.py). A
measurement, not a test.
"""
from __future__ import annotations

import argparse
import json
import random
import string
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def made_up(number: int, alphabet: str) -> str:
    letters = ""
    for _ in range(3):
        letters += alphabet[number % len(alphabet)]
        number //= len(alphabet)
    return f"zq{letters}ahost"


def library(path: Path, hidden: int, shared: int, words: list[str]) -> None:
    demo = [json.loads(line) for line in (ROOT / "content/demo/cases.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    rows = []
    for number in range(hidden):
        row = dict(demo[number % len(demo)], municipality="呉市", visibility="private")
        row["title"] = f"{row['title']} 非公開{number}"
        row["environment"] = row.get("environment", "") + "\n" + " ".join(words)
        rows.append(row)
    for number in range(shared):
        row = dict(demo[number % len(demo)], municipality="福山市", visibility="all")
        row["title"] = f"{row['title']} 共有{number}"
        rows.append(row)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")


def auc_and_p(slower: np.ndarray, other: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    def auc(a, b):
        return float((a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean())

    found = auc(slower, other)
    both = np.concatenate([slower, other])
    rng = np.random.default_rng(1)
    extreme = 0
    for _ in range(rounds):
        rng.shuffle(both)
        if abs(auc(both[:len(slower)], both[len(slower):]) - 0.5) >= abs(found - 0.5):
            extreme += 1
    return found, extreme / rounds


def measure(args, uri: str, folder: Path) -> None:
    from sqlalchemy import select

    from app import create_app
    from app.content import load_reference
    from app.extensions import db
    from app.models import Municipality
    from app.search.service import SearchParams, search_cases
    from app.search.sync import apply_pending
    from app.services import accounts
    from app.services.importing import import_cases
    from config import TestingConfig

    first, second = string.ascii_lowercase[:13], string.ascii_lowercase[13:]
    words = random.Random(5).sample([made_up(n, first) for n in range(len(first) ** 3)], 2 * args.queries)
    kinds = {"hidden": words[:args.queries], "near": words[args.queries:],
             "far": random.Random(6).sample([made_up(n, second) for n in range(len(second) ** 3)], args.queries)}
    library(folder / "cases.jsonl", args.hidden, args.shared, kinds["hidden"])

    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = uri
        SEARCH_INDEX_DIR = str(folder / "index")
        ATTACHMENT_DIR = str(folder / "attachments")
        SEARCH_BACKEND = args.backend

    app = create_app(Config)
    with app.app_context():
        db.create_all()
        load_reference(ROOT / "content")
        import_cases(folder / "cases.jsonl")
        mihara = db.session.scalar(select(Municipality).where(Municipality.name == "三原市"))
        outsider = accounts.create_user("outsider", "correct-horse-battery", "municipal", mihara)
        db.session.commit()
        apply_pending()
        for warm in ("VPN", "ネットワーク", "zqzzzbhost"):
            search_cases(outsider, SearchParams(q=warm), log_misses=False)
        rng = random.Random(3)
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for number in range(args.queries):
            trio = [(kind, words[number]) for kind, words in kinds.items()]
            rng.shuffle(trio)
            for kind, word in trio:
                started = time.perf_counter()
                result = search_cases(outsider, SearchParams(q=word), log_misses=False)
                times[kind].append((time.perf_counter() - started) * 1000)
                assert result.total == 0 and result.suggestion is None, (word, result.total)
        for kind, values in times.items():
            q25, q50, q75 = np.percentile(values, [25, 50, 75])
            print(f"{args.backend}, {args.hidden} hidden cases: {kind:6} word, {len(values)} searches: "
                  f"p25 {q25:.2f} / median {q50:.2f} / p75 {q75:.2f} ms")
        for slower, other in (("hidden", "near"), ("near", "far")):
            auc, p = auc_and_p(np.array(times[slower]), np.array(times[other]))
            print(f"  {slower} against {other}: AUC (the {slower} word's search slower) {auc:.3f}, permutation p {p:.3f}")
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=2000, help="private cases holding the words")
    parser.add_argument("--queries", type=int, default=200, help="searches of each kind")
    parser.add_argument("--shared", type=int, default=500, help="cases the user may read")
    parser.add_argument("--backend", choices=["whoosh", "postgres"], default="whoosh")
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="helpdesk-timing-")))
        uri = f"sqlite:///{folder / 'helpdesk.db'}"
        if args.backend == "postgres":
            from tests.pg_cluster import fresh_database, throwaway_cluster

            uri = stack.enter_context(fresh_database(stack.enter_context(throwaway_cluster())))
        measure(args, uri, folder)


if __name__ == "__main__":
    main()
