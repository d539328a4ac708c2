"""cxengine -- Python binding of libcxengine (ctypes; numpy, pandas and
tqdm optional).

    import cxengine
    with cxengine.Engine(factors=32, seed=1) as e:
        e.upsert_items(items_df)
        e.ingest(signals_df)
        e.train(progress=True)
        e.recommend("c0000042", 10)   # [(item, score, reason), ...]

The library is found through $CXENGINE_LIB, then this package's
directory, then the system (ctypes.util.find_library); its version must
match the binding's (0.1).
"""
from ._lib import LibraryError, ABI_STRING
from ._lib import version as library_version
from ._errors import (Error, InvalidArgument, OutOfMemory, NotFound,
                      NotTrained, FileError, CorruptFile, VersionError,
                      OutOfRange, Busy, FormatError, Canceled, NotSupported,
                      LimitReached, ReadOnly, ClosedError)
from .engine import Engine, SIGNAL_TYPES, REASONS, METRICS, OPTIONS

__version__ = "0.1.0"
__all__ = ["Engine", "Error", "InvalidArgument", "OutOfMemory", "NotFound",
           "NotTrained", "FileError", "CorruptFile", "VersionError",
           "OutOfRange", "Busy", "FormatError", "Canceled", "NotSupported",
           "LimitReached", "ReadOnly", "ClosedError", "LibraryError", "SIGNAL_TYPES",
           "REASONS", "METRICS", "OPTIONS", "library_version"]
