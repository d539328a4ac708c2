"""_errors.py -- one Python exception class per C status code."""
from . import _lib


class Error(Exception):
    """A libcxengine call failed.  `status` is the C code (negative),
    `message` the engine's detailed message (cx_errmsg)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self):  # KeyError would otherwise show repr(message)
        return self.message


class InvalidArgument(Error, ValueError):
    """CX_EINVAL: NULL, NaN, bad id, k = 0, ..."""


class OutOfMemory(Error, MemoryError):
    """CX_ENOMEM."""


class NotFound(Error, KeyError):
    """CX_ENOTFOUND: unknown customer or item id."""


class NotTrained(Error):
    """CX_ENOTTRAINED: the call needs a trained model."""


class FileError(Error, OSError):
    """CX_EIO: a file could not be read or written."""


class CorruptFile(Error):
    """CX_ECORRUPT: a file is truncated or fails its checksum."""


class VersionError(Error):
    """CX_EVERSION: a file written by an unsupported version."""


class OutOfRange(Error, ValueError):
    """CX_ERANGE: an option value outside its range."""


class Busy(Error):
    """CX_EBUSY: the resource is held by someone else."""


class FormatError(Error, ValueError):
    """CX_EFORMAT: malformed input text."""


class Canceled(Error):
    """CX_ECANCELED: the progress callback asked to stop."""


class NotSupported(Error, NotImplementedError):
    """CX_ENOTSUP: not supported by this build or version."""


class LimitReached(Error):
    """CX_ELIMIT: a built-in limit was reached (ids, signal types)."""


class ReadOnly(Error):
    """CX_EREADONLY: the engine is open read-only (Engine(path,
    readonly=True)); the directory's writer makes changes."""


class ClosedError(Error, ValueError):
    """The engine was closed (like I/O on a closed file)."""


BY_STATUS = {-1: InvalidArgument, -2: OutOfMemory, -3: NotFound,
             -4: NotTrained, -5: FileError, -6: CorruptFile,
             -7: VersionError, -8: OutOfRange, -9: Busy, -10: FormatError,
             -11: Canceled, -12: NotSupported, -13: LimitReached,
             -14: ReadOnly}


def error(status, handle):
    """The exception for C status `status`, message from cx_errmsg."""
    msg = _lib.cx_errmsg(handle) or b""
    msg = msg.decode("utf-8", "replace")
    if not msg:
        msg = _lib.cx_strerror(status).decode()
    return BY_STATUS.get(status, Error)(msg, status)
