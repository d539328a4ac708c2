-- cxengine.lua -- LuaJIT FFI binding of libcxengine (include/cxengine.h).
--
-- In the style of lua-resty-core: ffi.cdef of what is used, C functions
-- cached in locals, reusable out-parameters and result buffers, ffi.gc on
-- every handle with an explicit close(), `nil, err, code` on failure (err
-- is the engine's cx_errmsg, code the negative CX_E* status), error() only
-- for misuse (wrong argument types), and a version check at load.
--
--   local cx = require "cxengine"
--   cx.load_library("/path/libcxengine.so")   -- optional, see below
--   local e = assert(cx.load("shop.cx"))      -- or cx.open()
--   local recs = assert(e:recommend("c0000003", 10))
--   for _, r in ipairs(recs) do print(r.item, r.score, r.reason) end
--   e:close()
--
-- The library is found, at the first call that needs it, from the path
-- given to load_library(path), else $CXENGINE_LIB, else ffi.load("cxengine")
-- (the system's search path).  Engines must be created after fork() (nginx:
-- init_worker_by_lua).  Buffers are shared by every engine of the Lua VM:
-- no call yields, so that is safe in OpenResty; do not share one Lua state
-- between OS threads (nobody can with LuaJIT anyway).

local ffi = require "ffi"
local bit = require "bit"

local ffi_new, ffi_string, ffi_gc, ffi_cast = ffi.new, ffi.string, ffi.gc,
    ffi.cast
local type, error, tonumber, tostring, select = type, error, tonumber,
    tostring, select
local floor, huge = math.floor, math.huge
local str_find, str_format = string.find, string.format
local setmetatable, pairs, ipairs = setmetatable, pairs, ipairs

local _M = { _VERSION = "0.1.0" }

ffi.cdef [[
typedef struct cx_engine cx_engine;

const char *cx_version(void);
int cx_version_number(void);
const char *cx_strerror(int status);

int cx_open(cx_engine **out, const char *path, unsigned flags);
void cx_close(cx_engine *e);
const char *cx_errmsg(const cx_engine *e);

int cx_set_option(cx_engine *e, int key, double value);
int cx_get_option(const cx_engine *e, int key, double *value);

int cx_items_upsert(cx_engine *e, size_t n, const char *const *ids,
                    const char *const *categories, const double *prices,
                    const int *in_stock, const int64_t *created_at,
                    const char *const *tags);
int cx_item_remove(cx_engine *e, const char *id);
int cx_item_get(cx_engine *e, const char *id, const char **category,
                double *price, int *in_stock, int64_t *created_at);

int cx_signal_type_define(cx_engine *e, const char *name, double weight,
                          int *type);
int cx_signal_type_lookup(const cx_engine *e, const char *name, int *type);
const char *cx_signal_type_name(const cx_engine *e, int type);

int cx_ingest(cx_engine *e, size_t n, const char *const *customers,
              const char *const *items, const int *types,
              const float *values, const int64_t *timestamps,
              const char *const *channels);

typedef int (*cx_progress_fn)(void *user, int iteration, int iterations,
                              double loss);
int cx_train(cx_engine *e, cx_progress_fn progress, void *user);

typedef struct cx_rec_opts {
    size_t size;
    unsigned exclude;
    const char *category;
    int in_stock_only;
    const char *const *allow;
    size_t n_allow;
    const char *const *deny;
    size_t n_deny;
    int exact;
    size_t max_per_category;
    double diversity;
} cx_rec_opts;
void cx_rec_opts_init(cx_rec_opts *opts);

int cx_recommend(cx_engine *e, const char *customer, size_t k,
                 const cx_rec_opts *opts, const char **items, float *scores,
                 int *reasons, size_t *n);
int cx_recommend_session(cx_engine *e, size_t n_signals,
                         const char *const *sig_items, const int *sig_types,
                         const float *sig_values, size_t k,
                         const cx_rec_opts *opts, const char **items,
                         float *scores, int *reasons, size_t *n);
int cx_similar_items(cx_engine *e, const char *item, size_t k,
                     const cx_rec_opts *opts, const char **items,
                     float *scores, int *reasons, size_t *n);
int cx_trending(cx_engine *e, size_t k, const cx_rec_opts *opts,
                const char **items, float *scores, int *reasons, size_t *n);
int cx_popular(cx_engine *e, size_t k, const cx_rec_opts *opts,
               const char **items, float *scores, int *reasons, size_t *n);
int cx_new_arrivals(cx_engine *e, size_t k, const cx_rec_opts *opts,
                    const char **items, float *scores, int *reasons,
                    size_t *n);

const char *cx_stage_name(int stage);
typedef struct cx_profile {
    size_t size;
    int stage;
    int64_t first_seen, last_seen;
    uint64_t signals;
    uint64_t by_type[32];
    size_t n_channels;
    const char *channel[8];
    uint64_t by_channel[8];
    size_t n_categories;
    const char *category[8];
    double category_share[8];
    double avg_price;
    double price_level;
} cx_profile;
int cx_profile_get(cx_engine *e, const char *customer, int64_t now,
                   cx_profile *out);
int cx_explain(cx_engine *e, const char *customer, const char *item,
               size_t n, const char **items, float *contrib, size_t *count,
               float *score);

typedef struct cx_layout_spec {
    size_t size;
    unsigned kinds;
    size_t max_rows;
    size_t items_per_row;
    size_t min_row;
    size_t per_kind[7];
    const char *channel;
    int64_t now;
    cx_rec_opts rules;
} cx_layout_spec;
void cx_layout_spec_init(cx_layout_spec *spec);
typedef struct cx_layout_item {
    const char *item;
    float score;
    int reason;
} cx_layout_item;
typedef struct cx_layout_row {
    int kind;
    const char *seed;
    float fit;
    size_t first, count;
} cx_layout_row;
int cx_layout(cx_engine *e, const char *customer, const cx_layout_spec *spec,
              cx_layout_row *rows, size_t max_rows, cx_layout_item *items,
              size_t max_items, size_t *n_rows);
/* buf: char * in cxengine.h; void * here takes string.buffer's uint8_t * */
size_t cx_layout_items_json(const cx_layout_item *items, size_t n,
                            void *buf, size_t cap);

int cx_experiment_define(cx_engine *e, const char *experiment, size_t n,
                         const char *const *variants, const double *shares);
int cx_variant_set(cx_engine *e, const char *experiment, const char *variant,
                   int key, double value);
int cx_variant_get(cx_engine *e, const char *experiment, const char *variant,
                   int key, double *value);
int cx_variant(cx_engine *e, const char *experiment, const char *customer,
               int count_exposure, const char **variant);
int cx_exposures(cx_engine *e, const char *experiment, const char *variant,
                 int64_t *count);

int cx_stat(cx_engine *e, int key, int64_t *value);
int cx_save(cx_engine *e, const char *path);
int cx_sync(cx_engine *e);
int cx_refresh(cx_engine *e);
int cx_forget(cx_engine *e, size_t n, const char *const *customers,
              size_t *forgotten);
int cx_export_signals(cx_engine *e, const char *path);
int cx_import_factors(cx_engine *e, const char *customers, const char *items, unsigned flags);
int cx_load(cx_engine **out, const char *path);

typedef struct cx_tune_opts {
    size_t size; double seconds; size_t trials; uint64_t seed;
    unsigned params; size_t k; int split; double test_fraction;
    size_t min_items; double validation_fraction; size_t max_customers;
    int apply;
} cx_tune_opts;
typedef struct cx_tune_trial {
    int model; int factors; double regularization, alpha, half_life;
    double weight[8];
    double blend_als, blend_popular, blend_repeat, blend_cobought;
    double consumable; double ndcg; double seconds; int best;
} cx_tune_trial;
void cx_tune_opts_init(cx_tune_opts *opts);
int cx_tune(cx_engine *e, const cx_tune_opts *opts, cx_tune_trial *trials,
            size_t max_trials, size_t *n_trials);
]]

-- ------------------------------------------------------------ constants

local MAX_ID_LEN = 512
local MAX_K = 1048576            -- CX_MAX_K
local KEEP_K = 1024              -- result buffers kept up to this k
local MAX_ROWS, MAX_PER_ROW = 64, 100

_M.MAX_ID_LEN, _M.MAX_K = MAX_ID_LEN, MAX_K
_M.OK, _M.EINVAL, _M.ENOMEM, _M.ENOTFOUND, _M.ENOTTRAINED = 0, -1, -2, -3, -4
_M.EIO, _M.ECORRUPT, _M.EVERSION, _M.ERANGE, _M.EBUSY = -5, -6, -7, -8, -9
_M.EFORMAT, _M.ECANCELED, _M.ENOTSUP, _M.ELIMIT = -10, -11, -12, -13
_M.EREADONLY = -14
_M.OPEN_READONLY = 1
_M.OPEN_SIGNALS = 2     -- with OPEN_READONLY: a reader that may ingest
_M.OPEN_VERIFY = 4      -- verify every snapshot file, ignoring VERIFIED

local REASONS = { "personal", "popular", "similar", "category", "trending",
                  "new", "continue", "bought_together", "repeat",
                  "also_bought", "bestseller" }
local ROW_KINDS = { [0] = "for_you", "because", "continue",
                    "bought_together", "trending", "new", "category" }
local ROW_KIND_NUM = {}
for i = 0, 6 do ROW_KIND_NUM[ROW_KINDS[i]] = i end
_M.REASONS, _M.ROW_KINDS = REASONS, ROW_KINDS

local OPTIONS = { factors = 1, iterations = 2, regularization = 3,
                  alpha = 4, solver = 5, cg_steps = 6, threads = 7, seed = 8,
                  half_life = 9, init_scale = 10, candidates = 11,
                  fold_in = 12, trending_half_life = 13,
                  popular_half_life = 14, lapsed_after = 15,
                  loyal_purchases = 16, sync = 17, sync_interval = 18,
                  refresh_interval = 19, blend_als = 20, blend_popular = 21,
                  blend_repeat = 22, blend_cobought = 23, consumable = 24 }
local OPT_WEIGHT = 1000
local ENUMS = { solver = { cg = 0, cholesky = 1 },
                fold_in = { off = 0, lazy = 1, eager = 2 },
                sync = { off = 0, normal = 1, full = 2 } }
local OVERRIDES = { k = 100001, diversity = 100002, max_per_category = 100003 }
local STATS = { "customers", "items", "signals", "generation", "factors",
                "model_customers", "model_items", "memory",
                "folded_customers", "folded_items", "training" }
_M.OPTIONS = OPTIONS

-- ------------------------------------------------------------ the library

local C              -- the ffi namespace once loaded
local tried = {}     -- every place looked, for the error message

local function check_version(lib)
    local v = lib.cx_version_number()
    if floor(v / 100) ~= 1 then
        error(str_format("cxengine.lua needs libcxengine 0.1.x, found %s",
                         ffi_string(lib.cx_version())), 3)
    end
end

-- Load the C library from `path` (else $CXENGINE_LIB, else "cxengine").
-- Returns the library's version string; error() if it cannot be found or
-- has the wrong version.  Calling it again is a no-op.
function _M.load_library(path)
    if C then return ffi_string(C.cx_version()) end
    if path ~= nil and type(path) ~= "string" then
        error("load_library: path must be a string", 2)
    end
    local cands = {}
    if path then cands[#cands + 1] = path end
    local env = os.getenv("CXENGINE_LIB")
    if env and env ~= "" then cands[#cands + 1] = env end
    cands[#cands + 1] = "cxengine"
    for _, p in ipairs(cands) do
        local ok, lib = pcall(ffi.load, p)
        if ok then
            check_version(lib)
            C = lib
            _M.C = lib
            return ffi_string(C.cx_version())
        end
        tried[#tried + 1] = p .. ": " .. tostring(lib)
    end
    error("cannot load libcxengine; tried:\n  " ..
          table.concat(tried, "\n  "), 2)
end

local function lib()
    if not C then _M.load_library() end
    return C
end

function _M.version()
    local c = lib()
    return ffi_string(c.cx_version()), c.cx_version_number()
end

function _M.strerror(code)
    return ffi_string(lib().cx_strerror(code))
end

-- ------------------------------------------------------------ scratch
-- Out-parameters and result buffers reused by every call.

local engine_pp = ffi.typeof("cx_engine *[1]")
local out_eng                      -- cx_engine *[1]
local out_n, out_i, out_d, out_i64, out_str, out_f
local opts_buf, spec_buf, prof_buf
local res_cap = 0
local res_items, res_scores, res_reasons
local rows_buf, litems_buf
local cstr_arr_t = ffi.typeof("const char *[?]")

local function init_scratch()
    if out_n then return end
    out_eng = engine_pp()
    out_n = ffi_new("size_t[1]")
    out_i = ffi_new("int[1]")
    out_d = ffi_new("double[1]")
    out_i64 = ffi_new("int64_t[1]")
    out_str = ffi_new("const char *[1]")
    out_f = ffi_new("float[1]")
    opts_buf = ffi_new("cx_rec_opts")
    spec_buf = ffi_new("cx_layout_spec")
    prof_buf = ffi_new("cx_profile")
end

-- Result buffers for k results: kept when k <= KEEP_K, else per call.
local function results(k)
    if k <= res_cap then return res_items, res_scores, res_reasons end
    local cap = k
    if k <= KEEP_K then cap = k < 128 and 128 or KEEP_K end
    local it = ffi_new("const char *[?]", cap)
    local sc = ffi_new("float[?]", cap)
    local re = ffi_new("int[?]", cap)
    if cap <= KEEP_K then
        res_cap, res_items, res_scores, res_reasons = cap, it, sc, re
    end
    return it, sc, re
end

-- ------------------------------------------------------------ helpers

local function misuse(msg, level)
    error(msg, (level or 2) + 1)
end

-- An id argument: a string of 1..512 bytes without NUL, else misuse when
-- not a string, nil + message when a bad string (the C library would say
-- the same, but a NUL would silently cut the id).
local function bad_id(s, what)
    if type(s) ~= "string" then
        misuse(str_format("%s must be a string, not %s", what, type(s)), 3)
    end
    local n = #s
    if n == 0 or n > MAX_ID_LEN then
        return str_format("%s must be 1..%d bytes, got %d", what,
                          MAX_ID_LEN, n)
    end
    if str_find(s, "\0", 1, true) then
        return what .. " contains a NUL byte"
    end
    return nil
end

local function check_k(k, def)
    if k == nil then return def end
    if type(k) ~= "number" or k ~= floor(k) or k < 1 or k > MAX_K then
        misuse("k must be an integer 1.." .. MAX_K .. ", not " .. tostring(k),
               3)
    end
    return k
end

local function fail(self, rc)
    return nil, ffi_string(C.cx_errmsg(self.h)), rc
end

local function strings(list, what, keep)
    if type(list) == "string" then list = { list } end
    if type(list) ~= "table" then
        misuse(what .. " must be a list of strings", 4)
    end
    local n = #list
    local arr = ffi_new(cstr_arr_t, n > 0 and n or 1)
    for i = 1, n do
        local s = list[i]
        if type(s) ~= "string" then
            misuse(str_format("%s[%d] must be a string", what, i), 4)
        end
        arr[i - 1] = s
    end
    keep[#keep + 1] = list
    return arr, n
end

-- ------------------------------------------------------------ engine

local Engine = {}
Engine.__index = Engine
_M.Engine = Engine

local function wrap(h)
    h = ffi_gc(h, C.cx_close)
    return setmetatable({ h = h, types = {} }, Engine)
end

-- An engine: in memory with path nil; with a path, a data directory
-- (created if missing) that keeps signals, catalogue, options and
-- experiments in path/cx.db (SQLite) and each trained model as a
-- snapshot, so that open(path) comes back to the same state.  One process
-- opens a directory at a time (EBUSY otherwise); any number more open it
-- with flags cx.OPEN_READONLY: they share the snapshot's factors, follow
-- the writer (every refresh_interval ms, or at refresh()) and get
-- EREADONLY for calls that would change the directory.  With
-- cx.OPEN_READONLY + cx.OPEN_SIGNALS a reader may also ingest: the
-- signals go to the directory, every other engine of it follows them and
-- the writer trains on them (nginx workers).  Adding cx.OPEN_VERIFY
-- checks every snapshot file in full, ignoring the VERIFIED stamp (see
-- cx_open in cxengine.h).
function _M.open(path, flags)
    local c = lib()
    init_scratch()
    if path ~= nil and type(path) ~= "string" then
        misuse("open: path must be nil or a string")
    end
    if flags ~= nil and type(flags) ~= "number" then
        misuse("open: flags must be nil or a number (cx.OPEN_READONLY)")
    end
    local rc = c.cx_open(out_eng, path, flags or 0)
    if rc ~= 0 then
        return nil, ffi_string(c.cx_errmsg(nil)), rc
    end
    local h = out_eng[0]
    out_eng[0] = nil
    return wrap(h)
end

-- An engine from a file written by save() (or by the CLI).
function _M.load(path)
    local c = lib()
    init_scratch()
    if type(path) ~= "string" then misuse("load: path must be a string") end
    local rc = c.cx_load(out_eng, path)
    if rc ~= 0 then
        return nil, ffi_string(c.cx_errmsg(nil)), rc
    end
    local h = out_eng[0]
    out_eng[0] = nil
    return wrap(h)
end

local function handle(self)
    local h = self.h
    if not h then misuse("engine is closed", 3) end
    return h
end

function Engine:close()
    local h = self.h
    if h then
        self.h = nil
        C.cx_close(ffi_gc(h, nil))
    end
end

function Engine:closed()
    return self.h == nil
end

-- Make everything acknowledged durable now, whatever the sync policy.
function Engine:sync()
    local h = handle(self)
    local rc = C.cx_sync(h)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

-- Erase customers (an id or a list of ids): signals, id, profile and
-- vector, in memory, database and snapshots.  Returns how many were known.
function Engine:forget(customers)
    local h = handle(self)
    if type(customers) == "string" then customers = { customers } end
    if type(customers) ~= "table" then
        misuse("forget: customers must be an id or a list of ids")
    end
    local n = #customers
    local ids = ffi.new("const char *[?]", n > 0 and n or 1)
    for i = 1, n do
        if type(customers[i]) ~= "string" then
            misuse("forget: customer ids must be strings")
        end
        ids[i - 1] = customers[i]
    end
    local got = ffi.new("size_t[1]")
    local rc = C.cx_forget(h, n, ids, got)
    if rc ~= 0 then return fail(self, rc) end
    return tonumber(got[0])
end

-- A read-only engine catches up with its directory now.
function Engine:refresh()
    local h = handle(self)
    local rc = C.cx_refresh(h)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

-- A call whose one argument is a path and whose answer a status.
local function path_call(self, fn, what, path)
    local h = handle(self)
    if type(path) ~= "string" then
        misuse(what .. ": path must be a string", 3)
    end
    local rc = fn(h, path)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

-- Every signal as CSV for Spark MLlib ALS (integer indexes, strengths).
function Engine:export_signals(path)
    return path_call(self, C.cx_export_signals, "export_signals", path)
end

-- Spark's userFactors / itemFactors (file or part-file directory) as the
-- model; by_index: ids are the engine's indexes.
function Engine:import_factors(customers, items, by_index)
    local h = handle(self)
    if type(customers) ~= "string" or type(items) ~= "string" then
        misuse("import_factors: paths must be strings")
    end
    local rc = C.cx_import_factors(h, customers, items, by_index and 1 or 0)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

function Engine:save(path)
    return path_call(self, C.cx_save, "save", path)
end

-- ------------------------------------------------------------ options

local function option_key(name)
    if type(name) == "number" then return name end
    if type(name) ~= "string" then
        misuse("option name must be a string", 3)
    end
    local key = OPTIONS[name]
    if key then return key end
    local t = name:match("^weight%.(.+)$")
    if t then return "weight", t end
    misuse("unknown option '" .. name .. "'", 3)
end

-- set_option("factors", 32), ("solver", "cholesky"), ("weight.view", 2)
function Engine:set_option(name, value)
    local h = handle(self)
    local key, wt = option_key(name)
    if key == "weight" then
        local t, err, rc = self:signal_type(wt)
        if not t then return nil, err, rc end
        key = OPT_WEIGHT + t
    end
    if type(value) == "string" and ENUMS[name] then
        local v = ENUMS[name][value]
        if v == nil then
            misuse(str_format("bad value '%s' for option %s", value, name))
        end
        value = v
    elseif type(value) == "boolean" then
        value = value and 1 or 0
    elseif type(value) ~= "number" then
        misuse("option value must be a number")
    end
    local rc = C.cx_set_option(h, key, value)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

function Engine:get_option(name)
    local h = handle(self)
    local key, wt = option_key(name)
    if key == "weight" then
        local t, err, rc = self:signal_type(wt)
        if not t then return nil, err, rc end
        key = OPT_WEIGHT + t
    end
    local rc = C.cx_get_option(h, key, out_d)
    if rc ~= 0 then return fail(self, rc) end
    return out_d[0]
end

-- ------------------------------------------------------------ signal types

-- Number of a signal type by name (cached) or number.
function Engine:signal_type(t)
    local h = handle(self)
    if type(t) == "number" then
        if t ~= floor(t) or t < 0 or t >= 32 then
            return nil, "bad signal type " .. t, _M.EINVAL
        end
        return t
    end
    if type(t) ~= "string" then
        misuse("signal type must be a string or a number", 3)
    end
    local n = self.types[t]
    if n then return n end
    local rc = C.cx_signal_type_lookup(h, t, out_i)
    if rc ~= 0 then return fail(self, rc) end
    n = out_i[0]
    self.types[t] = n
    return n
end

function Engine:signal_type_name(t)
    local h = handle(self)
    local p = C.cx_signal_type_name(h, t)
    if p == nil then return nil end
    return ffi_string(p)
end

function Engine:define_signal_type(name, weight)
    local h = handle(self)
    if type(name) ~= "string" or type(weight) ~= "number" then
        misuse("define_signal_type(name, weight)")
    end
    local rc = C.cx_signal_type_define(h, name, weight, out_i)
    if rc ~= 0 then return fail(self, rc) end
    self.types[name] = out_i[0]
    return out_i[0]
end

-- ------------------------------------------------------------ catalogue

-- upsert_items{ {id=, category=, price=, in_stock=, created_at=, tags=} }
-- Missing fields keep the current value (or default) only when missing
-- in every row; otherwise defaults of the C API are filled in.
function Engine:upsert_items(rows)
    local h = handle(self)
    if type(rows) ~= "table" then misuse("upsert_items: rows must be a table") end
    local n = #rows
    if n == 0 then return 0 end
    local ids = ffi_new(cstr_arr_t, n)
    local have = {}
    for i = 1, n do
        local r = rows[i]
        if type(r) ~= "table" or type(r.id) ~= "string" then
            misuse(str_format("upsert_items: row %d needs a string id", i))
        end
        ids[i - 1] = r.id
        for k in pairs(r) do have[k] = true end
    end
    local cats, prices, stock, created, tags
    if have.category then cats = ffi_new(cstr_arr_t, n) end
    if have.price then prices = ffi_new("double[?]", n) end
    if have.in_stock ~= nil then stock = ffi_new("int[?]", n) end
    if have.created_at then created = ffi_new("int64_t[?]", n) end
    if have.tags then tags = ffi_new(cstr_arr_t, n) end
    for i = 1, n do
        local r = rows[i]
        if cats then cats[i - 1] = r.category or "" end
        if prices then prices[i - 1] = r.price or 0 end
        if stock then
            local s = r.in_stock
            stock[i - 1] = (s == nil or s == true or (s ~= false and s ~= 0))
                and 1 or 0
        end
        if created then created[i - 1] = r.created_at or 0 end
        if tags then
            local t = r.tags
            if type(t) == "table" then t = table.concat(t, ",") end
            tags[i - 1] = t or ""
        end
    end
    local rc = C.cx_items_upsert(h, n, ids, cats, prices, stock, created, tags)
    if rc ~= 0 then return fail(self, rc) end
    return n
end

function Engine:remove_item(id)
    local h = handle(self)
    local bad = bad_id(id, "item")
    if bad then return nil, bad, _M.EINVAL end
    local rc = C.cx_item_remove(h, id)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

-- {category=, price=, in_stock=, created_at=}
function Engine:item(id)
    local h = handle(self)
    local bad = bad_id(id, "item")
    if bad then return nil, bad, _M.EINVAL end
    local st = ffi_new("int[1]")
    local rc = C.cx_item_get(h, id, out_str, out_d, st, out_i64)
    if rc ~= 0 then return fail(self, rc) end
    return { category = ffi_string(out_str[0]), price = out_d[0],
             in_stock = st[0] ~= 0, created_at = tonumber(out_i64[0]) }
end

-- ------------------------------------------------------------ signals

local function col(t, a, b, c)
    local v = t[a]
    if v == nil and b then v = t[b] end
    if v == nil and c then v = t[c] end
    return v
end

-- ingest(rows) with rows a Lua array of {user=, item=, type=, value=,
-- ts=, channel=}, or ingest{users=, items=, types=, values=, timestamps=,
-- channels=} (parallel arrays).  Types by name or number.  Missing values
-- are 1, missing timestamps now, missing channels "web".  All or nothing.
-- Returns the number of signals ingested.
function Engine:ingest(data)
    local h = handle(self)
    if type(data) ~= "table" then misuse("ingest: expected a table") end
    local users, items, types, values, stamps, chans
    if data.users or data.items or data.types then
        users, items, types = data.users, data.items, data.types
        values, stamps, chans = data.values, data.timestamps, data.channels
        if type(users) ~= "table" or type(items) ~= "table" or
           type(types) ~= "table" then
            misuse("ingest: users, items and types must be lists")
        end
    else
        local n = #data
        users, items, types = {}, {}, {}
        local vs, ss, cs
        for i = 1, n do
            local r = data[i]
            if type(r) ~= "table" then
                misuse(str_format("ingest: row %d is not a table", i))
            end
            users[i] = col(r, "user", "customer", 1)
            items[i] = col(r, "item", 2)
            types[i] = col(r, "type", 3)
            local v, s, c = col(r, "value", 4), col(r, "ts", "timestamp", 5),
                            col(r, "channel", 6)
            if v ~= nil then vs = vs or {}; vs[i] = v end
            if s ~= nil then ss = ss or {}; ss[i] = s end
            if c ~= nil then cs = cs or {}; cs[i] = c end
        end
        values, stamps, chans = vs, ss, cs
    end
    local n = #users
    if #items ~= n or #types ~= n then
        misuse(str_format("ingest: %d users, %d items, %d types", n, #items,
                          #types))
    end
    if n == 0 then return 0 end
    local cu = ffi_new(cstr_arr_t, n)
    local ci = ffi_new(cstr_arr_t, n)
    local ct = ffi_new("int[?]", n)
    local cv = values and ffi_new("float[?]", n)
    local cs = stamps and ffi_new("int64_t[?]", n)
    local cc = chans and ffi_new(cstr_arr_t, n)
    local now = stamps and os.time()
    for i = 1, n do
        local u, it, t = users[i], items[i], types[i]
        if type(u) ~= "string" or type(it) ~= "string" then
            misuse(str_format("ingest: row %d: user and item must be strings",
                              i))
        end
        local j = i - 1
        cu[j], ci[j] = u, it
        local tn, err, rc = self:signal_type(t)
        if not tn then
            return nil, str_format("row %d: %s", i, err), rc
        end
        ct[j] = tn
        if cv then
            local v = values[i]
            if v == nil then v = 1 end
            if type(v) ~= "number" then
                misuse(str_format("ingest: row %d: value must be a number", i))
            end
            cv[j] = v
        end
        if cs then
            local s = stamps[i]
            if s == nil then s = now end
            if type(s) ~= "number" then
                misuse(str_format("ingest: row %d: ts must be a number", i))
            end
            cs[j] = s
        end
        if cc then
            local c = chans[i]
            if c == nil then c = "web" end
            if type(c) ~= "string" then
                misuse(str_format("ingest: row %d: channel must be a string",
                                  i))
            end
            cc[j] = c
        end
    end
    local rc = C.cx_ingest(h, n, cu, ci, ct, cv, cs, cc)
    if rc ~= 0 then return fail(self, rc) end
    return n
end

-- ------------------------------------------------------------ training

-- train() or train{factors=, iterations=, ...}: options are set first.
function Engine:train(options)
    local h = handle(self)
    if options ~= nil then
        if type(options) ~= "table" then misuse("train: options table") end
        for k, v in pairs(options) do
            local ok, err, rc = self:set_option(k, v)
            if not ok then return nil, err, rc end
        end
    end
    local rc = C.cx_train(h, nil, nil)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

-- tune{seconds=, trials=, seed=, k=, split="events"|"items",
-- test_fraction=, validation_fraction=, max_customers=, apply=}: cx_tune.
-- Returns the list of trials (tables with model, factors, regularization,
-- alpha, half_life, blend_als, blend_popular, blend_repeat,
-- blend_cobought, consumable, ndcg, seconds, best), or nil, err.
local TUNE_SPLIT = { items = 0, events = 1 }
function Engine:tune(opts)
    local h = handle(self)
    opts = opts or {}
    if type(opts) ~= "table" then misuse("tune: options table") end
    local o = ffi_new("cx_tune_opts")
    C.cx_tune_opts_init(o)
    for _, f in ipairs({ "seconds", "trials", "seed", "k", "test_fraction",
                         "validation_fraction", "max_customers" }) do
        local v = opts[f]
        if v ~= nil then
            if type(v) ~= "number" or v ~= v or v < 0 then
                misuse("tune: " .. f .. " must be a number >= 0")
            end
            o[f] = v
        end
    end
    if opts.split ~= nil then
        local sp = TUNE_SPLIT[opts.split]
        if not sp then misuse("tune: split must be 'items' or 'events'") end
        o.split = sp
    end
    if opts.apply ~= nil then o.apply = opts.apply and 1 or 0 end
    local cap = (opts.trials and opts.trials > 0) and opts.trials or 4096
    local buf = ffi_new("cx_tune_trial[?]", cap)
    local n = ffi_new("size_t[1]")
    local rc = C.cx_tune(h, o, buf, cap, n)
    if rc ~= 0 then return fail(self, rc) end
    local out = {}
    for i = 0, math.min(tonumber(n[0]), cap) - 1 do
        local t = buf[i]
        out[#out + 1] = {
            model = t.model, factors = t.factors,
            regularization = t.regularization, alpha = t.alpha,
            half_life = t.half_life, blend_als = t.blend_als,
            blend_popular = t.blend_popular, blend_repeat = t.blend_repeat,
            blend_cobought = t.blend_cobought, consumable = t.consumable,
            ndcg = t.ndcg, seconds = t.seconds, best = t.best ~= 0 }
    end
    return out
end

-- ------------------------------------------------------------ serving

-- Fill the shared cx_rec_opts from a Lua table, or return nil for the
-- defaults.  `keep` anchors strings and arrays for the duration of the
-- call.  Fields: category, in_stock_only, allow, deny, exclude (list of
-- types), exact, max_per_category, diversity.
local function fill_opts(self, o, opts, keep)
    C.cx_rec_opts_init(o)
    local v = opts.category
    if v ~= nil then
        if type(v) ~= "string" then misuse("category must be a string", 4) end
        o.category = v
    end
    v = opts.in_stock_only
    if v ~= nil then o.in_stock_only = (v and v ~= 0) and 1 or 0 end
    v = opts.exact
    if v ~= nil then o.exact = (v and v ~= 0) and 1 or 0 end
    v = opts.max_per_category
    if v ~= nil then
        if type(v) ~= "number" or v < 0 or v ~= floor(v) then
            misuse("max_per_category must be an integer >= 0", 4)
        end
        o.max_per_category = v
    end
    v = opts.diversity
    if v ~= nil then
        if type(v) ~= "number" then misuse("diversity must be a number", 4) end
        o.diversity = v
    end
    v = opts.exclude
    if v ~= nil then
        if type(v) ~= "table" then v = { v } end
        local mask = 0
        for _, t in ipairs(v) do
            local tn, err = self:signal_type(t)
            if not tn then return err end
            mask = bit.bor(mask, bit.lshift(1, tn))
        end
        o.exclude = mask
    end
    if opts.allow ~= nil then
        local arr, n = strings(opts.allow, "allow", keep)
        keep[#keep + 1] = arr
        o.allow, o.n_allow = arr, n
    end
    if opts.deny ~= nil then
        local arr, n = strings(opts.deny, "deny", keep)
        keep[#keep + 1] = arr
        o.deny, o.n_deny = arr, n
    end
    return nil
end

local function rec_opts(self, opts, keep)
    if opts == nil then return nil end
    if type(opts) ~= "table" then misuse("opts must be a table", 3) end
    local err = fill_opts(self, opts_buf, opts, keep)
    if err then return nil, err end
    return opts_buf
end

-- The result list: { {item=, score=, reason=}, ... }
local function result_list(items, scores, reasons, n)
    local out = {}
    for i = 0, n - 1 do
        out[i + 1] = { item = ffi_string(items[i]), score = scores[i],
                       reason = REASONS[reasons[i]] }
    end
    return out
end

-- The rules of opts as a cx_rec_opts (nil for the defaults), and the Lua
-- values it points into, which the caller keeps alive across the call.
local function opts_for(self, opts)
    if opts == nil then return nil, nil end
    local keep = {}
    local o, err = rec_opts(self, opts, keep)
    return o, keep, err
end

-- A ranking call keyed by one id (a customer or an item); out(items,
-- scores, reasons, n, what, id) makes its answer from the buffers.
local function id_call(fname, what, out)
    return function(self, id, k, opts)
        local h = handle(self)
        local bad = bad_id(id, what)
        if bad then return nil, bad, _M.EINVAL end
        k = check_k(k, 10)
        local o, keep, err = opts_for(self, opts)
        if err then return nil, err, _M.ENOTFOUND end
        local it, sc, re = results(k)
        local rc = C[fname](h, id, k, o, it, sc, re, out_n)
        keep = nil -- alive until here
        if rc ~= 0 then return fail(self, rc) end
        return out(it, sc, re, tonumber(out_n[0]), what, id)
    end
end

-- recommend(user, k = 10, opts): top-k items; unknown users get popular
-- items (reason "popular").
Engine.recommend = id_call("cx_recommend", "user", result_list)

-- similar_items(item, k = 10, opts): items by cosine similarity.
Engine.similar_items = id_call("cx_similar_items", "item", result_list)

-- recommend_session(signals, k, opts): signals a list of item ids, or of
-- {item=, type=, value=} / {item, type, value}; type defaults to "view".
function Engine:recommend_session(signals, k, opts)
    local h = handle(self)
    if type(signals) ~= "table" then
        misuse("recommend_session: signals must be a list")
    end
    k = check_k(k, 10)
    local n = #signals
    local ci, ct, cv
    if n > 0 then
        ci = ffi_new(cstr_arr_t, n)
        ct = ffi_new("int[?]", n)
        for i = 1, n do
            local s = signals[i]
            local item, t, v
            if type(s) == "string" then
                item = s
            elseif type(s) == "table" then
                item, t, v = col(s, "item", 1), col(s, "type", 2),
                             col(s, "value", 3)
            end
            if type(item) ~= "string" then
                misuse(str_format("recommend_session: signal %d needs an item",
                                  i))
            end
            ci[i - 1] = item
            local tn, err, rc = self:signal_type(t == nil and "view" or t)
            if not tn then return nil, str_format("signal %d: %s", i, err), rc end
            ct[i - 1] = tn
            if v ~= nil then
                if type(v) ~= "number" then
                    misuse(str_format("signal %d: value must be a number", i))
                end
                if not cv then
                    cv = ffi_new("float[?]", n)
                    for j = 0, n - 1 do cv[j] = 1 end
                end
                cv[i - 1] = v
            end
        end
    end
    local o, keep, err = opts_for(self, opts)
    if err then return nil, err, _M.ENOTFOUND end
    local it, sc, re = results(k)
    local rc = C.cx_recommend_session(h, n, ci, ct, cv, k, o, it, sc, re,
                                      out_n)
    keep = nil -- alive until here
    if rc ~= 0 then return fail(self, rc) end
    local _ = signals -- anchor the id strings until here
    return result_list(it, sc, re, tonumber(out_n[0]))
end

local function list_call(fname)
    return function(self, k, opts)
        local h = handle(self)
        k = check_k(k, 10)
        local o, keep, err = opts_for(self, opts)
        if err then return nil, err, _M.ENOTFOUND end
        local it, sc, re = results(k)
        local rc = C[fname](h, k, o, it, sc, re, out_n)
        keep = nil -- alive until here
        if rc ~= 0 then return fail(self, rc) end
        return result_list(it, sc, re, tonumber(out_n[0]))
    end
end
Engine.trending = list_call("cx_trending")
Engine.popular = list_call("cx_popular")
Engine.new_arrivals = list_call("cx_new_arrivals")

-- ------------------------------------------------------------ layouts

local function row_title(kind, seed)
    if kind == "for_you" then return "For you"
    elseif kind == "because" then return "Because you liked " .. seed
    elseif kind == "continue" then return "Continue shopping"
    elseif kind == "bought_together" then
        return "Bought together with " .. seed
    elseif kind == "trending" then
        return seed and ("Trending in " .. seed) or "Trending now"
    elseif kind == "new" then
        return seed and ("New in " .. seed) or "New arrivals"
    else return "Top picks in " .. tostring(seed) end
end

local function int_field(v, name, lo, hi)
    if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
        misuse(str_format("layout: %s must be an integer %d..%d", name, lo,
                          hi), 4)
    end
    return v
end

local function layout_bufs()
    if not rows_buf then
        rows_buf = ffi_new("cx_layout_row[?]", MAX_ROWS)
        litems_buf = ffi_new("cx_layout_item[?]", MAX_ROWS * MAX_PER_ROW)
    end
end

-- The page for `user` into rows_buf/litems_buf; returns the row count, or
-- nil, err, code.  spec as for layout().
local function layout_call(self, user, spec)
    local h = handle(self)
    local bad = bad_id(user, "user")
    if bad then return nil, bad, _M.EINVAL end
    layout_bufs()
    local s = spec_buf
    C.cx_layout_spec_init(s)
    local keep
    if spec ~= nil then
        if type(spec) ~= "table" then misuse("layout: spec must be a table", 3) end
        keep = {}
        if spec.max_rows ~= nil then
            s.max_rows = int_field(spec.max_rows, "max_rows", 1, MAX_ROWS)
        end
        if spec.items_per_row ~= nil then
            s.items_per_row = int_field(spec.items_per_row, "items_per_row",
                                        1, MAX_PER_ROW)
        end
        if spec.min_row ~= nil then
            s.min_row = int_field(spec.min_row, "min_row", 0, MAX_PER_ROW)
        end
        if spec.kinds ~= nil then
            local mask = 0
            for _, k in ipairs(spec.kinds) do
                local n = ROW_KIND_NUM[k]
                if not n then misuse("layout: unknown row kind " .. tostring(k), 3) end
                mask = bit.bor(mask, bit.lshift(1, n))
            end
            s.kinds = mask
        end
        if spec.per_kind ~= nil then
            for k, v in pairs(spec.per_kind) do
                local n = ROW_KIND_NUM[k]
                if not n then misuse("layout: unknown row kind " .. tostring(k), 3) end
                s.per_kind[n] = int_field(v, "per_kind", 0, MAX_ROWS)
            end
        end
        if spec.channel ~= nil then
            if type(spec.channel) ~= "string" then
                misuse("layout: channel must be a string", 3)
            end
            s.channel = spec.channel
        end
        if spec.now ~= nil then s.now = int_field(spec.now, "now", 0, 2^53) end
        if spec.rules ~= nil then
            if type(spec.rules) ~= "table" then misuse("layout: rules table", 3) end
            local err = fill_opts(self, s.rules, spec.rules, keep)
            if err then return nil, err, _M.ENOTFOUND end
            s.rules.size = ffi.sizeof("cx_rec_opts")
        end
    end
    local rc = C.cx_layout(h, user, s, rows_buf, MAX_ROWS, litems_buf,
                           MAX_ROWS * MAX_PER_ROW, out_n)
    local _ = keep
    if rc ~= 0 then return fail(self, rc) end
    return tonumber(out_n[0])
end

-- layout(user, spec): rows {title, kind, seed, fit, items = {{item, score,
-- reason}}}, best first.  spec fields (all optional): max_rows,
-- items_per_row, min_row, kinds (list of kind names), per_kind ({kind =
-- n}), channel, now, and rules (the opts of recommend, but category).
function Engine:layout(user, spec)
    local nr, err, code = layout_call(self, user, spec)
    if not nr then return nil, err, code end
    local out = {}
    for r = 0, nr - 1 do
        local row = rows_buf[r]
        local kind = ROW_KINDS[row.kind]
        local seed = row.seed ~= nil and ffi_string(row.seed) or nil
        local its = {}
        local first = tonumber(row.first)
        for j = 0, tonumber(row.count) - 1 do
            local li = litems_buf[first + j]
            its[j + 1] = { item = ffi_string(li.item), score = li.score,
                           reason = REASONS[li.reason] }
        end
        out[r + 1] = { title = row_title(kind, seed), kind = kind,
                       seed = seed, fit = row.fit, items = its }
    end
    return out
end

-- JSON text out of the result buffers (for layout_json).
local json_buf
local u8_ptr = ffi.typeof("const uint8_t *")
local JSON_ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b',
                   ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
                   ['\t'] = '\\t' }
local function json_esc_char(c)
    return JSON_ESC[c] or str_format("\\u%04x", c:byte())
end
-- Whether the n bytes at p need no escape in a JSON string (a byte loop
-- the JIT compiles, where string.find with a class would stop it).
local function json_clean(p, n)
    for j = 0, n - 1 do
        local c = p[j]
        if c < 32 or c == 34 or c == 92 or c == 127 then return false end
    end
    return true
end
-- A string as JSON, quotes included: bytes >= 0x80 as they are (ids are
-- whatever the shop gave, as cjson does).
local function put_str(b, s)
    if not json_clean(ffi_cast(u8_ptr, s), #s) then
        s = s:gsub('[%c"\\]', json_esc_char)
    end
    b:put('"', s, '"')
end
-- A float as JSON: 9 significant digits give a float back exactly; NaN
-- and infinities (which JSON has not) as null.
local function put_num(b, x)
    if x ~= x or x == huge or x == -huge then b:put("null")
    else b:putf("%.9g", x) end
end

-- items[0..n) (cx_layout_item) as a JSON array, written by the library
-- straight into b's reserved space (in Lua it was about 15% of an nginx
-- worker's time per page).
local function put_items(b, its, n)
    local p, room = b:reserve(n * 96 + 2)
    local len = C.cx_layout_items_json(its, n, p, room)
    if len > room then  -- long or escaped ids
        p, room = b:reserve(len)
        len = C.cx_layout_items_json(its, n, p, room)
    end
    b:commit(len)
end

local function json_buffer(fn)
    if not json_buf then
        local ok, buffer = pcall(require, "string.buffer")
        if not ok then
            misuse(fn .. " needs LuaJIT's string.buffer (LuaJIT 2.1 of "
                   .. "2021 or later)", 3)
        end
        json_buf = buffer.new(8192)
    end
    json_buf:reset()
    return json_buf
end

-- layout_json(user, spec): the same page as layout() as a JSON text,
-- {"user":..,"rows":[{"title","kind","seed" (null when none),"fit",
-- "items":[{"item","score","reason"}]}]}, written straight from the C
-- buffers (no Lua tables): what an HTTP handler sends.  Needs LuaJIT's
-- string.buffer (LuaJIT 2.1 since 2021, OpenResty's luajit2).
function Engine:layout_json(user, spec)
    local b = json_buffer("layout_json")
    local nr, err, code = layout_call(self, user, spec)
    if not nr then return nil, err, code end
    b:put('{"user":')
    put_str(b, user)
    b:put(',"rows":[')
    for r = 0, nr - 1 do
        local row = rows_buf[r]
        local kind = ROW_KINDS[row.kind]
        local seed = row.seed ~= nil and ffi_string(row.seed) or nil
        b:put(r > 0 and ',{"title":' or '{"title":')
        put_str(b, row_title(kind, seed))
        b:put(',"kind":"', kind, '","seed":')
        if seed then put_str(b, seed) else b:put("null") end
        b:put(',"fit":')
        put_num(b, row.fit)
        b:put(',"items":')
        put_items(b, litems_buf + row.first, row.count)
        b:put("}")
    end
    b:put("]}")
    return b:tostring()
end

-- A ranking call's answer as JSON text, {"<what>":<id>,"items":[{"item",
-- "score","reason"}]}: the result buffers as layout items, written by
-- the library as a page's are.
local list_items, list_cap = nil, 0
local function list_json(it, sc, re, n, what, id)
    local b = json_buffer(what == "user" and "recommend_json"
                          or "similar_json")
    if n > list_cap then
        list_cap = n > 64 and n or 64
        list_items = ffi_new("cx_layout_item[?]", list_cap)
    end
    for j = 0, n - 1 do
        local li = list_items[j]
        li.item, li.score, li.reason = it[j], sc[j], re[j]
    end
    b:put('{"', what, '":')
    put_str(b, id)
    b:put(',"items":')
    put_items(b, list_items, n)
    b:put("}")
    return b:tostring()
end

-- recommend_json(user, k = 10, opts) and similar_json(item, k = 10,
-- opts): the answers of recommend and similar_items as JSON text,
-- {"user" (or "item"):..,"items":[{"item","score","reason"}]}, for HTTP
-- handlers (no Lua tables, no cjson; string.buffer as layout_json).
Engine.recommend_json = id_call("cx_recommend", "user", list_json)
Engine.similar_json = id_call("cx_similar_items", "item", list_json)

-- ------------------------------------------------------------ customers

-- profile(user, now = 0): {stage, first_seen, last_seen, signals,
-- by_type = {name = n}, by_channel = {name = n}, categories = {{category,
-- share}}, avg_price, price_level}
function Engine:profile(user, now)
    local h = handle(self)
    local bad = bad_id(user, "user")
    if bad then return nil, bad, _M.EINVAL end
    if now ~= nil and type(now) ~= "number" then misuse("now must be a number") end
    local p = prof_buf
    ffi.fill(p, ffi.sizeof(p))
    p.size = ffi.sizeof(p)
    local rc = C.cx_profile_get(h, user, now or 0, p)
    if rc ~= 0 then return fail(self, rc) end
    local by_type = {}
    for t = 0, 31 do
        local c = p.by_type[t]
        if c ~= 0 then
            local name = C.cx_signal_type_name(h, t)
            by_type[name ~= nil and ffi_string(name) or t] = tonumber(c)
        end
    end
    local by_channel = {}
    for j = 0, tonumber(p.n_channels) - 1 do
        by_channel[ffi_string(p.channel[j])] = tonumber(p.by_channel[j])
    end
    local cats = {}
    for j = 0, tonumber(p.n_categories) - 1 do
        cats[j + 1] = { category = ffi_string(p.category[j]),
                        share = p.category_share[j] }
    end
    return { stage = ffi_string(C.cx_stage_name(p.stage)),
             first_seen = tonumber(p.first_seen),
             last_seen = tonumber(p.last_seen),
             signals = tonumber(p.signals), by_type = by_type,
             by_channel = by_channel, categories = cats,
             avg_price = p.avg_price, price_level = p.price_level }
end

-- explain(user, item, n = 10): {score =, because = {{item, contrib}}}
function Engine:explain(user, item, n)
    local h = handle(self)
    local bad = bad_id(user, "user") or bad_id(item, "item")
    if bad then return nil, bad, _M.EINVAL end
    n = n or 10
    if type(n) ~= "number" or n < 0 or n ~= floor(n) or n > MAX_K then
        misuse("explain: n must be an integer >= 0")
    end
    local m = n > 0 and n or 1
    local its = ffi_new(cstr_arr_t, m)
    local contrib = ffi_new("float[?]", m)
    local rc = C.cx_explain(h, user, item, n, its, contrib, out_n, out_f)
    if rc ~= 0 then return fail(self, rc) end
    local because = {}
    for i = 0, tonumber(out_n[0]) - 1 do
        because[i + 1] = { item = ffi_string(its[i]), contrib = contrib[i] }
    end
    return { score = out_f[0], because = because }
end

-- ------------------------------------------------------------ experiments

-- define_experiment(name, {{"a", 0.5}, {"b", 0.5}}) or {a = 1, b = 1}
-- (a map is taken in sorted name order, for determinism).
function Engine:define_experiment(name, variants)
    local h = handle(self)
    if type(name) ~= "string" or type(variants) ~= "table" then
        misuse("define_experiment(name, variants)")
    end
    local pairs_ = {}
    if #variants > 0 then
        for i, v in ipairs(variants) do pairs_[i] = v end
    else
        local names = {}
        for k in pairs(variants) do names[#names + 1] = k end
        table.sort(names)
        for i, k in ipairs(names) do pairs_[i] = { k, variants[k] } end
    end
    local n = #pairs_
    local names = ffi_new(cstr_arr_t, n > 0 and n or 1)
    local shares = ffi_new("double[?]", n > 0 and n or 1)
    for i, v in ipairs(pairs_) do
        if type(v[1]) ~= "string" or type(v[2]) ~= "number" then
            misuse("define_experiment: variants are {name, share}")
        end
        names[i - 1], shares[i - 1] = v[1], v[2]
    end
    local rc = C.cx_experiment_define(h, name, n, names, shares)
    if rc ~= 0 then return fail(self, rc) end
    local _ = pairs_
    return true
end

-- variant(experiment, user, count_exposure = true)
function Engine:variant(experiment, user, count_exposure)
    local h = handle(self)
    if type(experiment) ~= "string" then misuse("experiment must be a string") end
    local bad = bad_id(user, "user")
    if bad then return nil, bad, _M.EINVAL end
    local rc = C.cx_variant(h, experiment, user,
                            count_exposure == false and 0 or 1, out_str)
    if rc ~= 0 then return fail(self, rc) end
    return ffi_string(out_str[0])
end

function Engine:exposures(experiment, variant)
    local h = handle(self)
    if type(experiment) ~= "string" or type(variant) ~= "string" then
        misuse("exposures(experiment, variant)")
    end
    local rc = C.cx_exposures(h, experiment, variant, out_i64)
    if rc ~= 0 then return fail(self, rc) end
    return tonumber(out_i64[0])
end

local function override_key(key)
    if type(key) == "number" then return key end
    local k = OVERRIDES[key] or OPTIONS[key]
    if not k then misuse("unknown override " .. tostring(key), 3) end
    return k
end

function Engine:set_override(experiment, variant, key, value)
    local h = handle(self)
    if type(experiment) ~= "string" or type(variant) ~= "string" or
       type(value) ~= "number" then
        misuse("set_override(experiment, variant, key, number)")
    end
    local rc = C.cx_variant_set(h, experiment, variant, override_key(key),
                                value)
    if rc ~= 0 then return fail(self, rc) end
    return true
end

-- override(experiment, variant, key): the value, or nil, err, ENOTFOUND
function Engine:override(experiment, variant, key)
    local h = handle(self)
    if type(experiment) ~= "string" or type(variant) ~= "string" then
        misuse("override(experiment, variant, key)")
    end
    local rc = C.cx_variant_get(h, experiment, variant, override_key(key),
                                out_d)
    if rc ~= 0 then return fail(self, rc) end
    return out_d[0]
end

-- ------------------------------------------------------------ stats

-- stats(): {customers, items, signals, generation, factors,
-- model_customers, model_items, memory, folded_customers, folded_items,
-- training}; stats("generation") for one.
function Engine:stats(name)
    local h = handle(self)
    if name ~= nil then
        for i, nm in ipairs(STATS) do
            if nm == name then
                local rc = C.cx_stat(h, i, out_i64)
                if rc ~= 0 then return fail(self, rc) end
                return tonumber(out_i64[0])
            end
        end
        misuse("unknown stat " .. tostring(name))
    end
    local out = {}
    for i, nm in ipairs(STATS) do
        local rc = C.cx_stat(h, i, out_i64)
        if rc ~= 0 then return fail(self, rc) end
        out[nm] = tonumber(out_i64[0])
    end
    return out
end

-- For benchmarks: the raw C call on the shared buffers, no Lua result.
function Engine:_layout_raw(user)
    layout_bufs()
    return C.cx_layout(self.h, user, nil, rows_buf, MAX_ROWS, litems_buf,
                       MAX_ROWS * MAX_PER_ROW, out_n)
end

function Engine:_recommend_raw(user, k)
    local it, sc, re = results(k)
    return C.cx_recommend(self.h, user, k, nil, it, sc, re, out_n)
end

return _M
