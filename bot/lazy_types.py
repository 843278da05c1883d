"""aiogram, imported without building a validator for every Telegram type up front.

`aiogram.types` ends its import by rebuilding each of its ~440 pydantic models with all of the
others' names, and so builds every model's validator there and then: measured here, about 95 MB of
the bot's 180 MB and 2.8 s of its start, for types the bot mostly never meets. This module lets that
import skip the rebuild and puts the same names where pydantic looks when a model is first used
(the namespace of the module that defines it), so each model is built the first time it is needed,
as pydantic does for any model whose annotations name later classes.

`install()` must run before anything imports aiogram: `bot/__init__.py` calls it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

_PACKAGE = "aiogram"


def install() -> bool:
    """Import aiogram with its models left to build on first use; False if it was imported already
    (then it was built the eager way, which works the same, only bigger)."""
    if _PACKAGE in sys.modules:
        return False
    from pydantic import BaseModel

    eager = BaseModel.__dict__["model_rebuild"]
    namespaces: list[Mapping[str, Any]] = []

    def deferred(cls: type[BaseModel], *args: Any, **kwargs: Any) -> bool | None:
        names = kwargs.get("_types_namespace")
        if cls.__module__.startswith(f"{_PACKAGE}.") and names is not None:
            if not namespaces:
                namespaces.append(names)
            return None
        return eager.__func__(cls, *args, **kwargs)  # type: ignore[no-any-return]

    BaseModel.model_rebuild = classmethod(deferred)  # type: ignore[assignment,method-assign]
    try:
        import aiogram  # noqa: F401  (the import this module is about)
    finally:
        BaseModel.model_rebuild = eager  # type: ignore[method-assign]
    if not namespaces:
        # A later aiogram that no longer rebuilds at import: nothing was skipped, nothing to add.
        return True
    names = namespaces[0]
    for module_name, module in list(sys.modules.items()):
        if module is not None and (module_name == _PACKAGE or module_name.startswith(f"{_PACKAGE}.")):
            # Only names a module lacks: what it imports only for type checkers.
            for name, value in names.items():
                module.__dict__.setdefault(name, value)
    return True
