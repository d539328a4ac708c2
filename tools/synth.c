/* synth.c -- the synthetic shop: catalogue, customers with planted tastes,
 * and a time-ordered stream of behavioural signals drawn from them. */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400
#define HIST 4          /* purchases remembered per customer for re-buys */
#define MAX_VIEWS 8
#define PILOT 2000      /* sessions simulated to learn the mean session size */

/* ---------------------------------------------------------------- PRNG */

/* xoshiro256** seeded through splitmix64: fast, and its output is fixed by
 * the algorithm, so the same seed gives the same shop on every platform
 * (up to libm rounding in the few floating-point transforms). */
typedef struct rng { uint64_t s[4]; } rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

static double rng_u01(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform in [0, n) for 0 < n <= 2^32 (Lemire's multiply-shift; the bias
 * is below 2^-32 for the sizes used here). */
static uint32_t rng_below(rng *r, uint64_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * n) >> 32);
}

static double rng_normal(rng *r)
{
    double u = 1.0 - rng_u01(r), v = rng_u01(r);   /* u in (0,1] for log */
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Index of the first cdf[i] > u * total: a draw proportional to weights
 * whose running sums are cdf[0..n-1]. */
static size_t cdf_pick(const double *cdf, size_t n, double u)
{
    double x = u * cdf[n - 1];
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > x) hi = mid; else lo = mid + 1;
    }
    return lo;
}

static void *alloc_n(size_t n, size_t size)
{
    if (n == 0) n = 1;
    return n > SIZE_MAX / size ? NULL : calloc(n, size);
}

/* ---------------------------------------------------------- generator */

typedef struct pending { synth_signal s; uint64_t seq; } pending;
typedef struct bought { uint32_t item, toff; } bought;

/* What the session loop asks of an item, packed apart from synth_item so
 * that the hot loop touches 24 bytes per item rather than 144. */
typedef struct fact {
    int64_t created_at;
    float rel_price;        /* price / category price level */
    uint32_t cat;
    int in_stock;
} fact;

typedef struct gen {
    const synth_config *c;
    synth_shop *shop;
    rng r;
    int64_t t_end;
    /* catalogue indexes */
    size_t *cat_start;      /* n_categories + 1 offsets into cat_items */
    uint32_t *cat_items;    /* items grouped by category, in popularity rank */
    double *cat_cdf;        /* running Zipf weights parallel to cat_items */
    double *pop_cdf;        /* categories by global popularity */
    double *fav_cdf;        /* categories by how often they are a favourite */
    double *level;          /* category price level */
    fact *facts;            /* n_items */
    /* customers */
    uint32_t *plan;         /* shuffled customer of each planned session */
    size_t n_plan, next_plan;
    bought *hist;           /* n_customers x HIST ring of past purchases */
    uint32_t *n_hist;
    /* time: running weight of each hour of the period */
    double *time_cdf;
    size_t n_hours;
    /* output: a heap of signals not yet final, then the sorted array */
    pending *heap;
    size_t n_heap, cap_heap, cap_out;
    uint64_t seq;
    size_t made;            /* signals kept so far (emitted + pending) */
    int dry;                /* pilot run: count signals, keep nothing */
} gen;

static int config_ok(const synth_config *c)
{
    /* The bounds keep indexes in uint32 and times in a uint32 offset. */
    return c && c->n_customers >= 1 && c->n_customers <= UINT32_MAX &&
           c->n_items >= 1 && c->n_items < UINT32_MAX &&
           c->n_categories >= 1 && c->n_categories <= c->n_items &&
           c->taste_strength >= 0 && c->taste_strength <= 1 &&
           c->repeat_rate >= 0 && c->repeat_rate <= 1 &&
           c->bestseller_skew >= 0 && c->bestseller_skew <= 20 &&
           c->days >= 1 && c->days <= 36500 &&
           c->max_views >= 0 && c->max_views <= MAX_VIEWS &&
           c->start_time > INT64_MIN / 2 && c->start_time < INT64_MAX / 2;
}

void synth_config_default(synth_config *c, size_t n_signals)
{
    size_t items = n_signals / 100;
    if (items < 200) items = 200;
    if (items > 100000) items = 100000;
    size_t cats = (size_t)(sqrt((double)items) / 2);
    if (cats < 5) cats = 5;
    if (cats > 200) cats = 200;
    memset(c, 0, sizeof *c);
    c->seed = 1;
    c->n_customers = n_signals / 40 < 10 ? 10 : n_signals / 40;
    c->n_items = items;
    c->n_categories = cats;
    c->n_signals = n_signals;
    c->taste_strength = 0.8;
    c->repeat_rate = 0.05;
    c->bestseller_skew = 1.0;
    c->start_time = 1767225600;
    c->days = 90;
    c->max_views = MAX_VIEWS;
}

