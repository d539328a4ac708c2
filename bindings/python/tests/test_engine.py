"""Every public method of cxengine.Engine, with its error paths."""
import math
import os

import numpy as np
import pytest

import cxengine
from conftest import TRAIN, fill


# -- import, version, errors ------------------------------------------------

def test_version_and_errors():
    assert cxengine.library_version.startswith("0.1.")
    assert issubclass(cxengine.InvalidArgument, ValueError)
    assert issubclass(cxengine.OutOfRange, ValueError)
    assert issubclass(cxengine.FormatError, ValueError)
    assert issubclass(cxengine.NotFound, KeyError)
    assert issubclass(cxengine.FileError, OSError)
    assert issubclass(cxengine.OutOfMemory, MemoryError)
    assert issubclass(cxengine.ClosedError, cxengine.Error)


def test_open_bad_path(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(cxengine.FileError, match="not a directory"):
        cxengine.Engine(str(f))


# -- options ----------------------------------------------------------------

def test_options(engine):
    engine.set_options(alpha=3.5, solver="cholesky", fold_in="eager",
                       weights={"view": 0.5, "purchase": 20})
    assert engine.get_option("alpha") == 3.5
    assert engine.get_option("solver") == "cholesky"
    assert engine.get_option("fold_in") == "eager"
    assert engine.get_option("factors") == 16
    o = engine.options
    assert o["weights"]["view"] == 0.5 and o["weights"]["purchase"] == 20
    assert o["seed"] == 7


def test_option_errors(engine):
    with pytest.raises(cxengine.OutOfRange, match="factors") as ei:
        engine.set_option("factors", 0)
    assert ei.value.status == -8
    with pytest.raises(ValueError):
        engine.set_option("alpha", math.nan)
    with pytest.raises(cxengine.InvalidArgument):
        engine.set_option("factors", 2.5)
    with pytest.raises(cxengine.InvalidArgument, match="unknown option"):
        engine.set_option("nope", 1)
    with pytest.raises(cxengine.InvalidArgument, match="solver"):
        engine.set_option("solver", "qr")
    with pytest.raises(cxengine.InvalidArgument):
        engine.set_option("alpha", "abc")
    with pytest.raises(cxengine.OutOfRange):
        cxengine.Engine(iterations=0)


# -- signal types -----------------------------------------------------------

def test_signal_types(engine):
    assert [engine.signal_type(t) for t in cxengine.SIGNAL_TYPES] == \
        list(range(7))
    assert engine.signal_type_name(3) == "purchase"
    assert engine.signal_type_name(20) is None
    t = engine.define_signal_type("wishlist", 4)
    assert t >= 8 and engine.signal_type("wishlist") == t
    assert engine.define_signal_type("wishlist", 6) == t
    assert engine.get_option("weight:wishlist") == 6
    engine.ingest("ann", "sku", "wishlist")
    with pytest.raises(cxengine.InvalidArgument, match="unknown signal"):
        engine.signal_type("teleport")
    with pytest.raises(cxengine.InvalidArgument):
        engine.signal_type(1.5)
    with pytest.raises(cxengine.InvalidArgument):
        engine.define_signal_type("bad", math.nan)


# -- catalogue ----------------------------------------------------------------

def test_upsert_forms(engine):
    assert engine.upsert_items("a", category="tea", price=4.5,
                               created_at=100, tags=["x", "y"]) == 1
    assert engine.upsert_items([("b", "cups", 12.0, 0), {"item": "c"}]) == 2
    assert engine.upsert_items({"item": ["d", "e"], "price": [1.0, 2.0],
                                "category": ["x", "y"]}) == 2
    assert engine.upsert_items(ids=["f"], in_stock=[False]) == 1
    assert engine.item("a") == {"item": "a", "category": "tea",
                                "price": 4.5, "in_stock": True,
                                "created_at": 100}
    b = engine.item("b")
    assert b["category"] == "cups" and not b["in_stock"]
    assert engine.item("c")["category"] == ""
    # a column left out keeps the current value
    engine.upsert_items("a", price=5.0)
    assert engine.item("a")["category"] == "tea"
    assert engine.item("a")["price"] == 5.0
    assert not engine.item("f")["in_stock"]
    assert engine.stats()["items"] == 6
    assert engine.upsert_items([]) == 0


def test_upsert_errors(engine):
    engine.upsert_items("a", price=1.0)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(cxengine.InvalidArgument, match="price"):
            engine.upsert_items([("z1", "c", 1.0), ("z2", "c", bad)])
    assert engine.stats()["items"] == 1  # all or nothing
    with pytest.raises(cxengine.InvalidArgument):
        engine.upsert_items("")
    with pytest.raises(cxengine.InvalidArgument):
        engine.upsert_items("x" * 600)
    with pytest.raises(cxengine.InvalidArgument):
        engine.upsert_items([(5, "c")])
    with pytest.raises(cxengine.InvalidArgument, match="NUL"):
        engine.upsert_items("a\0b")
    with pytest.raises(cxengine.InvalidArgument):
        engine.upsert_items({"item": ["p", "q"], "price": [1.0]})


def test_remove_and_get(engine):
    engine.upsert_items(["a", "b"])
    engine.remove_item("a")
    with pytest.raises(cxengine.NotFound) as ei:
        engine.remove_item("nope")
    assert "nope" in str(ei.value) and isinstance(ei.value, KeyError)
    with pytest.raises(KeyError):
        engine.item("nope")
    with pytest.raises(cxengine.InvalidArgument):
        engine.item(None)


# -- signals ------------------------------------------------------------------

def test_ingest_forms(engine):
    assert engine.ingest("ann", "a", "view") == 1
    assert engine.ingest("ann", "b", "rating", 5, 1_700_000_000, "app") == 1
    assert engine.ingest([("bob", "a", "purchase"),
                          ("bob", "b", 1, 2.0, 1_700_000_001),
                          {"user": "cy", "item": "c", "type": "click",
                           "channel": "store"}]) == 3
    assert engine.ingest({"customer": ["d1", "d2"], "item": ["a", "b"],
                          "type": ["view", "view"]}) == 2
    assert engine.ingest(users=["e1"], items=["a"], types=[0],
                         values=[2.0]) == 1
    assert engine.ingest(users=np.array(["e2", "e3"]),
                         items=np.array(["a", "b"]),
                         types=np.array([0, 3]),
                         timestamps=np.array([1, 2])) == 2
    assert engine.ingest([]) == 0
    s = engine.stats()
    assert s["signals"] == 10 and s["customers"] == 8 and s["items"] == 3


def test_ingest_errors(engine):
    engine.ingest("ann", "a", "view")
    bad = [
        [("ann", "b", "view", math.nan)],
        [("ann", "b", "view", 1.0), ("ann", "c", "view", -1.0)],
        [("ann", "b", "rating", 7.0)],
        [("", "b", "view")],
        [("ann", "b", "view", 1.0, 1, "x" * 100)],
    ]
    for rows in bad:
        with pytest.raises(cxengine.InvalidArgument, match="row"):
            engine.ingest(rows)
    with pytest.raises(cxengine.InvalidArgument, match="unknown signal"):
        engine.ingest("ann", "b", "teleport")
    with pytest.raises(cxengine.InvalidArgument):
        engine.ingest([("ann", "b")])
    with pytest.raises(cxengine.InvalidArgument):
        engine.ingest([(1, "b", "view")])
    with pytest.raises(cxengine.InvalidArgument):
        engine.ingest("ann")
    with pytest.raises(cxengine.InvalidArgument):
        engine.ingest(users=["a", "b"], items=["x"], types=[0, 0])
    with pytest.raises(cxengine.InvalidArgument):
        engine.ingest(users=["a"], items=["x"], types=[0],
                      values=["many"])
    with pytest.raises(cxengine.InvalidArgument, match="row 1"):
        engine.ingest(users=np.array(["a", "b"]), items=np.array(["x", "y"]),
                      types=np.array([0, 0]),
                      values=np.array([1.0, np.nan]))
    assert engine.stats()["signals"] == 1  # nothing applied


# -- training -----------------------------------------------------------------

def test_train_errors_and_progress(engine, shop, capsys):
    with pytest.raises(cxengine.InvalidArgument, match="no signals"):
        engine.train()
    fill(engine, shop)
    seen = []
    engine.train(progress=lambda it, n, loss: seen.append((it, n, loss)))
    assert [s[0] for s in seen] == list(range(1, 9))
    assert all(s[1] == 8 for s in seen)
    assert seen[-1][2] < seen[0][2]
    assert engine.stats()["generation"] == 1
    # cancel: previous model stays
    with pytest.raises(cxengine.Canceled):
        engine.train(progress=lambda it, n, loss: it >= 2)
    assert engine.stats()["generation"] == 1

    def boom(it, n, loss):
        raise RuntimeError("from the callback")
    with pytest.raises(RuntimeError, match="from the callback"):
        engine.train(progress=boom)
    engine.train(progress=True, iterations=2)
    err = capsys.readouterr().err
    assert "2/2" in err or "ALS" in err
    assert engine.stats()["generation"] == 2


def test_train_background(engine, shop):
    with pytest.raises(cxengine.InvalidArgument):
        engine.train_wait()
    fill(engine, shop)
    its = []
    engine.train_start(progress=lambda it, n, loss: its.append(it))
    with pytest.raises(cxengine.Busy):
        engine.train_start()
    assert engine.recommend("c0000001", 3)  # serving meanwhile
    engine.train_wait()
    assert its == list(range(1, 9))
    assert engine.stats()["generation"] == 1
    # close while a background training runs: cancelled, no crash
    engine.train_start(progress=lambda it, n, loss: None)
    engine.close()


# -- serving ------------------------------------------------------------------

def test_recommend(trained, shop):
    r = trained.recommend("c0000001", 10)
    assert len(r) == 10
    items, scores, reasons = zip(*r)
    assert all(isinstance(i, str) for i in items)
    assert list(scores) == sorted(scores, reverse=True)
    assert set(reasons) == {"personal"}
    seen = {s["item"] for s in shop["signals"] if s["customer"] == "c0000001"}
    assert not seen & set(items)
    # exact scan gives the same top-10 here
    assert [x[0] for x in trained.recommend("c0000001", 10, exact=True)] \
        == list(items)
    # unknown customer: popular, never an error
    r = trained.recommend("someone-new", 5)
    assert [x[2] for x in r] == ["popular"] * 5
    assert r == trained.popular(5)


def test_recommend_rules(trained, shop):
    cat = shop["items"][0]["category"]
    r = trained.recommend("c0000001", 5, category=cat)
    assert r and all(trained.item(i)["category"] == cat for i, _, _ in r)
    allow = [it["item"] for it in shop["items"][:40]]
    r = trained.recommend("c0000001", 50, allow=allow)
    assert r and {i for i, _, _ in r} <= set(allow)
    top = trained.recommend("c0000001", 3)
    r = trained.recommend("c0000001", 3, deny=[top[0][0]])
    assert top[0][0] not in [i for i, _, _ in r]
    seen = {s["item"] for s in shop["signals"] if s["customer"] == "c0000001"}
    r = trained.recommend("c0000001", 200, exclude=(), in_stock_only=False)
    assert seen & {i for i, _, _ in r}
    r = trained.recommend("c0000001", 200, exclude=["purchase"])
    assert len(r) > 0
    with pytest.raises(cxengine.NotFound, match="category"):
        trained.recommend("c0000001", 5, category="no-such-cat")


def test_recommend_errors(trained):
    for k in (0, -1, 1 << 21, 2.5, "3"):
        with pytest.raises(cxengine.InvalidArgument):
            trained.recommend("c0000001", k)
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend(42, 3)
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend("", 3)
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend("c0000001", 3, exclude=["teleport"])
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend("c0000001", 3, exclude=[40])
    assert trained.recommend("c0000001", np.int64(3))


def test_recommend_batch(trained):
    users = ["c0000001", "c0000002", "nobody", "c0000003"]
    batch = trained.recommend_batch(users, 5)
    assert len(batch) == 4
    for u, got in zip(users, batch):
        want = trained.recommend(u, 5)
        assert [x[0] for x in got] == [x[0] for x in want]
        assert [x[2] for x in got] == [x[2] for x in want]
        np.testing.assert_allclose([x[1] for x in got],
                                   [x[1] for x in want], rtol=1e-4)
    assert trained.recommend_batch([], 5) == []
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend_batch(users, 0)


def test_recommend_session(trained, shop):
    r = trained.recommend_session([], 4)
    assert [x[2] for x in r] == ["popular"] * 4
    sig = [(shop["items"][3]["item"], "view"),
           (shop["items"][5]["item"], "purchase", 2),
           (shop["items"][8]["item"], "add_to_cart"),
           ("unknown-item", "view")]
    r = trained.recommend_session(sig, 5)
    assert [x[2] for x in r] == ["personal"] * 5
    assert not {s[0] for s in sig} & {x[0] for x in r}
    # equals a stored customer with exactly these signals
    trained.ingest([("session-twin", s[0], s[1]) + tuple(s[2:])
                    for s in sig[:3]])
    twin = trained.recommend("session-twin", 5)
    assert [x[0] for x in r] == [x[0] for x in twin]
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend_session([("a",)], 3)
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend_session([("a", "teleport")], 3)
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend_session([(shop["items"][3]["item"], "view",
                                    math.nan)], 3)


def test_similar_and_lists(trained, shop, engine):
    item = shop["signals"][0]["item"]
    r = trained.similar_items(item, 5)
    assert len(r) == 5 and item not in [x[0] for x in r]
    assert {x[2] for x in r} <= {"similar", "category"}
    with pytest.raises(cxengine.NotFound):
        trained.similar_items("no-such-item", 5)
    engine.ingest("ann", "a", "view")
    with pytest.raises(cxengine.NotTrained):
        engine.similar_items("a", 3)
    t = trained.trending(5)
    assert len(t) == 5 and {x[2] for x in t} == {"trending"}
    p = trained.popular(5)
    assert {x[2] for x in p} == {"popular"}
    n = trained.new_arrivals(5)
    assert {x[2] for x in n} == {"new"}
    ages = [x[1] for x in n]
    assert ages == sorted(ages)
    cat = shop["items"][0]["category"]
    assert all(trained.item(i)["category"] == cat
               for i, _, _ in trained.trending(5, category=cat))
    # lists work before training
    assert engine.trending(3)[0][0] == "a"
    assert engine.popular(3)[0][0] == "a"


# -- vectors and factors --------------------------------------------------------

def test_vectors(trained, shop, engine):
    v = trained.customer_vector("c0000001")
    assert v.dtype == np.float32 and v.shape == (16,)
    ids = trained.user_ids
    row = ids.index("c0000001")
    np.testing.assert_array_equal(v, trained.user_factors[row])
    it = trained.item_vector(shop["items"][0]["item"])
    assert it.shape == (16,)
    with pytest.raises(cxengine.NotFound):
        trained.customer_vector("nobody")
    with pytest.raises(cxengine.NotFound):
        trained.item_vector("nothing")
    engine.ingest("ann", "a", "view")
    with pytest.raises(cxengine.NotTrained):
        engine.customer_vector("ann")
    with pytest.raises(cxengine.NotTrained):
        engine.user_factors


def test_factors_match_export(trained, tmp_path):
    U, V = trained.user_factors, trained.item_factors
    s = trained.stats()
    assert U.shape == (s["model_customers"], 16) and U.dtype == np.float32
    assert V.shape == (s["model_items"], 16) and V.dtype == np.float32
    assert not U.flags.writeable and U.flags.c_contiguous
    trained.export_npy(tmp_path / "npy")
    np.testing.assert_array_equal(
        U, np.load(tmp_path / "npy" / "customer_factors.npy"))
    np.testing.assert_array_equal(
        V, np.load(tmp_path / "npy" / "item_factors.npy"))
    with open(tmp_path / "npy" / "customer_ids.txt") as f:
        assert f.read().split("\n")[:len(U)] == trained.user_ids
    with open(tmp_path / "npy" / "item_ids.txt") as f:
        assert f.read().split("\n")[:len(V)] == trained.item_ids
    c = trained.factors("item", copy=True)
    assert c.flags.writeable and np.array_equal(c, V)
    assert c.ctypes.data != V.ctypes.data
    with pytest.raises(cxengine.InvalidArgument):
        trained.factors("both")


def test_factor_view_keeps_engine_alive(shop):
    e = fill(cxengine.Engine(**TRAIN), shop)
    e.train()
    V = e.item_factors
    want = V.copy()
    del e  # the view holds the engine: no use after free
    np.testing.assert_array_equal(V, want)


# -- stats, files, evaluation --------------------------------------------------

def test_stats(trained, shop):
    s = trained.stats()
    assert set(s) == set(cxengine.engine.STATS)
    assert s["signals"] >= len(shop["signals"])
    assert s["items"] == len(shop["items"])
    assert s["generation"] == 1 and s["factors"] == 16
    assert "customers" in repr(trained)


def test_save_load(trained, tmp_path):
    p = str(tmp_path / "e.cxe")
    trained.save(p)
    with cxengine.Engine.load(p) as e2:
        assert e2.stats()["signals"] == trained.stats()["signals"]
        assert e2.recommend("c0000002", 5) == trained.recommend("c0000002",
                                                                5)
        np.testing.assert_array_equal(e2.item_factors,
                                      trained.item_factors)
    with open(p, "rb") as f:
        data = f.read()
    with open(p + ".cut", "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(cxengine.CorruptFile):
        cxengine.Engine.load(p + ".cut")
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    with open(p + ".bad", "wb") as f:
        f.write(bytes(bad))
    with pytest.raises(cxengine.CorruptFile):
        cxengine.Engine.load(p + ".bad")
    with pytest.raises(cxengine.FileError) as ei:
        cxengine.Engine.load(tmp_path / "missing.cxe")
    assert isinstance(ei.value, OSError) and "missing.cxe" in str(ei.value)
    with pytest.raises(OSError):
        trained.save(tmp_path / "no" / "such" / "dir" / "e.cxe")
    with pytest.raises(cxengine.OutOfRange):
        cxengine.Engine.load(p, factors=-3)


def test_evaluate(trained):
    r = trained.evaluate(k=10)
    assert r["k"] == 10
    assert set(r["model"]) == set(cxengine.METRICS)
    assert r["model"]["ndcg"] > r["baseline"]["ndcg"]
    assert r["model"]["users"] > 0
    assert trained.stats()["generation"] == 1  # model unchanged
    r5 = trained.evaluate(k=5, test_fraction=0.3, relevant=["purchase"])
    assert 0 <= r5["model"]["precision"] <= 1
    for bad in (dict(k=0), dict(test_fraction=math.nan),
                dict(test_fraction=1.5)):
        with pytest.raises(ValueError):
            trained.evaluate(**bad)


# -- closed engines -------------------------------------------------------------

def test_closed_engine(tmp_path):
    e = cxengine.Engine()
    with e:
        e.ingest("a", "b", "view")
    assert e.closed
    e.close()  # twice is fine
    assert "closed" in repr(e)
    calls = [
        lambda: e.ingest("a", "b", "view"), lambda: e.upsert_items("x"),
        lambda: e.train(), lambda: e.train_start(), lambda: e.train_wait(),
        lambda: e.recommend("a"), lambda: e.recommend_batch(["a"]),
        lambda: e.recommend_session([]), lambda: e.similar_items("b"),
        lambda: e.trending(), lambda: e.popular(), lambda: e.new_arrivals(),
        lambda: e.customer_vector("a"), lambda: e.item_vector("b"),
        lambda: e.user_factors, lambda: e.item_factors, lambda: e.user_ids,
        lambda: e.stats(), lambda: e.save(tmp_path / "x"),
        lambda: e.export_npy(tmp_path), lambda: e.evaluate(),
        lambda: e.set_option("alpha", 1), lambda: e.get_option("alpha"),
        lambda: e.options, lambda: e.define_signal_type("w", 1),
        lambda: e.signal_type("wish"), lambda: e.signal_type_name(0),
        lambda: e.item("b"), lambda: e.remove_item("b"),
        lambda: e.__enter__(),
    ]
    for c in calls:
        with pytest.raises(cxengine.ClosedError, match="closed"):
            c()
