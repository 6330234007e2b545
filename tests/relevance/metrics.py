"""Graded metrics over the relevance collection.

- nDCG@10: gain 2^grade - 1, discount log2(rank + 1); the ideal ranking is built from *all* judged
  grades of the query (pooled and added), so a system is not rewarded for missing added documents.
- recall@10: two numbers, the share of the query's grade-2 documents in the top 10 (``R2@10``) and
  the share of its grade>=1 documents (``R1@10``); queries without such documents are left out of
  that average (``n`` says how many counted).
- MRR: reciprocal rank of the first grade-2 document in the returned list (top 20), 0 if none.
- Documents a system returns that nobody judged count as grade 0; ``unjudged@10`` reports how many
  there were (mean per query), which tells when the pool needs to be redone for a new system.
- results: mean length of the returned list (capped at 20), queries with fewer than 5 results and
  with none.

Sentence queries are also evaluated with their ``keywords`` text (row ``sentence→keywords``), so a
sentence can be compared with its keyword version on the same judgments.

CLI::

    python -m tests.relevance.metrics --corpus helpdesk|public --system engine|bigram|fts5_trigram|all [--markdown]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from tests.relevance.baselines import HERE, SYSTEMS, load_queries, read_jsonl, run_system

DEPTH = 20
CUTOFF = 10


def load_judgments(corpus: str) -> dict[str, dict[str, int]]:
    judged: dict[str, dict[str, int]] = defaultdict(dict)
    for row in read_jsonl(HERE / f"judgments_{corpus}.jsonl"):
        judged[row["query_id"]][row["doc"]] = int(row["grade"])
    return judged


def ndcg(ranked: list[str], grades: dict[str, int], k: int = CUTOFF) -> float:
    dcg = sum((2 ** grades.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall(ranked: list[str], grades: dict[str, int], minimum: int, k: int = CUTOFF) -> float | None:
    wanted = {d for d, g in grades.items() if g >= minimum}
    if not wanted:
        return None
    return len(wanted & set(ranked[:k])) / len(wanted)


def reciprocal_rank(ranked: list[str], grades: dict[str, int]) -> float:
    return next((1 / (i + 1) for i, d in enumerate(ranked) if grades.get(d, 0) == 2), 0.0)


def evaluate(runs: dict[str, list[str]], judged: dict[str, dict[str, int]]) -> dict:
    """Mean metrics over the queries in ``runs``."""
    n = len(runs)
    if not n:
        return {}
    per = {"ndcg": [], "r2": [], "r1": [], "mrr": [], "len": [], "unjudged": []}
    for qid, ranked in runs.items():
        grades = judged.get(qid, {})
        per["ndcg"].append(ndcg(ranked, grades))
        per["mrr"].append(reciprocal_rank(ranked, grades))
        for key, minimum in (("r2", 2), ("r1", 1)):
            value = recall(ranked, grades, minimum)
            if value is not None:
                per[key].append(value)
        per["len"].append(len(ranked))
        per["unjudged"].append(sum(1 for d in ranked[:CUTOFF] if d not in grades))
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {
        "n": n,
        "ndcg@10": mean(per["ndcg"]),
        "R2@10": mean(per["r2"]), "n_r2": len(per["r2"]),
        "R1@10": mean(per["r1"]), "n_r1": len(per["r1"]),
        "MRR": mean(per["mrr"]),
        "mean_results": mean(per["len"]),
        "lt5": sum(1 for x in per["len"] if x < 5),
        "zero": sum(1 for x in per["len"] if x == 0),
        "unjudged@10": mean(per["unjudged"]),
    }


def report(corpus: str, system: str) -> list[tuple[str, dict]]:
    queries = load_queries(corpus)
    judged = load_judgments(corpus)
    runs = run_system(system, corpus, queries, DEPTH)
    kinds = sorted({q["kind"] for q in queries})
    rows = [(kind, evaluate({q["id"]: runs[q["id"]] for q in queries if q["kind"] == kind}, judged))
            for kind in kinds]
    kw = [q for q in queries if q.get("keywords")]
    if kw:
        kw_runs = run_system(system, corpus, kw, DEPTH, field="keywords")
        rows.append(("sentence→keywords", evaluate(kw_runs, judged)))
    rows.append(("ALL", evaluate(runs, judged)))
    return rows


HEADER = ["system", "kind", "n", "nDCG@10", "R2@10", "R1@10", "MRR", "results", "<5", "0", "unjudged@10"]


def format_rows(system: str, rows: list[tuple[str, dict]], markdown: bool) -> list[str]:
    lines = []
    for kind, m in rows:
        cells = [system, kind, str(m["n"]), f"{m['ndcg@10']:.3f}", f"{m['R2@10']:.3f}", f"{m['R1@10']:.3f}",
                 f"{m['MRR']:.3f}", f"{m['mean_results']:.1f}", str(m["lt5"]), str(m["zero"]),
                 f"{m['unjudged@10']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |" if markdown else "  ".join(f"{c:>10}" for c in cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.relevance.metrics")
    parser.add_argument("--corpus", choices=("helpdesk", "public"), required=True)
    parser.add_argument("--system", choices=SYSTEMS + ("all",), required=True)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    systems = SYSTEMS if args.system == "all" else (args.system,)
    if args.markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
    else:
        print("  ".join(f"{h:>10}" for h in HEADER))
    for system in systems:
        for line in format_rows(system, report(args.corpus, system), args.markdown):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
