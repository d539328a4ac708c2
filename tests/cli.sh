#!/bin/sh
# cli.sh -- the cxengine program end to end: gen, import (good and
# malformed CSV), train, recommend, similar, trending, popular,
# new-arrivals, session, explain, profile, eval, export, info.
# usage: tests/cli.sh path/to/cxengine
set -u
CLI=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { # expect DESCRIPTION COMMAND... : command must succeed
    d=$1; shift
    if "$@" >"$T/out" 2>"$T/err"; then ok; else no "$d (exit $?)"; cat "$T/err"; fi
}
has() { # has FILE PATTERN DESCRIPTION
    if grep -q -- "$2" "$1"; then ok; else no "$3: '$2' not in $1"; cat "$1"; fi
}
stat_of() { "$CLI" info "$1" | awk -v k="$2" '$1 == k { print $2 }'; }

# --- generate, import, train, serve
expect "gen" "$CLI" gen --signals 20000 --seed 7 "$T/shop"
has "$T/out" "signals" "gen summary"
expect "import" "$CLI" import --items "$T/shop/items.csv" --signals "$T/shop/signals.csv" "$T/e.cxe"
has "$T/out" "20[0-9]* signals imported, 0 rows rejected" "import count"
rows=$(($(wc -l < "$T/shop/signals.csv") - 1))
[ "$(stat_of "$T/e.cxe" signals)" = "$rows" ] && ok || no "signal count $(stat_of "$T/e.cxe" signals) != $rows"
expect "train" "$CLI" train --factors 16 --iterations 5 "$T/e.cxe"
has "$T/err" "iteration  5/5" "train progress"
[ "$(stat_of "$T/e.cxe" generation)" = "1" ] && ok || no "generation after train"
cust=$(sed -n 2p "$T/shop/signals.csv" | cut -d, -f1)
item=$(sed -n 2p "$T/shop/signals.csv" | cut -d, -f2)
expect "recommend" "$CLI" recommend -k 5 "$T/e.cxe" "$cust"
[ "$(grep -c 'personal' "$T/out")" = 5 ] && ok || no "5 personal recommendations"
expect "recommend unknown" "$CLI" recommend -k 3 "$T/e.cxe" nobody-at-all
[ "$(grep -c 'popular' "$T/out")" = 3 ] && ok || no "unknown customer gets popular"
expect "similar" "$CLI" similar -k 4 "$T/e.cxe" "$item"
[ "$(grep -c 'similar' "$T/out")" = 4 ] && ok || no "4 similar items"
"$CLI" similar "$T/e.cxe" no-such-item >/dev/null 2>"$T/err" && no "unknown item must fail" || ok
has "$T/err" "unknown item" "unknown item message"
# --- explanations and profiles
top=$("$CLI" recommend -k 1 "$T/e.cxe" "$cust" | awk 'NR == 2 { print $2 }')
expect "explain" "$CLI" explain "$T/e.cxe" "$cust" "$top"
has "$T/out" "because of" "explain header"
[ "$(grep -c '%)' "$T/out")" -ge 1 ] && ok || no "explain lists contributions"
"$CLI" explain "$T/e.cxe" nobody-at-all "$top" >/dev/null 2>"$T/err" && no "explain unknown customer must fail" || ok
expect "profile" "$CLI" profile "$T/e.cxe" "$cust"
grep -Eq "^$cust: (browsing|considering|purchased|loyal|lapsed)," "$T/out" && ok || no "profile stage"
expect "profile of a stranger" "$CLI" profile "$T/e.cxe" nobody-at-all
has "$T/out" "nobody-at-all: new, 0 signals" "a stranger is new"
# --- home pages
expect "layout" "$CLI" layout "$T/e.cxe" "$cust" nobody-at-all
has "$T/out" "home page of $cust" "layout header"
has "$T/out" "home page of nobody-at-all (new)" "a new visitor's page"
[ "$(grep -c ' fit ' "$T/out")" -ge 3 ] && ok || no "layout rows"
awk '/home page of nobody/ { g = 1 } g && / fit / && !/Trending|New|Top picks/ { bad = 1 } END { exit bad }' "$T/out" && ok || no "a new visitor gets only trending, new and category rows"
# --- offline replay of an experiment
expect "replay" "$CLI" replay "$T/e.cxe" home control:1 diverse:1:diversity=0.5 capped:2:cap=2:k=5
has "$T/out" "experiment home" "replay header"
awk '$1 == "k" && $2 == 10 && $3 == 10 && $4 == 5 { ok = 1 } END { exit !ok }' "$T/out" && ok || no "replay applies the k override"
awk '$1 == "customers" { s = $2 + $3 + $4 } END { exit !(s > 0) }' "$T/out" && ok || no "replay counts customers"
"$CLI" replay "$T/e.cxe" home control >/dev/null 2>&1 && no "replay needs VARIANT:SHARE" || ok
"$CLI" replay "$T/e.cxe" home a:1:colour=red >/dev/null 2>&1 && no "unknown override must fail" || ok
# a training override: the same customers (one variant takes everyone)
# score differently with views weighted 0
expect "replay plain" "$CLI" replay "$T/e.cxe" w2 a:1
awk '$1 == "ndcg" { print $2 }' "$T/out" > "$T/ndcg_plain"
expect "replay weights" "$CLI" replay "$T/e.cxe" w2 a:1:weight.view=0
awk '$1 == "ndcg" { print $2 }' "$T/out" > "$T/ndcg_w0"
[ -s "$T/ndcg_plain" ] && ! cmp -s "$T/ndcg_plain" "$T/ndcg_w0" && ok || no "replay applies a weight override"
"$CLI" replay "$T/e.cxe" w2 a:1:weight.nosuchtype=1 >/dev/null 2>&1 && no "unknown signal type in an override must fail" || ok
"$CLI" replay "$T/e.cxe" w2 a:1:factors=0 >/dev/null 2>&1 && no "out-of-range option override must fail" || ok
# --- lists and anonymous sessions
expect "trending" "$CLI" trending -k 5 "$T/e.cxe"
[ "$(grep -c ' trending$' "$T/out")" = 5 ] && ok || no "5 trending items"
awk '/score/ { print $(NF-1) }' "$T/out" | sort -g -r -c && ok || no "trending scores descend"
expect "popular" "$CLI" popular -k 4 "$T/e.cxe"
[ "$(grep -c ' popular$' "$T/out")" = 4 ] && ok || no "4 popular items"
expect "new arrivals" "$CLI" new-arrivals -k 5 "$T/e.cxe"
[ "$(grep -c ' new$' "$T/out")" = 5 ] && ok || no "5 new arrivals"
awk '/score/ { print $(NF-1) }' "$T/out" | sort -g -c && ok || no "new arrivals youngest first"
"$CLI" trending "$T/e.cxe" extra >/dev/null 2>&1 && no "trending takes no ids" || ok
expect "session" "$CLI" session -k 5 "$T/e.cxe" "$item:purchase" "$item"
[ "$(grep -c ' personal$' "$T/out")" = 5 ] && ok || no "session gets 5 personal items"
grep -q " $item " "$T/out" && no "session item recommended back" || ok
"$CLI" session "$T/e.cxe" "$item:nosuchtype" >/dev/null 2>"$T/err" && no "bad session type must fail" || ok
has "$T/err" "unknown signal type" "bad session type message"
expect "eval" "$CLI" eval --factors 16 --iterations 5 "$T/e.cxe"
has "$T/out" "ndcg@10" "eval prints ndcg"
has "$T/out" "popularity" "eval prints the baseline"
has "$T/out" "untuned" "eval prints the engine with tuning off"
has "$T/out" "95% bootstrap" "eval prints intervals"
expect "eval events" "$CLI" eval --split events --bootstrap 50 --blend-repeat 2 --iterations 5 "$T/e.cxe"
has "$T/out" "time split (events)" "eval --split events"
"$CLI" eval --split days "$T/e.cxe" >/dev/null 2>&1 && no "bad --split must fail" || ok
cp "$T/e.cxe" "$T/t.cxe"
expect "tune" "$CLI" tune --trials 10 --iterations 3 "$T/t.cxe"
has "$T/out" "<- best" "tune marks the best trial"
has "$T/out" "10 trials" "tune runs its trial budget"
"$CLI" tune --trials 0 --seconds 0 "$T/t.cxe" >/dev/null 2>"$T/err" && no "tune without a budget must fail" || ok
has "$T/err" "no budget" "tune budget message"
expect "export" "$CLI" export "$T/e.cxe" "$T/npy"
for f in customer_factors.npy item_factors.npy customer_ids.txt item_ids.txt; do
    [ -s "$T/npy/$f" ] && ok || no "export wrote $f"
