"""Reading the HTML part of an email in tests: its links, images and text."""

from __future__ import annotations

from html.parser import HTMLParser


class Tags(HTMLParser):
    """The links and images of an HTML part, in order, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a":
            self.hrefs.append(found["href"] or "")
        if tag == "img":
            self.images.append(found["src"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def tags(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser
