#!/bin/sh
# nginx.sh -- integration test of examples/openresty: nginx + ngx_http_lua +
# bindings/lua/cxengine.lua, two workers on one data directory, against
# the CLI's answers; the trainer (`cxengine train DIR`) runs while they
# serve.
#   sh tests/nginx.sh        (from the repository root, after make lib tools;
#                             CXENGINE_CLI / CXENGINE_LIB name other builds)
# Needs: nginx libnginx-mod-http-lua luajit2 lua-cjson curl python3.
# Prints "nginx: N passed, N failed"; exits 1 on failure.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLI=${CXENGINE_CLI:-$ROOT/build/cxengine}
LIB=${CXENGINE_LIB:-$ROOT/build/libcxengine.so}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
DIR=$(mktemp -d /tmp/cxnginx.XXXXXX)
PASS=0
FAIL=0
NGINX_PID=

ok()   { PASS=$((PASS + 1)); }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }
check() { # check NAME COND-EXIT-STATUS
    if [ "$2" -eq 0 ]; then ok; else bad "$1"; fi
}

cleanup() {
    [ -z "$NGINX_PID" ] || nginx_stop
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

for f in "$CLI" "$LIB" /usr/lib/nginx/modules/ngx_http_lua_module.so; do
    if [ ! -e "$f" ]; then
        echo "nginx: missing $f (make lib tools; apt-get install nginx libnginx-mod-http-lua)" >&2
        echo "nginx: 0 passed, 1 failed"
        exit 1
    fi
done

# ------------------------------------------------------------------ shop
# The data directory: imported and trained by the CLI; the workers open it
# read-only (with signals), the CLI's reading commands too.
ENGINE=$DIR/data
TRAIN="--factors 16 --iterations 3 --threads 1"
"$CLI" gen --signals 20000 "$DIR/shop" >/dev/null &&
"$CLI" import --items "$DIR/shop/items.csv" --signals "$DIR/shop/signals.csv" \
    "$ENGINE/" >/dev/null &&
"$CLI" train $TRAIN "$ENGINE" >"$DIR/train.log" 2>&1
check "build the data directory with the CLI" $?
NSIG=$("$CLI" info "$ENGINE" | awk '$1 == "signals" { print $2 }')

# ------------------------------------------------------------------ nginx
. "$ROOT/examples/openresty/start.sh"
nginx_start "$ROOT" "$DIR" "$LIB" "$ENGINE" 2
BASE=http://127.0.0.1:$PORT

# get URL -> $STATUS, body in $DIR/body, headers in $DIR/headers
get() {
    STATUS=$(curl -s --max-time 5 -D "$DIR/headers" -o "$DIR/body" \
        -w '%{http_code}' "$@")
}
post() { # post PATH BODYFILE
    STATUS=$(curl -s --max-time 5 -D "$DIR/headers" -o "$DIR/body" \
        -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$2" "$BASE$1")
}
# py EXPR: python expression over d = the JSON body, printed
py() {
    $PY -c "import json,sys; d=json.load(open('$DIR/body')); r=($1); print(r if not isinstance(r, list) else ' '.join(map(str, r)))" 2>/dev/null
}
is_json() { $PY -c "import json; json.load(open('$DIR/body'))" 2>/dev/null; }
worker() { tr -d '\r' < "$DIR/headers" | sed -n 's/^X-CX-Worker: //ip'; }

i=0
STATUS=000
while [ $i -lt 100 ]; do
    get "$BASE/health"
    [ "$STATUS" = 200 ] && break
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1; i=$((i + 1))
done
if [ "$STATUS" != 200 ]; then
    bad "nginx did not come up (status $STATUS)"
    cat "$DIR/logs/error.log" "$DIR/logs/stdout.log" >&2 2>/dev/null
    echo "nginx: $PASS passed, $FAIL failed"
    exit 1
fi
ok
[ "$(py 'd["generation"]')" = 1 ] && [ "$(py 'd["signals"]')" = "$NSIG" ]
check "/health reports the model" $?

# health_all: /health until both workers answered (at most 40 requests);
# "pid generation signals" per worker in $DIR/health.all
health_all() {
    : > "$DIR/health.all"
    _i=0
    while [ $_i -lt 40 ]; do
        get "$BASE/health"
        [ "$STATUS" = 200 ] && py '"%d %d %d" % (d["worker"], d["generation"], d["signals"])' >> "$DIR/health.all"
        [ "$(sort -u "$DIR/health.all" | awk '{ print $1 }' | sort -u | wc -l)" -ge 2 ] && break
        _i=$((_i + 1))
    done
}
health_all
PIDS=$(awk '{ print $1 }' "$DIR/health.all" | sort -u | tr '\n' ' ')
[ $(echo $PIDS | wc -w) -eq 2 ] &&
    [ "$(awk '{ print $2 }' "$DIR/health.all" | sort -u)" = 1 ]
check "both workers serve generation 1 (workers: $PIDS)" $?

# The snapshot's files are mapped shared: the workers' Pss of them is
# about half their Rss (each page counted once between the two).
rss=0; pss=0
for p in $PIDS; do
    set -- $(awk '/^[0-9a-f]+-[0-9a-f]+ / { inmap = index($0, "/snapshots/g") > 0 }
        inmap && $1 == "Rss:" { r += $2 } inmap && $1 == "Pss:" { s += $2 }
        END { print r + 0, s + 0 }' "/proc/$p/smaps" 2>/dev/null)
    rss=$((rss + ${1:-0})); pss=$((pss + ${2:-0}))
done
echo "nginx: snapshot mappings of the 2 workers: Rss $rss kB, Pss $pss kB"
[ $rss -gt 0 ] && [ $((pss * 10)) -le $((rss * 6)) ]
check "the workers share the snapshot's pages (Rss $rss kB, Pss $pss kB)" $?

# ------------------------------------------------------------------ vs CLI
cli_items() { # the item column of the CLI's ranked lists
    "$@" | awk '$1 ~ /^[0-9]+\.$/ { printf "%s%s", sep, $2; sep=" " } END { print "" }'
}
for c in c0000003 c0000010 c0000042; do
    want=$(cli_items "$CLI" recommend -k 5 "$ENGINE" "$c")
    get "$BASE/recommend?user=$c&k=5"
    got=$(py '[x["item"] for x in d["items"]]')
    [ "$STATUS" = 200 ] && [ -n "$want" ] && [ "$got" = "$want" ]
    check "/recommend $c: got '$got', CLI '$want'" $?
done
CAT=$(sed -n 2p "$DIR/shop/items.csv" | cut -d, -f2)
want=$(cli_items "$CLI" recommend -k 4 --category "$CAT" "$ENGINE" c0000003)
get "$BASE/recommend?user=c0000003&k=4&category=$CAT"
got=$(py '[x["item"] for x in d["items"]]')
[ "$STATUS" = 200 ] && [ "$got" = "$want" ]
check "/recommend with category: '$got' vs '$want'" $?

# popular items have vectors (an item without one gets "category" lists)
ITEM=$(cli_items "$CLI" popular -k 1 "$ENGINE")
ITEM2=$(cli_items "$CLI" trending -k 9 "$ENGINE" | awk '{ print $9 }')
want=$(cli_items "$CLI" similar -k 5 "$ENGINE" "$ITEM")
get "$BASE/similar?item=$ITEM&k=5"
got=$(py '[x["item"] for x in d["items"]]')
[ "$STATUS" = 200 ] && [ "$got" = "$want" ] &&
    [ "$(py 'd["items"][0]["reason"]')" = similar ]
check "/similar $ITEM: '$got' vs '$want'" $?

want=$(cli_items "$CLI" session -k 5 "$ENGINE" "$ITEM" "$ITEM2")
get "$BASE/session/recommend?items=$ITEM,$ITEM2&k=5"
got=$(py '[x["item"] for x in d["items"]]')
[ "$STATUS" = 200 ] && [ "$got" = "$want" ]
check "/session/recommend: '$got' vs '$want'" $?

want=$(cli_items "$CLI" popular -k 5 "$ENGINE")
get "$BASE/recommend?user=nobody-at-all&k=5"
got=$(py '[x["item"] for x in d["items"]]')
[ "$STATUS" = 200 ] && [ "$got" = "$want" ] &&
    [ "$(py 'd["items"][0]["reason"]')" = popular ]
check "unknown user gets popular items: '$got' vs '$want'" $?

# layout: the CLI prints 6 items per row
"$CLI" layout "$ENGINE" c0000003 | awk 'NR > 1 {
    split($0, a, ": "); t = a[1]; sub(/^ +/, "", t); sub(/ +fit [0-9.]+$/, "", t);
    print t "|" a[2] }' > "$DIR/layout.cli"
get "$BASE/layout?user=c0000003&per_row=6"
$PY -c "
import json
d = json.load(open('$DIR/body'))
for r in d['rows']:
    print(r['title'] + '|' + ' '.join(x['item'] for x in r['items']))
" > "$DIR/layout.http" 2>/dev/null
[ "$STATUS" = 200 ] && [ -s "$DIR/layout.cli" ] &&
    cmp -s "$DIR/layout.cli" "$DIR/layout.http"
check "/layout c0000003 matches the CLI's rows" $?
get "$BASE/layout?user=c0000003&channel=app"
[ "$STATUS" = 200 ] && [ "$(py 'len(d["rows"]) > 0 and all(r["items"] and r["kind"] and r["items"][0]["reason"] for r in d["rows"])')" = True ]
check "/layout with channel" $?
[ "$(py 'all(set(r) == {"title", "kind", "seed", "fit", "items"} and (r["seed"] is None or isinstance(r["seed"], str)) and (r["seed"] is None or r["kind"] not in ("for_you", "continue")) and all(set(x) == {"item", "score", "reason"} for x in r["items"]) for r in d["rows"])')" = True ]
check "/layout rows: title, kind, seed (a string, or null as for_you's), fit, items" $?
get "$BASE/layout?user=new-visitor"
[ "$STATUS" = 200 ] && [ "$(py 'len(d["rows"]) > 0')" = True ]
check "/layout for a new visitor" $?

# ------------------------------------------------------------------ signals
# Read-your-writes: the next answer reflects a posted signal whichever
# worker gives it (no wait: a worker refreshes when the shared counter
# moved).
get "$BASE/recommend?user=c0000003&k=5"
TOP=$(py 'd["items"][0]["item"]')
printf '[{"user":"c0000003","item":"%s","type":"purchase","channel":"app"}]' \
    "$TOP" > "$DIR/sig.json"
post /signals "$DIR/sig.json"
[ "$STATUS" = 200 ] && [ "$(py 'd["accepted"]')" = 1 ]
check "POST /signals accepted" $?
WORKERS=
stale=0
i=0
while [ $i -lt 40 ]; do
    get "$BASE/recommend?user=c0000003&k=5"
    [ "$STATUS" = 200 ] || stale=$((stale + 1))
    py '[x["item"] for x in d["items"]]' | tr ' ' '\n' | grep -qx "$TOP" &&
        stale=$((stale + 1))
    w=$(worker)
    case " $WORKERS " in *" $w "*) ;; *) WORKERS="$WORKERS $w" ;; esac
    i=$((i + 1))
    [ $i -ge 10 ] && [ $(echo $WORKERS | wc -w) -ge 2 ] && break