static size_t clamp(size_t v, size_t lo, size_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int synth_config_regime(synth_config *c, int regime, size_t n_signals)
{
    synth_config_default(c, n_signals);
    switch (regime) {
    case SYNTH_REGIME_DEFAULT:
        return 0;
    case SYNTH_REGIME_GROCERY:
        c->n_items = clamp(n_signals / 500, 150, 3000);
        c->n_categories = clamp(c->n_items / 25, 5, 60);
        c->n_customers = clamp(n_signals / 60, 10, SIZE_MAX);
        c->repeat_rate = 0.6;
        c->taste_strength = 0.6;
        c->bestseller_skew = 1.2;
        return 0;
    case SYNTH_REGIME_SPARSE:
        c->n_items = clamp(n_signals / 15, 200, 200000);
        c->n_categories = clamp((size_t)(sqrt((double)c->n_items) / 2), 5, 200);
        c->n_customers = clamp(n_signals / 5, 10, SIZE_MAX);
        c->max_views = 1;       /* one item per visit, as reviews come */
        c->repeat_rate = 0.0;
        c->taste_strength = 0.5;
        c->bestseller_skew = 0.6;
        return 0;
    case SYNTH_REGIME_TASTE:
        c->taste_strength = 0.97;
        c->bestseller_skew = 0.6;
        c->repeat_rate = 0.02;
        return 0;
    case SYNTH_REGIME_BESTSELLER:
        c->taste_strength = 0.3;
        c->bestseller_skew = 2.2;
        return 0;
    }
    return -1;
}

const char *synth_regime_name(int regime)
{
    static const char *const name[] = { "default", "grocery", "sparse",
                                        "taste", "bestseller" };
    return regime >= 0 && regime < SYNTH_REGIMES ? name[regime] : NULL;
}

/* ---------------------------------------------------------- catalogue */

static const char *const tag_pool[] = {
    "eco", "sale", "new", "premium", "gift", "bundle", "organic", "local"
};

static int ndigits(size_t n)
{
    int d = 1;
    while (n >= 10) { n /= 10; d++; }
    return d;
}

static void make_tags(gen *g, char *out)
{
    /* 0-3 distinct tags: none is the most common case. */
    double u = rng_u01(&g->r);
    int n = u < 0.45 ? 0 : u < 0.75 ? 1 : u < 0.92 ? 2 : 3;
    unsigned used = 0;
    size_t len = 0;
    out[0] = '\0';
    while (n > 0) {
        uint32_t t = rng_below(&g->r, sizeof tag_pool / sizeof *tag_pool);
        if (used & (1u << t)) continue;
        used |= 1u << t;
        len += (size_t)sprintf(out + len, "%s%s", len ? "," : "", tag_pool[t]);
        n--;
    }
}

/* Category sizes vary (log-normal weights); every category gets an item,
 * then assignments are shuffled so ids say nothing about categories. */
static int assign_categories(gen *g, uint32_t *item_cat)
{
    size_t k = g->c->n_categories, n = g->c->n_items;
    double *w = alloc_n(k, sizeof *w);
    if (!w) return -1;
    for (size_t i = 0; i < k; i++)
        w[i] = (i ? w[i - 1] : 0) + exp(0.5 * rng_normal(&g->r));
    for (size_t i = 0; i < n; i++)
        item_cat[i] = (uint32_t)(i < k ? i : cdf_pick(w, k, rng_u01(&g->r)));
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_below(&g->r, i + 1);
        uint32_t t = item_cat[i]; item_cat[i] = item_cat[j]; item_cat[j] = t;
    }
    free(w);
    return 0;
}

/* Group items by category (counting sort), shuffle each group into a
 * random popularity rank, and lay Zipf weights over the ranks. */
static void rank_items(gen *g, const uint32_t *item_cat)
{
    size_t k = g->c->n_categories, n = g->c->n_items;
    size_t *start = g->cat_start;
    for (size_t i = 0; i < n; i++) start[item_cat[i] + 1]++;
    for (size_t i = 0; i < k; i++) start[i + 1] += start[i];
    for (size_t i = 0; i < n; i++) {
        /* cat_start[c] is used as a fill cursor and restored below */
        g->cat_items[start[item_cat[i]]++] = (uint32_t)i;
    }
    for (size_t i = k; i > 0; i--) start[i] = start[i - 1];
    start[0] = 0;
    for (size_t c = 0; c < k; c++) {
        uint32_t *it = g->cat_items + start[c];
        size_t m = start[c + 1] - start[c];
        for (size_t i = m - 1; i > 0; i--) {
            size_t j = rng_below(&g->r, i + 1);
            uint32_t t = it[i]; it[i] = it[j]; it[j] = t;
        }
        double sum = 0;
        for (size_t i = 0; i < m; i++) {
            sum += pow((double)(i + 1), -g->c->bestseller_skew);
            g->cat_cdf[start[c] + i] = sum;
        }
    }
}

