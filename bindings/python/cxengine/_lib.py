"""_lib.py -- find libcxengine.so, check its version, declare every symbol.

The only module that knows the C signatures.  Every symbol used gets its
argtypes/restype here (as xgboost's libpath.py + core.py do), so a wrong
argument fails in Python instead of corrupting memory.
"""
import ctypes
import ctypes.util
import os
import sys

# The binding speaks the C API of this major.minor (0.1 -> 1).
ABI_MAJOR_MINOR = 1
ABI_STRING = "0.1"


class LibraryError(ImportError):
    """libcxengine could not be loaded, or is the wrong version."""


def _candidates():
    """(description, path-or-name) pairs, in search order."""
    out = []
    env = os.environ.get("CXENGINE_LIB")
    if env:
        if os.path.isdir(env):
            for name in ("libcxengine.so", "libcxengine.so.0",
                         "libcxengine.dylib"):
                out.append(("CXENGINE_LIB directory",
                            os.path.join(env, name)))
        else:
            out.append(("CXENGINE_LIB", env))
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libcxengine.so", "libcxengine.so.0", "libcxengine.dylib"):
        out.append(("package directory", os.path.join(here, name)))
    found = ctypes.util.find_library("cxengine")
    out.append(("system (ctypes.util.find_library('cxengine'))",
                found or None))
    return out


def _load():
    tried = []
    for where, path in _candidates():
        if path is None:
            tried.append("  %s: not found" % where)
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append("  %s: %s: no such file" % (where, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as exc:
            tried.append("  %s: %s: %s" % (where, path, exc))
    raise LibraryError(
        "cannot load libcxengine; looked in:\n" + "\n".join(tried) +
        "\nset CXENGINE_LIB to the path of libcxengine.so "
        "(e.g. build/libcxengine.so) or install the library")


lib, path = _load()

c_int, c_double, c_size_t = ctypes.c_int, ctypes.c_double, ctypes.c_size_t
c_char_p, c_void_p, c_float = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_float
c_int64, c_uint = ctypes.c_int64, ctypes.c_uint
P = ctypes.POINTER
c_char_pp = P(c_char_p)
ENGINE = c_void_p

PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int, c_int, c_double)


class RecOpts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("exclude", c_uint),
                ("category", c_char_p), ("in_stock_only", c_int),
                ("allow", c_void_p), ("n_allow", c_size_t),
                ("deny", c_void_p), ("n_deny", c_size_t),
                ("exact", c_int), ("max_per_category", c_size_t),
                ("diversity", ctypes.c_double)]


ROW_KINDS = 7


class LayoutSpec(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("kinds", c_uint),
                ("max_rows", c_size_t), ("items_per_row", c_size_t),
                ("min_row", c_size_t), ("per_kind", c_size_t * ROW_KINDS),
                ("channel", c_char_p), ("now", c_int64),
                ("rules", RecOpts)]


class LayoutRow(ctypes.Structure):
    _fields_ = [("kind", c_int), ("seed", c_char_p), ("fit", ctypes.c_float),
                ("first", c_size_t), ("count", c_size_t)]


class LayoutItem(ctypes.Structure):
    _fields_ = [("item", c_void_p), ("score", ctypes.c_float),
                ("reason", c_int)]


PROFILE_TOP = 8


class Profile(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("stage", c_int),
                ("first_seen", c_int64), ("last_seen", c_int64),
                ("signals", ctypes.c_uint64),
                ("by_type", ctypes.c_uint64 * 32),
                ("n_channels", c_size_t),
                ("channel", c_char_p * PROFILE_TOP),
                ("by_channel", ctypes.c_uint64 * PROFILE_TOP),
                ("n_categories", c_size_t),
                ("category", c_char_p * PROFILE_TOP),
                ("category_share", c_double * PROFILE_TOP),
                ("avg_price", c_double), ("price_level", c_double)]


class EvalOpts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("k", c_size_t),
                ("test_fraction", c_double), ("min_items", c_size_t),
                ("relevant", c_uint), ("experiment", c_char_p),
                ("variant", c_char_p), ("max_per_category", c_size_t),
                ("diversity", c_double), ("split", c_int),
                ("bootstrap", c_size_t), ("seed", ctypes.c_uint64),
                ("untuned", c_int)]