done
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    n_items=$(wc -l < "$T/npy/item_ids.txt")
    if /usr/bin/python3 -c "
import numpy as np, sys
y = np.load('$T/npy/item_factors.npy', mmap_mode='r')
assert y.dtype == np.float32 and y.shape == ($n_items, 16), (y.dtype, y.shape)
assert np.isfinite(y).all() and abs(y).sum() > 0
"; then ok; else no "numpy reads item_factors.npy"; fi
fi

# --- malformed CSV: every bad row is named by line, good rows land
cat > "$T/bad.csv" <<'CSV'
customer,item,type,value,timestamp,channel
c1,i1,view,1,1767225600,web
c1,i2,teleport,1,1767225600,web
c2,i1,purchase,2,1767225700,app
c2,i3,view,abc,1767225700,app
c3,i2,view,1,1767225800
c3,i4,view,-5,1767225800,web
c4,i1,view,nan,1767225800,web
,i1,view,1,1767225800,web
c5,i5,rating,4,1767225900,store
c6,"i6,with comma",click,1,1767225900,web
c7,i7,view,1,yesterday,web
c8,"i8,view,1,1767226000,web
CSV
"$CLI" import --signals "$T/bad.csv" "$T/bad.cxe" >"$T/out" 2>"$T/err"
[ $? -eq 3 ] && ok || no "import with bad rows exits 3"
for l in 3 5 6 7 8 9 12 13; do has "$T/err" "bad.csv:$l:" "line $l reported"; done
has "$T/err" "teleport" "unknown type named"
for l in 2 4 10 11; do
    if grep -q "bad.csv:$l:" "$T/err"; then no "good line $l reported as bad"; else ok; fi