static void make_categories(gen *g)
{
    size_t k = g->c->n_categories;
    double pop = 0, fav = 0;
    for (size_t c = 0; c < k; c++) {
        /* Typical prices from a couple of units to a few hundred. */
        g->level[c] = exp(3.0 + 0.9 * rng_normal(&g->r));
        double p = (double)(g->cat_start[c + 1] - g->cat_start[c]) *
                   exp(0.5 * rng_normal(&g->r));
        pop += p;
        /* Favourites follow popularity only loosely, so taste is not just
         * a restatement of the bestseller list. */
        fav += sqrt(p);
        g->pop_cdf[c] = pop;
        g->fav_cdf[c] = fav;
    }
}

static void make_item(gen *g, size_t i, uint32_t cat, int iw, int cw)
{
    synth_item *it = &g->shop->items[i];
    int64_t period = (int64_t)g->c->days * DAY;
    snprintf(it->id, sizeof it->id, "i%0*u", iw, (unsigned)i);  /* i < 2^32 */
    snprintf(it->category, sizeof it->category, "cat%0*u", cw, (unsigned)cat);
    it->cat = cat;
    double p = g->level[cat] * exp(0.4 * rng_normal(&g->r));
    it->price = p < 0.1 ? 0.1 : floor(p * 100 + 0.5) / 100;
    it->in_stock = rng_u01(&g->r) < 0.95;
    if (rng_u01(&g->r) < 0.05)
        it->created_at = g->c->start_time + (int64_t)rng_below(&g->r, (uint64_t)period);
    else
        it->created_at = g->c->start_time - 1 - (int64_t)rng_below(&g->r, 365 * DAY);
    make_tags(g, it->tags);
    fact *f = &g->facts[i];
    f->created_at = it->created_at;
    f->rel_price = (float)(it->price / g->level[cat]);
    f->cat = cat;
    f->in_stock = it->in_stock;
}

static int make_catalogue(gen *g)
{
    size_t n = g->c->n_items, k = g->c->n_categories;
    uint32_t *item_cat = alloc_n(n, sizeof *item_cat);
    if (!item_cat || assign_categories(g, item_cat)) {
        free(item_cat);
        return -1;
    }
    rank_items(g, item_cat);
    make_categories(g);
    int iw = ndigits(n - 1) < 6 ? 6 : ndigits(n - 1);
    int cw = ndigits(k - 1) < 2 ? 2 : ndigits(k - 1);
    for (size_t i = 0; i < n; i++)
        make_item(g, i, item_cat[i], iw, cw);
    free(item_cat);
    return 0;
}

/* ---------------------------------------------------------- customers */

static uint32_t second_favourite(gen *g, uint32_t f0)
{
    size_t k = g->c->n_categories;
    if (k < 2) return f0;
    /* Categories come in departments of five; half the time the second
     * favourite is a neighbour of the first, which plants a category-to-
     * category affinity that item-item methods can find. */
    uint32_t d0 = f0 / 5 * 5, dn = (uint32_t)(k - d0 < 5 ? k - d0 : 5);
    if (dn > 1 && rng_u01(&g->r) < 0.5)
        return d0 + (f0 - d0 + 1 + rng_below(&g->r, dn - 1)) % dn;
    for (int t = 0; t < 16; t++) {
        uint32_t f = (uint32_t)cdf_pick(g->fav_cdf, k, rng_u01(&g->r));
        if (f != f0) return f;
    }
    return (uint32_t)((f0 + 1 + rng_below(&g->r, k - 1)) % k);
}

static void make_tastes(gen *g)
{
    for (size_t c = 0; c < g->c->n_customers; c++) {
        uint32_t f0 = (uint32_t)cdf_pick(g->fav_cdf, g->c->n_categories, rng_u01(&g->r));
        g->shop->fav[2 * c] = f0;
        g->shop->fav[2 * c + 1] = second_favourite(g, f0);
        double u = rng_u01(&g->r);
        g->shop->tier[c] = u < 0.35 ? SYNTH_TIER_BUDGET :
                           u < 0.55 ? SYNTH_TIER_PREMIUM : SYNTH_TIER_NEUTRAL;
    }
}

/* Plan about `sessions` sessions: each customer gets one (if there are
 * enough to go round) plus a heavy-tailed share of the rest, so a few
 * customers are very active and most have one to three sessions. The plan
 * is shuffled so each customer's sessions land at random times. */
