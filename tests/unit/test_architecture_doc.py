"""docs/architecture.md states the import contracts `lint-imports` enforces, word for word."""

from __future__ import annotations

import re
import tomllib

from tests.harness import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "architecture.md").read_text()


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _documented_layers() -> list[str]:
    section = DOC.split("## Layers", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Layers section has no code block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_documented_layers_are_the_enforced_ones() -> None:
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    assert _documented_layers() == layers["layers"]


def test_every_forbidden_and_independence_contract_is_documented() -> None:
    for contract in _contracts():
        if contract["type"] == "forbidden":
            sources = contract["source_modules"]
            assert isinstance(sources, list)
            for source in sources:
                assert f"`{source}` imports nothing of `app`" in DOC, source
        elif contract["type"] == "independence":
            modules = contract["modules"]
            assert isinstance(modules, list)
            assert " and ".join(f"`{m}`" for m in modules) + " are independent" in DOC
