"""Constraints for installing the project into a base image's Python without changing what the image ships.

Run with the image's interpreter during `docker build`:
    python containers/image_constraints.py constraints.txt > /tmp/constraints.txt
Every distribution already installed there is pinned at its installed version (Axolotl's or
vLLM's torch, transformers, ...: the versions their makers tested together); every other
package keeps the project's own pin from constraints.txt. Installing with these constraints
either adds only what is missing, or fails the build naming the conflict; `pip check` after
it proves the result consistent.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PEP 503: the same project, however its name is spelled."""
    return re.sub(r"[-_.]+", "-", name).lower()


def merge_constraints(installed: dict[str, str], project_constraints: str) -> list[str]:
    """The image's versions for what it has, the project's pins for the rest; sorted by name."""
    pins = {normalize(name): f"{normalize(name)}=={version}" for name, version in installed.items()}
    for line in project_constraints.splitlines():
        text = line.split("#", 1)[0].strip()
        match = _NAME.match(text)
        if text and match and normalize(match.group(1)) not in pins:
            pins[normalize(match.group(1))] = text
    return [pins[name] for name in sorted(pins)]


def installed_distributions() -> dict[str, str]:
    return {dist.metadata["Name"]: dist.version for dist in metadata.distributions() if dist.metadata["Name"]}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_file():
        print("usage: python image_constraints.py PROJECT_CONSTRAINTS  (prints the merged constraints)", file=sys.stderr)
        raise SystemExit(2)
    print("\n".join(merge_constraints(installed_distributions(), Path(args[0]).read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