static int plan_sessions(gen *g, double sessions)
{
    size_t n = g->c->n_customers;
    double *w = alloc_n(n, sizeof *w), sum = 0;
    if (!w) return -1;
    for (size_t c = 0; c < n; c++) {
        double x = pow(1.0 - rng_u01(&g->r), -1.0 / 1.2) - 1.0;  /* Pareto */
        w[c] = x > 300 ? 300 : x;
        sum += w[c];
    }
    double base = sessions >= (double)n ? 1 : 0;
    double extra = sessions - base * (double)n;
    size_t total = 0;
    for (size_t c = 0; c < n; c++) {
        double k = base + (sum > 0 ? extra * w[c] / sum : 0) + rng_u01(&g->r);
        w[c] = floor(k);       /* stochastic rounding keeps the sum right */
        total += (size_t)w[c];
    }
    g->plan = alloc_n(total, sizeof *g->plan);
    if (!g->plan) { free(w); return -1; }
    for (size_t c = 0, j = 0; c < n; c++)
        for (size_t k = (size_t)w[c]; k > 0; k--) g->plan[j++] = (uint32_t)c;
    for (size_t i = total; i > 1; i--) {
        size_t j = rng_below(&g->r, i);
        uint32_t t = g->plan[i - 1]; g->plan[i - 1] = g->plan[j]; g->plan[j] = t;
    }
    g->n_plan = total;
    free(w);
    return 0;
}

static uint32_t next_customer(gen *g)
{
    if (g->next_plan < g->n_plan) return g->plan[g->next_plan++];
    /* Plan used up (the size estimate was low): draw more sessions with
     * the same activity weights, i.e. from the plan itself. */
    if (g->n_plan) return g->plan[rng_below(&g->r, g->n_plan)];
    return rng_below(&g->r, g->c->n_customers);
}

/* --------------------------------------------------------------- time */

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }

/* Shoppers are busier in the evening and at weekends; sessions are placed
 * through the running weight of each hour of the period. */
static int make_clock(gen *g)
{
    static const double hour_w[24] = {
        0.30, 0.20, 0.15, 0.10, 0.10, 0.15, 0.30, 0.50, 0.70, 0.80, 0.90, 1.00,
        1.10, 1.00, 0.90, 0.90, 1.00, 1.10, 1.30, 1.50, 1.60, 1.40, 1.00, 0.60
    };
    g->n_hours = (size_t)g->c->days * 24;
    g->time_cdf = alloc_n(g->n_hours, sizeof *g->time_cdf);
    if (!g->time_cdf) return -1;
    double sum = 0;
    for (size_t h = 0; h < g->n_hours; h++) {
        int64_t t = g->c->start_time + (int64_t)h * 3600;
        int64_t hod = floor_div(t, 3600) % 24, dow = (floor_div(t, DAY) + 4) % 7;
        if (hod < 0) hod += 24;
        if (dow < 0) dow += 7;
        sum += hour_w[hod] * (dow == 0 || dow == 6 ? 1.25 : 1.0);
        g->time_cdf[h] = sum;
    }
    return 0;
}

/* The time at fraction f (0..1) of the period's shopping activity. */
static int64_t clock_at(const gen *g, double f)
{
    size_t h = cdf_pick(g->time_cdf, g->n_hours, f);
    double lo = h ? g->time_cdf[h - 1] : 0, x = f * g->time_cdf[g->n_hours - 1];
    double frac = (x - lo) / (g->time_cdf[h] - lo);
    if (frac < 0) frac = 0;
    int64_t t = g->c->start_time + (int64_t)h * 3600 + (int64_t)(frac * 3599.0);
    return t < g->t_end ? t : g->t_end - 1;
}

/* ------------------------------------------------------ signal output */

static int before(const pending *a, const pending *b)
{
    return a->s.ts < b->s.ts || (a->s.ts == b->s.ts && a->seq < b->seq);
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap < 64 ? 64 : *cap + *cap / 2;
    if (n < need) n = need;
    if (n > SIZE_MAX / size) return -1;
    void *q = realloc(*p, n * size);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Signals from one session interleave with the next session's and returns
 * come days later, so each new signal waits in a min-heap on (ts, seq)
 * until no later session can produce anything earlier. */
static int emit(gen *g, uint32_t cust, uint32_t item, int type, float value,
                int64_t ts, int ch)
{
    if (ts >= g->t_end) return 0;   /* after the export was cut: unseen */
    g->made++;
    if (g->dry) return 0;
    if (grow((void **)&g->heap, &g->cap_heap, g->n_heap + 1, sizeof *g->heap)) return -1;
    pending e = { { cust, item, type, value, ts, ch }, g->seq++ };
    size_t i = g->n_heap++;
    while (i > 0 && before(&e, &g->heap[(i - 1) / 2])) {
        g->heap[i] = g->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g->heap[i] = e;
    return 0;
}

static void heap_pop(gen *g)
{
    pending last = g->heap[--g->n_heap];
    size_t i = 0, n = g->n_heap;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= n) break;
        if (k + 1 < n && before(&g->heap[k + 1], &g->heap[k])) k++;
        if (!before(&g->heap[k], &last)) break;
        g->heap[i] = g->heap[k];
        i = k;
    }
    if (n) g->heap[i] = last;
}