done
[ "$(stat_of "$T/bad.cxe" signals)" = 4 ] && ok || no "4 good rows kept, got $(stat_of "$T/bad.cxe" signals)"
"$CLI" import --strict --signals "$T/bad.csv" "$T/strict.cxe" >/dev/null 2>&1
[ $? -eq 1 ] && ok || no "--strict fails"
[ ! -e "$T/strict.cxe" ] && ok || no "--strict writes nothing"
printf 'who,what\nx,y\n' > "$T/nohdr.csv"
"$CLI" import --signals "$T/nohdr.csv" "$T/n.cxe" >/dev/null 2>"$T/err" && no "bad header accepted" || ok
has "$T/err" "must name customer, item and type" "header message"

# --- a data directory: import creates it (a path ending in '/'), train
# writes a generation in place, and the reading commands open it
# read-only (beside a writer)
"$CLI" gen --signals 3000 "$T/dshop" >/dev/null
"$CLI" import --items "$T/dshop/items.csv" --signals "$T/dshop/signals.csv" \
    "$T/dd/" >/dev/null && ok || no "import into a new data directory"
[ -f "$T/dd/cx.db" ] && ok || no "the directory has its database"
"$CLI" train --factors 8 --iterations 2 --threads 1 -q "$T/dd" >/dev/null &&
    ok || no "train a directory"
[ "$(stat_of "$T/dd" generation)" = 1 ] && ok || no "generation 1"
"$CLI" train --factors 8 --iterations 2 --threads 1 -q "$T/dd" >/dev/null
[ "$(stat_of "$T/dd" generation)" = 2 ] && ok || no "train again: generation 2"
[ -d "$T/dd/snapshots/g0000000002" ] && ok || no "generation 2 on disk"
[ "$(stat_of "$T/dd" signals)" = "$(stat_of "$T/dd/" signals)" ] && ok ||
    no "a trailing slash names the same directory"
"$CLI" recommend -k 3 "$T/dd" c0000001 | grep -q personal && ok ||
    no "recommend from a directory"

# --- a corrupt engine file is refused with a message
head -c 100 "$T/e.cxe" > "$T/trunc.cxe"
"$CLI" info "$T/trunc.cxe" >/dev/null 2>"$T/err" && no "truncated file accepted" || ok
has "$T/err" "truncated\|corrupt" "truncation message"
"$CLI" bogus >/dev/null 2>&1; [ $? -eq 2 ] && ok || no "unknown command exits 2"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
