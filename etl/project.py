"""`etl init`: a new project folder, written from the defaults the package ships."""

from __future__ import annotations

import shutil
from pathlib import Path

from etl.errors import ProjectError
from etl.paths import DEFAULTS_DIR, PROJECT_FILES


def init_project(folder: Path) -> list[str]:
    """Copy the default sources.yaml, schemas/ and warehouse/models/ into `folder`.

    Refuses a folder that already holds any of them: nothing of a user's is overwritten.
    Returns the paths written, relative to `folder`.
    """
    if folder.exists() and not folder.is_dir():
        raise ProjectError(f"{folder}: exists and is not a folder")
    existing = [name for name in PROJECT_FILES if (folder / name).exists()]
    if existing:
        raise ProjectError(
            f"{folder}: already holds {', '.join(existing)}; not overwriting "
            "(choose an empty or new folder)"
        )
    try:
        for name in PROJECT_FILES:
            source, target = DEFAULTS_DIR / name, folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
    except OSError as exc:
        raise ProjectError(f"{folder}: cannot write the project: {exc.strerror or exc}") from None
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