/* Move every pending signal at or before t into the final array. */
static int flush_until(gen *g, int64_t t)
{
    synth_shop *s = g->shop;
    while (g->n_heap && g->heap[0].s.ts <= t) {
        if (grow((void **)&s->signals, &g->cap_out, s->n_signals + 1, sizeof *s->signals))
            return -1;
        s->signals[s->n_signals++] = g->heap[0].s;
        heap_pop(g);
    }
    return 0;
}

/* ------------------------------------------------------------ sessions */

typedef struct session {
    uint32_t cust;
    uint32_t cat;
    int ch;
    int in_fav;             /* the session's category is a favourite */
    int n_seen;
    uint32_t seen[MAX_VIEWS];
    int64_t seen_t[MAX_VIEWS];
    int n_cart;
    uint32_t cart[MAX_VIEWS];
    int64_t t;              /* the session's clock */
} session;

static int is_fav(const gen *g, uint32_t cust, uint32_t cat)
{
    return g->shop->fav[2 * cust] == cat || g->shop->fav[2 * cust + 1] == cat;
}

static int pick_channel(gen *g)
{
    double u = rng_u01(&g->r);
    return u < 0.55 ? 0 : u < 0.85 ? 1 : u < 0.95 ? 2 : 3;
}

static uint32_t pick_category(gen *g, uint32_t cust)
{
    if (rng_u01(&g->r) < g->c->taste_strength)
        return g->shop->fav[2 * cust + (rng_u01(&g->r) < 0.6 ? 0 : 1)];
    return (uint32_t)cdf_pick(g->pop_cdf, g->c->n_categories, rng_u01(&g->r));
}

/* Does the customer's price tier let this item through? */
static int tier_accepts(gen *g, uint32_t cust, uint32_t item)
{
    float rel = g->facts[item].rel_price;
    int tier = g->shop->tier[cust];
    if ((tier == SYNTH_TIER_BUDGET && rel > 1.15f) ||
        (tier == SYNTH_TIER_PREMIUM && rel < 0.87f))
        return rng_u01(&g->r) < 0.35;
    return 1;
}

/* Draw a bestseller-weighted item of the session's category that exists
 * yet, was not already viewed, and suits the customer's price tier. A few
 * tries, then give up on this view. */
static int pick_item(gen *g, session *ss, uint32_t *out)
{
    size_t a = g->cat_start[ss->cat], m = g->cat_start[ss->cat + 1] - a;
    for (int tries = 0; tries < 4; tries++) {
        uint32_t it = g->cat_items[a + cdf_pick(g->cat_cdf + a, m, rng_u01(&g->r))];
        int dup = 0;
        for (int i = 0; i < ss->n_seen; i++) dup |= ss->seen[i] == it;
        if (dup || g->facts[it].created_at > ss->t) continue;
        if (!tier_accepts(g, ss->cust, it)) continue;
        *out = it;
        return 1;
    }
    return 0;
}

static float quantity(gen *g)
{
    double u = rng_u01(&g->r);
    return u < 0.80 ? 1.0f : u < 0.95 ? 2.0f : 3.0f;
}

static void remember(gen *g, uint32_t cust, uint32_t item, int64_t ts)
{
    if (g->dry) return;
    bought *h = &g->hist[(size_t)cust * HIST + g->n_hist[cust]++ % HIST];
    h->item = item;
    h->toff = (uint32_t)(ts - g->c->start_time);
}

/* One viewed item: view, maybe a click, maybe into the cart. */
static int browse(gen *g, session *ss)
{
    uint32_t it;
    if (!pick_item(g, ss, &it)) return 0;
    ss->seen[ss->n_seen] = it;
    ss->seen_t[ss->n_seen++] = ss->t;
    if (emit(g, ss->cust, it, SYNTH_VIEW, 1, ss->t, ss->ch)) return -1;
    int64_t t = ss->t;
    int click = rng_u01(&g->r) < 0.30;
    if (click) {
        t += 2 + rng_below(&g->r, 28);
        if (emit(g, ss->cust, it, SYNTH_CLICK, 1, t, ss->ch)) return -1;
    }
    /* 15% of views reach the cart overall, most of them after a click. */
    if (g->facts[it].in_stock && rng_u01(&g->r) < (click ? 0.35 : 0.064)) {
        t += 3 + rng_below(&g->r, 40);
        if (emit(g, ss->cust, it, SYNTH_ADD_TO_CART, 1, t, ss->ch)) return -1;
        ss->cart[ss->n_cart++] = it;
    }
    ss->t = t;
    return 0;
}

static int buy(gen *g, session *ss, uint32_t it, int64_t ts)
{
    if (emit(g, ss->cust, it, SYNTH_PURCHASE, quantity(g), ts, ss->ch)) return -1;
    remember(g, ss->cust, it, ts);
    /* Buys outside one's taste come back more often. */
    double p = is_fav(g, ss->cust, g->facts[it].cat) ? 0.02 : 0.06;
    if (rng_u01(&g->r) < p) {
        int64_t tr = ts + DAY * (1 + (int64_t)rng_below(&g->r, 14)) + rng_below(&g->r, DAY);
        if (emit(g, ss->cust, it, SYNTH_RETURN, 1, tr, ss->ch)) return -1;
    }
    return 0;
}

