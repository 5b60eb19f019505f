"""What a pod wrote: the files under the folders its command line names that changed while it ran.

Resume reuses a task only when its fingerprint matches *and* these files are all still there, so
deleting a merged model, eval results or `train.parquet` reruns the task that wrote them (and, as
always, everything downstream of it). The folders looked at are those of the volume paths in the
pod's args, env and output-parameter paths (a path itself when it is a folder, else its folder);
two pods running at once in one folder each count the other's files too, which can only cause a
rerun, never a wrong reuse.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

CLOCK_SLACK_NS = 1_000_000_000  # file timestamps come from a coarse kernel clock
MOST_FILES = 5000  # beyond this, the folders holding them are recorded instead


def named_folders(texts: Iterable[str], volume_roots: Iterable[Path]) -> set[Path]:
    """The folders of every path under a volume root that appears in `texts`."""
    roots = sorted({str(root) for root in volume_roots}, key=len, reverse=True)
    if not roots:
        return set()
    pattern = re.compile("(?:" + "|".join(re.escape(root) for root in roots) + r")(?:/[^\s'\"=,;:|&<>()\[\]{}]*)?")
    folders: set[Path] = set()
    for text in texts:
        for match in pattern.finditer(text):
            path = Path(os.path.normpath(match.group(0)))
            folder = path if path.is_dir() else path.parent
            if any(folder == Path(root) or Path(root) in folder.parents for root in roots):
                folders.add(folder)
    return folders


def changed_files(folders: Iterable[Path], since_ns: int, workdir: Path) -> list[str]:
    """Files under `folders` created or modified since `since_ns`, relative to `workdir`, sorted."""
    threshold = since_ns - CLOCK_SLACK_NS
    found: set[str] = set()
    for folder in _outermost(folders):
        for top, _dirs, files in os.walk(folder):  # does not follow symlinked folders
            for name in files:
                path = os.path.join(top, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if max(info.st_mtime_ns, info.st_ctime_ns) >= threshold:
                    found.add(os.path.relpath(path, workdir))
    if len(found) > MOST_FILES:
        found = {os.path.dirname(path) for path in found}
    return sorted(found)


def missing(paths: Iterable[str], workdir: Path) -> list[str]:
    return [path for path in paths if not os.path.lexists(workdir / path)]


def _outermost(folders: Iterable[Path]) -> list[Path]:
    ordered = sorted(set(folders), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for folder in ordered:
        if not any(parent == folder or parent in folder.parents for parent in kept):
            kept.append(folder)
    return kept
