"""Import Great Expectations without the modules only a few of its expectations use.

Importing ``great_expectations`` imports every expectation it ships, and with them ``scipy.stats``
(the KL-divergence expectation and the KS-test metrics call ``stats.entropy`` and
``stats.kstest``) and ``altair`` (the KL-divergence expectation draws charts with it). Together
they are about 3 of the import's 6.5 CPU seconds, which every run with a suite pays, while the
suites here judge counts, proportions and quantiles and never touch them.

So, for the duration of that one import, each of those modules not yet imported is a
:class:`Deferred` module in ``sys.modules``: GX's ``from scipy import stats`` and
``import altair as alt`` bind it, and the first attribute read from it (``stats.entropy`` when
such an expectation runs) imports the real module and answers from it. After the import the
placeholders leave ``sys.modules``, so any later ``import scipy.stats`` is the real one. GX's
files are not changed. (``importlib.util.LazyLoader`` cannot do this: the import statement
reads the lazy module's ``__spec__``, which loads it.)
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any

DEFERRED = ("scipy.stats", "altair")
_LOCK = threading.Lock()  # one import at a time: the preload thread and the audit may race


class Deferred(ModuleType):
    """A module that imports the real one (its name) when an attribute is first read from it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        # A spec of its own, so `import` takes it as a loaded module without a __getattr__ call.
        self.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # introspection (inspect, copy, pickle) loads nothing
            raise AttributeError(attribute)
        return getattr(self.real(), attribute)

    def real(self) -> ModuleType:
        """The real module, imported on first use."""
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)


def import_great_expectations() -> ModuleType:
    """``great_expectations``, imported (once) with the modules of DEFERRED deferred."""
    with _LOCK:
        if "great_expectations" in sys.modules:
            return sys.modules["great_expectations"]
        placed = {name: Deferred(name) for name in DEFERRED if name not in sys.modules}
        sys.modules.update(placed)
        try:
            return importlib.import_module("great_expectations")
        finally:
            for name, module in placed.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