/* Half the carts check out; each carted item is then bought with 90%. */
static int checkout(gen *g, session *ss, uint32_t *bought_item)
{
    if (ss->n_cart == 0 || rng_u01(&g->r) >= 0.55) return 0;
    int64_t ts = ss->t + 20 + rng_below(&g->r, 280);
    for (int i = 0; i < ss->n_cart; i++) {
        if (rng_u01(&g->r) >= 0.9) continue;
        if (buy(g, ss, ss->cart[i], ts)) return -1;
        *bought_item = ss->cart[i];
    }
    ss->t = ts;
    return 0;
}

static float rating_value(gen *g, int liked)
{
    static const double fav_cdf[5] = { 0.03, 0.08, 0.20, 0.55, 1.0 };
    static const double other_cdf[5] = { 0.18, 0.40, 0.70, 0.90, 1.0 };
    const double *cdf = liked ? fav_cdf : other_cdf;
    double u = rng_u01(&g->r);
    int v = 0;
    while (v < 4 && u >= cdf[v]) v++;
    return (float)(v + 1);
}

/* A rating goes to what was just bought (days later, once it arrived),
 * else to an earlier purchase, else to something viewed. */
static int rate(gen *g, session *ss, int64_t bought_item)
{
    uint32_t it;
    int64_t ts = ss->t + 30 + rng_below(&g->r, 600);
    uint32_t nh = g->dry ? 0 : g->n_hist[ss->cust];
    if (bought_item >= 0) {
        it = (uint32_t)bought_item;
        ts += DAY * (2 + (int64_t)rng_below(&g->r, 18));
    } else if (nh > 0) {
        it = g->hist[(size_t)ss->cust * HIST + rng_below(&g->r, nh < HIST ? nh : HIST)].item;
    } else {
        it = ss->seen[rng_below(&g->r, (uint64_t)ss->n_seen)];
    }
    int liked = is_fav(g, ss->cust, g->facts[it].cat);
    return emit(g, ss->cust, it, SYNTH_RATING, rating_value(g, liked), ts, ss->ch);
}

static int dislike(gen *g, session *ss)
{
    int i = (int)rng_below(&g->r, (uint64_t)ss->n_seen);
    int64_t ts = ss->seen_t[i] + 5 + rng_below(&g->r, 60);
    return emit(g, ss->cust, ss->seen[i], SYNTH_DISLIKE, 1, ts, ss->ch);
}

static int browse_session(gen *g, session *ss)
{
    ss->cat = pick_category(g, ss->cust);
    ss->in_fav = is_fav(g, ss->cust, ss->cat);
    int views = 1 + (int)rng_below(&g->r, g->c->max_views ? (uint64_t)g->c->max_views : MAX_VIEWS);
    for (int v = 0; v < views; v++) {
        if (browse(g, ss)) return -1;
        ss->t += 10 + rng_below(&g->r, 20) + rng_below(&g->r, 150);
    }
    if (ss->n_seen == 0) return 0;
    uint32_t got = UINT32_MAX;
    if (checkout(g, ss, &got)) return -1;
    if (rng_u01(&g->r) < 0.01 && rate(g, ss, got == UINT32_MAX ? -1 : (int64_t)got))
        return -1;
    /* Dislikes are only for categories outside the taste; scale so that
     * about 0.5% of all sessions carry one. */
    double pd = 0.005 / (1.0 - g->c->taste_strength > 0.05 ? 1.0 - g->c->taste_strength : 0.05);
    if (!ss->in_fav && rng_u01(&g->r) < pd && dislike(g, ss)) return -1;
    return 0;
}

/* A re-buy ("buy again"): view, cart, purchase of something bought at
 * least a day ago. Returns 1 if done, 0 if there is nothing to re-buy. */
static int rebuy_session(gen *g, session *ss)
{
    uint32_t nh = g->dry ? 0 : g->n_hist[ss->cust];
    if (nh == 0) return 0;
    const bought *b = &g->hist[(size_t)ss->cust * HIST + rng_below(&g->r, nh < HIST ? nh : HIST)];
    if (g->c->start_time + b->toff + DAY > ss->t) return 0;
    int64_t t = ss->t;
    if (emit(g, ss->cust, b->item, SYNTH_VIEW, 1, t, ss->ch) ||
        emit(g, ss->cust, b->item, SYNTH_ADD_TO_CART, 1, t + 5 + rng_below(&g->r, 60), ss->ch))
        return -1;
    return buy(g, ss, b->item, t + 70 + rng_below(&g->r, 240)) ? -1 : 1;
}

