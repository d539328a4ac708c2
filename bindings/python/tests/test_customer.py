"""Explanations and diversity from Python (the C side: test_explain.c)."""
import math

import pytest

import cxengine


def test_explain(trained, shop):
    top = trained.recommend("c0000002", 3)
    mine = {s["item"] for s in shop["signals"] if s["customer"] == "c0000002"}
    for item, score, _ in top:
        ex = trained.explain("c0000002", item, n=1000)
        assert ex["because"], "a trained customer has positive items"
        assert {i for i, _ in ex["because"]} <= mine
        total = sum(c for _, c in ex["because"])
        assert math.isclose(total, ex["score"], rel_tol=1e-4, abs_tol=1e-5)
        contribs = [c for _, c in ex["because"]]
        assert contribs == sorted(contribs, reverse=True)
        # the trained (few-step CG) vector approximates the exact score
        assert abs(ex["score"] - score) <= 0.05 * max(0.1, abs(score))
    assert len(trained.explain("c0000002", top[0][0], n=2)["because"]) == 2
    with pytest.raises(cxengine.NotFound):
        trained.explain("nobody", top[0][0])
    with pytest.raises(cxengine.NotFound):
        trained.explain("c0000002", "no-such-item")
    with pytest.raises(cxengine.InvalidArgument):
        trained.explain("c0000002", top[0][0], n=-1)


def test_category_cap_and_mmr(trained):
    cat = lambda i: trained.item(i)["category"]
    for u in ("c0000001", "c0000005", "c0000009"):
        plain = trained.recommend(u, 10)
        capped = trained.recommend(u, 10, max_per_category=2)
        assert len(capped) == 10
        counts = {}
        for i, _, _ in capped:
            counts[cat(i)] = counts.get(cat(i), 0) + 1
        assert max(counts.values()) <= 2
        assert capped[0][0] == plain[0][0]
        mmr = trained.recommend(u, 10, diversity=0.5)
        assert mmr[0][0] == plain[0][0]
        assert trained.recommend(u, 10, diversity=0.0) == plain
    pop = trained.popular(10, max_per_category=1)
    assert len({cat(i) for i, _, _ in pop}) == len(pop)
    batch = trained.recommend_batch(["c0000001", "c0000005"], 10,
                                    max_per_category=2)
    assert [x[0] for x in batch[0]] == \
        [x[0] for x in trained.recommend("c0000001", 10, max_per_category=2)]
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend("c0000001", 5, diversity=-1)
    with pytest.raises(cxengine.InvalidArgument):
        trained.recommend("c0000001", 5, max_per_category=-2)


def _ref_variant(experiment, user, shares):
    """The documented assignment, written again in Python: FNV-1a 64 over
    experiment || 0 || user, murmur3 fmix64, u = (h >> 11) / 2**53."""
    m = (1 << 64) - 1
    h = 14695981039346656037
    for b in experiment.encode() + b"\0" + user.encode():
        h = ((h ^ b) * 1099511628211) & m
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & m
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & m
    h ^= h >> 33
    u = (h >> 11) * 2.0 ** -53
    total, run = sum(w for _, w in shares), 0.0
    for name, w in shares:
        run += w
        if run / total > u:
            return name
    return shares[-1][0]


def test_experiments(engine):
    shares = [("control", 50), ("treat-a", 30), ("treat-b", 20)]
    engine.define_experiment("checkout", shares)
    users = ["u%d" % j for j in range(3000)] + ["alice", "\u00e9-\u00fc"]
    got = [engine.variant("checkout", u) for u in users]
    assert got == [_ref_variant("checkout", u, shares) for u in users]
    # fixed points shared with the C test's golden table
    assert engine.variant("checkout", "alice", False) == "treat-a"
    assert engine.variant("checkout", "bob", False) == "treat-b"
    assert engine.variant("checkout", "gina", False) == "control"
    assert sum(engine.exposures("checkout", v) for v, _ in shares) == \
        len(users)
    engine.set_override("checkout", "treat-a", "k", 24)
    assert engine.override("checkout", "treat-a", "k") == 24
    assert engine.override("checkout", "control", "k", default=10) == 10
    with pytest.raises(cxengine.NotFound):
        engine.override("checkout", "control", "k")
    with pytest.raises(cxengine.NotFound):
        engine.variant("no-such-experiment", "alice")
    with pytest.raises(cxengine.InvalidArgument):
        engine.define_experiment("bad", [("a", 1), ("a", 2)])
    with pytest.raises(cxengine.InvalidArgument):
        engine.define_experiment("bad", {"a": -1})


