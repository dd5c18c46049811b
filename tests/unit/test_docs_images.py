"""The documentation's images: each one a page shows is a real screenshot (`make screenshots`),
not a missing file or a placeholder, and each one in docs/images is shown by some page."""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness import REPO_ROOT
from tests.png import NotAPng, png_size

DOCS = REPO_ROOT / "docs"
IMAGES = DOCS / "images"
# A placeholder is a pixel or an icon; the console's screenshots are 1280 wide.
MIN_WIDTH = 600
# An image shown inside a code block is an example of markdown, not an image of the site.
FENCED = re.compile(r"^ *(```|~~~).*?^ *\1", re.DOTALL | re.MULTILINE)
IMAGE = re.compile(
    r"!\[[^\]]*\]\(\s*<?(?P<inline>[^)\s>]+)"
    r"|<img\s[^>]*\bsrc=[\"'](?P<html>[^\"']+)"
    r"|^ {0,3}\[[^\]]+\]:\s*<?(?P<defined>\S+\.(?:png|jpe?g|gif|svg|webp))\b",
    re.IGNORECASE | re.MULTILINE,
)
URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def image_sources(markdown: str) -> list[str]:
    """The local images a page shows, as the page writes them."""
    sources = (
        next(found for found in match.groups() if found)
        for match in IMAGE.finditer(FENCED.sub("", markdown))
    )
    return [source for source in sources if not URL.match(source)]


def shown_images() -> dict[Path, list[str]]:
    """Every local image the docs pages show, with the pages that show it."""
    shown: dict[Path, list[str]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        for source in image_sources(page.read_text()):
            image = (page.parent / re.split(r"[?#]", source)[0]).resolve()
            shown.setdefault(image, []).append(str(page.relative_to(DOCS)))
    return shown


def _fault(image: Path) -> str | None:
    if not image.is_file():
        return "missing"
    try:
        width, height = png_size(image)
    except NotAPng:
        return "not a PNG"
    return f"{width}x{height}, a placeholder" if width < MIN_WIDTH else None


def test_every_image_a_page_shows_is_a_real_screenshot() -> None:
    faults = {
        f"{image.relative_to(REPO_ROOT)} (in {', '.join(pages)})": fault
        for image, pages in shown_images().items()
        if (fault := _fault(image)) is not None
    }
    assert faults == {}


def test_every_image_in_docs_images_is_shown_by_a_page() -> None:
    shown = shown_images()
    unshown = [image.name for image in sorted(IMAGES.glob("*.png")) if image.resolve() not in shown]
    assert unshown == [], f"not shown by any docs page: {', '.join(unshown)}"


def test_an_image_is_found_however_a_page_writes_it() -> None:
    page = "\n".join(
        [
            '![The Devices page](images/a.png "title")',
            '<img src="../images/b.png" alt="">',
            "[c]: images/c.png",
            "![remote](https://example.com/d.png)",
            "```markdown",
            "![example](images/e.png)",
            "```",
        ]
    )
    assert image_sources(page) == ["images/a.png", "../images/b.png", "images/c.png"]
