"""Structural checks of server-rendered pages: tags and attributes, a strict CSP, no outside assets."""
from __future__ import annotations

import re
from html.parser import HTMLParser

# absolute URLs, protocol-relative ones ("//cdn..." in an attribute, url() or a string), CSS imports
EXTERNAL = re.compile(r"""https?://|wss?://|["'(=]\s*//[A-Za-z0-9]|@import""", re.I)


class Page(HTMLParser):
    """Collects the tags and attributes of a page for structural assertions."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline_scripts = 0
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or "") for k, v in attrs}
        self.tags.append((tag, attrs))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def find(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]

    def by_id(self, ident: str) -> tuple[str, dict] | None:
        return next(((t, a) for t, a in self.tags if a.get("id") == ident), None)


def csp_of(response) -> dict[str, set[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    policy = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            policy[words[0]] = set(words[1:])
    return policy


def assert_strict_csp(response):
    policy = csp_of(response)
    assert policy.get("default-src") in ({"'none'"}, {"'self'"})
    assert policy["script-src"] == {"'self'"}
    assert policy["style-src"] == {"'self'"}
    assert policy["frame-ancestors"] == {"'none'"}
    assert policy["base-uri"] == {"'none'"}
    assert policy["form-action"] == {"'self'"}
    assert not any("unsafe" in value or "*" in value or "http" in value
                   for values in policy.values() for value in values)


def assert_self_contained(client, response):
    """No inline script, inline style or handler; every asset from this app, none pointing out."""
    html = response.get_data(as_text=True)
    page = Page(html)
    assert page.inline_scripts == 0
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    assets = [a["src"] for a in page.find("script")] + [a["href"] for a in page.find("link")
                                                         if a.get("rel") == "stylesheet"]
    assert assets
    for url in assets:
        assert url.startswith("/web/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert not EXTERNAL.search(asset.get_data(as_text=True)), url
        asset.close()
    for attrs in page.find("a") + page.find("form"):
        target = attrs.get("href") or attrs.get("action") or ""
        assert not EXTERNAL.search(target), target
