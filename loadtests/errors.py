"""The one error the bench reports as `error: …` with exit status 2 instead of a traceback."""

from __future__ import annotations


class BenchError(RuntimeError):
    pass
