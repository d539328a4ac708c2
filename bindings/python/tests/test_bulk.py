"""Bulk ingest from numpy / pandas equals row-by-row ingest."""
import numpy as np
import pandas as pd
import pytest

import cxengine
from conftest import TRAIN

USERS = ["c0000001", "c0000005", "c0000077", "newbie"]


def summary(e):
    e.train()
    s = e.stats()
    s.pop("memory")
    return s, [e.recommend(u, 10) for u in USERS], e.item_factors.copy()


@pytest.fixture(scope="module")
def reference(shop):
    """One ingest call per row, one upsert call per item."""
    with cxengine.Engine(**TRAIN) as e:
        for it in shop["items"]:
            e.upsert_items(it["item"], it["category"], it["price"],
                           it["in_stock"], it["created_at"], it["tags"])
        for s in shop["signals"]:
            e.ingest(s["customer"], s["item"], s["type"], s["value"],
                     s["timestamp"], s["channel"])
        return summary(e)


def check(got, want):
    assert got[0] == want[0]
    assert got[1] == want[1]
    np.testing.assert_array_equal(got[2], want[2])


def test_pandas_dataframe(shop, reference):
    items = pd.read_csv(shop["dir"] / "items.csv")   # empty tags -> NaN
    signals = pd.read_csv(shop["dir"] / "signals.csv")
    with cxengine.Engine(**TRAIN) as e:
        assert e.upsert_items(items) == len(items)
        assert e.ingest(signals) == len(signals)
        check(summary(e), reference)


def test_pandas_categorical_and_datetime(shop, reference):
    items = pd.read_csv(shop["dir"] / "items.csv", keep_default_na=False)
    signals = pd.read_csv(shop["dir"] / "signals.csv")
    signals = signals.rename(columns={"customer": "user"})
    signals["item"] = signals["item"].astype("category")
    signals["type"] = signals["type"].astype("category")
    signals["timestamp"] = pd.to_datetime(signals["timestamp"], unit="s")
    with cxengine.Engine(**TRAIN) as e:
        e.upsert_items(items)
        e.ingest(signals)
        check(summary(e), reference)


def test_numpy_columns(shop, reference):
    sig = shop["signals"]
    items = shop["items"]
    with cxengine.Engine(**TRAIN) as e:
        e.upsert_items(
            ids=np.array([i["item"] for i in items]),
            category=np.array([i["category"] for i in items]),
            price=np.array([i["price"] for i in items]),
            in_stock=np.array([i["in_stock"] for i in items]),
            created_at=np.array([i["created_at"] for i in items]),
            tags=np.array([i["tags"] for i in items]))
        types = np.array([s["type"] for s in sig])
        # numbers and names for types give the same engine
        types = np.array([cxengine.SIGNAL_TYPES.index(t) for t in types],
                         dtype=np.int64)
        e.ingest(users=np.array([s["customer"] for s in sig]),
                 items=np.array([s["item"] for s in sig], dtype=object),
                 types=types,
                 values=np.array([s["value"] for s in sig]),
                 timestamps=np.array([s["timestamp"] for s in sig]),
                 channels=np.array([s["channel"] for s in sig]))
        check(summary(e), reference)


def test_list_rows_and_columns(shop, reference):
    with cxengine.Engine(**TRAIN) as e:
        e.upsert_items([(i["item"], i["category"], i["price"],
                         i["in_stock"], i["created_at"], i["tags"])
                        for i in shop["items"]])
        e.ingest([(s["customer"], s["item"], s["type"], s["value"],
                   s["timestamp"], s["channel"]) for s in shop["signals"]])
        check(summary(e), reference)


def test_non_ascii_ids(engine):
    ids = np.array(["café", "naïve", "日本"])
    engine.upsert_items(ids=ids)
    engine.ingest(users=np.array(["zoë", "zoë", "björn"]), items=ids,
                  types=np.array(["view", "purchase", "view"]))
    assert {i for i, _, _ in engine.popular(3)} == set(ids)
    engine.ingest(pd.DataFrame({"user": ["zoë"], "item": ["日本"],
                                "type": ["click"]}))
    assert engine.stats()["signals"] == 4


def test_bulk_errors(engine):
    df = pd.DataFrame({"user": ["a", None], "item": ["x", "y"],
                       "type": ["view", "view"]})
    with pytest.raises(cxengine.InvalidArgument, match="row 1"):
        engine.ingest(df)
    df = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"],
                       "type": ["view", "warp"]})
    with pytest.raises(cxengine.InvalidArgument, match="warp"):
        engine.ingest(df)
    with pytest.raises(cxengine.InvalidArgument, match="user"):
        engine.ingest(pd.DataFrame({"item": ["x"], "type": ["view"]}))
    with pytest.raises(cxengine.InvalidArgument):
        engine.ingest(users=np.array([1.5]), items=np.array(["x"]),
                      types=np.array([0]))
    assert engine.stats()["signals"] == 0
