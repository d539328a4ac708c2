"""The data directory from Python: reopen, notebook access to the SQLite
schema and to the snapshot's .npy files without the library."""
import glob
import os
import sqlite3

import pytest

import cxengine
from conftest import TRAIN, fill


def test_reopen_same_answers(shop, tmp_path):
    d = str(tmp_path / "shop")
    with cxengine.Engine(d, sync="normal", **TRAIN) as e:
        fill(e, shop)
        e.train()
        customers = sorted({r["customer"] for r in shop["signals"]})[:200]
        before = {c: e.recommend(c, k=10) for c in customers}
        n = e.stats()["signals"]
    with cxengine.Engine(d) as e:
        assert e.stats()["signals"] == n
        assert e.get_option("sync") == "normal"
        assert e.get_option("factors") == TRAIN["factors"]
        after = {c: e.recommend(c, k=10) for c in customers}
    assert after == before


def test_busy_and_sync(tmp_path):
    d = str(tmp_path / "busy")
    with cxengine.Engine(d) as e:
        with pytest.raises(cxengine.Busy, match="another process"):
            cxengine.Engine(d)
        e.ingest([("u1", "i1", "purchase")])
        e.sync()
    cxengine.Engine(d).close()  # free again
    with cxengine.Engine() as m:
        m.sync()  # in memory: a no-op


def test_readonly_follows_the_writer(shop, tmp_path):
    d = str(tmp_path / "ro")
    with cxengine.Engine(d, sync="normal", refresh_interval=0, **TRAIN) as w:
        half = len(shop["signals"]) // 2
        fill(w, {**shop, "signals": shop["signals"][:half]})
        w.train()
        with cxengine.Engine(d, readonly=True) as r:
            assert r.stats()["generation"] == 1
            with pytest.raises(cxengine.ReadOnly, match="read-only"):
                r.ingest([("u1", "i1", "purchase")])
            with pytest.raises(cxengine.ReadOnly):
                r.train()
            w.ingest(shop["signals"][half:])
            w.train()
            r.refresh()
            assert r.stats()["signals"] == w.stats()["signals"]
            assert r.stats()["generation"] == 2
            customers = sorted({s["customer"] for s in shop["signals"]})[:50]
            for c in customers:
                assert r.recommend(c, k=5) == w.recommend(c, k=5)
        # verify=True checks every snapshot file again (CX_OPEN_VERIFY)
        with cxengine.Engine(d, readonly=True, verify=True) as r:
            assert r.stats()["generation"] == 2
            for c in customers:
                assert r.recommend(c, k=5) == w.recommend(c, k=5)


def test_signals_reader(shop, tmp_path):
    d = str(tmp_path / "sig")
    with cxengine.Engine(d, sync="normal", refresh_interval=0, **TRAIN) as w:
        fill(w, shop)
        w.train()
        with pytest.raises(cxengine.InvalidArgument, match="OPEN_SIGNALS"):
            cxengine.Engine(d, signals=True)
        with cxengine.Engine(d, readonly=True, signals=True) as r, \
                cxengine.Engine(d, readonly=True) as r2:
            n = w.stats()["signals"]
            item = shop["signals"][0]["item"]
            r.ingest([("py-new", item, "purchase"),
                      ("py-new", "py-item", "view")])
            assert r.recommend("py-new", k=3)[0][2] == "personal"
            with pytest.raises(cxengine.ReadOnly):
                r.train()
            with pytest.raises(cxengine.ReadOnly):
                r2.ingest([("py-other", item, "view")])
            w.refresh()
            r2.refresh()
            assert w.stats()["signals"] == r2.stats()["signals"] == n + 2
            assert w.recommend("py-new", k=5) == r.recommend("py-new", k=5)
            assert r2.recommend("py-new", k=5) == r.recommend("py-new", k=5)
            w.train()
            r.refresh()
            assert r.stats()["generation"] == 2
            # the new customer has a row of the trained factors
            assert "py-new" in r.user_ids
            assert r.stats()["model_customers"] == w.stats()["customers"]