class TuneOpts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("seconds", c_double),
                ("trials", c_size_t), ("seed", ctypes.c_uint64),
                ("params", c_uint), ("k", c_size_t), ("split", c_int),
                ("test_fraction", c_double), ("min_items", c_size_t),
                ("validation_fraction", c_double),
                ("max_customers", c_size_t), ("apply", c_int)]


class TuneTrial(ctypes.Structure):
    _fields_ = [("model", c_int), ("factors", c_int),
                ("regularization", c_double), ("alpha", c_double),
                ("half_life", c_double), ("weight", c_double * 8),
                ("blend_als", c_double), ("blend_popular", c_double),
                ("blend_repeat", c_double), ("blend_cobought", c_double),
                ("consumable", c_double), ("ndcg", c_double),
                ("seconds", c_double), ("best", c_int)]


def _decl(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


# The version first: a mismatched library may lack symbols declared below.
cx_version = _decl("cx_version", c_char_p)
cx_version_number = _decl("cx_version_number", c_int)
version = cx_version().decode()
version_number = cx_version_number()
if version_number // 100 != ABI_MAJOR_MINOR:
    raise LibraryError(
        "libcxengine at %s is version %s, but this binding was written for "
        "%s.x (cx_version_number() // 100 must be %d, got %d); install a "
        "matching library or binding" % (path, version, ABI_STRING,
                                         ABI_MAJOR_MINOR,
                                         version_number // 100))


# Item arrays out of the ranking calls are declared void** so that ctypes
# hands back addresses (ints): the binding decodes each distinct id once
# (ids live as long as the engine).
_RANK = (P(c_void_p), P(c_float), P(c_int), P(c_size_t))
cx_strerror = _decl("cx_strerror", c_char_p, c_int)
cx_open = _decl("cx_open", c_int, P(ENGINE), c_char_p, c_uint)
cx_close = _decl("cx_close", None, ENGINE)
cx_errmsg = _decl("cx_errmsg", c_char_p, ENGINE)
cx_set_option = _decl("cx_set_option", c_int, ENGINE, c_int, c_double)
cx_get_option = _decl("cx_get_option", c_int, ENGINE, c_int, P(c_double))
cx_items_upsert = _decl("cx_items_upsert", c_int, ENGINE, c_size_t,
                        c_void_p, c_void_p, c_void_p, c_void_p, c_void_p,
                        c_void_p)
cx_item_remove = _decl("cx_item_remove", c_int, ENGINE, c_char_p)
cx_item_get = _decl("cx_item_get", c_int, ENGINE, c_char_p, P(c_char_p),
                    P(c_double), P(c_int), P(c_int64))
cx_signal_type_define = _decl("cx_signal_type_define", c_int, ENGINE,
                              c_char_p, c_double, P(c_int))
cx_signal_type_lookup = _decl("cx_signal_type_lookup", c_int, ENGINE,
                              c_char_p, P(c_int))
cx_signal_type_name = _decl("cx_signal_type_name", c_char_p, ENGINE, c_int)
cx_ingest = _decl("cx_ingest", c_int, ENGINE, c_size_t, c_void_p, c_void_p,
                  c_void_p, c_void_p, c_void_p, c_void_p)
cx_train = _decl("cx_train", c_int, ENGINE, PROGRESS_FN, c_void_p)
cx_train_start = _decl("cx_train_start", c_int, ENGINE, PROGRESS_FN,
                       c_void_p)
cx_train_wait = _decl("cx_train_wait", c_int, ENGINE)
cx_rec_opts_init = _decl("cx_rec_opts_init", None, P(RecOpts))
cx_recommend = _decl("cx_recommend", c_int, ENGINE, c_char_p, c_size_t,
                     P(RecOpts), *_RANK)
# Engine.recommend's hot path: the same symbol through a second function
# object without argtypes, as ctypes' per-argument from_param checks cost
# about 0.5 us a call.  Its one caller passes exact ctypes objects only:
# the c_void_p handle, bytes, a c_size_t, byref(RecOpts) or None, the
# _Buf arrays and byref(c_size_t) -- never a bare int.
cx_recommend_fast = lib["cx_recommend"]  # [] makes a new function object
cx_recommend_fast.restype = c_int
cx_recommend_fast.argtypes = None
cx_recommend_batch = _decl("cx_recommend_batch", c_int, ENGINE, c_size_t,
                           c_void_p, c_size_t, P(RecOpts), *_RANK)
cx_recommend_session = _decl("cx_recommend_session", c_int, ENGINE,
                             c_size_t, c_void_p, c_void_p, c_void_p,
                             c_size_t, P(RecOpts), *_RANK)
cx_similar_items = _decl("cx_similar_items", c_int, ENGINE, c_char_p,
                         c_size_t, P(RecOpts), *_RANK)
cx_trending = _decl("cx_trending", c_int, ENGINE, c_size_t, P(RecOpts),
                    *_RANK)
cx_popular = _decl("cx_popular", c_int, ENGINE, c_size_t, P(RecOpts),
                   *_RANK)
cx_new_arrivals = _decl("cx_new_arrivals", c_int, ENGINE, c_size_t,
                        P(RecOpts), *_RANK)
cx_explain = _decl("cx_explain", c_int, ENGINE, c_char_p, c_char_p,
                   c_size_t, c_void_p, c_void_p, P(c_size_t),
                   P(ctypes.c_float))
cx_layout_spec_init = _decl("cx_layout_spec_init", None, P(LayoutSpec))
cx_layout = _decl("cx_layout", c_int, ENGINE, c_char_p, P(LayoutSpec),
                  c_void_p, c_size_t, c_void_p, c_size_t, P(c_size_t))
cx_row_kind_name = _decl("cx_row_kind_name", c_char_p, c_int)
cx_layout_items_json = _decl("cx_layout_items_json", c_size_t, c_void_p,
                             c_size_t, c_void_p, c_size_t)
cx_stage_name = _decl("cx_stage_name", c_char_p, c_int)
cx_profile_get = _decl("cx_profile_get", c_int, ENGINE, c_char_p, c_int64,
                       P(Profile))
cx_experiment_define = _decl("cx_experiment_define", c_int, ENGINE,
                             c_char_p, c_size_t, c_void_p, c_void_p)
cx_variant_set = _decl("cx_variant_set", c_int, ENGINE, c_char_p, c_char_p,
                       c_int, c_double)
cx_variant_get = _decl("cx_variant_get", c_int, ENGINE, c_char_p, c_char_p,
                       c_int, P(c_double))
cx_variant = _decl("cx_variant", c_int, ENGINE, c_char_p, c_char_p, c_int,
                   P(c_char_p))
cx_exposures = _decl("cx_exposures", c_int, ENGINE, c_char_p, c_char_p,
                     P(c_int64))
cx_stat = _decl("cx_stat", c_int, ENGINE, c_int, P(c_int64))
cx_factors = _decl("cx_factors", c_int, ENGINE, c_int, P(c_void_p),
                   P(c_size_t), P(c_size_t))
cx_customer_vector = _decl("cx_customer_vector", c_int, ENGINE, c_char_p,
                           c_void_p, c_size_t, P(c_int))
cx_item_vector = _decl("cx_item_vector", c_int, ENGINE, c_char_p, c_void_p,
                       c_size_t, P(c_int))
cx_customer_id = _decl("cx_customer_id", c_void_p, ENGINE, c_size_t)
cx_item_id = _decl("cx_item_id", c_void_p, ENGINE, c_size_t)
cx_save = _decl("cx_save", c_int, ENGINE, c_char_p)
cx_sync = _decl("cx_sync", c_int, ENGINE)
cx_refresh = _decl("cx_refresh", c_int, ENGINE)
cx_forget = _decl("cx_forget", c_int, ENGINE, c_size_t, P(c_char_p),
                  P(c_size_t))
cx_export_signals = _decl("cx_export_signals", c_int, ENGINE, c_char_p)
cx_import_factors = _decl("cx_import_factors", c_int, ENGINE, c_char_p,
                          c_char_p, c_uint)
cx_load = _decl("cx_load", c_int, P(ENGINE), c_char_p)
cx_export_npy = _decl("cx_export_npy", c_int, ENGINE, c_char_p)
cx_eval_opts_init = _decl("cx_eval_opts_init", None, P(EvalOpts))
cx_evaluate = _decl("cx_evaluate", c_int, ENGINE, P(EvalOpts), P(c_double),
                    P(c_double))
cx_evaluate_ci = _decl("cx_evaluate_ci", c_int, ENGINE, P(EvalOpts),
                       P(c_double), P(c_double), P(c_double))
cx_tune_opts_init = _decl("cx_tune_opts_init", None, P(TuneOpts))
cx_tune = _decl("cx_tune", c_int, ENGINE, P(TuneOpts), P(TuneTrial),
                c_size_t, P(c_size_t))

