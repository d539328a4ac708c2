-- cxapp.lua -- the OpenResty handlers of the libcxengine example: JSON over
-- HTTP from every nginx worker, all of them on one data directory.
--
-- Every worker opens the directory read-only with signals allowed
-- (cx.OPEN_READONLY + cx.OPEN_SIGNALS) in init_worker: the workers map the
-- snapshot's factor files shared (one copy in memory for all of them),
-- follow the directory by themselves (new signals, catalogue, and the
-- next generation written by the trainer, `cxengine train DIR`, every
-- refresh_interval ms) and commit the signals POSTed to them into the
-- directory's database.
--
-- Read-your-writes across workers: after a successful ingest a worker
-- bumps the counter "posted" in the shared dict `cx_state`; before it
-- answers, a worker whose last refresh saw an older counter calls
-- cx_refresh, so a signal changes the next answer whichever worker gives
-- it.

local cjson = require "cjson.safe"
local cx = require "cxengine"

local ngx = ngx
local say, exit = ngx.say, ngx.exit
local type, tonumber, tostring = type, tonumber, tostring
local encode = cjson.encode
local str_find, str_byte, str_format = string.find, string.byte,
    string.format

local _M = {}

local MAX_BATCH = 1000     -- signals per POST
local MAX_K = 100
local MAX_SESSION = 100    -- items in /session/recommend
local MAX_ID = cx.MAX_ID_LEN

local engine               -- this worker's engine
local state                -- ngx.shared.cx_state
local synced = 0           -- the "posted" counter at our last refresh
local load_error

-- ---------------------------------------------------------------- JSON out

local function reply(status, body)
    ngx.status = status
    ngx.header["X-CX-Worker"] = ngx.worker.pid()
    say(body)
    return exit(status)
end

local function fail(status, msg)
    return reply(status, encode({ error = msg }))
end

local function status_of(code)
    if code == cx.ENOTFOUND then return 404 end
    if code == cx.EINVAL or code == cx.ERANGE or code == cx.ELIMIT then
        return 400
    end
    if code == cx.ENOTTRAINED then return 503 end
    return 500
end

-- ---------------------------------------------------------------- input

-- Valid UTF-8 (no overlongs, no surrogates)?
local function utf8_ok(s)
    if not str_find(s, "[\128-\255]") then return true end
    local i, n = 1, #s
    while i <= n do
        local c = str_byte(s, i)
        if c < 0x80 then
            i = i + 1
        else
            local len, min
            if c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
            elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
            elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
            else return false end
            local cp = c % (2 ^ (7 - len))
            for j = 1, len - 1 do
                local b = str_byte(s, i + j)
                if not b or b < 0x80 or b > 0xBF then return false end
                cp = cp * 64 + (b - 0x80)
            end
            if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF)
            then return false end
            i = i + len
        end
    end
    return true
end

-- nil if `s` is a usable id, else the reason
local function bad_id(s, what)
    if type(s) ~= "string" then return what .. " must be a string" end
    if s == "" then return what .. " is empty" end
    if #s > MAX_ID then
        return str_format("%s is longer than %d bytes", what, MAX_ID)
    end
    if str_find(s, "\0", 1, true) then return what .. " contains NUL" end
    if not utf8_ok(s) then return what .. " is not valid UTF-8" end
    return nil
end

local function arg_id(args, name, required)
    local v = args[name]
    if v == nil then
        if required then return nil, "missing parameter '" .. name .. "'" end
        return nil
    end
    if type(v) ~= "string" then
        return nil, "parameter '" .. name .. "' must be given once, with a value"
    end
    local bad = bad_id(v, name)
    if bad then return nil, bad end
    return v
end

local function arg_k(args, def)
    local v = args.k
    if v == nil then return def end
    if type(v) ~= "string" or not v:match("^%d+$") then
        return nil, "k must be an integer 1.." .. MAX_K
    end
    local k = tonumber(v)
    if k < 1 or k > MAX_K then return nil, "k must be 1.." .. MAX_K end
    return k
end

-- A result list ({item, score, reason} tables, as the binding returns
-- them) in one cjson call; cjson writes an empty table as {}.
local function items_json(list)
    if #list == 0 then return "[]" end
    return encode(list)
end

local function need_get()
    local m = ngx.req.get_method()
    if m ~= "GET" and m ~= "HEAD" then
        fail(405, "use GET")
        return false
    end
    return true
end

-- Signals another worker committed since our last refresh: follow them
-- now (one shared-dict read per request otherwise).
local function fresh()
    local posted = state:get("posted") or 0
    if posted ~= synced then
        local ok, err = engine:refresh()
        if ok then
            synced = posted
        else
            ngx.log(ngx.ERR, "cxapp: refresh: ", tostring(err))
        end
    end
end

local function ready()
    if engine then
        fresh()
        return true
    end
    fail(503, "engine not loaded: " .. tostring(load_error))
    return false
end

-- ---------------------------------------------------------------- workers

function _M.init_worker()
    local lib = os.getenv("CXENGINE_LIB")
    local dir = os.getenv("CXENGINE_DIR")
    state = ngx.shared.cx_state
    local ok, err = pcall(cx.load_library, lib)
    if not ok then
        load_error = err
        ngx.log(ngx.ERR, "cxapp: ", err)
        return
    end
    -- One OpenBLAS thread per worker (the env line sets it at load too).
    pcall(function()
        require("ffi").cdef("void openblas_set_num_threads(int);")
        cx.C.openblas_set_num_threads(1)
    end)
    -- Read before opening: what the open replays covers every signal
    -- counted so far.
    synced = state:get("posted") or 0
    local e, oerr = cx.open(dir, cx.OPEN_READONLY + cx.OPEN_SIGNALS)
    if not e then
        load_error = oerr
        ngx.log(ngx.ERR, "cxapp: cannot open the data directory ",
                tostring(dir), ": ", oerr)
        return
    end
    engine = e
end

-- ---------------------------------------------------------------- handlers

-- GET /recommend?user=&k=&category=
function _M.recommend()
    if not need_get() or not ready() then return end
    local args = ngx.req.get_uri_args()
    local user, err = arg_id(args, "user", true)
    if not user then return fail(400, err) end
    local k, kerr = arg_k(args, 10)
    if not k then return fail(400, kerr) end
    local cat, cerr = arg_id(args, "category", false)
    if cerr then return fail(400, cerr) end
    local opts = cat and { category = cat } or nil
    local body, rerr, code = engine:recommend_json(user, k, opts)
    if not body then return fail(status_of(code), rerr) end
    return reply(200, body)
end

-- GET /similar?item=&k=
function _M.similar()
    if not need_get() or not ready() then return end
    local args = ngx.req.get_uri_args()
    local item, err = arg_id(args, "item", true)
    if not item then return fail(400, err) end
    local k, kerr = arg_k(args, 10)
    if not k then return fail(400, kerr) end
    local body, rerr, code = engine:similar_json(item, k)
    if not body then return fail(status_of(code), rerr) end
    return reply(200, body)
end

-- GET /layout?user=&channel=&per_row=
function _M.layout()
    if not need_get() or not ready() then return end
    local args = ngx.req.get_uri_args()
    local user, err = arg_id(args, "user", true)
    if not user then return fail(400, err) end
    local channel, cerr = arg_id(args, "channel", false)
    if cerr then return fail(400, cerr) end
    local spec = { channel = channel }
    if args.per_row ~= nil then
        local n = type(args.per_row) == "string" and
                  args.per_row:match("^%d+$") and tonumber(args.per_row)
        if not n or n < 1 or n > 100 then
            return fail(400, "per_row must be 1..100")
        end
        spec.items_per_row = n
    end
    -- The page as JSON straight from the binding's buffers (no Lua
    -- tables, no cjson: 0.15x the encoding time of one cjson call).
    local body, rerr, code = engine:layout_json(user, spec)
    if not body then return fail(status_of(code), rerr) end
    return reply(200, body)
end

