"""The exceptions of nativemi: one per status class of the C ABI (the `nativemi` command's exit codes)."""
from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "NativeMiError",
    "InternalError",
    "UsageError",
    "InputError",
    "RuntimeEnvironmentError",
    "Cancelled",
    "error_for_status",
]


class NativeMiError(Exception):
    """Base of every failure the engine reports.

    Attributes:
        status: the C ABI's nativemi_status (the `nativemi` command's exit code: 1, 2, 3, 4 or 130).
        message: the engine's one-line message (nativemi_last_error), naming the file, field or value at fault.
    """

    #: The status a subclass stands for; NativeMiError itself is used for a status this package does not know.
    default_status: int = 1

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.status: int = self.default_status if status is None else int(status)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class InternalError(NativeMiError):
    """NATIVEMI_ERROR_INTERNAL (1): a bug inside the engine; the message is the exception it caught."""

    default_status = 1


class UsageError(NativeMiError, ValueError):
    """NATIVEMI_ERROR_USAGE (2): a wrong argument (unknown option, out-of-range value, buffer too small, closed model)."""

    default_status = 2


class InputError(NativeMiError):
    """NATIVEMI_ERROR_INPUT (3): a wrong input: a model folder, a checkpoint, a corpus or a tokenizer file."""

    default_status = 3


class RuntimeEnvironmentError(NativeMiError):
    """NATIVEMI_ERROR_ENVIRONMENT (4): the machine lacks something (no usable GPU, a native library, memory, a writable cache).

    Named so as not to shadow Python's built-in EnvironmentError (an alias of OSError).
    """

    default_status = 4


class Cancelled(NativeMiError):
    """NATIVEMI_CANCELLED (130): the measurement stopped because its progress callback asked it to."""

    default_status = 130


_BY_STATUS: Dict[int, Type[NativeMiError]] = {
    1: InternalError,
    2: UsageError,
    3: InputError,
    4: RuntimeEnvironmentError,
    130: Cancelled,
}


def error_for_status(status: int, message: str) -> NativeMiError:
    """The exception for a failed call's status and message (a plain NativeMiError for an unknown status)."""
    cls = _BY_STATUS.get(int(status), NativeMiError)
    if not message:
        message = f"the engine failed with status {status} and no message"
    return cls(message, status)
