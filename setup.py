"""Build hook: the wheel carries the project's default files, copied from the top level.

`sources.yaml`, `schemas/` and `warehouse/` at the top of the repository are the one editable
copy (the checkout is itself a project). A built wheel needs them inside the package, so
`build_py` copies them to `etl/_defaults/` in the build tree; nothing is committed twice. An
editable install reads them from the checkout instead (etl/paths.py).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# What a project is made of, and only that: not the warehouse file or report a run leaves.
DEFAULTS = {"sources.yaml": None, "schemas": ("*.yaml", "*.json"), "warehouse": ("*.sql",)}


class BuildWithDefaults(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "etl" / "_defaults"
        shutil.rmtree(target, ignore_errors=True)
        for name, patterns in DEFAULTS.items():
            source = HERE / name
            if patterns is None:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
                continue
            for pattern in patterns:
                for path in source.rglob(pattern):
                    dest = target / path.relative_to(HERE)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dest)


setup(cmdclass={"build_py": BuildWithDefaults})
