"""FunctionRegistry: the Python functions a worker runs as jobs, by name.

    functions = FunctionRegistry()

    @functions.register("reports.send")
    async def send_report(ctx: JobContext, payload: dict) -> dict:
        ...

A function takes the job's context and its payload (any JSON value) and returns a JSON
value (the job's result). Plain `def` functions run in a thread. Raise `NonRetryable` when
another attempt cannot help, `RetryAfter` to choose the next attempt's time.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .context import JobContext

JobFunction = Callable[["JobContext", Any], Awaitable[Any] | Any]
F = TypeVar("F", bound=JobFunction)


class FunctionRegistry:
    def __init__(self) -> None:
        self._functions: dict[str, JobFunction] = {}

    def register(self, name: str | None = None) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            key = name or f"{fn.__module__}.{fn.__qualname__}"
            if key in self._functions and self._functions[key] is not fn:
                raise ValueError(f"a different function is already registered as {key!r}")
            self._functions[key] = fn
            return fn

        return decorate

    def add(self, name: str, fn: JobFunction) -> None:
        self.register(name)(fn)

    def include(self, other: FunctionRegistry) -> None:
        for name, fn in other._functions.items():
            self.add(name, fn)

    def get(self, name: str) -> JobFunction | None:
        return self._functions.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._functions))

    def __len__(self) -> int:
        return len(self._functions)


def load_registries(specs: str) -> FunctionRegistry:
    """Registries named as "module" or "module:attribute", comma-separated (the worker's
    STACKYARD_JOB_MODULES). Without an attribute, the module's `functions` is used."""
    combined = FunctionRegistry()
    for spec in filter(None, (s.strip() for s in specs.split(","))):
        module_name, _, attribute = spec.partition(":")
        module = importlib.import_module(module_name)
        registry = getattr(module, attribute or "functions", None)
        if not isinstance(registry, FunctionRegistry):
            raise SystemExit(f"{spec}: no FunctionRegistry named {attribute or 'functions'} in module {module_name}")
        combined.include(registry)
    return combined
