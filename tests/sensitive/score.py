"""Scoring the sensitive-data check against the labelled sets ``labelled.jsonl``,
``independent.jsonl`` and ``blind.jsonl``.

Each line is {"text", "expected": [{"kind", "text"}], optional "owner_names" / "personal_names",
"source", "note", "split": "tune" | "holdout"}. A line whose "expected" is empty is a look-alike:
any finding on it is a false alarm. Recall is per expected finding (exact kind and text); a finding
on a positive line that was not expected counts as an extra (also a false alarm, reported apart).

Run directly to compare implementations (e.g. the committed one copied to a temporary file):
    python tests/sensitive/score.py [path/to/sensitive.py] [--details]
``--details`` lists misses and false alarms of the tuning part, the independent set and the blind set
(the rules have been tuned on both since their first scoring, see README.md); the held-out part is
only ever reported as numbers.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

LABELLED = Path(__file__).with_name("labelled.jsonl")
# Written by someone who never saw the code; no "split" (all of it is one part, "independent").
INDEPENDENT = Path(__file__).with_name("independent.jsonl")
# A second set written without seeing the code (same format); scored once blind, tuned on since.
BLIND = Path(__file__).with_name("blind.jsonl")


def load(path: Path = LABELLED) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


@dataclass
class Score:
    expected: int = 0
    found: int = 0
    positives: int = 0
    lookalikes: int = 0
    lookalike_alarms: int = 0
    extra_on_positives: int = 0
    misses: list = field(default_factory=list)
    alarms: list = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    def summary(self) -> str:
        return (f"recall {self.recall:.3f} ({self.found}/{self.expected} findings on {self.positives} "
                f"positives), false alarms on {self.lookalikes} look-alikes: {self.lookalike_alarms}, "
                f"extra findings on positives: {self.extra_on_positives}")


def score(find, rows: list[dict]) -> Score:
    """``find(text, personal_names, owner_names)`` returns findings with ``kind`` and ``text``."""
    result = Score()
    for row in rows:
        got = Counter((f.kind, f.text) for f in find(row["text"], row.get("personal_names", []),
                                                     row.get("owner_names", [])))
        want = Counter((e["kind"], e["text"]) for e in row["expected"])
        hits = got & want
        extra = sum((got - want).values())
        if want:
            result.positives += 1
            result.expected += sum(want.values())
            result.found += sum(hits.values())
            result.extra_on_positives += extra
            for miss in (want - got).elements():
                result.misses.append((row["text"], miss))
        else:
            result.lookalikes += 1
            result.lookalike_alarms += extra
        for alarm in (got - want).elements():
            result.alarms.append((row["text"], alarm))
    return result


def split(rows: list[dict], name: str) -> list[dict]:
    return [row for row in rows if row.get("split", "tune") == name]


def _load_find(path: str | None):
    if path is None:
        from app.services.sensitive import find_sensitive
        return find_sensitive
    spec = importlib.util.spec_from_file_location("sensitive_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module.find_sensitive


def main(argv: list[str]) -> None:
    details = "--details" in argv
    paths = [a for a in argv if not a.startswith("--")]
    find = _load_find(paths[0] if paths else None)
    rows = load()
    parts = {name: split(rows, name) for name in ("tune", "holdout")}
    parts["independent"] = load(INDEPENDENT)
    parts["blind"] = load(BLIND)
    for name, part in parts.items():
        result = score(find, part)
        print(f"{name:11} {result.summary()}")
        if details and name != "holdout":
            for text, miss in result.misses:
                print(f"    missed {miss} in {text!r}")
            for text, alarm in result.alarms:
                print(f"    false alarm {alarm} in {text!r}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(sys.argv[1:])
