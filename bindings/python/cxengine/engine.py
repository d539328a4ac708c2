"""engine.py -- cxengine.Engine, the Pythonic face of cx_engine.

Mirrors include/cxengine.h: one method per C call, ids as str, results as
lists of (item, score, reason) tuples, numpy arrays for bulk data (lists
without numpy), C statuses as cxengine.Error subclasses.
"""
import array
import ctypes
import json
import math
import os
import sys
import threading
import time
from itertools import repeat as _repeat
from operator import itemgetter as _ig

from . import _lib as L
from . import _columns as C
from ._errors import ClosedError, InvalidArgument, NotFound, error

np = C.np
byref = ctypes.byref

SIGNAL_TYPES = ("view", "click", "add_to_cart", "purchase", "rating",
                "return", "dislike")
REASONS = (None, "personal", "popular", "similar", "category", "trending",
           "new", "continue", "bought_together", "repeat", "also_bought",
           "bestseller")
METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage",
           "users")

OPTIONS = {"factors": 1, "iterations": 2, "regularization": 3, "alpha": 4,
           "solver": 5, "cg_steps": 6, "threads": 7, "seed": 8,
           "half_life": 9, "init_scale": 10, "candidates": 11, "fold_in": 12,
           "trending_half_life": 13, "popular_half_life": 14,
           "lapsed_after": 15, "loyal_purchases": 16, "sync": 17,
           "sync_interval": 18, "refresh_interval": 19, "blend_als": 20,
           "blend_popular": 21, "blend_repeat": 22, "blend_cobought": 23,
           "consumable": 24}
_OPT_WEIGHT = 1000
MAX_K = 1 << 20
_ENUMS = {"solver": {"cg": 0, "cholesky": 1},
          "fold_in": {"off": 0, "lazy": 1, "eager": 2},
          "sync": {"off": 0, "normal": 1, "full": 2}}
_INT_OPTIONS = {"factors", "iterations", "solver", "cg_steps", "threads",
                "seed", "candidates", "fold_in", "loyal_purchases", "sync",
                "sync_interval", "refresh_interval"}

STATS = {"customers": 1, "items": 2, "signals": 3, "generation": 4,
         "factors": 5, "model_customers": 6, "model_items": 7, "memory": 8,
         "folded_customers": 9, "folded_items": 10, "training": 11}

_COLS = {"user": ("user", "customer", "user_id", "customer_id"),
         "item": ("item", "item_id", "product", "product_id"),
         "type": ("type", "event", "signal"),
         "value": ("value", "quantity", "rating"),
         "timestamp": ("timestamp", "ts", "time"),
         "channel": ("channel",)}
_ITEM_COLS = {"id": ("item", "id", "item_id", "product", "product_id"),
              "category": ("category",), "price": ("price",),
              "in_stock": ("in_stock", "stock"),
              "created_at": ("created_at", "created"), "tags": ("tags",)}


def _pick(data, names, what, required):
    for nm in names:
        if nm in data:
            return data[nm]
    if required:
        raise InvalidArgument("no %s column (expected one of %s)"
                              % (what, ", ".join(names)), -1)
    return None


def _is_columns(x):
    """A DataFrame or a mapping of column name -> sequence."""
    pd = C._pandas()
    if pd is not None and isinstance(x, pd.DataFrame):
        return True
    return isinstance(x, dict) and x and not isinstance(
        next(iter(x.values())), (str, bytes, int, float))


class _Buf:
    """Output arrays of a ranking call for up to `cap` results."""

    def __init__(self, k):
        # array.array storage (slicing and tolist() are plain C loops),
        # seen by the C calls through ctypes views of the same memory.
        self.a_items = array.array("Q", bytes(8 * k))
        self.a_scores = array.array("f", bytes(4 * k))
        self.a_reasons = array.array("i", bytes(4 * k))
        self.items = (ctypes.c_void_p * k).from_buffer(self.a_items)
        self.scores = (ctypes.c_float * k).from_buffer(self.a_scores)
        self.reasons = (ctypes.c_int * k).from_buffer(self.a_reasons)
        self.n = ctypes.c_size_t()
        self.cap = k
        # Ready-made arguments of L.cx_recommend_fast (no argtypes).
        self.c_cap = ctypes.c_size_t(k)
        self.p_n = byref(self.n)


class _Scratch(threading.local):
    """Per-thread output buffers of the ranking calls, one per k (a few
    k kept): no allocation per request once warm, and a full buffer is
    read without slicing.  ctypes releases the GIL, so threads must not
    share them; an Engine's buffers belong to that Engine.  k must
    already be checked by _k."""
    KEEP = 8

    def __init__(self):
        self.bufs = {}

    def get(self, k):
        b = self.bufs.get(k)
        if b is not None:
            return b
        b = _Buf(k)
        if k <= 1024:  # big requests get their own buffers, not kept
            if len(self.bufs) >= self.KEEP:
                self.bufs.clear()
            self.bufs[k] = b
        return b


def _bar(progress):
    """A progress callable(it, n, loss) and a closer, or (None, None)."""
    if progress is None or progress is False:
        return None, None
    if callable(progress) and progress is not True:
        return progress, None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    state = {}
    if tqdm is not None:
        def step(it, n, loss):
            bar = state.get("bar")
            if bar is None:
                bar = state["bar"] = tqdm(total=n, desc="ALS", unit="it")
            bar.set_postfix(loss="%.6f" % loss, refresh=False)
            bar.update(it - bar.n)

        def done():
            if "bar" in state:
                state["bar"].close()
        return step, done
    t0 = time.monotonic()

    def plain(it, n, loss):
        width = 30
        fill = width * it // max(n, 1)
        sys.stderr.write("\rALS [%s%s] %d/%d  loss %.6f  %.1fs"
                         % ("#" * fill, "." * (width - fill), it, n, loss,
                            time.monotonic() - t0))
        sys.stderr.flush()
        state["shown"] = True

    def plain_done():
        if state.get("shown"):
            sys.stderr.write("\n")
            sys.stderr.flush()
    return plain, plain_done


