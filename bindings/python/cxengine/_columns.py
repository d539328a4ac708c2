"""_columns.py -- turn Python columns into C arrays in bulk.

A column arrives as a list, a numpy array or a pandas Series; it leaves as
the address of a contiguous C array plus the objects that must stay alive
while the C call runs.  With numpy, strings are encoded once per distinct
value (pandas.factorize when pandas is loaded) or as one fixed-width bytes
array, and the char* array is computed with numpy arithmetic: no Python
work per row.  Without numpy, ctypes arrays are built once per call.
"""
import ctypes
import sys

try:
    import numpy as np
except ImportError:  # numpy is optional
    np = None

from ._errors import InvalidArgument

MAX_ID_LEN = 512


def _pandas():
    """pandas if it is already imported (never import it: it is slow, and
    a pandas object cannot exist unless pandas was imported)."""
    return sys.modules.get("pandas")


def is_numpy_like(col):
    if np is not None and isinstance(col, np.ndarray):
        return True
    pd = _pandas()
    return pd is not None and isinstance(col, (pd.Series, pd.Index,
                                               pd.Categorical))


def _encode(s, name, row):
    if isinstance(s, bytes):
        b = s
    elif isinstance(s, str):
        b = s.encode("utf-8")
    else:
        raise InvalidArgument("%s row %d: expected a string id, got %r"
                              % (name, row, s), -1)
    if b"\0" in b:
        raise InvalidArgument("%s row %d: id contains a NUL byte"
                              % (name, row), -1)
    return b


def _pack_uniques(uniques, name):
    """Encode distinct strings into one NUL-separated blob; return
    (blob array, numpy array of their addresses)."""
    enc = [_encode(u, name, i) for i, u in enumerate(uniques)]
    lens = np.fromiter((len(b) + 1 for b in enc), dtype=np.uintp,
                       count=len(enc))
    blob = np.frombuffer(b"\0".join(enc) + b"\0", dtype=np.uint8)
    offs = np.zeros(len(enc), dtype=np.uintp)
    if len(enc) > 1:
        np.cumsum(lens[:-1], out=offs[1:])
    return blob, offs + np.uintp(blob.ctypes.data)


def strings(col, name, na=None):
    """(address of const char*[n], n, keepalive) for a string column.
    Missing values (None, NaN) become `na`, or are refused if na is None."""
    if is_numpy_like(col):
        return _strings_np(col, name, na)
    seq = col if isinstance(col, (list, tuple)) else list(col)
    n = len(seq)
    cache = {}
    enc = []
    for i, s in enumerate(seq):
        if na is not None and (s is None or s != s):
            s = na
        b = cache.get(s)
        if b is None:
            b = cache[s] = _encode(s, name, i)
        enc.append(b)
    arr = (ctypes.c_char_p * max(n, 1))(*enc)
    return ctypes.addressof(arr), n, (arr, enc)


def _strings_np(col, name, na):
    pd = _pandas()
    if pd is not None and (not isinstance(col, np.ndarray)
                           or col.dtype.kind == "O"):
        if isinstance(col, pd.Series) and \
                isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy()
            uniques = list(col.cat.categories)
        else:
            codes, uniques = pd.factorize(col)
            uniques = list(uniques)
        if na is not None and len(codes) and codes.min() < 0:
            codes = np.where(codes < 0, len(uniques), codes)
            uniques.append(na)
        if len(codes) and codes.min() < 0:
            row = int(np.argmax(codes < 0))
            raise InvalidArgument("%s row %d: missing value" % (name, row),
                                  -1)
        blob, ptrs = _pack_uniques(uniques, name)
        out = ptrs[codes] if len(codes) else np.zeros(1, np.uintp)
        return out.ctypes.data, len(codes), (blob, out)
    arr = np.asarray(col)
    if arr.ndim != 1:
        raise InvalidArgument("%s: expected a 1-d column" % name, -1)
    if arr.dtype.kind == "S":
        b = arr
    elif arr.dtype.kind in "UO":
        try:
            b = arr.astype("S")  # vectorised, ASCII only
        except (UnicodeEncodeError, TypeError, ValueError):
            b = np.array([_encode(s, name, i) for i, s in enumerate(arr)],
                         dtype="S")
    else:
        raise InvalidArgument("%s: expected strings, got dtype %s"
                              % (name, arr.dtype), -1)
    n = len(b)
    w = b.dtype.itemsize
    # One more byte per row than the widest id: every row NUL-terminated.
    buf = np.zeros(n, dtype="S%d" % (w + 1))
    buf[:] = b
    ptrs = np.arange(n, dtype=np.uintp) * np.uintp(w + 1) + \
        np.uintp(buf.ctypes.data) if n else np.zeros(1, np.uintp)
    return ptrs.ctypes.data, n, (buf, ptrs)


