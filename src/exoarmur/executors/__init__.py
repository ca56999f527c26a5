"""Executors: the only code that touches the systems an intent names.

The protocol (:class:`Executor`, :class:`ExecutionFailed`), the built-in
executors, and the registry that binds action patterns to executors found
through the ``exoarmur.executors`` entry-point group. Nothing here decides
whether an action may run; executors are reached only through the pipeline.
"""

from .base import ExecutionFailed, Executor, ExecutorFactory
from .builtin import CallableExecutor, EchoExecutor, PythonExecutor
from .http import HttpExecutor
from .registry import ENTRY_POINT_GROUP, ExecutorRegistry, discover

__all__ = [
    "ENTRY_POINT_GROUP",
    "CallableExecutor",
    "EchoExecutor",
    "ExecutionFailed",
    "Executor",
    "ExecutorFactory",
    "ExecutorRegistry",
    "HttpExecutor",
    "PythonExecutor",
    "discover",
]