def test_forget(shop, tmp_path):
    d = str(tmp_path / "forget")
    with cxengine.Engine(d, sync="normal", **TRAIN) as e:
        fill(e, shop)
        e.ingest([("secret-py-42", "only-theirs", "purchase")] * 20)
        e.train()
        assert any(r[0] == "only-theirs" for r in e.popular(k=20))
        assert e.forget(["secret-py-42", "nobody"]) == 1
        assert e.forget("secret-py-42") == 0
        assert not any(r[0] == "only-theirs" for r in e.popular(k=20))
        e.train()
    for path in glob.glob(os.path.join(d, "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                assert b"secret-py-42" not in f.read(), path


def test_notebook_reads_sqlite_and_npy(shop, tmp_path):
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    d = str(tmp_path / "nb")
    with cxengine.Engine(d, **TRAIN) as e:
        fill(e, shop)
        e.train()
        Y = e.factors("item", copy=True)
        item_ids = list(e.item_ids)
    con = sqlite3.connect(os.path.join(d, "cx.db"))
    try:
        sig = pd.read_sql("SELECT * FROM signals_v ORDER BY seq", con)
        cat = pd.read_sql("SELECT * FROM catalog", con)
        ids = pd.read_sql("SELECT id FROM items ORDER BY idx", con)["id"]
    finally:
        con.close()
    assert len(sig) == len(shop["signals"])
    first = shop["signals"][0]
    assert sig.loc[0, "customer"] == first["customer"]
    assert sig.loc[0, "item"] == first["item"]
    assert sig.loc[0, "type"] == first["type"]
    assert sig.loc[0, "ts"] == first["timestamp"]
    assert len(cat) == len(shop["items"])
    assert list(ids[:len(item_ids)]) == item_ids
    gen = sorted(glob.glob(os.path.join(d, "snapshots", "g*")))[-1]
    Ym = np.load(os.path.join(gen, "item_factors.npy"), mmap_mode="r")
    assert Ym.dtype == np.float32 and Ym.shape == Y.shape
    assert np.array_equal(np.asarray(Ym), Y)


def test_spark_round_trip(shop, tmp_path):
    """Export for Spark, write factors as Spark's JSON-lines part files
    (here the engine's own), import them: the same answers."""
    import csv
    import json
    with cxengine.Engine(**TRAIN) as a:
        fill(a, shop)
        a.train()
        a.export_signals(str(tmp_path / "signals.csv"))
        with open(tmp_path / "signals.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == len(shop["signals"])
        assert rows[0]["customer"] == shop["signals"][0]["customer"]
        assert int(rows[0]["customer_idx"]) >= 0
        for which, name in (("user", "userFactors"), ("item", "itemFactors")):
            d = tmp_path / name
            d.mkdir()
            F = a.factors(which, copy=True)
            with open(d / "part-00000-x-c000.json", "w") as f:
                for i, row in enumerate(F):
                    if which == "user" and not any(row):
                        continue
                    f.write(json.dumps({"id": i, "features":
                                        [float(x) for x in row]}) + "\n")
            (d / "_SUCCESS").write_text("")
        customers = sorted({r["customer"] for r in shop["signals"]})[:100]
        want = {c: a.recommend(c, k=10) for c in customers}
    with cxengine.Engine(threads=1, blend_popular=0, blend_repeat=0,
                         blend_cobought=0) as b:
        fill(b, shop)
        with pytest.raises(cxengine.NotFound):
            b.import_factors(str(tmp_path / "userFactors"),
                             str(tmp_path / "itemFactors"))
        b.import_factors(str(tmp_path / "userFactors"),
                         str(tmp_path / "itemFactors"), by_index=True)
        got = {c: b.recommend(c, k=10) for c in customers}
    assert [[r[0] for r in got[c]] for c in customers] == \
        [[r[0] for r in want[c]] for c in customers]