def numbers(col, n, name, ctype, npdtype):
    """(address, keepalive) of a C array of n numbers; None -> NULL."""
    if col is None:
        return None, None
    if np is not None:
        pd = _pandas()
        if pd is not None and isinstance(col, (pd.Series, pd.Index)):
            col = col.to_numpy()
        arr = np.asarray(col)
        if arr.dtype.kind == "M":  # datetime64 -> unix seconds
            arr = arr.astype("datetime64[s]").astype(np.int64)
        if arr.ndim == 0:
            arr = np.full(n, arr)
        try:
            arr = np.ascontiguousarray(arr, dtype=npdtype)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument("%s: %s" % (name, exc), -1) from None
        if len(arr) != n:
            raise InvalidArgument("%s has %d rows, expected %d"
                                  % (name, len(arr), n), -1)
        if not n:
            arr = np.zeros(1, npdtype)
        return arr.ctypes.data, arr
    seq = list(col) if not isinstance(col, (list, tuple)) else col
    if len(seq) != n:
        raise InvalidArgument("%s has %d rows, expected %d"
                              % (name, len(seq), n), -1)
    try:
        arr = (ctype * max(n, 1))(*seq)
    except TypeError as exc:
        raise InvalidArgument("%s: %s" % (name, exc), -1) from None
    return ctypes.addressof(arr), arr


def types(col, n, lookup, name="types"):
    """Signal types by name or number -> (address of int[n], keepalive).
    `lookup(name)` returns the number of a type name or raises."""
    if np is not None and is_numpy_like(col):
        pd = _pandas()
        if pd is not None and isinstance(col, (pd.Series, pd.Index)):
            col = col.to_numpy()
        arr = np.asarray(col)
        if arr.dtype.kind in "iu":
            return numbers(arr, n, name, ctypes.c_int, np.int32)
        if arr.dtype.kind in "OUS":
            if pd is not None:
                codes, uniques = pd.factorize(arr)
                if len(codes) and codes.min() < 0:
                    row = int(np.argmax(codes < 0))
                    raise InvalidArgument("%s row %d: missing type"
                                          % (name, row), -1)
                table = np.array([lookup(u) for u in uniques] or [0],
                                 dtype=np.int32)
                return numbers(table[codes], n, name, ctypes.c_int,
                               np.int32)
            # numpy only: one vectorised comparison per distinct name.
            out = np.empty(len(arr), dtype=np.int32)
            todo = np.ones(len(arr), dtype=bool)
            while todo.any():
                u = arr[int(np.argmax(todo))]
                hit = arr == u
                out[hit] = lookup(u)
                todo &= ~hit
            return numbers(out, n, name, ctypes.c_int, np.int32)
        raise InvalidArgument("%s: expected names or ints, got dtype %s"
                              % (name, arr.dtype), -1)
    seq = list(col) if not isinstance(col, (list, tuple)) else col
    cache = {}
    out = []
    for t in seq:
        v = cache.get(t)
        if v is None:
            v = cache[t] = lookup(t)
        out.append(v)
    return numbers(out, n, name, ctypes.c_int,
                   np.int32 if np is not None else None)