done
[ $stale -eq 0 ]
check "a posted purchase drops $TOP on every worker at once ($stale stale answers)" $?
[ $(echo $WORKERS | wc -w) -ge 2 ]
check "requests reached both workers (saw:$WORKERS)" $?
health_all
[ "$(awk '{ print $3 }' "$DIR/health.all" | sort -u)" = $((NSIG + 1)) ]
check "every worker has the signal (/health signals)" $?

# a new customer by signals: personal recommendations everywhere, at once
printf '[{"user":"web-new \\"q\\" \\u00e9","item":"%s","type":"add_to_cart"},{"user":"web-new \\"q\\" \\u00e9","item":"%s","type":"view","value":2,"ts":1772000000}]' \
    "$ITEM" "$ITEM2" > "$DIR/sig2.json"
post /signals "$DIR/sig2.json"
[ "$STATUS" = 200 ]
check "POST /signals with a quoted UTF-8 id" $?
good=1; i=0
while [ $i -lt 8 ]; do
    get "$BASE/recommend?user=web-new%20%22q%22%20%C3%A9&k=3"
    [ "$STATUS" = 200 ] && [ "$(py 'd["user"] == "web-new \"q\" \u00e9" and d["items"][0]["reason"] == "personal"')" = True ] || good=0
    i=$((i + 1))
done
[ $good = 1 ]
check "new customer with a quoted id is personal on every worker" $?
# the signals are in the directory: the CLI (a fresh reader) agrees
[ "$("$CLI" info "$ENGINE" | awk '$1 == "signals" { print $2 }')" = $((NSIG + 3)) ]
check "the posted signals are in the data directory" $?

# ------------------------------------------------------------------ trainer
# `cxengine train DIR` while nginx serves: it trains on the posted signals
# too, and both workers switch to the new generation by themselves.
( i=0; while [ $i -lt 200 ]; do
      curl -s --max-time 5 -o /dev/null "$BASE/layout?user=c00000$((i % 90 + 10))"
      i=$((i + 1)); done ) &
LOAD=$!
"$CLI" train $TRAIN "$ENGINE" >"$DIR/train2.log" 2>&1
check "the trainer ran beside the workers" $?
grep -q "trained on $((NSIG + 3)) signals" "$DIR/train2.log"
check "the trainer included the posted signals ($(tail -1 "$DIR/train2.log"))" $?
t0=$(date +%s)
switched=0
while [ $(($(date +%s) - t0)) -lt 15 ]; do
    health_all
    if [ "$(awk '{ print $2 }' "$DIR/health.all" | sort -u)" = 2 ] &&
       [ $(awk '{ print $1 }' "$DIR/health.all" | sort -u | wc -l) -eq 2 ]; then
        switched=1; break
    fi
    sleep 0.2
done
echo "nginx: both workers on generation 2 after $(($(date +%s) - t0)) s"
[ $switched = 1 ]
check "both workers switch to generation 2 within 15 s" $?
wait $LOAD
for c in c0000010 c0000042; do
    want=$(cli_items "$CLI" recommend -k 5 "$ENGINE" "$c")
    same=1; i=0
    while [ $i -lt 6 ]; do
        get "$BASE/recommend?user=$c&k=5"
        [ "$STATUS" = 200 ] && [ "$(py '[x["item"] for x in d["items"]]')" = "$want" ] || same=0
        i=$((i + 1))
    done
    [ $same = 1 ] && [ -n "$want" ]
    check "/recommend $c on generation 2 matches the CLI" $?
done
get "$BASE/recommend?user=c0000003&k=5"
! py '[x["item"] for x in d["items"]]' | tr ' ' '\n' | grep -qx "$TOP"
check "the purchase still excludes $TOP after the switch" $?

# ------------------------------------------------------------------ hostile
expect() { # expect NAME STATUS [json-expr]
    if [ "$STATUS" = "$2" ] && is_json; then ok; else
        bad "$1: status $STATUS (want $2): $(head -c 200 "$DIR/body")"; fi
}
get "$BASE/health"; SIGS=$(py 'd["signals"]')

printf '[{"user":"a",' > "$DIR/h.json"; post /signals "$DIR/h.json"
expect "truncated JSON" 400
printf 'not json at all' > "$DIR/h.json"; post /signals "$DIR/h.json"
expect "not JSON" 400
printf '{"user":"a","item":"b","type":"view"}' > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "object instead of array" 400
printf '[]' > "$DIR/h.json"; post /signals "$DIR/h.json"
expect "empty array" 400
printf '[{"user":5,"item":"b","type":"view"}]' > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "numeric user" 400
printf '[{"user":"a","item":"b","type":"view","value":"x"}]' > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "string value" 400
printf '[{"user":"a","item":"b","type":"teleport"}]' > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "unknown type" 400
printf '[{"user":null,"item":"b","type":"view"}]' > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "null user" 400
printf '[1,2,3]' > "$DIR/h.json"; post /signals "$DIR/h.json"
expect "array of numbers" 400
printf '[{"user":"a","item":"b","type":"view","ts":1.5}]' > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "fractional ts" 400
# valid row then a rating the library refuses: nothing may be applied
printf '[{"user":"a1","item":"%s","type":"view"},{"user":"a1","item":"%s","type":"rating","value":9}]' \
    "$ITEM" "$ITEM2" > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "rating out of range (library check)" 400
$PY -c "
import json
print(json.dumps([{'user': 'u%d' % i, 'item': 'i1', 'type': 'view'} for i in range(1001)]))
" > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "1001 signals" 400
$PY -c "
import json
print(json.dumps([{'user': 'x' * 100000, 'item': 'i1', 'type': 'view'}]))
" > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "100 KB id in a signal" 400
printf '[{"user":"a\\u0000b","item":"i1","type":"view"}]' > "$DIR/h.json"
post /signals "$DIR/h.json"; expect "NUL in an id" 400
get "$BASE/health"
[ "$(py 'd["signals"]')" = "$SIGS" ]
check "rejected batches applied nothing ($SIGS signals)" $?

get "$BASE/similar?item=no-such-item"; expect "unknown item" 404
get "$BASE/recommend?user=c0000003&category=no-such-cat"
expect "unknown category" 404
get "$BASE/recommend"; expect "missing user" 400
get "$BASE/recommend?user=c0000003&k=0"; expect "k=0" 400
get "$BASE/recommend?user=c0000003&k=101"; expect "k=101" 400
get "$BASE/recommend?user=c0000003&k=abc"; expect "k=abc" 400
get "$BASE/recommend?user=c0000003&k=100"; expect "k=100" 200
get "$BASE/recommend?user=a&user=b"; expect "user twice" 400
get "$BASE/recommend?user=%FF%FE"; expect "invalid UTF-8 id" 400
LONG=$(head -c 600 /dev/zero | tr '\0' 'x')
get "$BASE/recommend?user=$LONG"; expect "600-byte id" 400
HUGE=$(head -c 100000 /dev/zero | tr '\0' 'x')
get "$BASE/recommend?user=$HUGE"
case $STATUS in 400|414) ok ;; *) bad "100 KB id in the URL: $STATUS" ;; esac
get "$BASE/similar?item=%22%27%3C%3E%5C&k=3"; expect "quotes in an item id" 404
get "$BASE/session/recommend?items=no,such,items&k=3"
expect "session of unknown items" 200
get "$BASE/session/recommend?items=$LONG"; expect "session overlong id" 400
get "$BASE/layout?user=c0000003&per_row=0"; expect "per_row=0" 400
get -X POST "$BASE/recommend?user=c0000003"; expect "POST /recommend" 405
get "$BASE/signals"; expect "GET /signals" 405
get "$BASE/nowhere"; expect "unknown endpoint" 404

i=0; alive=1
while [ $i -lt 6 ]; do
    get "$BASE/recommend?user=c0000003&k=3"
    [ "$STATUS" = 200 ] || alive=0
    i=$((i + 1))
done
[ $alive = 1 ] && kill -0 "$NGINX_PID" 2>/dev/null
check "server still serving after the hostile requests" $?
if grep -q "\[alert\]\|\[crit\]\|\[emerg\]\|exited on signal" "$DIR/logs/error.log"; then
    bad "error.log has alerts: $(grep -m3 'alert\|crit\|emerg\|exited on signal' "$DIR/logs/error.log")"
else ok; fi

# ------------------------------------------------------------------ stop
if nginx_stop; then ok; else bad "nginx did not stop"; fi

echo "nginx: $PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
