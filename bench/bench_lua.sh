#!/bin/sh
# bench_lua.sh -- nginx + Lua binding under wrk, and the FFI overhead.
#   sh bench/bench_lua.sh            (after make lib tools)
# Builds a 20k-item shop (2M signals, 64 factors) as a data directory,
# starts nginx with 2 workers on 127.0.0.1 (both on the directory,
# read-only with signals), runs wrk for $DURATION s against /recommend and
# /layout, and times from LuaJIT recommend (binding vs raw ffi call) and
# the cx_refresh a worker makes when another one has posted signals.
# Prints figures next to the targets; never fails on them.  The wrk
# figures also go to $BENCH_JSON (build/bench/bench_lua.json).
# Env: DURATION (10), CONNS ("8 32": wrk runs at each count of
# connections; p99 grows with the queue), SIGNALS (2000000), BENCH_DIR (a
# temp dir), CXENGINE_CLI, CXENGINE_LIB (another build).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLI=${CXENGINE_CLI:-$ROOT/build/cxengine}
LIB=${CXENGINE_LIB:-$ROOT/build/libcxengine.so}
DURATION=${DURATION:-10}
CONNS=${CONNS:-8 32}
BENCH_JSON=${BENCH_JSON:-$ROOT/build/bench/bench_lua.json}
SIGNALS=${SIGNALS:-2000000}
DIR=${BENCH_DIR:-$(mktemp -d /tmp/cxbench_lua.XXXXXX)}
NGINX_PID=
cleanup() {
    [ -z "$NGINX_PID" ] || nginx_stop
    [ -z "${BENCH_DIR:-}" ] && rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

ENGINE=$DIR/data
if [ ! -f "$ENGINE/cx.db" ]; then
    echo "building the shop ($SIGNALS signals, 64 factors)..."
    [ -f "$DIR/shop/signals.csv" ] ||
        "$CLI" gen --signals "$SIGNALS" "$DIR/shop" >/dev/null
    "$CLI" import --items "$DIR/shop/items.csv" \
        --signals "$DIR/shop/signals.csv" "$ENGINE/" >/dev/null &&
    "$CLI" train --factors 64 --iterations 3 "$ENGINE" >/dev/null 2>&1 ||
        { echo "cannot build the shop"; exit 0; }
fi
"$CLI" info "$ENGINE" | sed -n '/^items\|^customers\|^factors/p'
NCUST=$("$CLI" info "$ENGINE" | awk '$1 == "customers" { print $2 }')

# ------------------------------------------------------------- FFI cost
echo
echo "LuaJIT FFI overhead per recommend call (k=10, one thread):"
CXENGINE_LIB=$LIB ENGINE=$ENGINE NCUST=$NCUST luajit -e '
package.path = "'"$ROOT"'/bindings/lua/?.lua;" .. package.path
local cx = require "cxengine"
local ffi = require "ffi"
local e = assert(cx.open(os.getenv("ENGINE"), cx.OPEN_READONLY))
local ncust = tonumber(os.getenv("NCUST"))
local users = {}
for i = 1, 1000 do users[i] = string.format("c%07d", (i * 7919) % ncust) end
local N = 20000
local function clock() return os.clock() end
local function run(f, n)
    n = n or N
    for i = 1, n / 10 do f(users[i % 1000 + 1]) end    -- warm up, JIT
    local best = math.huge
    for rep = 1, 3 do
        local t = clock()
        for i = 1, n do f(users[i % 1000 + 1]) end
        best = math.min(best, (clock() - t) / n * 1e6)
    end
    return best
end
io.stdout:setvbuf("line")
local raw = run(function(u) return e:_recommend_raw(u, 10) end)
local full = run(function(u) return e:recommend(u, 10) end)
print(string.format("  raw ffi call   %8.2f us", raw))
print(string.format("  e:recommend    %8.2f us   (binding overhead %.2f us: ids to Lua strings, result tables)", full, full - raw))
-- an unknown customer: the cheap popular-list path shows the binding cost
local function runu(f)
    local n = N
    for i = 1, 2000 do f("nobody") end
    local best = math.huge
    for rep = 1, 5 do
        local t = clock()
        for i = 1, N do f("nobody") end
        best = math.min(best, (clock() - t) / n * 1e6)
    end
    return best
end
io.stdout:setvbuf("line")
local rawp = runu(function(u) return e:_recommend_raw(u, 10) end)
local fullp = runu(function(u) return e:recommend(u, 10) end)
print(string.format("  popular path: raw %.2f us, e:recommend %.2f us (overhead %.2f us)", rawp, fullp, fullp - rawp))
local lraw = run(function(u) return e:_layout_raw(u) end, 500)
local rl = run(function(u) return e:layout(u) end, 500)
local rj = run(function(u) return e:layout_json(u) end, 500)
print(string.format("  layout: raw ffi call %.2f us, e:layout %.2f us (Lua tables), e:layout_json %.2f us (JSON text)", lraw, rl, rj))
-- What a worker pays before answering when another worker has posted:
-- cx_refresh with nothing new, and with one new signal to bring in.
local a = assert(cx.open(os.getenv("ENGINE"), cx.OPEN_READONLY + cx.OPEN_SIGNALS))
ffi.cdef("struct cx_ts { long s, ns; }; int clock_gettime(int, struct cx_ts *);")
local ts = ffi.new("struct cx_ts")
local function wall()
    ffi.C.clock_gettime(1, ts)   -- CLOCK_MONOTONIC
    return tonumber(ts.s) + tonumber(ts.ns) * 1e-9
end
local function timed(f, n)
    local t = wall()
    for i = 1, n do f(i) end
    return (wall() - t) / n * 1e6
end
local idle = timed(function() assert(e:refresh()) end, 2000)
local fresh, n1 = 0, 200
for i = 1, n1 do
    assert(a:ingest({ { user = users[i % 1000 + 1], item = "i000002",
                        type = "view" } }))
    local t = wall()
    assert(e:refresh())
    fresh = fresh + (wall() - t)
end
print(string.format("  refresh, nothing new        %8.2f us", idle))
print(string.format("  refresh, one new signal     %8.2f us (another engine ingested it)",
                    fresh / n1 * 1e6))
a:close()
' || echo "  (luajit failed)"

# ------------------------------------------------------------- nginx
. "$ROOT/examples/openresty/start.sh"
nginx_start "$ROOT" "$DIR" "$LIB" "$ENGINE" 2
i=0
while [ $i -lt 200 ]; do
    curl -sf --max-time 2 "http://127.0.0.1:$PORT/health" >/dev/null && break
    sleep 0.1; i=$((i + 1))
done

JSON=
bench() { # bench NAME PATH TARGET_RPS CONNECTIONS
    cat > "$DIR/wrk.lua" <<EOF
math.randomseed(42)
request = function()
    local u = string.format("c%07d", math.random(0, $NCUST - 1))
    return wrk.format("GET", "$2" .. u)
end
EOF
    out=$(wrk -t2 -c"$4" -d"${DURATION}s" --latency -s "$DIR/wrk.lua" \
        "http://127.0.0.1:$PORT" 2>&1)
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
    p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
    p50=$(echo "$out" | awk '$1 == "50%" { print $2 }')
    non2xx=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
    printf "  %-10s -c%-3s %10s req/s (target >= %s)   p50 %-8s p99 %-8s (target <= 5ms)%s\n" \
        "$1" "$4" "${rps:-?}" "$3" "${p50:-?}" "${p99:-?}" \
        "${non2xx:+   non-2xx: $non2xx}"
    JSON="$JSON${JSON:+,}
  {\"endpoint\": \"$1\", \"connections\": $4, \"rps\": ${rps:-null}, \"p50\": \"${p50:-?}\", \"p99\": \"${p99:-?}\", \"non2xx\": ${non2xx:-0}}"
}
# Warm up: each worker builds the blend's statistics after its open, and
# the first requests would wait for them.
for p in "/recommend?k=10&user=c0000001" "/layout?user=c0000001"; do
    wrk -t1 -c2 -d1s "http://127.0.0.1:$PORT$p" >/dev/null 2>&1
done
echo
echo "nginx, 2 workers, wrk -t2 -d${DURATION}s on 127.0.0.1 (wrk shares the $(nproc) cores):"
for c in $CONNS; do
    bench /recommend "/recommend?k=10&user=" 10000 "$c"
    bench /layout "/layout?user=" 3000 "$c"
done
mkdir -p "$(dirname "$BENCH_JSON")" &&
    printf '{"bench": "lua", "duration_s": %s, "workers": 2, "wrk": [%s\n]}\n' \
        "$DURATION" "$JSON" > "$BENCH_JSON" &&
    echo "wrote $BENCH_JSON"
