"""Shared fixtures: the library, the CLI, a small synthetic shop."""
import csv
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)                       # bindings/python
ROOT = os.path.dirname(os.path.dirname(PKG))      # the repository
BUILD = os.path.join(ROOT, "build")
os.environ.setdefault("CXENGINE_LIB", os.path.join(BUILD, "libcxengine.so"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, PKG)

CLI = os.environ.get("CXENGINE_CLI", os.path.join(BUILD, "cxengine"))
# The plain ALS score (blend 1, 0, 0, 0): these tests compare the lists
# with the model's vectors; test_quality.py tests the blend.
TRAIN = dict(factors=16, iterations=8, threads=1, seed=7, blend_popular=0,
             blend_repeat=0, blend_cobought=0)
CLI_TRAIN = ["--factors", "16", "--iterations", "8", "--threads", "1",
             "--seed", "7", "--blend-popular", "0", "--blend-repeat", "0",
             "--blend-cobought", "0"]


def run_cli(*args):
    r = subprocess.run([CLI] + [str(a) for a in args], capture_output=True,
                       text=True)
    if r.returncode not in (0,):
        raise AssertionError("cxengine %s: %d\n%s%s" % (
            " ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
    return r.stdout


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    """A synthetic shop from `cxengine gen`: dir, item rows, signal rows
    (as lists of dicts, csv module only: works without pandas)."""
    d = tmp_path_factory.mktemp("shop")
    run_cli("gen", "--signals", "20000", "--seed", "3", d)
    with open(d / "items.csv", newline="") as f:
        items = list(csv.DictReader(f))
    with open(d / "signals.csv", newline="") as f:
        signals = list(csv.DictReader(f))
    for r in items:
        r["price"] = float(r["price"])
        r["in_stock"] = int(r["in_stock"])
        r["created_at"] = int(r["created_at"])
    for r in signals:
        r["value"] = float(r["value"])
        r["timestamp"] = int(r["timestamp"])
    return {"dir": d, "items": items, "signals": signals}


def fill(engine, shop):
    engine.upsert_items(shop["items"])
    engine.ingest(shop["signals"])
    return engine


@pytest.fixture(scope="module")
def trained(shop):
    import cxengine
    e = fill(cxengine.Engine(**TRAIN), shop)
    e.train()
    yield e
    e.close()


@pytest.fixture
def engine():
    import cxengine
    e = cxengine.Engine(**TRAIN)
    yield e
    e.close()