class Engine:
    """An engine: catalogue, signals and model of one shop.

    Engine(path=None, **options): in memory with path None; with a path,
    a data directory (created if missing): every signal, catalogue
    change, option, signal type and experiment is written to path/cx.db
    (SQLite) before the call returns, each training writes a model
    snapshot (path/snapshots/, .npy files), and Engine(path) later comes
    back to the same state.  One process opens a directory at a time
    (Busy otherwise); any number more may open it with readonly=True:
    they share the snapshot's factors in memory, follow what the writer
    commits (every refresh_interval ms, or at refresh()), and raise
    ReadOnly on calls that would change it.  readonly=True, signals=True:
    such a reader may also ingest() (the signals are committed to the
    directory and folded in at once; the writer and the other readers
    follow them, and the writer trains on them).  verify=True: check every
    snapshot file in full, ignoring the VERIFIED stamp that lets an open
    on the same machine skip files verified before and not written since
    (CX_OPEN_VERIFY; a stamp does not see bit rot without a write).
    Options by name: factors,
    iterations,
    regularization, alpha, solver ('cg'/'cholesky'), cg_steps, threads,
    seed, half_life, init_scale, candidates, fold_in ('lazy'/'eager'/
    'off'), trending_half_life, popular_half_life, sync ('full'/'normal'/
    'off'), sync_interval (ms), refresh_interval (ms), and
    weights={'view': 1, ...}.

    Thread safety follows the C library: every method may run from many
    threads at once except close(), which must run alone.
    """

    def __init__(self, path=None, readonly=False, signals=False,
                 verify=False, **options):
        self._h = self._hp = None  # the handle as int and as c_void_p
        self._init_state()
        h = ctypes.c_void_p()
        flags = ((1 if readonly else 0) | (2 if signals else 0) |
                 (4 if verify else 0))
        rc = L.cx_open(byref(h), None if path is None else
                       os.fsencode(path), flags)
        if rc:
            raise error(rc, None)
        self._h, self._hp = h.value, h
        self._configure(options)

    def _init_state(self):
        self._ids = {}        # address of an id string in the engine -> str
        self._types = {}      # signal type name -> number
        self._scratch = _Scratch()
        self._bg = None       # background training's callback + errors

    def _configure(self, options):
        try:
            self.set_options(**options)
        except BaseException:
            self.close()
            raise

    @classmethod
    def load(cls, path, **options):
        """Open an engine from a file written by save()."""
        self = cls.__new__(cls)
        self._h = self._hp = None  # the handle as int and as c_void_p
        self._init_state()
        h = ctypes.c_void_p()
        rc = L.cx_load(byref(h), os.fsencode(path))
        if rc:
            raise error(rc, None)
        self._h, self._hp = h.value, h
        self._configure(options)
        return self

    # -- lifecycle -----------------------------------------------------

    def close(self):
        """Free the engine (cancels and waits for a background training).
        Idempotent.  Factor views from user_factors/item_factors die
        with it."""
        h, self._h, self._hp = self._h, None, None
        if h is not None:
            L.cx_close(h)
        self._ids = {}
        self._bg = None

    @property
    def closed(self):
        return self._h is None

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._h is not None and L is not None and L.cx_close:
                L.cx_close(self._h)
                self._h = self._hp = None
        except Exception:
            pass

    def __repr__(self):
        if self._h is None:
            return "<cxengine.Engine (closed)>"
        s = self.stats()
        return ("<cxengine.Engine %d customers, %d items, %d signals, "
                "generation %d>" % (s["customers"], s["items"],
                                    s["signals"], s["generation"]))

    def _handle(self):
        h = self._h
        if h is None:
            raise ClosedError("the engine is closed", None)
        return h

    def _check(self, rc, h):
        if rc:
            raise error(rc, h)

    def _decode(self, addr):
        s = ctypes.string_at(addr).decode("utf-8", "replace")
        self._ids[addr] = s
        return s

    def _id_list(self, addrs):
        get = self._ids.get
        return [get(a) or self._decode(a) for a in addrs]

    # -- options -------------------------------------------------------

    def set_option(self, name, value):
        """Set one option by name (see the class doc) or C key."""
        h = self._handle()
        if name == "weights":
            for t, w in dict(value).items():
                self._check(L.cx_set_option(
                    h, _OPT_WEIGHT + self.signal_type(t), float(w)), h)
            return
        key = OPTIONS.get(name, name)
        if not isinstance(key, int):
            raise InvalidArgument("unknown option %r (one of %s, weights)"
                                  % (name, ", ".join(OPTIONS)), -1)
        if name in _ENUMS and isinstance(value, str):
            try:
                value = _ENUMS[name][value]
            except KeyError:
                raise InvalidArgument("%s must be one of %s, not %r" % (
                    name, "/".join(_ENUMS[name]), value), -1) from None
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InvalidArgument("option %s: %r is not a number"
                                  % (name, value), -1) from None
        self._check(L.cx_set_option(h, key, v), h)

    def set_options(self, **options):
        for name, value in options.items():
            self.set_option(name, value)

    def get_option(self, name):
        h = self._handle()
        if isinstance(name, str) and name.startswith("weight:"):
            key = _OPT_WEIGHT + self.signal_type(name[7:])
        else:
            key = OPTIONS.get(name, name)
            if not isinstance(key, int):
                raise InvalidArgument("unknown option %r" % (name,), -1)
        v = ctypes.c_double()
        self._check(L.cx_get_option(h, key, byref(v)), h)
        v = v.value
        if name in _ENUMS:
            return {n: k for k, n in _ENUMS[name].items()}.get(int(v), v)
        return int(v) if name in _INT_OPTIONS else v

    @property
    def options(self):
        """Every option by name, plus weights of the built-in types."""
        out = {n: self.get_option(n) for n in OPTIONS}
        out["weights"] = {t: self.get_option("weight:" + t)
                          for t in SIGNAL_TYPES}
        return out

    # -- signal types --------------------------------------------------

    def signal_type(self, t):
        """Number of a signal type given by name or number."""
        if isinstance(t, int) and not isinstance(t, bool):
            return t
        if hasattr(t, "item") and not isinstance(t, (str, bytes)):
            return int(t)  # numpy integer
        if isinstance(t, bytes):
            t = t.decode()
        if not isinstance(t, str):
            raise InvalidArgument("signal type must be a name or an int, "
                                  "not %r" % (t,), -1)
        v = self._types.get(t)
        if v is None:
            h = self._handle()
            out = ctypes.c_int()
            rc = L.cx_signal_type_lookup(h, t.encode(), byref(out))
            if rc:
                raise InvalidArgument("unknown signal type %r (built-in: "
                                      "%s; or define_signal_type)"
                                      % (t, ", ".join(SIGNAL_TYPES)), -1)
            v = self._types[t] = out.value
        return v

    def signal_type_name(self, t):
        """Name of signal type number t, or None if undefined."""
        s = L.cx_signal_type_name(self._handle(), int(t))
        return s.decode() if s is not None else None

    def define_signal_type(self, name, weight):
        """Define (or re-weight) a custom signal type; returns its number."""
        h = self._handle()
        out = ctypes.c_int()
        self._check(L.cx_signal_type_define(h, name.encode(), float(weight),
                                            byref(out)), h)
        self._types[name] = out.value
        return out.value

    # -- catalogue -----------------------------------------------------

    def upsert_items(self, data=None, category=None, price=None,
                     in_stock=None, created_at=None, tags=None, *,
                     ids=None):
        """Insert or update items.  Forms:
          upsert_items("sku-1", category="tea", price=4.5)   one item
          upsert_items([("sku-1", "tea", 4.5), {...}, ...])   rows (tuples
              in the order id, category, price, in_stock, created_at,
              tags, or dicts)
          upsert_items(df)  a DataFrame / dict of columns: item (or id),
              category, price, in_stock, created_at, tags
          upsert_items(ids=[...], category=[...], price=[...], ...)
        A column left out keeps current values (defaults for new items).
        In the row form, a field missing in some rows takes the default
        for those rows.  tags: a comma-separated string or a list.
        All or nothing: a bad row fails the whole batch."""
        h = self._handle()
        if isinstance(data, (str, bytes)):
            cols = {"id": [data]}
            for k, v in (("category", category), ("price", price),
                         ("in_stock", in_stock), ("created_at", created_at),
                         ("tags", tags)):
                if v is not None:
                    cols[k] = [v]
        elif data is None:
            if ids is None:
                raise InvalidArgument("upsert_items needs items", -1)
            cols = {"id": ids, "category": category, "price": price,
                    "in_stock": in_stock, "created_at": created_at,
                    "tags": tags}
        elif _is_columns(data):
            cols = {k: _pick(data, names, k, k == "id")
                    for k, names in _ITEM_COLS.items()}
        else:
            cols = self._item_rows(data)
        return self._upsert_columns(h, cols)

    @staticmethod
    def _item_rows(rows):
        names = ("id", "category", "price", "in_stock", "created_at", "tags")
        defaults = (None, "", 0.0, 1, 0, "")
        cols = {k: [] for k in names}
        seen = set()
        for r in rows:
            if isinstance(r, dict):
                r = {k2: v for k, v in r.items()
                     for k2 in names if k in _ITEM_COLS[k2]}
                vals = [r.get(k) for k in names]
            else:
                vals = list(r) + [None] * (len(names) - len(r))
            for k, v in zip(names, vals):
                if v is not None:
                    seen.add(k)
                cols[k].append(v)
        for k, d in zip(names, defaults):
            if k == "id":
                pass
            elif k not in seen:
                cols[k] = None
            elif k != "id":
                cols[k] = [d if v is None else v for v in cols[k]]
        return cols

    def _upsert_columns(self, h, cols):
        ids_p, n, keep_ids = C.strings(cols["id"], "ids")
        keep = [keep_ids]

        def strs(col, name):
            if col is None:
                return None
            p, m, kp = C.strings(col, name, na="")
            if m != n:
                raise InvalidArgument("%s has %d rows, expected %d"
                                      % (name, m, n), -1)
            keep.append(kp)
            return p
        tags = cols.get("tags")
        if tags is not None and not C.is_numpy_like(tags):
            tags = ["" if t is None else t if isinstance(t, (str, bytes))
                    else ",".join(t) for t in tags]
        cat_p = strs(cols.get("category"), "category")
        tag_p = strs(tags, "tags")
        npd = (lambda t: getattr(np, t)) if np is not None else \
            (lambda t: None)
        stock = cols.get("in_stock")
        if stock is not None and not C.is_numpy_like(stock):
            stock = [int(bool(s)) for s in stock]
        elif stock is not None:
            stock = np.asarray(stock).astype(bool).astype(np.int32)
        price_p, k1 = C.numbers(cols.get("price"), n, "price",
                                ctypes.c_double, npd("float64"))
        stock_p, k2 = C.numbers(stock, n, "in_stock", ctypes.c_int,
                                npd("int32"))
        cre_p, k3 = C.numbers(cols.get("created_at"), n, "created_at",
                              ctypes.c_int64, npd("int64"))
        keep += [k1, k2, k3]
        if n == 0:
            return 0
        self._check(L.cx_items_upsert(h, n, ids_p, cat_p, price_p, stock_p,
                                      cre_p, tag_p), h)
        return n

    def remove_item(self, item):
        """Remove an item from the catalogue (KeyError if unknown)."""
        h = self._handle()
        self._check(L.cx_item_remove(h, _b(item)), h)

    def item(self, item):
        """Catalogue facts of an item as a dict (KeyError if unknown)."""
        h = self._handle()
        cat, price = ctypes.c_char_p(), ctypes.c_double()
        stock, created = ctypes.c_int(), ctypes.c_int64()
        self._check(L.cx_item_get(h, _b(item), byref(cat), byref(price),
                                  byref(stock), byref(created)), h)
        return {"item": item, "category": (cat.value or b"").decode(),
                "price": price.value, "in_stock": bool(stock.value),
                "created_at": created.value}

    # -- signals -------------------------------------------------------

    def ingest(self, data=None, item=None, type=None, value=None,
               timestamp=None, channel=None, *, users=None, items=None,
               types=None, values=None, timestamps=None, channels=None):
        """Ingest signals; returns how many.  Forms:
          ingest("ann", "sku-1", "view")               one signal
          ingest("ann", "sku-1", "rating", 5, ts, "app")
          ingest([("ann", "sku-1", "view"), ...])      rows: tuples in the
              order user, item, type, value, timestamp, channel, or dicts
          ingest(df)   a pandas DataFrame or dict of columns named user
              (or customer), item, type, and optionally value,
              timestamp, channel; numpy arrays or lists
          ingest(users=..., items=..., types=..., values=..., ...)
        Types by name ('view', 'purchase', ...) or number.  Missing
        values are 1, missing timestamps "now", missing channels "web".
        The batch is all or nothing."""
        h = self._handle()
        if isinstance(data, (str, bytes)):
            if item is None or type is None:
                raise InvalidArgument("ingest(user, item, type, ...) needs "
                                      "an item and a type", -1)
            cols = {"user": [data], "item": [item], "type": [type],
                    "value": None if value is None else [value],
                    "timestamp": None if timestamp is None else [timestamp],
                    "channel": None if channel is None else [channel]}
        elif data is None:
            if users is None or items is None or types is None:
                raise InvalidArgument("ingest needs users, items and types",
                                      -1)
            cols = {"user": users, "item": items, "type": types,
                    "value": values, "timestamp": timestamps,
                    "channel": channels}
        elif _is_columns(data):
            cols = {k: _pick(data, names, k, k in ("user", "item", "type"))
                    for k, names in _COLS.items()}
        else:
            cols = self._signal_rows(data)
        return self._ingest_columns(h, cols)

    @staticmethod
    def _signal_rows(rows):
        names = ("user", "item", "type", "value", "timestamp", "channel")
        cols = {k: [] for k in names}
        seen = set()
        for r in rows:
            if isinstance(r, dict):
                r = {k2: v for k, v in r.items()
                     for k2 in names if k in _COLS[k2]}
                vals = [r.get(k) for k in names]
            else:
                if not 3 <= len(r) <= 6:
                    raise InvalidArgument(
                        "row %d: expected (user, item, type[, value[, "
                        "timestamp[, channel]]]), got %r"
                        % (len(cols["user"]), r), -1)
                vals = list(r) + [None] * (6 - len(r))
            for k, v in zip(names, vals):
                if v is not None:
                    seen.add(k)
                cols[k].append(v)
        now = int(time.time())
        for k, d in (("value", 1.0), ("timestamp", now),
                     ("channel", "web")):
            if k not in seen:
                cols[k] = None
            else:
                cols[k] = [d if v is None else v for v in cols[k]]
        return cols

    def _ingest_columns(self, h, cols):
        up, n, k0 = C.strings(cols["user"], "users")
        ip, m, k1 = C.strings(cols["item"], "items")
        if m != n:
            raise InvalidArgument("items has %d rows, users %d" % (m, n), -1)
        tp, k2 = C.types(cols["type"], n, self.signal_type)
        npd = np is not None
        vp, k3 = C.numbers(cols.get("value"), n, "values", ctypes.c_float,
                           np.float32 if npd else None)
        sp, k4 = C.numbers(cols.get("timestamp"), n, "timestamps",
                           ctypes.c_int64, np.int64 if npd else None)
        chp, k5 = None, None
        if cols.get("channel") is not None:
            chp, m, k5 = C.strings(cols["channel"], "channels", na="web")
            if m != n:
                raise InvalidArgument("channels has %d rows, expected %d"
                                      % (m, n), -1)
        if n == 0:
            return 0
        self._check(L.cx_ingest(h, n, up, ip, tp, vp, sp, chp), h)
        return n

    # -- training ------------------------------------------------------

    def _callback(self, progress):
        fn, done = _bar(progress)
        if fn is None:
            return L.PROGRESS_FN(), None, [], None
        errors = []

        def cb(_user, it, n, loss):
            try:
                return 1 if fn(it, n, loss) else 0
            except BaseException as exc:  # incl. KeyboardInterrupt
                errors.append(exc)
                return 1
        return L.PROGRESS_FN(cb), done, errors, cb

    def train(self, progress=False, **options):
        """Train ALS on every signal so far (options by name are set
        first).  progress=True shows a bar (tqdm if installed, else a
        plain line on stderr); a callable(iteration, iterations, loss)
        is called after each iteration and stops training by returning
        True.  Ctrl-C cancels and the previous model stays."""
        h = self._handle()
        self.set_options(**options)
        cfn, done, errors, _keep = self._callback(progress)
        try:
            rc = L.cx_train(h, cfn, None)
        finally:
            if done:
                done()
        if errors:
            raise errors[0]
        self._check(rc, h)
        return self

    def train_start(self, progress=None, **options):
        """Start training in a library thread and return at once.
        `progress` (a callable, or True for a bar) runs in that thread."""
        h = self._handle()
        self.set_options(**options)
        cfn, done, errors, keep = self._callback(progress)
        self._check(L.cx_train_start(h, cfn, None), h)
        self._bg = (cfn, done, errors, keep)

    def train_wait(self):
        """Wait for the background training; raises its error."""
        h = self._handle()
        rc = L.cx_train_wait(h)
        bg, self._bg = self._bg, None
        if bg is not None:
            if bg[1]:
                bg[1]()
            if bg[2]:
                raise bg[2][0]
        self._check(rc, h)
        return self

    # -- serving -------------------------------------------------------

    def _opts(self, category, in_stock_only, allow, deny, exclude, exact,
              max_per_category=0, diversity=0.0):
        """A cx_rec_opts (or None for the defaults) and its keepalive."""
        if (category is None and in_stock_only and allow is None and
                deny is None and exclude is None and not exact and
                not max_per_category and not diversity):
            return None, None
        o = L.RecOpts()
        L.cx_rec_opts_init(byref(o))
        keep = []
        if max_per_category:
            if (not isinstance(max_per_category, int) or
                    isinstance(max_per_category, bool) or
                    max_per_category < 0):
                raise InvalidArgument("max_per_category must be an int >= 0,"
                                      " not %r" % (max_per_category,), -1)
            o.max_per_category = max_per_category
        o.diversity = float(diversity)  # the library checks the range
        if category is not None:
            o.category = _b(category)
        o.in_stock_only = 1 if in_stock_only else 0
        o.exact = 1 if exact else 0
        if exclude is not None:
            if isinstance(exclude, (str, int)):
                exclude = [exclude]
            mask = 0
            for t in exclude:
                t = self.signal_type(t)
                if not 0 <= t < 32:
                    raise InvalidArgument("exclude: bad signal type %d" % t,
                                          -1)
                mask |= 1 << t
            o.exclude = mask
        if allow is not None:
            p, n, kp = C.strings(_seq(allow), "allow")
            o.allow, o.n_allow = p, n
            keep.append(kp)
        if deny is not None:
            p, n, kp = C.strings(_seq(deny), "deny")
            o.deny, o.n_deny = p, n
            keep.append(kp)
        return byref(o), (o, keep)

    def _results(self, s, n):
        if n == s.cap and n > 1:  # a full buffer, read without slicing
            try:  # every id seen before: one C loop of dict lookups
                names = _ig(*s.a_items)(self._ids)
            except KeyError:
                names = self._id_list(s.a_items)
            r = s.a_reasons
            r0 = r[0]  # mostly one reason for all: no per-item lookup
            return list(zip(names, s.a_scores.tolist(),
                            _repeat(REASONS[r0], n) if r.count(r0) == n
                            else _ig(*r)(REASONS)))
        addrs = s.a_items[:n].tolist()
        ids = self._ids
        try:  # the common case: every id seen before, one dict lookup each
            names = [ids[a] for a in addrs]
        except KeyError:
            names = self._id_list(addrs)
        return list(zip(names, s.a_scores[:n].tolist(),
                        map(REASONS.__getitem__, s.a_reasons[:n].tolist())))

    def recommend(self, user, k=10, category=None, in_stock_only=True,
                  allow=None, deny=None, exclude=None, exact=False,
                  max_per_category=0, diversity=0.0):
        """Top-k items for a customer: a list of (item, score, reason),
        reason one of 'personal', 'popular', ...  Unknown customers get
        popular items.  exclude: signal types whose items are dropped
        (default: anything seen; () drops nothing)."""
        # The hot path: the checks of _handle, _k, _opts and _b inlined
        # for the common arguments, each falling back to the helper (same
        # checks, same exceptions) otherwise.
        hp = self._hp
        if hp is None:
            self._handle()
        if type(k) is not int or not 0 < k <= MAX_K:
            k = _k(k)
        if (category is None and in_stock_only and allow is None and
                deny is None and exclude is None and not exact and
                not max_per_category and not diversity):
            opts = keep = None
        else:
            opts, keep = self._opts(category, in_stock_only, allow, deny,
                                    exclude, exact, max_per_category,
                                    diversity)
        s = self._scratch.bufs.get(k) or self._scratch.get(k)
        rc = L.cx_recommend_fast(hp, user.encode() if type(user) is str
                                 else _b(user), s.c_cap, opts, s.items,
                                 s.scores, s.reasons, s.p_n)
        if rc:
            raise error(rc, self._h)
        return self._results(s, s.n.value)

    def recommend_batch(self, users, k=10, category=None, in_stock_only=True,
                        allow=None, deny=None, exclude=None, exact=False,
                        max_per_category=0, diversity=0.0):
        """recommend() for many customers in one call: a list of lists."""
        h = self._handle()
        k = _k(k)
        up, m, keep_u = C.strings(_seq(users), "users")
        if m == 0:
            return []
        opts, keep = self._opts(category, in_stock_only, allow, deny,
                                exclude, exact, max_per_category, diversity)
        items = (ctypes.c_void_p * (m * k))()
        scores = (ctypes.c_float * (m * k))()
        reasons = (ctypes.c_int * (m * k))()
        counts = (ctypes.c_size_t * m)()
        self._check(L.cx_recommend_batch(h, m, up, k, opts, items, scores,
                                         reasons, counts), h)
        out = []
        names = REASONS
        for j in range(m):
            a, c = j * k, j * k + counts[j]
            out.append(list(zip(self._id_list(items[a:c]), scores[a:c],
                                [names[r] for r in reasons[a:c]])))
        return out

    def recommend_session(self, signals, k=10, category=None,
                          in_stock_only=True, allow=None, deny=None,
                          exclude=None, exact=False, max_per_category=0,
                          diversity=0.0):
        """Recommendations for an anonymous visitor from the signals of
        their session, a list of (item, type) or (item, type, value).
        Nothing is stored."""
        h = self._handle()
        k = _k(k)
        signals = list(signals)
        n = len(signals)
        ip = tp = vp = None
        keep = []
        if n:
            for i, s in enumerate(signals):
                if not isinstance(s, (tuple, list)) or not 2 <= len(s) <= 3:
                    raise InvalidArgument(
                        "session signal %d: expected (item, type[, value]), "
                        "got %r" % (i, s), -1)
            ip, _, k0 = C.strings([s[0] for s in signals], "items")
            tp, k1 = C.types([s[1] for s in signals], n, self.signal_type)
            keep += [k0, k1]
            if any(len(s) == 3 for s in signals):
                vals = [float(s[2]) if len(s) == 3 else 1.0
                        for s in signals]
                vp, k2 = C.numbers(vals, n, "values", ctypes.c_float,
                                   np.float32 if np is not None else None)
                keep.append(k2)
        opts, kopt = self._opts(category, in_stock_only, allow, deny,
                                exclude, exact, max_per_category, diversity)
        s = self._scratch.get(k)
        self._check(L.cx_recommend_session(h, n, ip, tp, vp, k, opts,
                                           s.items, s.scores, s.reasons,
                                           s.n), h)
        return self._results(s, s.n.value)

    def similar_items(self, item, k=10, category=None, in_stock_only=True,
                      allow=None, deny=None, exact=False, max_per_category=0,
                      diversity=0.0):
        """Items most like `item` (cosine of item vectors).  KeyError for
        an unknown item, NotTrained before training."""
        h = self._handle()
        k = _k(k)
        opts, keep = self._opts(category, in_stock_only, allow, deny, None,
                                exact, max_per_category, diversity)
        s = self._scratch.get(k)
        self._check(L.cx_similar_items(h, _b(item), k, opts, s.items,
                                       s.scores, s.reasons, s.n), h)
        return self._results(s, s.n.value)

    def _list(self, fn, k, category, in_stock_only, allow, deny,
              max_per_category):
        h = self._handle()
        opts, keep = self._opts(category, in_stock_only, allow, deny, None,
                                False, max_per_category)
        s = self._scratch.get(k)
        self._check(fn(h, k, opts, s.items, s.scores, s.reasons, s.n), h)
        return self._results(s, s.n.value)

    def trending(self, k=10, category=None, in_stock_only=True, allow=None,
                 deny=None, max_per_category=0):
        """Items by time-decayed signal strength (reason 'trending')."""
        return self._list(L.cx_trending, _k(k), category, in_stock_only,
                          allow, deny, max_per_category)

    def popular(self, k=10, category=None, in_stock_only=True, allow=None,
                deny=None, max_per_category=0):
        """The popularity list unknown customers get (reason 'popular')."""
        return self._list(L.cx_popular, _k(k), category, in_stock_only,
                          allow, deny, max_per_category)

    def new_arrivals(self, k=10, category=None, in_stock_only=True,
                     allow=None, deny=None, max_per_category=0):
        """Catalogued items by created_at, newest first; score = age in
        days (reason 'new')."""
        return self._list(L.cx_new_arrivals, _k(k), category, in_stock_only,
                          allow, deny, max_per_category)

    def explain(self, user, item, n=10):
        """Why the model scores `item` for `user`: a dict with 'score'
        (the exact ALS score) and 'because', a list of (past item,
        contribution), largest first, summing to the score when n covers
        every positive item of the customer."""
        h = self._handle()
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidArgument("n must be an int >= 0, not %r" % (n,), -1)
        m = max(n, 1)
        items = (ctypes.c_void_p * m)()
        contrib = (ctypes.c_float * m)()
        count = ctypes.c_size_t()
        score = ctypes.c_float()
        self._check(L.cx_explain(h, _b(user), _b(item), n, items, contrib,
                                 byref(count), byref(score)), h)
        c = count.value
        return {"score": score.value,
                "because": list(zip(self._id_list(items[:c]), contrib[:c]))}

    # -- customers and experiments -------------------------------------

    def profile(self, user, now=0):
        """The customer's profile as a dict: stage ('new', 'browsing',
        'considering', 'purchased', 'loyal', 'lapsed'), first_seen,
        last_seen, signals, by_type {name: count}, by_channel {name:
        count}, categories [(category, share)], avg_price, price_level.
        `now` (seconds) decides 'lapsed'; 0 = the newest signal."""
        h = self._handle()
        p = L.Profile()
        p.size = ctypes.sizeof(p)
        self._check(L.cx_profile_get(h, _b(user), int(now), byref(p)), h)
        by_type = {}
        for t in range(32):
            if p.by_type[t]:
                name = L.cx_signal_type_name(h, t)
                by_type[name.decode() if name else t] = p.by_type[t]
        return {
            "stage": L.cx_stage_name(p.stage).decode(),
            "first_seen": p.first_seen, "last_seen": p.last_seen,
            "signals": p.signals, "by_type": by_type,
            "by_channel": {p.channel[j].decode(): p.by_channel[j]
                           for j in range(p.n_channels)},
            "categories": [(p.category[j].decode(), p.category_share[j])
                           for j in range(p.n_categories)],
            "avg_price": p.avg_price, "price_level": p.price_level}

    _ROW_KINDS = ("for_you", "because", "continue", "bought_together",
                  "trending", "new", "category")

    @staticmethod
    def _row_title(kind, seed):
        return {"for_you": "For you",
                "because": "Because you liked %s" % seed,
                "continue": "Continue shopping",
                "bought_together": "Bought together with %s" % seed,
                "trending": ("Trending in %s" % seed) if seed
                else "Trending now",
                "new": ("New in %s" % seed) if seed else "New arrivals",
                "category": "Top picks in %s" % seed}[kind]

    def _layout_call(self, user, max_rows, items_per_row, min_row, kinds,
                     per_kind, channel, now, rules):
        """cx_layout into fresh buffers: (rows, items, row count)."""
        h = self._handle()
        spec = L.LayoutSpec()
        L.cx_layout_spec_init(byref(spec))
        spec.max_rows, spec.items_per_row = int(max_rows), int(items_per_row)
        spec.min_row = int(min_row)
        if kinds is not None:
            mask = 0
            for k in kinds:
                if k not in self._ROW_KINDS:
                    raise InvalidArgument("unknown row kind %r (one of %s)" % (
                        k, ", ".join(self._ROW_KINDS)), -1)
                mask |= 1 << self._ROW_KINDS.index(k)
            spec.kinds = mask
        for k, n in (per_kind or {}).items():
            if k not in self._ROW_KINDS:
                raise InvalidArgument("unknown row kind %r" % (k,), -1)
            spec.per_kind[self._ROW_KINDS.index(k)] = int(n)
        keep_ch = _b(channel) if channel is not None else None
        spec.channel = keep_ch
        spec.now = int(now)
        if rules:
            opts, keep = self._opts(None, rules.pop("in_stock_only", True),
                                    rules.pop("allow", None),
                                    rules.pop("deny", None),
                                    rules.pop("exclude", None), False,
                                    rules.pop("max_per_category", 0),
                                    rules.pop("diversity", 0.0))
            if rules:
                raise InvalidArgument("unknown layout rules: %s" % (
                    ", ".join(sorted(rules))), -1)
            if opts is not None:
                spec.rules = keep[0]
        nr = max(1, min(int(max_rows), 64))
        ni = nr * max(1, min(int(items_per_row), 100))
        rows = (L.LayoutRow * nr)()
        items = (L.LayoutItem * ni)()
        n = ctypes.c_size_t()
        self._check(L.cx_layout(h, _b(user), byref(spec), rows, nr, items,
                                ni, byref(n)), h)
        return rows, items, n.value

    def layout(self, user, max_rows=8, items_per_row=12, min_row=4,
               kinds=None, per_kind=None, channel=None, now=0, **rules):
        """The customer's home page: a list of rows, best first, each a
        dict with title, kind ('for_you', 'because', 'continue',
        'bought_together', 'trending', 'new', 'category'), seed (an item
        or category, or None), fit, and items [(item, score, reason)].
        kinds: the allowed kinds (default all); per_kind: {kind: most
        rows}; rules: the keyword rules of recommend() but category (each
        row has its own), applied to every row."""
        rows, items, n = self._layout_call(user, max_rows, items_per_row,
                                           min_row, kinds, per_kind, channel,
                                           now, rules)
        out = []
        for r in rows[:n]:
            kind = self._ROW_KINDS[r.kind]
            seed = r.seed.decode() if r.seed else None
            its = items[r.first:r.first + r.count]
            out.append({"title": self._row_title(kind, seed), "kind": kind,
                        "seed": seed, "fit": r.fit,
                        "items": list(zip(self._id_list([i.item for i in its]),
                                          [i.score for i in its],
                                          [REASONS[i.reason] for i in its]))})
        return out

    def layout_json(self, user, max_rows=8, items_per_row=12, min_row=4,
                    kinds=None, per_kind=None, channel=None, now=0, **rules):
        """The same page as layout() as JSON text (bytes, UTF-8 as the ids
        are), what a web handler sends: {"user", "rows": [{"title",
        "kind", "seed" (null when none), "fit", "items": [{"item",
        "score", "reason"}]}]}, the items written by the library
        (cx_layout_items_json; scores with 9 significant digits, which
        read back as the same float)."""
        rows, items, n = self._layout_call(user, max_rows, items_per_row,
                                           min_row, kinds, per_kind, channel,
                                           now, rules)
        dumps = json.dumps
        parts = [b'{"user":', dumps(user if isinstance(user, str)
                                    else user.decode("utf-8", "replace"),
                                    ensure_ascii=False).encode(), b',"rows":[']
        buf = ctypes.create_string_buffer(16384)
        for j, r in enumerate(rows[:n]):
            kind = self._ROW_KINDS[r.kind]
            seed = r.seed.decode("utf-8", "replace") if r.seed else None
            head = {"title": self._row_title(kind, seed), "kind": kind,
                    "seed": seed, "fit": r.fit}
            parts.append((b',' if j else b'') +
                         dumps(head, ensure_ascii=False)[:-1].encode() +
                         b',"items":')
            first = ctypes.byref(items, r.first * ctypes.sizeof(L.LayoutItem))
            length = L.cx_layout_items_json(first, r.count, buf, len(buf))
            if length > len(buf):
                buf = ctypes.create_string_buffer(length)
                length = L.cx_layout_items_json(first, r.count, buf, length)
            parts.append(buf.raw[:length] + b'}')
        parts.append(b']}')
        return b''.join(parts)

    def define_experiment(self, name, variants):
        """Define an experiment: variants as {name: share} or a list of
        (name, share) pairs (shares are normalised)."""
        h = self._handle()
        pairs = list(variants.items()) if isinstance(variants, dict) \
            else [tuple(v) for v in variants]
        n = len(pairs)
        names = (ctypes.c_char_p * max(n, 1))(*[_b(v) for v, _ in pairs])
        shares = (ctypes.c_double * max(n, 1))(*[float(w) for _, w in pairs])
        self._check(L.cx_experiment_define(h, _b(name), n, names, shares), h)

    def variant(self, experiment, user, count_exposure=True):
        """The customer's variant (deterministic, see the README); counts
        an exposure unless count_exposure is False."""
        h = self._handle()
        v = ctypes.c_char_p()
        self._check(L.cx_variant(h, _b(experiment), _b(user),
                                 1 if count_exposure else 0, byref(v)), h)
        return v.value.decode()

    def exposures(self, experiment, variant):
        h = self._handle()
        n = ctypes.c_int64()
        self._check(L.cx_exposures(h, _b(experiment), _b(variant),
                                   byref(n)), h)
        return n.value

    _OVERRIDES = {"k": 100001, "diversity": 100002, "max_per_category": 100003}

    def _override_key(self, key):
        if key in self._OVERRIDES:
            return self._OVERRIDES[key]
        if key in OPTIONS:
            return OPTIONS[key]
        if isinstance(key, int) and not isinstance(key, bool):
            return key
        raise InvalidArgument("unknown override %r (k, diversity, "
                              "max_per_category or an option name)" % (key,),
                              -1)

    def set_override(self, experiment, variant, key, value):
        """Store an override a variant carries (k, diversity,
        max_per_category or an option name); the library only stores it."""
        h = self._handle()
        self._check(L.cx_variant_set(h, _b(experiment), _b(variant),
                                     self._override_key(key), float(value)),
                    h)

    def override(self, experiment, variant, key, default=None):
        """A variant's override, or `default` when it carries none."""
        h = self._handle()
        v = ctypes.c_double()
        rc = L.cx_variant_get(h, _b(experiment), _b(variant),
                              self._override_key(key), byref(v))
        if rc == -3 and default is not None:
            return default
        self._check(rc, h)
        return v.value

    # -- vectors and factors --------------------------------------------

    def _vector(self, fn, key):
        h = self._handle()
        d = self.stats()["factors"]
        buf = (ctypes.c_float * max(d, 1))()
        src = ctypes.c_int()
        self._check(fn(h, _b(key), buf, max(d, 1), byref(src)), h)
        if np is not None:
            return np.frombuffer(buf, dtype=np.float32, count=d).copy()
        return list(buf[:d])

    def customer_vector(self, user):
        """The vector serving uses now for a customer (folded in if
        needed): numpy float32 array, or a list without numpy."""
        return self._vector(L.cx_customer_vector, user)

    def item_vector(self, item):
        """The vector serving uses now for an item."""
        return self._vector(L.cx_item_vector, item)

    def factors(self, which, copy=False):
        """The trained factor matrix, which = 'user' or 'item', as a
        read-only (rows, factors) float32 numpy array.  Without copy,
        a zero-copy view of the engine's memory: VALID ONLY UNTIL THE
        NEXT TRAINING ENDS OR close() (after that it reads freed memory);
        copy=True gives an independent array.  Without numpy: a list of
        lists.  Row i belongs to user_ids[i] / item_ids[i]."""
        h = self._handle()
        w = {"user": 0, "customer": 0, "item": 1, 0: 0, 1: 1}.get(which)
        if w is None:
            raise InvalidArgument("which must be 'user' or 'item'", -1)
        data, rows, cols = ctypes.c_void_p(), ctypes.c_size_t(), \
            ctypes.c_size_t()
        self._check(L.cx_factors(h, w, byref(data), byref(rows),
                                 byref(cols)), h)
        r, c = rows.value, cols.value
        if not r * c:
            return np.zeros((r, c), np.float32) if np is not None else []
        buf = (ctypes.c_float * (r * c)).from_address(data.value)
        if np is None:
            return [buf[i * c:(i + 1) * c] for i in range(r)]
        buf._engine = self  # the engine outlives the view's buffer object
        a = np.frombuffer(buf, dtype=np.float32).reshape(r, c)
        if copy:
            return a.copy()
        a.flags.writeable = False
        return a

    @property
    def user_factors(self):
        """Zero-copy view of the customer factors (see factors())."""
        return self.factors("user")

    @property
    def item_factors(self):
        """Zero-copy view of the item factors (see factors())."""
        return self.factors("item")

    def _ids_of(self, fn, stat):
        h = self._handle()
        n = self.stats()[stat]
        return self._id_list([fn(h, i) for i in range(n)])

    @property
    def user_ids(self):
        """Ids of the rows of user_factors."""
        return self._ids_of(L.cx_customer_id, "model_customers")

    @property
    def item_ids(self):
        """Ids of the rows of item_factors."""
        return self._ids_of(L.cx_item_id, "model_items")

    # -- introspection, files, evaluation ---------------------------------

    def stats(self):
        """Counters of the engine as a dict (customers, items, signals,
        generation, factors, model_customers, model_items, memory,
        folded_customers, folded_items, training)."""
        h = self._handle()
        v = ctypes.c_int64()
        out = {}
        for name, key in STATS.items():
            self._check(L.cx_stat(h, key, byref(v)), h)
            out[name] = v.value
        return out

    def sync(self):
        """Make everything acknowledged durable now, whatever the sync
        policy, and save the experiments' exposure counts (a no-op in
        memory)."""
        h = self._handle()
        self._check(L.cx_sync(h), h)

    def refresh(self):
        """Catch up with the directory now: a read-only engine with what
        the others committed since and a newer snapshot generation, the
        writer with the signals readers appended (a no-op in memory)."""
        h = self._handle()
        self._check(L.cx_refresh(h), h)

    def forget(self, customers):
        """Erase customers (the right to erasure): their signals, id,
        profile and vector, from memory, the database and the snapshots
        (see cx_forget).  customers: an id or an iterable of ids; unknown
        ids are skipped.  Returns how many were erased."""
        if isinstance(customers, (str, bytes)):
            customers = [customers]
        ids = [c if isinstance(c, bytes) else str(c).encode()
               for c in customers]
        arr = (ctypes.c_char_p * max(len(ids), 1))(*ids)
        n = ctypes.c_size_t()
        h = self._handle()
        self._check(L.cx_forget(h, len(ids), arr, byref(n)), h)
        return n.value

    def export_signals(self, path):
        """Write every signal as CSV for Spark MLlib ALS: customer_idx,
        item_idx (the engine's indexes), strength (signed weight), then
        customer, item, type, value, ts, channel."""
        h = self._handle()
        self._check(L.cx_export_signals(h, os.fsencode(path)), h)

    def import_factors(self, customers, items, by_index=False):
        """Make Spark's model.userFactors / model.itemFactors (each a
        file or a directory of part files, JSON lines or CSV) the model.
        by_index: the ids are the engine's indexes, as export_signals
        wrote them."""
        h = self._handle()
        self._check(L.cx_import_factors(h, os.fsencode(customers),
                                        os.fsencode(items),
                                        1 if by_index else 0), h)

    def save(self, path):
        """Save the whole engine to one file, atomically."""
        h = self._handle()
        self._check(L.cx_save(h, os.fsencode(path)), h)

    def export_npy(self, directory):
        """Write customer_factors.npy, item_factors.npy, customer_ids.txt,
        item_ids.txt into `directory` (created if missing)."""
        h = self._handle()
        os.makedirs(directory, exist_ok=True)
        self._check(L.cx_export_npy(h, os.fsencode(directory)), h)

    def evaluate(self, k=10, test_fraction=0.2, min_items=3, relevant=None,
                 experiment=None, variant=None, max_per_category=0,
                 diversity=0.0, split="items", bootstrap=0, seed=1,
                 untuned=False):
        """Offline evaluation on a per-customer time split, against a
        popularity baseline: {'model': {metric: value}, 'baseline': {...},
        'k': k}.  Metrics: precision, recall, ndcg, map, hit_rate,
        coverage, users.  The engine's own model is not changed.  With
        experiment and variant, only that variant's customers are scored
        (a replay); max_per_category and diversity apply to the model's
        lists.  split: 'items' (newest distinct items) or 'events' (newest
        signals; re-buys count).  With bootstrap > 0 the result also has
        'ci': {'model'|'baseline'|'diff': {metric: (lo, hi)}}, 95%
        intervals over customers.  untuned=True: the library's defaults
        for every option tune() sets."""
        h = self._handle()
        o = L.EvalOpts()
        L.cx_eval_opts_init(byref(o))
        if not isinstance(k, int) or k <= 0:
            raise InvalidArgument("k must be a positive int", -1)
        tf = float(test_fraction)
        if math.isnan(tf):
            raise InvalidArgument("test_fraction is NaN", -1)
        o.k, o.test_fraction, o.min_items = k, tf, int(min_items)
        if relevant is not None:
            mask = 0
            for t in ([relevant] if isinstance(relevant, (str, int))
                      else relevant):
                mask |= 1 << self.signal_type(t)
            o.relevant = mask
        keep = (_b(experiment) if experiment is not None else None,
                _b(variant) if variant is not None else None)
        o.experiment, o.variant = keep
        if (not isinstance(max_per_category, int) or
                isinstance(max_per_category, bool) or max_per_category < 0):
            raise InvalidArgument("max_per_category must be an int >= 0", -1)
        o.max_per_category = max_per_category
        o.diversity = float(diversity)
        o.split = _split(split)
        if not isinstance(bootstrap, int) or bootstrap < 0:
            raise InvalidArgument("bootstrap must be an int >= 0", -1)
        o.bootstrap = bootstrap
        o.seed = int(seed)
        o.untuned = 1 if untuned else 0
        m = (ctypes.c_double * 7)()
        b = (ctypes.c_double * 7)()
        ci = (ctypes.c_double * (6 * 7))() if bootstrap else None
        self._check(L.cx_evaluate_ci(h, byref(o), m, b, ci), h)
        out = {"k": k, "model": dict(zip(METRICS, m)),
               "baseline": dict(zip(METRICS, b))}
        if bootstrap:
            out["ci"] = {w: {METRICS[i]: (ci[(2 * j) * 7 + i],
                                          ci[(2 * j + 1) * 7 + i])
                             for i in range(7)}
                         for j, w in enumerate(("model", "baseline", "diff"))}
        return out

    def tune(self, seconds=60.0, trials=0, seed=1, params=None, k=10,
             split="events", test_fraction=0.2, min_items=3,
             validation_fraction=0.2, max_customers=5000, apply=True):
        """Search the training options and the blend (cx_tune) within the
        budget (seconds and/or trials) on a validation part carved by time
        from the training data; the newest test_fraction of each
        customer's history, which evaluate() holds out, is never read.
        With apply, the best options are set and the engine trained.
        Returns the trials, in order, as a list of dicts (the chosen one
        has best=True).  params: None (all) or a subset of 'factors',
        'regularization', 'alpha', 'weights', 'half_life', 'blend'."""
        h = self._handle()
        o = L.TuneOpts()
        L.cx_tune_opts_init(byref(o))
        bits = {"factors": 1, "regularization": 2, "alpha": 4,
                "weights": 8, "half_life": 16, "blend": 32}
        if params is not None:
            mask = 0
            for p in ([params] if isinstance(params, str) else params):
                if p not in bits:
                    raise InvalidArgument("unknown tuning parameter %r (%s)"
                                          % (p, ", ".join(bits)), -1)
                mask |= bits[p]
            o.params = mask
        for name, v in (("trials", trials), ("k", k),
                        ("min_items", min_items),
                        ("max_customers", max_customers)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidArgument("%s must be an int >= 0" % name, -1)
        o.seconds = float(seconds)
        o.trials, o.k, o.min_items = trials, k, min_items
        o.max_customers = max_customers
        o.seed = int(seed)
        o.split = _split(split)
        o.test_fraction = float(test_fraction)
        o.validation_fraction = float(validation_fraction)
        o.apply = 1 if apply else 0
        cap = trials if trials else 4096
        buf = (L.TuneTrial * cap)()
        n = ctypes.c_size_t()
        self._check(L.cx_tune(h, byref(o), buf, cap, byref(n)), h)
        out = []
        for t in buf[:min(n.value, cap)]:
            out.append({
                "model": t.model, "factors": t.factors,
                "regularization": t.regularization, "alpha": t.alpha,
                "half_life": t.half_life,
                "weights": {SIGNAL_TYPES[j]: t.weight[j]
                            for j in range(len(SIGNAL_TYPES))},
                "blend_als": t.blend_als, "blend_popular": t.blend_popular,
                "blend_repeat": t.blend_repeat,
                "blend_cobought": t.blend_cobought,
                "consumable": t.consumable, "ndcg": t.ndcg,
                "seconds": t.seconds, "best": bool(t.best)})
        return out


def _split(split):
    if split == "items":
        return 0
    if split == "events":
        return 1
    raise InvalidArgument("split must be 'items' or 'events', not %r"
                          % (split,), -1)


def _b(s):
    if isinstance(s, str):
        return s.encode("utf-8")
    if isinstance(s, bytes):
        return s
    raise InvalidArgument("expected a string id, got %r" % (s,), -1)


def _seq(x):
    return [x] if isinstance(x, (str, bytes)) else x


def _k(k):
    if not isinstance(k, int) or isinstance(k, bool):
        if hasattr(k, "__index__"):
            k = k.__index__()
        else:
            raise InvalidArgument("k must be an int, not %r" % (k,), -1)
    if not 1 <= k <= MAX_K:
        raise InvalidArgument("k = %d, must be 1..%d" % (k, MAX_K), -1)
    return k
