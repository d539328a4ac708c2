-- test.lua -- tests of cxengine.lua, plain LuaJIT (no busted).
--   CXENGINE_LIB=$PWD/build/libcxengine.so luajit bindings/lua/test.lua
-- Prints "N passed, N failed"; exits 1 on any failure.

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local cx = require "cxengine"

local passed, failed = 0, 0
local function ok(cond, name, extra)
    if cond then
        passed = passed + 1
    else
        failed = failed + 1
        io.stderr:write("FAIL: ", name, extra and (" -- " .. tostring(extra))
                        or "", "\n")
    end
end
-- f must raise an error (misuse) whose message matches pat
local function raises(f, pat, name)
    local good, err = pcall(f)
    ok(not good and (not pat or tostring(err):find(pat, 1, true)), name, err)
end
-- a `nil, err, code` failure
local function fails(name, code, r, err, rc)
    ok(r == nil and type(err) == "string" and err ~= "" and
       (code == nil or rc == code), name,
       tostring(r) .. " / " .. tostring(err) .. " / " .. tostring(rc))
end

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

-- ---------------------------------------------------------------- loading
local v, vn = cx.version()
ok(type(v) == "string" and math.floor(vn / 100) == 1, "version", v)
ok(cx.load_library() == v, "load_library again is a no-op")
ok(cx.strerror(cx.ENOTFOUND):len() > 0, "strerror")

-- open
local e0, err0, rc0 = cx.open("/nonexistent/dir/below")
fails("open a data directory whose parent is missing", cx.EIO, e0, err0,
      rc0)
raises(function() cx.open(42) end, "path", "open(42) is misuse")
local e = assert(cx.open())
ok(not e:closed(), "open in memory")

-- ---------------------------------------------------------------- options
ok(e:set_option("factors", 8) == true, "set_option factors")
ok(e:get_option("factors") == 8, "get_option factors")
ok(e:set_option("solver", "cholesky") and e:get_option("solver") == 1,
   "set_option enum")
e:set_option("solver", "cg")
ok(e:set_option("weight.purchase", 12) and
   e:get_option("weight.purchase") == 12, "weight option")
fails("set_option out of range", cx.ERANGE, e:set_option("factors", 0))
fails("set_option NaN", cx.EINVAL, e:set_option("alpha", 0 / 0))
fails("weight of unknown type", cx.ENOTFOUND,
      e:set_option("weight.nosuch", 1))
raises(function() e:set_option("nosuch", 1) end, "unknown option",
       "unknown option is misuse")
raises(function() e:set_option("factors", "x") end, nil,
       "non-number option value is misuse")
raises(function() e:set_option("solver", "fast") end, "bad value",
       "bad enum value is misuse")
e:set_option("iterations", 5)
e:set_option("threads", 1)

-- ---------------------------------------------------------------- catalogue
local items = {}
local NI, NU = 60, 40
for i = 1, NI do
    items[i] = { id = string.format("sku-%02d", i),
                 category = "cat" .. (i % 3), price = i,
                 in_stock = i ~= 7, created_at = 1700000000 + i * 3600 }
end
items[5].tags = { "gift", "sale" }
ok(e:upsert_items(items) == NI, "upsert_items")
local it = e:item("sku-05")
ok(it and it.category == "cat2" and it.price == 5 and it.in_stock and
   it.created_at == 1700000000 + 5 * 3600, "item()")
ok(e:item("sku-07").in_stock == false, "in_stock false")
fails("item unknown", cx.ENOTFOUND, e:item("nosuch"))
fails("item id too long", cx.EINVAL, e:item(string.rep("x", 513)))
fails("item id with NUL", cx.EINVAL, e:item("a\0b"))
raises(function() e:item(5) end, "must be a string", "item(5) is misuse")
fails("upsert bad price", nil,
      e:upsert_items({ { id = "x", price = -1 } }))
