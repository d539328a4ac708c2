#!/usr/bin/env python3
"""bench_python.py -- what the Python binding costs on top of the C calls.

Prints, and writes to build/bench/python.json:
  - recommend: microseconds per call through a raw ctypes call of
    cx_recommend (the C work plus the bare FFI crossing) and through
    Engine.recommend; the difference is the binding's overhead
    (target <= 5 us);
  - bulk ingest throughput from a pandas DataFrame and from numpy columns
    of 1M rows (target >= 1M signals/s), beside the raw C ingest of the
    same already-built arrays.
Figures only; nothing here passes or fails.

    CXENGINE_LIB=build/libcxengine.so PYTHONPATH=bindings/python \\
        /usr/bin/python3 bench/bench_python.py [--rows 1000000] \\
        [--items 20000]
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("CXENGINE_LIB",
                      os.path.join(ROOT, "build", "libcxengine.so"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import numpy as np  # noqa: E402

import cxengine  # noqa: E402
from cxengine import _lib as L  # noqa: E402
from cxengine import _columns as C  # noqa: E402

try:
    import pandas as pd
except ImportError:
    pd = None


def shop(rows, customers, items, seed=1):
    rng = np.random.default_rng(seed)
    cu = rng.integers(0, customers, rows)
    it = np.minimum(rng.zipf(1.3, rows) - 1, items - 1)
    return {
        "user": np.char.add("c", np.char.zfill(cu.astype("U7"), 7)),
        "item": np.char.add("i", np.char.zfill(it.astype("U6"), 6)),
        "type": rng.choice(np.array(["view", "click", "add_to_cart",
                                     "purchase"]), rows,
                           p=[0.7, 0.15, 0.1, 0.05]),
        "value": np.ones(rows, np.float32),
        "timestamp": 1_700_000_000 + np.sort(rng.integers(0, 90 * 86400,
                                                          rows)),
    }


BLOCKS, BLOCK_CALLS = 201, 200  # recommend: rounds, calls per block


def per_call_us(fn, n, repeats=5):
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(best), min(best)


def bench_recommend(k=20, items=20_000):
    cols = shop(300_000, 20_000, items)
    e = cxengine.Engine(factors=64, iterations=3, threads=0)
    e.ingest(users=cols["user"], items=cols["item"], types=cols["type"],
             timestamps=cols["timestamp"])
    e.train()
    users = [str(u) for u in np.unique(cols["user"])[:2000]]
    for u in users:  # fold-ins and id cache warm, as in steady serving
        e.recommend(u, k)
    h = e._h
    s = e._scratch.get(k)
    enc = [u.encode() for u in users]

    def raw(u):
        L.cx_recommend(h, u, k, None, s.items, s.scores, s.reasons, s.n)

    def py(u):
        e.recommend(u, k)

    def py_rules(u):
        e.recommend(u, k, category=None, in_stock_only=False,
                    deny=["i000001"])

    def block(fn, args):
        t = time.perf_counter()
        for a in args:
            fn(a)
        return (time.perf_counter() - t) / len(args) * 1e6
    # Interleave short blocks of raw and binding calls so that machine
    # noise hits both alike; each round runs both on the same customers
    # in the same order (which customers moves from round to round), and
    # the order of raw and binding alternates.  The overhead is the
    # median of the per-round differences (and the difference of the
    # best blocks).
    ffi, _ = per_call_us(lambda: L.cx_version_number(), 100_000)
    raws, pys, rules = [], [], []
    for r in range(BLOCKS):
        o = r * BLOCK_CALLS % len(users)
        sel = [(o + i) % len(users) for i in range(BLOCK_CALLS)]
        u_raw, u_py = [enc[i] for i in sel], [users[i] for i in sel]
        if r % 2:
            pys.append(block(py, u_py))
            raws.append(block(raw, u_raw))
        else:
            raws.append(block(raw, u_raw))
            pys.append(block(py, u_py))
        rules.append(block(py_rules, u_py))
    raw_med, py_med = statistics.median(raws), statistics.median(pys)
    raw_min, py_min = min(raws), min(pys)
    rules_med = statistics.median(rules)
    diffs = [p - r for p, r in zip(pys, raws)]
    rdiffs = [p - r for p, r in zip(rules, raws)]
    e.close()
    return {"k": k, "items": items, "factors": 64,
            "ffi_floor_us": ffi, "raw_ctypes_us": raw_med,
            "engine_recommend_us": py_med,
            "overhead_us": statistics.median(diffs),
            "overhead_min_us": py_min - raw_min,
            "engine_recommend_with_rules_us": rules_med,
            "rules_overhead_us": statistics.median(rdiffs),
            "target_overhead_us": 5.0}


def bench_ingest(rows):
    cols = shop(rows, 100_000, 50_000, seed=2)
    out = {"rows": rows, "target_signals_per_s": 1e6}

    def timed(feed, reps=3):
        best = None
        for _ in range(reps):
            with cxengine.Engine() as e:
                t = time.perf_counter()
                feed(e)
                dt = time.perf_counter() - t
                assert e.stats()["signals"] == rows
            best = dt if best is None else min(best, dt)
        return rows / best

    if pd is not None:
        df = pd.DataFrame(cols)
        out["dataframe_signals_per_s"] = timed(lambda e: e.ingest(df))
        dfc = df.astype({"user": "category", "item": "category",
                         "type": "category"})
        out["dataframe_categorical_signals_per_s"] = timed(
            lambda e: e.ingest(dfc))
    out["numpy_columns_signals_per_s"] = timed(
        lambda e: e.ingest(users=cols["user"], items=cols["item"],
                           types=cols["type"], values=cols["value"],
                           timestamps=cols["timestamp"]))
    # the C call alone, on arrays built before the clock starts
    with cxengine.Engine() as e0:
        up, n, k0 = C.strings(cols["user"], "u")
        ip, n, k1 = C.strings(cols["item"], "i")
        tp, k2 = C.types(cols["type"], n, e0.signal_type)
        vp, k3 = C.numbers(cols["value"], n, "v", None, np.float32)
        sp, k4 = C.numbers(cols["timestamp"], n, "t", None, np.int64)
    out["raw_c_ingest_signals_per_s"] = timed(
        lambda e: L.cx_ingest(e._h, n, up, ip, tp, vp, sp, None))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=20_000,
                    help="catalogue size of the recommend benchmark")
    args = ap.parse_args()
    print("libcxengine %s, Python %s, numpy %s, pandas %s"
          % (cxengine.library_version, sys.version.split()[0],
             np.__version__, pd.__version__ if pd else "-"))
    rec = bench_recommend(items=args.items)
    print("\nrecommend, top-%d of %d items, k = %d factors, 1 thread "
          "(median of %d interleaved rounds x %d calls)"
          % (rec["k"], rec["items"], rec["factors"], BLOCKS, BLOCK_CALLS))
    print("  %-44s %8.2f us" % ("bare ctypes call (cx_version_number)",
                                rec["ffi_floor_us"]))
    print("  %-44s %8.2f us" % ("raw ctypes cx_recommend", rec["raw_ctypes_us"]))
    print("  %-44s %8.2f us" % ("Engine.recommend", rec["engine_recommend_us"]))
    print("  %-44s %8.2f us   target <= %.0f us" % (
        "binding overhead (Engine - raw)", rec["overhead_us"],
        rec["target_overhead_us"]))
    print("  %-44s %8.2f us" % ("overhead, best blocks (min - min)",
                                rec["overhead_min_us"]))
    print("  %-44s %8.2f us" % ("overhead with rules (deny list, stock)",
                                rec["rules_overhead_us"]))
    ing = bench_ingest(args.rows)
    print("\ningest of %d rows (best of 3), signals/s   target >= 1,000,000"
          % ing["rows"])
    for key in ("dataframe_signals_per_s",
                "dataframe_categorical_signals_per_s",
                "numpy_columns_signals_per_s", "raw_c_ingest_signals_per_s"):
        if key in ing:
            print("  %-44s %12s" % (key.replace("_signals_per_s", ""),
                                    format(int(ing[key]), ",")))
    os.makedirs(os.path.join(ROOT, "build", "bench"), exist_ok=True)
    path = os.path.join(ROOT, "build", "bench", "python.json")
    with open(path, "w") as f:
        json.dump({"recommend": rec, "ingest": ing,
                   "library": cxengine.library_version}, f, indent=2)
    print("\nwrote", path)


if __name__ == "__main__":
    main()
