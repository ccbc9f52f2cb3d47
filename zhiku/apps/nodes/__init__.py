"""The node kinds Zhiku runs, one module each (see :mod:`zhiku.apps.workflow` for the interface).

Every module here that defines ``SPEC`` (or ``SPECS``) is a kind; modules starting with ``_`` are
shared helpers. :data:`REGISTRY` holds them all.
"""

from __future__ import annotations

import importlib
import pkgutil

from zhiku.apps.workflow.node import NodeSpec, Registry


def _discover() -> Registry:
    specs: dict[str, NodeSpec] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found = list(getattr(module, "SPECS", ())) + ([module.SPEC] if hasattr(module, "SPEC") else [])
        for spec in found:
            if spec.kind in specs:
                raise RuntimeError(f"node kind {spec.kind!r} is defined twice")
            specs[spec.kind] = spec
    return Registry(specs)


REGISTRY = _discover()
