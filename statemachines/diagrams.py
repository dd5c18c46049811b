"""Mermaid diagrams generated from the machines into docs/state-machines.md.

`python -m statemachines.diagrams` writes the file; `--check` fails when it has drifted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from statemachine.contrib.diagram import MermaidGraphMachine

from statemachines import ALL_MACHINES

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "state-machines.md"


def render_markdown() -> str:
    sections = [
        "# Lifecycles",
        "",
        "Generated from `statemachines/` by `python -m statemachines.diagrams`; do not edit.",
        "",
    ]
    for machine in ALL_MACHINES:
        sections += [
            f"## {machine.__name__}",
            "",
            "```mermaid",
            MermaidGraphMachine(machine)().rstrip(),
            "```",
            "",
        ]
    return "\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    expected = render_markdown()
    if "--check" in args:
        current = DOC_PATH.read_text() if DOC_PATH.exists() else ""
        if current != expected:
            print(f"{DOC_PATH} is out of date: run `python -m statemachines.diagrams`.")
            return 1
        return 0
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(expected)
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