static int run_session(gen *g, uint32_t cust, int64_t t0)
{
    session ss;
    ss.cust = cust;
    ss.ch = pick_channel(g);
    ss.n_seen = ss.n_cart = 0;
    ss.t = t0;
    if (rng_u01(&g->r) < g->c->repeat_rate) {
        int r = rebuy_session(g, &ss);
        if (r) return r < 0 ? -1 : 0;
    }
    return browse_session(g, &ss);
}

/* Simulate a few sessions without keeping them to learn how many signals
 * a session yields, so the session plan matches n_signals. Re-buys need a
 * history the pilot lacks; they are corrected for analytically. */
static double mean_session_size(gen *g)
{
    rng saved = g->r;
    g->dry = 1;
    for (int i = 0; i < PILOT; i++) {
        uint32_t cust = rng_below(&g->r, g->c->n_customers);
        (void)run_session(g, cust, clock_at(g, rng_u01(&g->r)));
    }
    double per_browse = (double)g->made / PILOT;
    g->dry = 0;
    g->made = 0;
    g->r = saved;
    /* a re-buy is view, cart, purchase and now and then a return */
    double m = (1 - g->c->repeat_rate) * per_browse + g->c->repeat_rate * 3.05;
    return m < 1 ? 1 : m;
}

/* Sessions are laid out along the period in proportion to the signals
 * made so far, which both spreads them over the whole period and stops
 * them exactly when n_signals is reached. A session that yields nothing
 * (no item passed the filters) still moves the clock, so the loop always
 * reaches the end of the period, where every item exists. */
static int run_sessions(gen *g, double mean)
{
    double n = (double)g->c->n_signals, pos = 0;
    int64_t last = g->c->start_time;
    while (g->made < g->c->n_signals) {
        double f = (pos + rng_u01(&g->r) * mean) / n;
        int64_t t0 = clock_at(g, f < 1 ? f : 1);
        if (t0 < last) t0 = last;      /* sessions start in order */
        last = t0;
        /* Nothing pending at or before t0 can be preceded by this or any
         * later session, whose signals all come at t0 or after. */
        size_t before = g->made;
        if (flush_until(g, t0) || run_session(g, next_customer(g), t0))
            return -1;
        pos += g->made > before ? (double)(g->made - before) : 1.0;
    }
    return flush_until(g, INT64_MAX);
}

/* ------------------------------------------------------------- driver */

static void gen_free(gen *g)
{
    free(g->cat_start); free(g->cat_items); free(g->cat_cdf);
    free(g->pop_cdf); free(g->fav_cdf); free(g->level); free(g->facts);
    free(g->plan); free(g->hist); free(g->n_hist);
    free(g->time_cdf); free(g->heap);
}

static int gen_alloc(gen *g)
{
    const synth_config *c = g->c;
    synth_shop *s = g->shop;
    size_t k = c->n_categories, n = c->n_customers;
    s->items = alloc_n(c->n_items, sizeof *s->items);
    s->fav = n <= SIZE_MAX / 2 ? alloc_n(2 * n, sizeof *s->fav) : NULL;
    s->tier = alloc_n(n, sizeof *s->tier);
    g->cat_start = alloc_n(k + 1, sizeof *g->cat_start);
    g->cat_items = alloc_n(c->n_items, sizeof *g->cat_items);
    g->cat_cdf = alloc_n(c->n_items, sizeof *g->cat_cdf);
    g->pop_cdf = alloc_n(k, sizeof *g->pop_cdf);
    g->fav_cdf = alloc_n(k, sizeof *g->fav_cdf);
    g->level = alloc_n(k, sizeof *g->level);
    g->facts = alloc_n(c->n_items, sizeof *g->facts);
    g->hist = n <= SIZE_MAX / HIST ? alloc_n(n * HIST, sizeof *g->hist) : NULL;
    g->n_hist = alloc_n(n, sizeof *g->n_hist);
    if (!s->items || !s->fav || !s->tier || !g->cat_start || !g->cat_items ||
        !g->cat_cdf || !g->pop_cdf || !g->fav_cdf || !g->level || !g->facts ||
        !g->hist || !g->n_hist)
        return -1;
    /* Reserve for the target (plus the last session's overshoot) up front;
     * growth beyond that is geometric. */
    size_t want = c->n_signals + 64;
    return want < c->n_signals ? -1 :
           grow((void **)&s->signals, &g->cap_out, want, sizeof *s->signals);
}

