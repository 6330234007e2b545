"""CSV that Excel opens in Japanese, safely: UTF-8 with a BOM, and no cell that Excel would run as
a formula (CSV injection). Every CSV the app writes goes through ``write_csv``; imports read
cells back through ``original_text``, so an export followed by an import gives the text back.

A cell whose text (after any leading apostrophes) starts with ``= + - @``, a tab or a carriage
return gets one more leading ``'``; importing removes exactly that one.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _looks_like_formula(text: str) -> bool:
    return text.lstrip("'").startswith(FORMULA_STARTS)


def excel_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if _looks_like_formula(text) else text


def original_text(cell: str) -> str:
    """The text an exported cell stood for (removes the apostrophe ``excel_cell`` added)."""
    if isinstance(cell, str) and cell.startswith("'") and _looks_like_formula(cell):
        return cell[1:]
    return cell


def write_csv(handle: IO[str], fieldnames: list[str], rows: Iterable[dict]) -> int:
    """Write rows (dicts) to a text handle opened with ``encoding="utf-8-sig", newline=""``."""
    writer = csv.DictWriter(handle, fieldnames=fieldnames)
    writer.writerow({name: excel_cell(name) for name in fieldnames})
    count = 0
    for row in rows:
        writer.writerow({name: excel_cell(row.get(name)) for name in fieldnames})
        count += 1
    return count