fails("upsert invalid (NaN price)", cx.EINVAL,
      e:upsert_items({ { id = "y", price = 0 / 0 } }))
fails("upsert_items failure applied nothing", cx.ENOTFOUND, e:item("x"))
raises(function() e:upsert_items({ { category = "c" } }) end, "string id",
       "upsert without id is misuse")

-- ---------------------------------------------------------------- signals
-- Users u1..u40 like the items of their category (u % 3).
local rows = {}
local ts = 1700100000
for u = 1, NU do
    for j = 1, 12 do
        local i = ((u * 7 + j * 3) % (NI / 3)) * 3 + (u % 3) + 1
        if i > NI then i = i - 3 end
        ts = ts + 60
        rows[#rows + 1] = { user = "u" .. u, item = items[i].id,
                            type = (j % 5 == 0) and "purchase" or "view",
                            ts = ts, channel = (j % 2 == 0) and "app" or nil }
    end
end
ok(e:ingest(rows) == #rows, "ingest rows")
ok(e:ingest({ users = { "u1", "u2" }, items = { "sku-01", "sku-02" },
              types = { "click", 1 }, values = { 2, 1 },
              timestamps = { ts + 1, ts + 2 },
              channels = { "email", "web" } }) == 2,
   "ingest parallel arrays")
ok(e:ingest({ { "u3", "sku-03", "rating", 5, ts + 3 } }) == 1,
   "ingest positional rows")
ok(e:ingest({}) == 0, "ingest nothing")
local before = e:stats("signals")
fails("ingest unknown type", cx.ENOTFOUND,
      e:ingest({ { user = "u1", item = "sku-01", type = "nosuch" } }))
fails("ingest bad rating is all or nothing", cx.EINVAL,
      e:ingest({ { user = "u1", item = "sku-01", type = "view" },
                 { user = "u1", item = "sku-02", type = "rating",
                   value = 9 } }))
fails("ingest overlong id", cx.EINVAL,
      e:ingest({ { user = string.rep("u", 600), item = "sku-01",
                   type = "view" } }))
fails("ingest NaN value", cx.EINVAL,
      e:ingest({ { user = "u1", item = "sku-01", type = "view",
                   value = 0 / 0 } }))
ok(e:stats("signals") == before, "failed ingests applied nothing")
raises(function() e:ingest("x") end, "expected a table",
       "ingest(string) is misuse")
raises(function() e:ingest({ { user = 1, item = "a", type = "view" } }) end,
       "must be strings", "numeric user is misuse")
raises(function() e:ingest({ users = { "a" }, items = {}, types = {} }) end,
       nil, "mismatched columns is misuse")

-- signal types
ok(e:signal_type("purchase") == 3, "signal_type lookup")
ok(e:signal_type_name(2) == "add_to_cart", "signal_type_name")
ok(e:signal_type_name(20) == nil, "undefined type name is nil")
local wish = e:define_signal_type("wishlist", 3)
ok(wish and wish >= 8 and e:signal_type("wishlist") == wish,
   "define_signal_type")
ok(e:ingest({ { user = "u4", item = "sku-04", type = "wishlist" } }) == 1,
   "ingest custom type")
fails("signal_type unknown", cx.ENOTFOUND, e:signal_type("nosuch"))

-- ---------------------------------------------------------------- untrained
local pop = e:recommend("u1", 5)
ok(pop and #pop == 5 and pop[1].reason == "popular",
   "untrained recommend gives popular")
fails("similar before training", cx.ENOTTRAINED, e:similar_items("sku-01"))

-- ---------------------------------------------------------------- train
ok(e:train() == true, "train")
ok(e:stats("generation") == 1, "generation 1")
fails("train with a bad option", cx.ERANGE, e:train({ factors = 5000 }))
local st = e:stats()
ok(st.customers == NU and st.items == NI and st.factors == 8 and
   st.generation == 1 and st.model_items > 0, "stats", st.customers)
raises(function() e:stats("nosuch") end, "unknown stat", "unknown stat")

-- ---------------------------------------------------------------- recommend
local r = e:recommend("u1", 5)
ok(r and #r == 5 and r[1].reason == "personal" and
   type(r[1].item) == "string" and r[1].score >= r[5].score,
   "recommend personal")
local seen = {}
for _, row in ipairs(rows) do
    if row.user == "u1" then seen[row.item] = true end
end
local clean = true
for _, x in ipairs(r) do if seen[x.item] then clean = false end end
ok(clean, "recommend drops seen items")
local unk = e:recommend("never-seen \"quoted\" ü", 3)
ok(unk and #unk == 3 and unk[1].reason == "popular",
   "unknown user gets popular")
local rc1 = e:recommend("u1", 4, { category = "cat1" })
local allc = rc1 and #rc1 > 0
for _, x in ipairs(rc1 or {}) do
    if e:item(x.item).category ~= "cat1" then allc = false end
end
ok(allc, "recommend category filter")
local ra = e:recommend("u1", 10, { allow = { "sku-10", "sku-11" },
                                   exclude = {} })
ok(ra and #ra <= 2, "allow list", ra and #ra)
local rd = e:recommend("u1", 3, { deny = r[1].item })
ok(rd and rd[1].item ~= r[1].item, "deny list")
ok(e:recommend("u1", 3, { exact = true, max_per_category = 1,
                          diversity = 0.3, in_stock_only = false }),
   "recommend all options")
fails("unknown category", cx.ENOTFOUND,
      e:recommend("u1", 3, { category = "nosuch" }))
fails("recommend overlong user", cx.EINVAL,
      e:recommend(string.rep("x", 100000), 3))
fails("recommend empty user", cx.EINVAL, e:recommend("", 3))
fails("exclude unknown type", nil,
      e:recommend("u1", 3, { exclude = { "nosuch" } }))
fails("negative diversity", nil, e:recommend("u1", 3, { diversity = -1 }))
raises(function() e:recommend("u1", 0) end, "k must be", "k = 0 is misuse")
raises(function() e:recommend("u1", 2.5) end, "k must be", "k = 2.5")
raises(function() e:recommend("u1", "5") end, "k must be", "k string")
raises(function() e:recommend(nil, 5) end, "must be a string",
       "nil user is misuse")
raises(function() e:recommend("u1", 3, "x") end, "opts", "opts string")
raises(function() e:recommend("u1", 3, { category = 5 }) end, "category",
       "category number")
local big = e:recommend("u1", 5000, { in_stock_only = false,
                                      exclude = {} })
ok(big and #big == NI, "k larger than the catalogue", big and #big)
ok(#e:recommend("u1", 200) > 0 and #e:recommend("u2", 3) == 3,
   "buffers regrow and shrink")

-- ---------------------------------------------------------------- similar
local s = e:similar_items("sku-03", 4)
ok(s and #s == 4 and s[1].reason == "similar" and s[1].item ~= "sku-03",
   "similar_items")
fails("similar unknown item", cx.ENOTFOUND, e:similar_items("nosuch", 3))
fails("similar overlong", cx.EINVAL, e:similar_items(string.rep("i", 513)))
raises(function() e:similar_items({}) end, "must be a string",
       "similar table is misuse")

-- ---------------------------------------------------------------- session
local ss = e:recommend_session({ "sku-01", { item = "sku-04",
    type = "purchase" }, { "sku-07", "rating", 5 } }, 5)
ok(ss and #ss == 5 and ss[1].reason == "personal", "recommend_session")
local s0 = e:recommend_session({}, 3)
ok(s0 and #s0 == 3 and s0[1].reason == "popular", "empty session")
local su = e:recommend_session({ "nosuch" }, 3)
ok(su and #su == 3, "session with unknown items")
fails("session bad type", cx.ENOTFOUND,
      e:recommend_session({ { "sku-01", "nosuch" } }, 3))
raises(function() e:recommend_session("sku-01", 3) end, "list",
       "session string is misuse")
raises(function() e:recommend_session({ { type = "view" } }, 3) end,
       "needs an item", "session row without item")

-- ---------------------------------------------------------------- lists
local tr = e:trending(5)
ok(tr and #tr == 5 and tr[1].reason == "trending", "trending")
local po = e:popular(5, { category = "cat0" })
ok(po and #po > 0 and po[1].reason == "popular", "popular")
local na = e:new_arrivals(3, { in_stock_only = false })
ok(na and #na == 3 and na[1].reason == "new" and na[1].item == "sku-60",
   "new_arrivals", na and na[1].item)
fails("trending unknown category", cx.ENOTFOUND,
      e:trending(3, { category = "nosuch" }))

-- ---------------------------------------------------------------- layout
local page = e:layout("u1")
ok(page and #page > 0 and page[1].title and page[1].kind and
   type(page[1].fit) == "number" and #page[1].items > 0 and
   page[1].items[1].reason, "layout")
local dup, seen_on_page = false, {}
for _, row in ipairs(page or {}) do
    for _, x in ipairs(row.items) do
        if seen_on_page[x.item] then dup = true end
        seen_on_page[x.item] = true
    end
end
ok(not dup, "layout items appear once")
local p2 = e:layout("u1", { max_rows = 2, items_per_row = 3, min_row = 1,
                            kinds = { "trending", "category" },
                            per_kind = { trending = 1 },
                            channel = "app", now = 0,
                            rules = { deny = { "sku-01" },
                                      max_per_category = 2 } })
local okp = p2 and #p2 <= 2
for _, row in ipairs(p2 or {}) do
    if row.kind ~= "trending" and row.kind ~= "category" then okp = false end
    if #row.items > 3 then okp = false end
end
ok(okp, "layout spec")
local pn = e:layout("brand-new visitor")
ok(pn and #pn > 0, "layout for a new visitor")
raises(function() e:layout("u1", { kinds = { "nosuch" } }) end,
       "unknown row kind", "layout bad kind")
raises(function() e:layout("u1", { max_rows = 1000 }) end, "max_rows",
       "layout max_rows too big")
fails("layout overlong user", cx.EINVAL, e:layout(string.rep("u", 513)))

-- layout_json: the same page as layout(), as JSON text
local cjson = require "cjson"
local ffi = require "ffi"
local function f32(v) return tonumber(ffi.new("float", v)) end
local function same_page(user, spec)
    local want = e:layout(user, spec)
    local txt = e:layout_json(user, spec)
    local got = cjson.decode(txt)
    if got.user ~= user or #got.rows ~= #want then return false, txt end
    for r, row in ipairs(want) do
        local g = got.rows[r]
        if g.title ~= row.title or g.kind ~= row.kind or
           (row.seed or cjson.null) ~= g.seed or
           f32(g.fit) ~= row.fit or #g.items ~= #row.items then
            return false, txt
        end
        for j, x in ipairs(row.items) do
            local y = g.items[j]
            -- 9 significant digits give the float back exactly
            if y.item ~= x.item or f32(y.score) ~= x.score or
               y.reason ~= x.reason then
                return false, txt
            end
        end
    end
    return true, txt
end
ok(same_page("u1"), "layout_json u1 is layout()'s page")
ok(same_page("u2", { max_rows = 3, items_per_row = 2, min_row = 1 }),
   "layout_json with a spec")
ok(same_page("brand-new visitor"), "layout_json for a new visitor")
local odd = 'q"uo\\te\n\t\1\127 é'
local okj, txt = same_page(odd)
ok(okj and txt:find('"user":"q\\"uo\\\\te\\n\\t\\u0001\\u007f é"', 1, true),
   "layout_json escapes the id", txt)
local lj, lerr, lrc = e:layout_json(string.rep("u", 513))
fails("layout_json overlong user", cx.EINVAL, lj, lerr, lrc)
raises(function() e:layout_json("u1", { kinds = { "nosuch" } }) end,
       "unknown row kind", "layout_json bad kind")

-- recommend_json / similar_json: the lists of recommend / similar_items
local function same_list(txt, key, id, want)
    local got = cjson.decode(txt)
    if got[key] ~= id or #got.items ~= #want then return false end
    for j, x in ipairs(want) do
        local y = got.items[j]
        if y.item ~= x.item or f32(y.score) ~= x.score or
           y.reason ~= x.reason then
            return false
        end
    end
    return true
end
for _, u in ipairs({ "u1", "u2", odd, "nobody at all" }) do
    local txt = e:recommend_json(u, 5)
    ok(txt and same_list(txt, "user", u, e:recommend(u, 5)),
       "recommend_json " .. u, txt)
end
local ropt = { deny = { "sku-01" } }
ok(same_list(e:recommend_json("u1", 7, ropt), "user", "u1",
             e:recommend("u1", 7, ropt)), "recommend_json with opts")
local sim_item = e:recommend("u1", 1)[1].item
ok(same_list(e:similar_json(sim_item, 6), "item", sim_item,
             e:similar_items(sim_item, 6)), "similar_json")
fails("similar_json unknown item", cx.ENOTFOUND, e:similar_json("nosuch", 5))
fails("recommend_json overlong user", cx.EINVAL,
      e:recommend_json(string.rep("u", 513)))
raises(function() e:recommend_json("u1", 0) end, "k must be",
       "recommend_json k = 0")

-- ---------------------------------------------------------------- profile
local pr = e:profile("u1")
ok(pr and pr.signals > 0 and pr.by_type.view and pr.by_channel.app and
   #pr.categories > 0 and pr.categories[1].share > 0 and
   (pr.stage == "purchased" or pr.stage == "loyal" or
    pr.stage == "browsing" or pr.stage == "lapsed"), "profile",
   pr and pr.stage)
local pnew = e:profile("nobody")
ok(pnew and pnew.stage == "new" and pnew.signals == 0, "profile new")
fails("profile overlong", cx.EINVAL, e:profile(string.rep("u", 513)))

-- ---------------------------------------------------------------- explain
local ex = e:explain("u1", r[1].item, 3)
ok(ex and type(ex.score) == "number" and #ex.because > 0 and
   ex.because[1].item and ex.because[1].contrib, "explain")
fails("explain unknown item", cx.ENOTFOUND, e:explain("u1", "nosuch"))
fails("explain unknown user", cx.ENOTFOUND, e:explain("nobody", "sku-01"))

-- ---------------------------------------------------------------- experiments
ok(e:define_experiment("rows", { { "a", 1 }, { "b", 1 } }),
   "define_experiment")
local va = e:variant("rows", "u1")
ok(va == "a" or va == "b", "variant")
ok(e:variant("rows", "u1", false) == va, "variant deterministic")
ok(e:exposures("rows", va) == 1, "exposures counted once")
ok(e:set_override("rows", "a", "k", 7) and e:override("rows", "a", "k") == 7,
   "override")
fails("missing override", cx.ENOTFOUND, e:override("rows", "b", "k"))
fails("variant unknown experiment", cx.ENOTFOUND, e:variant("nosuch", "u1"))
fails("experiment with no variants", cx.EINVAL,
      e:define_experiment("empty", {}))
ok(e:define_experiment("map", { x = 1, y = 3 }), "experiment from a map")

-- ---------------------------------------------------------------- freshness
local top = e:recommend("u2", 1)[1].item
ok(e:ingest({ { user = "u2", item = top, type = "purchase" } }) == 1,
   "ingest after training")
ok(e:recommend("u2", 1)[1].item ~= top, "a new signal changes the next list")
local newc = e:recommend("fresh", 3)
ok(newc[1].reason == "popular", "new customer before signals")
e:ingest({ { user = "fresh", item = "sku-03", type = "purchase" } })
ok(e:recommend("fresh", 3)[1].reason == "personal", "new customer folded in")

-- ---------------------------------------------------------------- save/load
local path = tmp .. "/e.cx"
ok(e:save(path) == true, "save")
local e2 = cx.load(path)
ok(e2 and e2:stats("signals") == e:stats("signals"), "load")
ok(e2 and e2:recommend("u1", 3)[1].item == e:recommend("u1", 3)[1].item,
   "loaded engine answers the same")
raises(function() e:save(42) end, "path must be a string", "save(42) is misuse")
fails("save to a missing directory", cx.EIO,
      e:save(tmp .. "/no/such/dir/e.cx"))
fails("load missing file", nil, cx.load(tmp .. "/missing.cx"))
local f = io.open(tmp .. "/bad.cx", "wb")
f:write("not an engine at all")
f:close()
fails("load corrupt file", nil, cx.load(tmp .. "/bad.cx"))
local fin = io.open(path, "rb")
local bytes = fin:read("*a")
fin:close()
f = io.open(tmp .. "/trunc.cx", "wb")
f:write(bytes:sub(1, math.floor(#bytes / 2)))
f:close()
fails("load truncated file", cx.ECORRUPT, cx.load(tmp .. "/trunc.cx"))
raises(function() cx.load(nil) end, "path", "load(nil) is misuse")

-- ---------------------------------------------------------------- data directory
do
    local dir = tmp .. "/datadir"
    local d = assert(cx.open(dir))
    ok(d:set_option("sync", "normal") == true, "set sync policy")
    d:set_option("factors", 4)
    d:set_option("threads", 1)
    d:ingest({ { user = "a", item = "x", type = "purchase" },
               { user = "b", item = "y", type = "purchase" },
               { user = "a", item = "y", type = "view" } })
    d:train()
    local before = d:recommend("b", 2)
    ok(#before == 1 and before[1].item == "x", "data directory engine recommends")
    fails("a second open of the directory", cx.EBUSY, cx.open(dir))
    ok(d:sync() == true, "sync")
    d:close()
    local d2 = assert(cx.open(dir))
    ok(d2:stats("signals") == 3, "signals survive reopen")
    ok(d2:get_option("sync") == 1, "sync policy survives reopen")
    ok(d2:stats("generation") == 1, "the snapshot is loaded")
    local after = d2:recommend("b", 2)
    ok(#after == #before and after[1].item == before[1].item and
       after[1].score == before[1].score, "same answers after reopen")
    -- Spark: export the signals, import factors written as Spark does.
    ok(d2:export_signals(tmp .. "/signals.csv") == true, "export_signals")
    local lines = 0
    for _ in io.lines(tmp .. "/signals.csv") do lines = lines + 1 end
    ok(lines == 4, "export_signals writes a header and 3 rows")
    local uf = io.open(tmp .. "/uf.json", "w")
    uf:write('{"id":"a","features":[1,0]}\n{"id":"b","features":[0,1]}\n')
    uf:close()
    local itf = io.open(tmp .. "/if.json", "w")
    itf:write('{"id":"x","features":[0.1,0.9]}\n{"id":"y","features":[0.9,0.1]}\n')
    itf:close()
    fails("import a file that is not factors", cx.EFORMAT,
          d2:import_factors(tmp .. "/uf.json", tmp .. "/signals.csv"))
    local bad = io.open(tmp .. "/bad.json", "w")
    bad:write('{"id":"nobody","features":[1,0]}\n')
    bad:close()
    fails("import with an unknown id", cx.ENOTFOUND,
          d2:import_factors(tmp .. "/bad.json", tmp .. "/if.json"))
    ok(d2:import_factors(tmp .. "/uf.json", tmp .. "/if.json") == true,
       "import_factors")
    ok(d2:stats("generation") == 2 and d2:stats("factors") == 2,
       "imported factors are the model")
    ok(d2:recommend("b", 1)[1].item == "x", "imported model serves")
    -- A read-only engine beside the writer: it follows and cannot write.
    d2:set_option("refresh_interval", 0)
    local r = assert(cx.open(dir, cx.OPEN_READONLY))
    ok(r:stats("generation") == 2, "a reader loads the newest generation")
    fails("a reader cannot ingest", cx.EREADONLY,
          r:ingest({ { user = "c", item = "x", type = "view" } }))
    raises(function() cx.open(dir, "readonly") end, "flags",
           "open with a string flag is misuse")
    d2:ingest({ { user = "c", item = "x", type = "purchase" } })
    d2:train()
    ok(r:stats("signals") == 3, "nothing new before refresh")
    ok(r:refresh() == true, "refresh")
    ok(r:stats("signals") == 4 and r:stats("generation") == 3,
       "the reader follows signals and the new generation")
    local wr, rr = d2:recommend("c", 1), r:recommend("c", 1)
    ok(#wr == #rr and wr[1].item == rr[1].item, "reader answers as writer")
    -- A reader that appends signals: the writer and the other reader
    -- follow them.
    fails("OPEN_SIGNALS alone", cx.EINVAL, cx.open(dir, cx.OPEN_SIGNALS))
    local rs = assert(cx.open(dir, cx.OPEN_READONLY + cx.OPEN_SIGNALS))
    ok(rs:ingest({ { user = "lua-new", item = "x", type = "purchase" },
                   { user = "lua-new", item = "lua-item", type = "view" } })
       == 2, "a signals reader ingests")
    ok(rs:stats("signals") == 6, "its signals count at once")
    fails("a signals reader cannot train", cx.EREADONLY, rs:train())
    ok(d2:refresh() == true and d2:stats("signals") == 6 and
       d2:stats("customers") == 4, "the writer follows the reader's signals")
    ok(r:refresh() == true and r:stats("signals") == 6,
       "the other reader follows them")
    rs:close()
    r:close()
    ok(d2:forget({ "c", "nobody" }) == 1, "forget erases a known customer")
    ok(d2:stats("signals") == 5, "the customer's signals are gone")
    raises(function() d2:forget(42) end, "forget", "forget(42) is misuse")
    d2:close()
end

-- ---------------------------------------------------------------- tune
do
    local t = assert(cx.open())
    t:set_option("threads", 1)
    t:set_option("iterations", 3)
    local rows, ts = {}, 1767225600
    for u = 1, 60 do
        for j = 1, 12 do
            local item = "sku-" .. ((u * 7 + j * (u % 5 + 1)) % 40)
            rows[#rows + 1] = { "u" .. u, item,
                                j % 3 == 0 and "purchase" or "view", 1,
                                ts + u * 10 + j * 1000 }
        end
    end
    t:ingest(rows)
    local trials = assert(t:tune{ seconds = 0, trials = 6, seed = 3 })
    ok(#trials == 6, "tune runs its trial budget")
    local best = 0
    for _, r in ipairs(trials) do if r.best then best = best + 1 end end
    ok(best == 1, "tune marks one best trial")
    ok(t:stats("generation") == 1, "tune trains with the best settings")
    ok(#t:recommend("u1", 3) > 0, "the tuned engine serves")
    fails("tune without a budget", cx.EINVAL, t:tune{ seconds = 0 })
    raises(function() t:tune{ split = "days" } end, "split",
           "bad split is misuse")
    ok(t:get_option("blend_als") ~= nil, "blend options by name")
    t:close()
end

-- ---------------------------------------------------------------- close
e2:close()
ok(e2:closed(), "close")
e2:close()
ok(true, "close twice")
raises(function() e2:recommend("u1", 3) end, "closed",
       "use after close is misuse")
do  -- gc finaliser
    local e3 = cx.open()
    e3 = nil
    collectgarbage()
    collectgarbage()
    ok(true, "gc finaliser")
end
e:close()
os.execute("rm -rf " .. tmp)

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