int synth_generate(const synth_config *c, synth_shop *out)
{
    if (!out) { errno = EINVAL; return -1; }
    memset(out, 0, sizeof *out);
    if (!config_ok(c)) { errno = EINVAL; return -1; }
    gen g;
    memset(&g, 0, sizeof g);
    g.c = c;
    g.shop = out;
    g.t_end = c->start_time + (int64_t)c->days * DAY;
    rng_seed(&g.r, c->seed);
    out->n_items = c->n_items;
    out->n_customers = c->n_customers;
    out->n_categories = c->n_categories;
    int rc = -1;
    if (gen_alloc(&g) || make_catalogue(&g) || make_clock(&g))
        goto done;
    make_tastes(&g);
    if (c->n_signals > 0) {
        double mean = mean_session_size(&g);
        if (plan_sessions(&g, (double)c->n_signals / mean) || run_sessions(&g, mean))
            goto done;
    }
    rc = 0;
done:
    gen_free(&g);
    if (rc) {
        synth_free(out);
        errno = ENOMEM;
    }
    return rc;
}

void synth_free(synth_shop *s)
{
    if (!s) return;
    free(s->items);
    free(s->signals);
    free(s->fav);
    free(s->tier);
    memset(s, 0, sizeof *s);
}

void synth_customer_id(uint32_t c, char buf[24])
{
    snprintf(buf, 24, "c%07u", (unsigned)c);
}

const char *synth_channel_name(int ch)
{
    static const char *const name[] = { "web", "app", "store", "email" };
    return ch >= 0 && ch < 4 ? name[ch] : NULL;
}

const char *synth_type_name(int type)
{
    static const char *const name[] = {
        "view", "click", "add_to_cart", "purchase", "rating", "return", "dislike"
    };
    return type >= 0 && type < 7 ? name[type] : NULL;
}

/* ----------------------------------------------------------------- CSV */

/* RFC 4180: quote a field holding a comma, quote or line break, and
 * double the quotes inside. */
static void put_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    putc('"', f);
    for (; *s; s++) {
        if (*s == '"') putc('"', f);
        putc(*s, f);
    }
    putc('"', f);
}

static int finish(FILE *f)
{
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) errno = err;
    return err ? -1 : 0;
}

static int write_items(const synth_shop *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    errno = 0;
    fputs("item,category,price,in_stock,created_at,tags\n", f);
    for (size_t i = 0; i < s->n_items && !ferror(f); i++) {
        const synth_item *it = &s->items[i];
        put_field(f, it->id);
        putc(',', f);
        put_field(f, it->category);
        fprintf(f, ",%.2f,%d,%lld,", it->price, it->in_stock ? 1 : 0,
                (long long)it->created_at);
        put_field(f, it->tags);
        putc('\n', f);
    }
    return finish(f);
}

/* Hand-formatted: fprintf per signal costs more than generating them. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s) *p++ = *s++;
    return p;
}

static size_t format_signal(const synth_shop *s, const synth_signal *g, char *buf)
{
    char *p = buf;
    *p++ = 'c';                 /* as synth_customer_id(), without snprintf */
    for (uint32_t d = 1000000; d > 1 && g->customer < d; d /= 10) *p++ = '0';
    p = put_u64(p, g->customer);
    *p++ = ',';
    p = put_str(p, s->items[g->item].id);
    *p++ = ',';
    p = put_str(p, synth_type_name(g->type) ? synth_type_name(g->type) : "");
    *p++ = ',';
    if (g->value >= 0 && g->value < 1e9f && g->value == (float)(uint32_t)g->value)
        p = put_u64(p, (uint32_t)g->value);
    else
        p += snprintf(p, 32, "%.9g", (double)g->value);
    *p++ = ',';
    if (g->ts < 0) { *p++ = '-'; p = put_u64(p, 0 - (uint64_t)g->ts); }
    else p = put_u64(p, (uint64_t)g->ts);
    *p++ = ',';
    p = put_str(p, synth_channel_name(g->channel) ? synth_channel_name(g->channel) : "");
    *p++ = '\n';
    return (size_t)(p - buf);
}

static int write_signals(const synth_shop *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    errno = 0;
    fputs("customer,item,type,value,timestamp,channel\n", f);
    /* Lines are batched: one fwrite per line spends its time in stdio's
     * locking. A line is under 256 bytes (ids < 24, names short). */
    char *buf = malloc(64 * 1024);
    size_t n = 0;
    if (!buf) { fclose(f); errno = ENOMEM; return -1; }
    for (size_t i = 0; i < s->n_signals && !ferror(f); i++) {
        if (s->signals[i].item >= s->n_items) {
            free(buf); fclose(f); errno = EINVAL; return -1;
        }
        n += format_signal(s, &s->signals[i], buf + n);
        if (n > 64 * 1024 - 256) { fwrite(buf, 1, n, f); n = 0; }
    }
    fwrite(buf, 1, n, f);
    free(buf);
    return finish(f);
}

int synth_write_csv(const synth_shop *s, const char *items_csv, const char *signals_csv)
{
    if (!s) { errno = EINVAL; return -1; }
    if (items_csv && write_items(s, items_csv)) return -1;
    if (signals_csv && write_signals(s, signals_csv)) return -1;
    return 0;
}
