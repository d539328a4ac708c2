"""The binding gives what the C library's CLI gives, for the same data
and seed."""
import re

import numpy as np

import cxengine
from conftest import CLI_TRAIN, TRAIN, fill, run_cli

LINE = re.compile(r"^\s+\d+\. (\S+)\s+.*score\s+(-?[\d.]+)\s+(\w+)$")
USERS = ["c0000001", "c0000007", "c0000042", "c0000100", "nobody"]


def parse(out):
    """{who: [(item, score, reason)]} from `cxengine recommend/similar`."""
    res, who = {}, None
    for line in out.splitlines():
        if not line.startswith(" "):
            who = line.rstrip(":")
            res[who] = []
        else:
            m = LINE.match(line)
            assert m, line
            res[who].append((m[1], float(m[2]), m[3]))
    return res


def same(got, want):
    assert [x[0] for x in got] == [x[0] for x in want]
    assert [x[2] for x in got] == [x[2] for x in want]
    np.testing.assert_allclose([x[1] for x in got], [x[1] for x in want],
                               atol=6e-5)


def test_same_as_cli_import_train(shop, tmp_path):
    cxe = tmp_path / "shop.cxe"
    run_cli("import", "--items", shop["dir"] / "items.csv", "--signals",
            shop["dir"] / "signals.csv", cxe)
    run_cli("train", "--quiet", *CLI_TRAIN, cxe)
    cli = parse(run_cli("recommend", "-k", 10, cxe, *USERS))
    item = shop["items"][10]["item"]
    cli_sim = parse(run_cli("similar", "-k", 5, cxe, item))
    with fill(cxengine.Engine(**TRAIN), shop) as e:
        e.train()
        for u in USERS:
            same(e.recommend(u, 10), cli[u])
        same(e.similar_items(item, 5), cli_sim[item])
        # and the other way: the CLI reads what Python saved
        e.save(tmp_path / "py.cxe")
        cli2 = parse(run_cli("recommend", "-k", 10, tmp_path / "py.cxe",
                             *USERS))
        for u in USERS:
            same(e.recommend(u, 10), cli2[u])
        info = run_cli("info", tmp_path / "py.cxe")
        assert re.search(r"signals\s+%d" % e.stats()["signals"], info)


def test_eval_same_as_cli(shop, tmp_path):
    cxe = tmp_path / "shop.cxe"
    run_cli("import", "--items", shop["dir"] / "items.csv", "--signals",
            shop["dir"] / "signals.csv", cxe)
    out = run_cli("eval", "-k", 10, *CLI_TRAIN, cxe)
    cli = {m[1]: (float(m[2]), float(m[3])) for m in
           re.finditer(r"^(\w+)@10\s+([\d.]+)\s+([\d.]+)", out, re.M)}
    with fill(cxengine.Engine(**TRAIN), shop) as e:
        r = e.evaluate(k=10)
    for name, (model, base) in cli.items():
        assert abs(r["model"][name] - model) < 6e-5, name
        assert abs(r["baseline"][name] - base) < 6e-5, name
