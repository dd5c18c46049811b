"""The console's documentation screenshots (docs/images, `make screenshots`).

Every browser run takes them, so a broken page fails CI; they land in the pytest tmp dir
unless POLARIS_SCREENSHOTS_DIR names a directory (relative to the repository root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, ViewportSize

from tests.png import png_size

ENV_VAR = "POLARIS_SCREENSHOTS_DIR"
# Fixed, so an image keeps its size from run to run and page to page.
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


@dataclass(frozen=True)
class Screenshots:
    directory: Path

    def take(self, page: Page, name: str) -> Path:
        """The viewport as a person sees it now, saved as `<name>.png` and checked."""
        path = self.directory / f"{name}.png"
        # A file left by an earlier run (or a placeholder) must not pass for this one.
        path.unlink(missing_ok=True)
        # The pointer rests off the content, so no hover state depends on the last click.
        page.mouse.move(0, 0)
        page.screenshot(path=str(path), animations="disabled", caret="hide")
        assert png_size(path) == (VIEWPORT["width"], VIEWPORT["height"]), path
        return path
