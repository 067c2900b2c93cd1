"""Keeping the garbage collector's full collections short.

What exists once the models are loaded (modules, tokenizers, schemas, routes) lives as long as the
process, yet a full collection walks all of it while the event loop and every runner thread's
Python wait. `gc.freeze()` after loading moves those objects out of the collector's reach; what
requests allocate is collected as usual.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect what startup left as garbage, then exempt the survivors from every later
    collection; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def collect_frozen() -> int:
    """A full collection that reaches the frozen objects too, then the survivors frozen again: what a
    model unloaded after startup leaves in reference cycles was frozen with the rest. Returns how many
    objects are frozen."""
    gc.unfreeze()
    return freeze_startup_objects()
