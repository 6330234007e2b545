"""Markdown is rendered and cleaned on an allowlist: hostile text is harmless, never refused."""
from html.parser import HTMLParser

import pytest

from app.rendering import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown


def test_markdown_features_render():
    html = str(render_markdown("# 見出し\n\n```\nping 192.0.2.1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n**太字**"))
    assert "<h1>見出し</h1>" in html
    assert "<pre><code>ping 192.0.2.1" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert "<strong>太字</strong>" in html


def test_links_get_noopener_nofollow():
    html = str(render_markdown("[手順書](https://example.jp/manual)"))
    assert 'href="https://example.jp/manual"' in html
    assert 'rel="noopener nofollow"' in html


XSS_VECTORS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    "<svg onload=alert(1)><circle/></svg>",
    '<iframe src="https://evil.example"></iframe>',
    "<div onclick=\"alert(1)\">x</div>",
    "<scr<script>ipt>alert(1)</script>",
    '<a href="vbscript:msgbox(1)">x</a>',
    "<style>body{display:none}</style>",
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    "![x](https://evil.example/pixel.png)",
    '<p style="background:url(javascript:alert(1))">x</p>',
    "<object data=\"x.swf\"></object>",
    "<form action=\"https://evil.example\"><input name=a></form>",
    '<a href="  javascript:alert(1)">x</a>',
    "<<script>script>alert(1)<</script>/script>",
]


class ElementAudit(HTMLParser):
    """Collects every real element and attribute of the output (escaped text is not an element)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_known_xss_vectors_are_rendered_harmless(vector):
    audit = ElementAudit()
    audit.feed(str(render_markdown(vector)))
    assert set(audit.tags) <= ALLOWED_TAGS
    for tag, name, value in audit.attributes:
        assert name in ALLOWED_ATTRIBUTES.get(tag, []) or (tag == "a" and name == "rel"), (tag, name)
        if name == "href":
            scheme = value.strip().split(":", 1)[0].lower() if ":" in value else ""
            assert scheme in ("", "http", "https", "mailto"), value


def test_script_in_a_log_excerpt_is_shown_as_text():
    html = str(render_markdown("ログ:\n\n```\n<script>alert(1)</script>\n```"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_raw_html_outside_code_is_escaped_not_dropped():
    html = str(render_markdown("前 <script>alert(1)</script> 後"))
    assert "&lt;script&gt;" in html and "前" in html and "後" in html


def test_empty_text_renders_empty():
    assert str(render_markdown("")) == ""
    assert str(render_markdown(None)) == ""


def test_threads_render_alike_each_with_its_own_cleaner():
    """Server workers render in several threads; bleach's Cleaner keeps parser state, so each
    thread has its own (a shared one failed under load with an IndexError inside html5lib)."""
    import threading

    from app import rendering

    texts = [f"## 見出し{i}\n\n- 項目 <b>{i}</b>\n- [リンク](https://example.jp/{i})\n\n```\n<script>x{i}</script>\n```"
             for i in range(40)]
    expected = [str(render_markdown(t)) for t in texts]
    cleaners, failures = set(), []

    def run(n):
        try:
            cleaners.add(id(rendering._cleaner()))
            for k in range(200):
                i = (n * 7 + k) % len(texts)
                # the converter itself, not the per-process cache of rendered texts
                if rendering._render(texts[i], 0) != expected[i]:
                    failures.append(i)
        except Exception as error:  # pragma: no cover - reported below
            failures.append(repr(error))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(cleaners) == 6


def test_one_text_rendered_leaves_nothing_for_the_next():
    """The converter is reused per thread: a link reference defined in one case's text must not
    turn a bracket in the next text into that link."""
    first = render_markdown("[手順書]\n\n[手順書]: https://intra.example.lg.jp/secret")
    assert 'href="https://intra.example.lg.jp/secret"' in first
    second = render_markdown("[手順書] を参照")
    assert "href" not in second and "[手順書]" in second
    assert render_markdown("[手順書] を参照") == second


def test_a_text_rendered_again_comes_from_the_cache_and_a_long_one_is_not_kept(monkeypatch):
    """The same case read again is not converted again; a pasted log longer than the cache's
    limit is rendered every time (the cache's memory stays bounded)."""
    from app import rendering

    conversions = []
    real = rendering._markdown

    def counting():
        conversions.append(1)
        return real()

    monkeypatch.setattr(rendering, "_markdown", counting)
    text = "## 症状\n\n**VPN** が切れる <script>alert(1)</script>"
    first = render_markdown(text, heading_offset=2)
    again = render_markdown(text, heading_offset=2)
    assert str(first) == str(again) and "<h4>" in str(first) and "&lt;script&gt;" in str(first)
    assert len(conversions) == 1
    assert "<h2>" in str(render_markdown(text))          # another heading offset: rendered apart
    assert len(conversions) == 2
    long_text = "ログ\n\n```\n" + "x" * rendering.RENDER_CACHE_MAX_CHARS + "\n```"
    render_markdown(long_text)
    render_markdown(long_text)
    assert len(conversions) == 4