def test_profile_stages(engine):
    t0 = 1_700_000_000
    day = 86400

    def add(t, typ, item="i1"):
        engine.ingest([("ann", item, typ, 1.0, t0 + t * day)])

    assert engine.profile("ann")["stage"] == "new"
    add(0, "view")
    assert engine.profile("ann")["stage"] == "browsing"
    add(1, "add_to_cart")
    assert engine.profile("ann")["stage"] == "considering"
    add(2, "purchase")
    assert engine.profile("ann")["stage"] == "purchased"
    add(3, "purchase", "i2")
    add(4, "purchase", "i3")
    p = engine.profile("ann")
    assert p["stage"] == "loyal"
    assert p["by_type"] == {"view": 1, "add_to_cart": 1, "purchase": 3}
    assert p["first_seen"] == t0 and p["last_seen"] == t0 + 4 * day
    assert engine.profile("ann", now=t0 + 100 * day)["stage"] == "lapsed"
    assert p["by_channel"] == {"web": 5}


def test_layout(trained, shop):
    page = trained.layout("c0000003")
    assert 0 < len(page) <= 8
    seen = [i for row in page for i, _, _ in row["items"]]
    assert len(seen) == len(set(seen)), "an item twice on the page"
    fits = [row["fit"] for row in page]
    assert fits == sorted(fits, reverse=True)
    reason_of = {"for_you": "personal", "because": "similar",
                 "continue": "continue", "bought_together": "bought_together",
                 "trending": "trending", "new": "new",
                 "category": "category"}
    for row in page:
        assert 4 <= len(row["items"]) <= 12
        assert row["title"]
        assert {r for _, _, r in row["items"]} == {reason_of[row["kind"]]}
    # a new visitor gets a page, of kinds that need no history
    guest = trained.layout("someone-new")
    assert guest and {r["kind"] for r in guest} <= {"trending", "new",
                                                    "category"}
    # the kinds mask and the rules reach every row
    only = trained.layout("c0000003", kinds=["trending"],
                          per_kind={"trending": 2})
    assert only and {r["kind"] for r in only} == {"trending"}
    banned = seen[:5]
    again = trained.layout("c0000003", deny=banned)
    assert not set(banned) & {i for r in again for i, _, _ in r["items"]}
    with pytest.raises(cxengine.InvalidArgument):
        trained.layout("c0000003", kinds=["nope"])
    with pytest.raises(cxengine.InvalidArgument):
        trained.layout("c0000003", max_rows=0)
    with pytest.raises(cxengine.InvalidArgument):
        trained.layout("c0000003", colour="red")


def test_layout_json(trained):
    import json
    import struct

    def f32(x):
        return struct.unpack("f", struct.pack("f", x))[0]

    for user, kw in (("c0000003", {}), ("c0000007", {"items_per_row": 5}),
                     ("someone-new", {}), ("c0000003", {"deny": ["nope"]})):
        page = trained.layout(user, **kw)
        text = trained.layout_json(user, **kw)
        assert isinstance(text, bytes)
        doc = json.loads(text)
        assert doc["user"] == user
        assert len(doc["rows"]) == len(page)
        for got, row in zip(doc["rows"], page):
            assert (got["title"], got["kind"], got["seed"]) == \
                (row["title"], row["kind"], row["seed"])
            assert got["fit"] == row["fit"]
            assert [(i["item"], f32(i["score"]), i["reason"])
                    for i in got["items"]] == row["items"]
    # the same errors as layout()
    with pytest.raises(cxengine.InvalidArgument):
        trained.layout_json("c0000003", kinds=["nope"])
    with pytest.raises(cxengine.InvalidArgument):
        trained.layout_json("")


def test_evaluate_replay(trained):
    trained.define_experiment("replay", {"a": 1, "b": 1})
    whole = trained.evaluate(k=10)
    a = trained.evaluate(k=10, experiment="replay", variant="a")
    b = trained.evaluate(k=10, experiment="replay", variant="b",
                         diversity=0.5)
    assert a["model"]["users"] + b["model"]["users"] == \
        whole["model"]["users"]
    capped = trained.evaluate(k=10, max_per_category=1)
    assert capped["model"]["ndcg"] != whole["model"]["ndcg"]
    with pytest.raises(cxengine.NotFound):
        trained.evaluate(experiment="replay", variant="zzz")
    with pytest.raises(cxengine.InvalidArgument):
        trained.evaluate(experiment="replay")