-- GET /session/recommend?items=a,b,c[&k=]  (ids cannot contain commas
-- here; item:type picks a signal type, default view)
function _M.session()
    if not need_get() or not ready() then return end
    local args = ngx.req.get_uri_args()
    local raw = args.items
    if raw == nil then raw = "" end
    if type(raw) ~= "string" then
        return fail(400, "parameter 'items' must be given once")
    end
    local k, kerr = arg_k(args, 10)
    if not k then return fail(400, kerr) end
    local sig = {}
    for part in raw:gmatch("[^,]+") do
        if #sig >= MAX_SESSION then
            return fail(400, "at most " .. MAX_SESSION .. " items")
        end
        local id, t = part, "view"
        local a, b = part:match("^(.*):(%a[%w_]*)$")
        if a and a ~= "" and engine:signal_type(b) then id, t = a, b end
        local bad = bad_id(id, "item")
        if bad then return fail(400, bad) end
        sig[#sig + 1] = { item = id, type = t }
    end
    local list, rerr, code = engine:recommend_session(sig, k)
    if not list then return fail(status_of(code), rerr) end
    return reply(200, '{"items":' .. items_json(list) .. '}')
end

local function num_ok(v)
    return type(v) == "number" and v == v and v ~= 1 / 0 and v ~= -1 / 0
end

-- Validate a decoded body; returns the normalised batch or nil, error.
local function normalise(body)
    if type(body) ~= "table" then
        return nil, "body must be a JSON array of signals"
    end
    local n = #body
    local count = 0
    for _ in pairs(body) do
        count = count + 1
        if count > MAX_BATCH then break end
    end
    if count > MAX_BATCH or n > MAX_BATCH then
        return nil, "batch too large (at most " .. MAX_BATCH .. " signals)"
    end
    if n == 0 or count ~= n then
        return nil, "body must be a non-empty JSON array of signals"
    end
    local now = ngx.time()
    local u, i, t, v, s, c = {}, {}, {}, {}, {}, {}
    for r = 1, n do
        local x = body[r]
        local where = "signal " .. r .. ": "
        if type(x) ~= "table" then return nil, where .. "not an object" end
        local bad = bad_id(x.user, "user") or bad_id(x.item, "item")
        if bad then return nil, where .. bad end
        if type(x.type) ~= "string" then
            return nil, where .. "type must be a string"
        end
        if not engine:signal_type(x.type) then
            return nil, where .. "unknown type '" .. x.type .. "'"
        end
        local val = x.value
        if val == nil then val = 1 end
        if not num_ok(val) then return nil, where .. "value must be a number" end
        local ts = x.ts
        if ts == nil then ts = now end
        if not num_ok(ts) or ts ~= math.floor(ts) or ts < 0 or ts > 2 ^ 53
        then
            return nil, where .. "ts must be an integer (seconds)"
        end
        local ch = x.channel
        if ch == nil then ch = "web" end
        local cbad = bad_id(ch, "channel")
        if cbad then return nil, where .. cbad end
        u[r], i[r], t[r], v[r], s[r], c[r] = x.user, x.item, x.type, val, ts,
                                              ch
    end
    return { u = u, i = i, t = t, v = v, s = s, c = c }
end

-- POST /signals: a JSON array of {user, item, type, value?, ts?, channel?}
function _M.signals()
    if ngx.req.get_method() ~= "POST" then return fail(405, "use POST") end
    if not ready() then return end
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    if not data then
        if ngx.req.get_body_file() then return fail(413, "body too large") end
        return fail(400, "empty body")
    end
    local body, jerr = cjson.decode(data)
    if body == nil then return fail(400, "malformed JSON: " .. tostring(jerr)) end
    local batch, err = normalise(body)
    if not batch then return fail(400, err) end
    -- One call, all or nothing: committed to the directory when it
    -- returns, folded in here at once.
    local n, ierr, code = engine:ingest({ users = batch.u, items = batch.i,
        types = batch.t, values = batch.v, timestamps = batch.s,
        channels = batch.c })
    if not n then return fail(status_of(code), ierr) end
    -- The other workers refresh before their next answer.
    local posted, perr = state:incr("posted", 1, 0)
    if not posted then ngx.log(ngx.ERR, "cxapp: cx_state: ", perr) end
    return reply(200, '{"accepted":' .. n .. '}')
end

-- GET /health
function _M.health()
    if not engine then
        return fail(503, "engine not loaded: " .. tostring(load_error))
    end
    fresh()
    local st, err = engine:stats()
    if not st then return fail(500, err) end
    return reply(200, encode({
        status = "ok", worker = ngx.worker.pid(),
        generation = st.generation, customers = st.customers,
        items = st.items, signals = st.signals, factors = st.factors,
        posted = state:get("posted") or 0, synced = synced }))
end

return _M
