"""The blend, bootstrap intervals and tune()."""
import math

import pytest

import cxengine
from conftest import fill, TRAIN


def test_evaluate_intervals(trained):
    r = trained.evaluate(split="events", bootstrap=50)
    lo, hi = r["ci"]["model"]["ndcg"]
    assert lo <= r["model"]["ndcg"] <= hi
    lo, hi = r["ci"]["diff"]["ndcg"]
    assert lo <= r["model"]["ndcg"] - r["baseline"]["ndcg"] <= hi
    u = trained.evaluate(split="events", untuned=True)
    assert u["model"]["users"] == r["model"]["users"]
    with pytest.raises(ValueError):
        trained.evaluate(split="days")
    with pytest.raises(ValueError):
        trained.evaluate(bootstrap=-1)


def test_blend_options(engine):
    assert engine.get_option("blend_als") == 1
    engine.set_option("blend_repeat", 2.5)
    assert engine.get_option("blend_repeat") == 2.5
    with pytest.raises(cxengine.Error):
        engine.set_option("consumable", 1.5)


def test_tune(shop):
    e = fill(cxengine.Engine(**TRAIN), shop)
    with e:
        trials = e.tune(seconds=0, trials=10, seed=2)
        assert len(trials) == 10
        best = [t for t in trials if t["best"]]
        assert len(best) == 1
        assert all(t["ndcg"] <= best[0]["ndcg"] for t in trials)
        assert e.stats()["generation"] == 1
        assert e.get_option("factors") == best[0]["factors"]
        assert math.isclose(e.get_option("blend_popular"),
                            best[0]["blend_popular"], rel_tol=1e-6)
        recs = e.recommend(shop["signals"][0]["customer"], 5)
        assert all(r[2] in cxengine.REASONS for r in recs)
        # apply=False leaves the engine alone
        again = e.tune(seconds=0, trials=3, apply=False, params=["blend"])
        assert len(again) == 3 and e.stats()["generation"] == 1
        with pytest.raises(ValueError):
            e.tune(seconds=0, trials=0)
        with pytest.raises(ValueError):
            e.tune(params=["colour"])
