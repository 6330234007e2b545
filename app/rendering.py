"""Markdown -> HTML -> bleach, with the single allowlist. Every user text is rendered here."""
from __future__ import annotations

import functools
import re
import threading

import bleach
import markdown
from bleach.html5lib_shim import Filter
from markupsafe import Markup

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})

ALLOWED_ATTRIBUTES = {
    "a": ["href", "title"],
    "abbr": ["title"],
    "td": ["align"],
    "th": ["align"],
    "code": ["class"],
    "div": ["class"],
    "span": ["class"],
}

# No javascript:, data:, vbscript: or anything else: only these survive in href. Images are not
# allowed at all: a page on a closed network must not fetch anything from outside.
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})

MARKDOWN_EXTENSIONS = ["fenced_code", "tables", "sane_lists", "nl2br"]


class LinkRelFilter(Filter):
    """Gives every surviving link ``rel="noopener nofollow"``."""

    def __iter__(self):
        for token in super().__iter__():
            if token["type"] in ("StartTag", "EmptyTag") and token["name"] == "a":
                attrs = dict(token.get("data", {}))
                attrs[(None, "rel")] = "noopener nofollow"
                token["data"] = attrs
            yield token


_local = threading.local()


def _cleaner() -> bleach.Cleaner:
    """This thread's Cleaner: bleach's Cleaner is not thread-safe (its parser keeps state), and
    server workers render in several threads (a shared one failed under load with an IndexError
    deep in html5lib)."""
    cleaner = getattr(_local, "cleaner", None)
    if cleaner is None:
        cleaner = _local.cleaner = bleach.Cleaner(
            tags=ALLOWED_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            protocols=ALLOWED_PROTOCOLS,
            strip=False,  # a pasted <script> is shown as text, as typed, never run
            strip_comments=True,
            filters=[LinkRelFilter],
        )
    return cleaner


def _markdown() -> markdown.Markdown:
    """This thread's Markdown converter, reset before each text: building one (its extensions,
    processors and patterns) cost twice what converting a case's text does. Not thread-safe,
    like the Cleaner."""
    converter = getattr(_local, "markdown", None)
    if converter is None:
        converter = _local.markdown = markdown.Markdown(extensions=MARKDOWN_EXTENSIONS, output_format="html")
    return converter


_HEADING = re.compile(r"<(/?)h([1-6])>")


# Rendered texts are kept per process, least recently used out first: the same case read again
# (a popular case, a thread's page after each reply) is not converted and cleaned again. The result
# depends on the text alone, so nothing about one reader can reach another through it. Long texts
# (a pasted log) are rendered each time: RENDER_CACHE_ENTRIES of at most RENDER_CACHE_MAX_CHARS
# bound the memory (≈ 512 × 8,000 characters of text and its HTML, some 20 MB at worst).
RENDER_CACHE_ENTRIES = 512
RENDER_CACHE_MAX_CHARS = 8_000


def render_markdown(text: str | None, heading_offset: int = 0) -> Markup:
    """Render user Markdown to HTML that is safe to put in a page. ``heading_offset`` moves the
    text's own headings down (a case section's "## 症状" must not outrank the section title)."""
    if not text:
        return Markup("")
    if len(text) <= RENDER_CACHE_MAX_CHARS:
        return Markup(_rendered(text, heading_offset))
    return Markup(_render(text, heading_offset))


def _render(text: str, heading_offset: int) -> str:
    html = _markdown().reset().convert(text)
    cleaned = _cleaner().clean(html)
    if heading_offset:
        cleaned = _HEADING.sub(lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + heading_offset)}>", cleaned)
    return cleaned


_rendered = functools.lru_cache(maxsize=RENDER_CACHE_ENTRIES)(_render)
