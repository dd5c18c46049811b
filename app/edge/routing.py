"""Route groups: routes mounted under one prefix, declaring beside them which of their paths
CSRF leaves alone (no browser session acts there) or checks even without a session."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.routing import BaseRoute, Mount


@dataclass(frozen=True)
class RouteGroup:
    prefix: str
    routes: Sequence[BaseRoute]
    # Regular expressions over the path below `prefix`.
    csrf_exempt: tuple[str, ...] = ()
    csrf_required: tuple[str, ...] = ()

    def mounted(self) -> list[BaseRoute]:
        if not self.prefix:
            return list(self.routes)
        return [Mount(self.prefix, routes=list(self.routes))]

    def csrf_exempt_paths(self) -> list[str]:
        return [f"^{re.escape(self.prefix)}{pattern}" for pattern in self.csrf_exempt]

    def csrf_required_paths(self) -> list[str]:
        return [f"^{re.escape(self.prefix)}{pattern}" for pattern in self.csrf_required]
