"""Process-level checks: memory over many engines, life without numpy,
the library loader."""
import os
import subprocess
import sys

import cxengine
from conftest import PKG


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_thousand_engines_do_not_leak():
    def cycle(n):
        for i in range(n):
            with cxengine.Engine(factors=4) as e:
                e.upsert_items(["a", "b", "c"])
                e.ingest([("u%d" % i, "a", "view"), ("u", "b", "purchase")])
                e.recommend("u", 2)
    cycle(100)  # warm up allocators and caches
    before = rss_bytes()
    cycle(1000)
    grown = rss_bytes() - before
    assert grown < 8 << 20, "RSS grew by %d bytes" % grown


SCRIPT = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "pandas", "tqdm"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import cxengine
assert "numpy" not in sys.modules
e = cxengine.Engine(factors=4, iterations=3, threads=1)
e.upsert_items([("a", "x", 1.0), ("b", "x", 2.0), ("c", "y", 3.0)])
e.ingest([("u1", "a", "view"), ("u1", "b", "purchase"), ("u2", "b", "view"),
          ("u2", "c", "click", 2.0), ("u3", "a", "view")])
e.ingest({"user": ["u3", "u4"], "item": ["c", "a"], "type": [0, "view"]})
e.train(progress=True)
r = e.recommend("u1", 2, exclude=())
assert r and isinstance(r[0][0], str), r
v = e.customer_vector("u1")
assert isinstance(v, list) and len(v) == 4
U = e.user_factors
assert isinstance(U, list) and len(U) == 4 and len(U[0]) == 4
assert e.recommend_session([("a", "view")], 2)
try:
    e.ingest("u1", "a", "view", float("nan"))
except cxengine.InvalidArgument as x:
    assert "row 0" in str(x)
else:
    raise AssertionError("NaN accepted")
e.close()
print("ok without numpy")
"""


def test_works_without_numpy_and_pandas():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=PKG))
    assert r.returncode == 0, r.stderr
    assert "ok without numpy" in r.stdout
    assert "3/3" in r.stderr  # the plain progress fallback


def test_loader_lists_every_place():
    env = dict(os.environ, PYTHONPATH=PKG, CXENGINE_LIB="/nonexistent/lib.so")
    r = subprocess.run([sys.executable, "-c", "import cxengine"],
                       capture_output=True, text=True, env=env)
    if "system" in r.stderr and r.returncode != 0:
        assert "CXENGINE_LIB: /nonexistent/lib.so" in r.stderr
        assert "package directory" in r.stderr
        assert "find_library" in r.stderr
    else:  # an installed libcxengine was found on the system: fine
        assert r.returncode == 0


def test_version_mismatch_refused(tmp_path):
    # a fake library whose cx_version_number says 2.0.0
    src = tmp_path / "fake.c"
    src.write_text('const char *cx_version(void){return "2.0.0";}\n'
                   'int cx_version_number(void){return 20000;}\n')
    so = tmp_path / "libfake.so"
    if subprocess.run(["cc", "-shared", "-fPIC", "-o", so, src]).returncode:
        return  # no compiler: nothing to check
    env = dict(os.environ, PYTHONPATH=PKG, CXENGINE_LIB=str(so))
    r = subprocess.run([sys.executable, "-c", "import cxengine"],
                       capture_output=True, text=True, env=env)
    assert r.returncode != 0
    assert "version 2.0.0" in r.stderr and "0.1" in r.stderr, r.stderr
