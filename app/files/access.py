"""Who may read a stored file: its owner, and whoever a registered reader rule admits."""
from __future__ import annotations

import importlib
from functools import lru_cache

# "module:function" rules called as rule(principal=..., stored_file=...) -> bool; the applications
# domain adds the one that admits the staff handling an application that uses the file.
READER_RULES: tuple[str, ...] = ("app.applications.access:handling_staff_may_read",)


@lru_cache(maxsize=None)
def _rule(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def may_read(principal, stored_file) -> bool:
    """The owner (the subject the token speaks for), or anyone a reader rule admits."""
    if stored_file.owner_subject_id == principal.subject_id:
        return True
    return any(_rule(path)(principal=principal, stored_file=stored_file) for path in READER_RULES)
