/* eval.c -- offline evaluation on a per-customer time split.
 * Each customer's newest items (or signals) are held out, a model is
 * trained on the rest, and its top-k is scored against a popularity
 * baseline, with bootstrap intervals over the customers. */
#include "quality.h"

#include <math.h>
#include <string.h>

CX_API void cx_eval_opts_init(cx_eval_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->k = 10;
    o->test_fraction = 0.2;
    o->min_items = 3;
    o->relevant = CX_EXCLUDE_SEEN;
    o->split = CX_SPLIT_ITEMS;
    o->bootstrap = 200;
    o->seed = 1;
    o->untuned = 0;
}

void cx__untuned(cx__options *o)
{
    cx__options d;
    cx__options_default(&d);
    o->factors = d.factors;
    o->regularization = d.regularization;
    o->alpha = d.alpha;
    o->half_life = d.half_life;
    for (int t = 0; t < CX_SIGNAL_CUSTOM; t++)
        o->weight[t] = d.weight[t];
    o->blend_als = d.blend_als;
    o->blend_pop = d.blend_pop;
    o->blend_rep = d.blend_rep;
    o->blend_co = d.blend_co;
    o->consumable = d.consumable;
}

typedef struct first_seen {
    uint32_t item;
    uint32_t ev;   /* the customer's first event on the item */
    int64_t ts;    /* its time: the split is by time, not arrival */
} first_seen;

static int by_first(const void *a, const void *b)
{
    const first_seen *x = a, *y = b;
    if (x->ts != y->ts)
        return (x->ts > y->ts) - (x->ts < y->ts);
    return (x->ev > y->ev) - (x->ev < y->ev);
}

typedef struct ev_time {
    uint32_t ev;
    int64_t ts;
} ev_time;

static int by_time(const void *a, const void *b)
{
    const ev_time *x = a, *y = b;
    if (x->ts != y->ts)
        return (x->ts > y->ts) - (x->ts < y->ts);
    return (x->ev > y->ev) - (x->ev < y->ev);
}

void cx__split_free(cx__split *s)
{
    free(s->keep), free(s->test_ptr), free(s->test_items);
    memset(s, 0, sizeof *s);
}

/* How many of n are held out, or 0 to keep the customer whole. */
static size_t held(size_t n, double fraction, size_t min_items)
{
    size_t hold = (size_t)floor(fraction * (double)n + 0.5);
    if (n < min_items || n < 2 || hold == 0)
        return 0;
    return hold >= n ? n - 1 : hold;
}

/* Customer u's events that `use` admits, into fs (CX_SPLIT_ITEMS: one per
 * item, its earliest by time, the earlier arrival on equal times) or et
 * (CX_SPLIT_EVENTS: all); returns their count. */
static size_t collect(const cx_engine *e, const uint8_t *use, int mode,
                      uint32_t u, first_seen *fs, ev_time *et,
                      uint32_t *stamp, uint32_t *pos)
{
    size_t n = 0;
    for (uint32_t ev = e->cust_last[u]; ev != CX_NONE; ev = e->ev_prev[ev]) {
        if (use && !use[ev])
            continue;
        uint32_t it = e->ev[ev].item;
        if (mode == CX_SPLIT_EVENTS) {
            et[n++] = (ev_time){ev, e->ev[ev].ts};
        } else if (stamp[it] != u) {
            stamp[it] = u;
            pos[it] = (uint32_t)n;
            fs[n++] = (first_seen){it, ev, e->ev[ev].ts};
        } else if (e->ev[ev].ts <= fs[pos[it]].ts) {
            fs[pos[it]].ev = ev;
            fs[pos[it]].ts = e->ev[ev].ts;
        }
    }
    return n;
}

int cx__split_make(const cx_engine *e, const uint8_t *use, int mode,
                   double fraction, size_t min_items, unsigned relevant,
                   const cx__options *opt, cx__split *s)
{
    uint32_t nu = e->customers.n, ni = e->items.n;
    memset(s, 0, sizeof *s);
    s->keep = malloc(e->n_ev + 1);
    s->test_ptr = calloc((size_t)nu + 1, sizeof *s->test_ptr);
    s->test_items = malloc((e->n_ev + 1) * sizeof *s->test_items);
    uint32_t *stamp = malloc(((size_t)ni + 1) * sizeof *stamp);
    uint32_t *pos = malloc(((size_t)ni + 1) * sizeof *pos);
    first_seen *fs = malloc((e->n_ev + 1) * sizeof *fs);
    ev_time *et = malloc((e->n_ev + 1) * sizeof *et);
    double *r = malloc(((size_t)ni + 1) * sizeof *r);
    uint32_t *mask = malloc(((size_t)ni + 1) * sizeof *mask);
    uint8_t *out = calloc((size_t)ni + 1, 1);
    if (!s->keep || !s->test_ptr || !s->test_items || !stamp || !pos ||
        !fs || !et || !r || !mask || !out) {
        free(stamp), free(pos), free(fs), free(et), free(r), free(mask),
            free(out);
        cx__split_free(s);
        return CX_ENOMEM;
    }
    for (size_t ev = 0; ev < e->n_ev; ev++)
        s->keep[ev] = !use || use[ev];
    for (uint32_t i = 0; i < ni; i++)
        stamp[i] = CX_NONE;
    uint64_t nt = 0;
    for (uint32_t u = 0; u < nu; u++) {
        size_t n = collect(e, use, mode, u, fs, et, stamp, pos);
        size_t hold = held(n, fraction, min_items);
        if (!hold) {
            s->test_ptr[u + 1] = nt;
            continue;
        }
        /* The held-out items, flagged in out[] with their strength and
         * type mask reset. */
        size_t n_out = 0;
        if (mode == CX_SPLIT_EVENTS) {
            qsort(et, n, sizeof *et, by_time);
            for (size_t j = n - hold; j < n; j++) {
                uint32_t it = e->ev[et[j].ev].item;
                if (!out[it]) {
                    out[it] = 1, r[it] = 0, mask[it] = 0;
                    fs[n_out++].item = it;
                }
            }
            for (size_t j = n - hold; j < n; j++) {
                const cx__event *x = &e->ev[et[j].ev];
                s->keep[et[j].ev] = 0;
                r[x->item] += cx__signal_strength(opt, x);
                mask[x->item] |= CX_TYPE_BIT(x->type);
            }
        } else {
            qsort(fs, n, sizeof *fs, by_first);
            memmove(fs, fs + n - hold, hold * sizeof *fs);
            n_out = hold;
            for (size_t j = 0; j < n_out; j++) {
                out[fs[j].item] = 1;
                r[fs[j].item] = 0;
                mask[fs[j].item] = 0;
            }
            for (uint32_t ev = e->cust_last[u]; ev != CX_NONE;
                 ev = e->ev_prev[ev]) {
                const cx__event *x = &e->ev[ev];
                if ((use && !use[ev]) || !out[x->item])
                    continue;
                s->keep[ev] = 0;
                r[x->item] += cx__signal_strength(opt, x);
                mask[x->item] |= CX_TYPE_BIT(x->type);
            }
        }
        for (size_t j = 0; j < n_out; j++) {
            uint32_t it = fs[j].item;
            if ((mask[it] & relevant) && r[it] > 0)
                s->test_items[nt++] = it;
            out[it] = 0;
        }
        qsort(s->test_items + s->test_ptr[u], nt - s->test_ptr[u],
              sizeof *s->test_items, cx__cmp_u32);
        s->test_ptr[u + 1] = nt;
    }
    free(stamp), free(pos), free(fs), free(et), free(r), free(mask),
        free(out);
    return CX_OK;
}

/* One ranked list's metrics into row[0..CX_METRIC_USERS). */
static void score_list(const cx__hit *h, size_t n, size_t k,
                       const uint32_t *rel, size_t n_rel, double *row,
                       uint8_t *seen)
{
    double dcg = 0, idcg = 0, ap = 0;
    size_t hits = 0;
    for (size_t j = 0; j < n; j++) {
        if (seen)
            seen[h[j].item] = 1;
        size_t lo = 0, hi = n_rel;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (rel[mid] < h[j].item)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n_rel && rel[lo] == h[j].item) {
            hits++;
            dcg += 1.0 / log2((double)j + 2);
            ap += (double)hits / (double)(j + 1);
        }
    }
    size_t ideal = n_rel < k ? n_rel : k;
    for (size_t j = 0; j < ideal; j++)
        idcg += 1.0 / log2((double)j + 2);
    row[CX_METRIC_PRECISION] = (double)hits / (double)k;
    row[CX_METRIC_RECALL] = (double)hits / (double)ideal;
    row[CX_METRIC_NDCG] = dcg / idcg;
    row[CX_METRIC_MAP] = ap / (double)ideal;
    row[CX_METRIC_HIT_RATE] = hits > 0;
}

#define NM CX_METRIC_USERS /* metrics kept per customer */

/* Means of the per-customer rows, coverage and the customer count. */
static void finish(const double *rows, size_t nr, const uint8_t *seen,
                   uint32_t ni, double *out)
{
    /* Summed in customer order, as the figures always were. */
    for (int i = 0; i < NM; i++) {
        double a = 0;
        for (size_t r = 0; r < nr; r++)
            a += rows[r * NM + i];
        out[i] = nr ? a / (double)nr : 0;
    }
    size_t cov = 0;
    for (uint32_t i = 0; i < ni; i++)
        cov += seen[i];
    out[CX_METRIC_COVERAGE] = ni ? (double)cov / ni : 0;
    out[CX_METRIC_USERS] = (double)nr;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile bootstrap over the customers: B resamples of the nr rows of
 * model (m) and baseline (b) metrics, paired. */
static int bootstrap(const double *m, const double *b, size_t nr, size_t B,
                     uint64_t seed, const double *vm, const double *vb,
                     double *ci)
{
    for (int i = 0; i < CX_METRIC_COUNT; i++) {
        ci[CX_CI_MODEL_LO * CX_METRIC_COUNT + i] = vm[i];
        ci[CX_CI_MODEL_HI * CX_METRIC_COUNT + i] = vm[i];
        ci[CX_CI_BASELINE_LO * CX_METRIC_COUNT + i] = vb[i];
        ci[CX_CI_BASELINE_HI * CX_METRIC_COUNT + i] = vb[i];
        ci[CX_CI_DIFF_LO * CX_METRIC_COUNT + i] = vm[i] - vb[i];
        ci[CX_CI_DIFF_HI * CX_METRIC_COUNT + i] = vm[i] - vb[i];
    }
    if (!nr)
        return CX_OK;
    double *v = malloc(3 * NM * B * sizeof *v);
    if (!v)
        return CX_ENOMEM;
    uint64_t st = seed;
    for (size_t r = 0; r < B; r++) {
        double sm[NM] = {0}, sb[NM] = {0};
        for (size_t t = 0; t < nr; t++) {
            size_t j = (size_t)(cx__mix64(&st) % nr);
            for (int i = 0; i < NM; i++)
                sm[i] += m[j * NM + i], sb[i] += b[j * NM + i];
        }
        for (int i = 0; i < NM; i++) {
            v[(0 * NM + i) * B + r] = sm[i] / (double)nr;
            v[(1 * NM + i) * B + r] = sb[i] / (double)nr;
            v[(2 * NM + i) * B + r] = (sm[i] - sb[i]) / (double)nr;
        }
    }
    size_t lo = (size_t)floor(0.025 * (double)(B - 1) + 0.5);
    size_t hi = (size_t)floor(0.975 * (double)(B - 1) + 0.5);
    for (int w = 0; w < 3; w++)
        for (int i = 0; i < NM; i++) {
            double *x = v + (w * NM + i) * B;
            qsort(x, B, sizeof *x, cmp_double);
            ci[(2 * w) * CX_METRIC_COUNT + i] = x[lo];
            ci[(2 * w + 1) * CX_METRIC_COUNT + i] = x[hi];
        }
    free(v);
    return CX_OK;
}

/* Popularity from the training part: distinct customers with r > 0. */
static uint32_t *popular_order(const cx__model *m)
{
    uint32_t ni = m->n_items;
    double *pop = calloc((size_t)ni + 1, sizeof *pop);
    cx__topk t = {malloc(((size_t)ni + 1) * sizeof(cx__hit)), 0, ni};
    uint32_t *order = malloc(((size_t)ni + 1) * sizeof *order);
    if (!pop || !t.h || !order) {
        free(pop), free(t.h), free(order);
        return NULL;
    }
    for (uint64_t p = 0; p < m->ui.ptr[m->n_users]; p++)
        pop[m->ui.idx[p]] += m->ui.conf[p] > 0;
    for (uint32_t i = 0; i < ni; i++)
        cx__topk_push(&t, (float)pop[i], i);
    cx__topk_sort(&t);
    for (uint32_t i = 0; i < ni; i++)
        order[i] = t.h[i].item;
    free(pop);
    free(t.h);
    return order;
}

/* Popularity, skipping what the customer already has. */
static size_t popular_list(const cx__model *m, const uint32_t *order,
                           uint32_t u, size_t k, cx__hit *h)
{
    const uint32_t *skip = m->ui.idx + m->ui.ptr[u];
    size_t n_skip = (size_t)(m->ui.ptr[u + 1] - m->ui.ptr[u]), nb = 0;
    for (uint32_t j = 0; j < m->n_items && nb < k; j++) {
        size_t lo = 0, hi = n_skip;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (skip[mid] < order[j])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (!(lo < n_skip && skip[lo] == order[j]))
            h[nb++] = (cx__hit){(float)(m->n_items - j), order[j]};
    }
    return nb;
}

/* Customers of the split with held-out items (and in `include`), at most
 * max of them: a fixed sample by seed, in customer order. */
static uint32_t *scored_users(const cx__split *s, uint32_t nu,
                              const uint8_t *include, size_t max,
                              uint64_t seed, size_t *n)
{
    uint32_t *v = malloc(((size_t)nu + 1) * sizeof *v);
    size_t c = 0;
    if (!v)
        return NULL;
    for (uint32_t u = 0; u < nu; u++)
        if (s->test_ptr[u + 1] > s->test_ptr[u] && (!include || include[u]))
            v[c++] = u;
    if (max && c > max) { /* partial Fisher-Yates, then back in order */
        for (size_t j = 0; j < max; j++) {
            size_t r = j + (size_t)(cx__mix64(&seed) % (c - j));
            uint32_t t = v[j];
            v[j] = v[r], v[r] = t;
        }
        c = max;
        qsort(v, c, sizeof *v, cx__cmp_u32);
    }
    *n = c;
    return v;
}

int cx__eval_blends(const cx__model *m, const cx__hstats *hs,
                    const cx__split *s, size_t k, const cx__blend *b,
                    size_t nb, size_t max_users, uint64_t seed, double *ndcg)
{
    size_t nu = 0;
    uint32_t ni = m->n_items;
    uint32_t *users = scored_users(s, m->n_users, NULL, max_users, seed, &nu);
    float *als = malloc(((size_t)ni + 1) * sizeof *als);
    float *scratch = malloc((2 * (size_t)ni + 1) * sizeof *scratch);
    cx__hit *h = malloc(k * sizeof *h);
    if (!users || !als || !scratch || !h) {
        free(users), free(als), free(scratch), free(h);
        return CX_ENOMEM;
    }
    for (size_t j = 0; j < nb; j++)
        ndcg[j] = 0;
    for (size_t a = 0; a < nu; a++) {
        uint32_t u = users[a];
        const uint32_t *rel = s->test_items + s->test_ptr[u];
        size_t n_rel = (size_t)(s->test_ptr[u + 1] - s->test_ptr[u]);
        const float *x = m->has_vec[u] ? m->X + (size_t)u * m->k : NULL;
        if (x)
            cx__k.scores(m->Y, x, m->k, ni, NULL, als);
        for (size_t j = 0; j < nb; j++) {
            /* The plain ALS ranks as the blend with consumables never
             * coming back; without a vector, popularity does. */
            cx__blend pb = b[j];
            if (cx__blend_plain(&pb)) {
                pb.consumable = 2;
                if (!x)
                    pb = (cx__blend){0, 1, 0, 0, 2};
            }
            size_t n = cx__blend_rank_model(m, hs, &pb, u, x ? als : NULL,
                                            k, scratch, h);
            double row[NM];
            score_list(h, n, k, rel, n_rel, row, NULL);
            ndcg[j] += row[CX_METRIC_NDCG];
        }
    }
    for (size_t j = 0; j < nb; j++)
        ndcg[j] = nu ? ndcg[j] / (double)nu : 0;
    free(users), free(als), free(scratch), free(h);
    return CX_OK;
}

static int evaluate(cx_engine *e, const cx_eval_opts *opts, double *model,
                    double *baseline, double *ci, const char *fn)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "%s: engine is NULL", fn);
    if (!model)
        return cx__fail(e, CX_EINVAL, "%s: model is NULL", fn);
    cx_eval_opts o;
    cx_eval_opts_init(&o);
    if (opts) {
        /* A caller built before the replay fields has a shorter struct:
         * the missing fields keep their defaults. */
        size_t old = offsetof(cx_eval_opts, relevant) + sizeof o.relevant;
        if (opts->size < old || opts->size > 4096)
            return cx__fail(e, CX_EINVAL, "%s: options not "
                            "initialised with cx_eval_opts_init", fn);
        memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
        o.size = sizeof o;
    }
    if (!(o.diversity >= 0) || !isfinite(o.diversity))
        return cx__fail(e, CX_EINVAL, "%s: diversity must be a "
                        "finite number >= 0", fn);
    if (!o.experiment != !o.variant)
        return cx__fail(e, CX_EINVAL, "%s: experiment and variant "
                        "go together", fn);
    if (o.k == 0 || o.k > 10000)
        return cx__fail(e, CX_EINVAL, "%s: k = %zu, must be "
                        "1..10000", fn, o.k);
    if (!(o.test_fraction > 0 && o.test_fraction < 1))
        return cx__fail(e, CX_EINVAL, "%s: test_fraction must be "
                        "in (0, 1)", fn);
    if (o.split != CX_SPLIT_ITEMS && o.split != CX_SPLIT_EVENTS)
        return cx__fail(e, CX_EINVAL, "%s: split %d is not CX_SPLIT_ITEMS "
                        "or CX_SPLIT_EVENTS", fn, o.split);
    if (ci && (o.bootstrap < 1 || o.bootstrap > 100000))
        return cx__fail(e, CX_EINVAL, "%s: bootstrap = %zu, must be "
                        "1..100000 for intervals", fn, o.bootstrap);
    if (o.untuned != 0 && o.untuned != 1)
        return cx__fail(e, CX_EINVAL, "%s: untuned must be 0 or 1", fn);
    /* The split and a copy of the signals are taken under the writer
     * mutex; the training and scoring run with no lock held. */
    pthread_mutex_lock(&e->wmu);
    cx__split s = {0};
    cx__model *m = NULL;
    cx__hstats *hs = NULL;
    uint32_t n_items = e->items.n, n_users = e->customers.n;
    size_t n_ev = e->n_ev;
    cx__options opt = e->opt;
    if (o.untuned)
        cx__untuned(&opt);
    int64_t ts_max = e->ts_max;
    cx__hit *h = malloc(o.k * sizeof *h);
    uint8_t *seen_m = calloc((size_t)n_items + 1, 1);
    uint8_t *seen_b = calloc((size_t)n_items + 1, 1);
    cx__event *ev = malloc((n_ev + 1) * sizeof *ev);
    double *rows_m = NULL, *rows_b = NULL;
    float *als = NULL, *scratch = NULL;
    uint32_t *order = NULL, *users = NULL;
    int rc = CX_OK;
    if (!h || !seen_m || !seen_b || !ev ||
        (rc = cx__split_make(e, NULL, o.split, o.test_fraction, o.min_items,
                             o.relevant, &e->opt, &s)))
        rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
    if (rc == CX_OK && n_ev == 0)
        rc = cx__fail(e, CX_EINVAL, "%s: no signals", fn);
    if (rc == CX_OK)
        memcpy(ev, e->ev, n_ev * sizeof *ev);
    /* The replay's customers, and the categories the rules need, taken
     * while no writer can change them. */
    uint8_t *include = NULL;
    uint32_t *item_cat = NULL;
    cx__hit *h2 = NULL;
    size_t n_cat = e->categories.n;
    if (rc == CX_OK && o.experiment) {
        include = calloc((size_t)n_users + 1, 1);
        if (!include)
            rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
        for (uint32_t u = 0; rc == CX_OK && u < n_users; u++) {
            const char *v;
            if ((rc = cx_variant(e, o.experiment, e->customers.str[u], 0,
                                 &v)))
                break; /* the message names the experiment */
            include[u] = strcmp(v, o.variant) == 0;
        }
        if (rc == CX_OK) {
            int64_t unused;
            rc = cx_exposures(e, o.experiment, o.variant, &unused);
        }
        /* The variant's own training options and its list rules. */
        if (rc == CX_OK)
            rc = cx__variant_options(e, o.experiment, o.variant, &opt);
        double val;
        if (rc == CX_OK && cx_variant_get(e, o.experiment, o.variant,
                                          CX_OVERRIDE_K, &val) == CX_OK) {
            if (!(val >= 1 && val <= 10000 && val == floor(val)))
                rc = cx__fail(e, CX_EINVAL, "%s: variant '%s' "
                              "carries k = %g, must be 1..10000", fn,
                              o.variant, val);
            else if ((size_t)val != o.k && !(h2 = malloc((size_t)val *
                                                         sizeof *h2)))
                rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
            else
                o.k = (size_t)val;
        }
        if (rc == CX_OK && cx_variant_get(e, o.experiment, o.variant,
                                          CX_OVERRIDE_DIVERSITY, &val) ==
                               CX_OK) {
            if (!(val >= 0) || !isfinite(val))
                rc = cx__fail(e, CX_EINVAL, "%s: variant '%s' "
                              "carries diversity %g", fn, o.variant, val);
            o.diversity = val;
        }
        if (rc == CX_OK && cx_variant_get(e, o.experiment, o.variant,
                                          CX_OVERRIDE_CATEGORY_CAP, &val) ==
                               CX_OK) {
            if (!(val >= 0 && val <= 1e6) || val != floor(val))
                rc = cx__fail(e, CX_EINVAL, "%s: variant '%s' "
                              "carries category cap %g", fn, o.variant, val);
            o.max_per_category = (size_t)val;
        }
        if (h2) {
            free(h);
            h = h2;
        }
    }
    if (rc == CX_OK && (item_cat = malloc(((size_t)n_items + 1) *
                                          sizeof *item_cat)))
        memcpy(item_cat, e->item_cat, (size_t)n_items * sizeof *item_cat);
    else if (rc == CX_OK)
        rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
    pthread_mutex_unlock(&e->wmu);
    cx__blend bl, bp = {0, 1, 0, 0, 0};
    cx__blend_from(&opt, &bl);
    bp.consumable = bl.consumable;
    int blended = !cx__blend_plain(&bl);
    /* The events split lets re-buys count: the baseline then brings back
     * consumables as the engine does. */
    int pop_blended = o.split == CX_SPLIT_EVENTS;
    int diverse = o.max_per_category || o.diversity > 0;
    size_t pool = diverse ? (4 * o.k > o.k + 50 ? 4 * o.k : o.k + 50) : o.k;
    cx__hit *ph = rc == CX_OK && diverse ? malloc(pool * sizeof *ph) : NULL;
    if (rc == CX_OK && diverse && !ph)
        rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
    if (rc == CX_OK) {
        cx__train_input in = {ev, n_ev, s.keep, n_users, n_items, ts_max,
                              NULL};
        rc = cx__train_model(e, &in, &opt, NULL, NULL, &m);
    }
    if (rc == CX_OK && !(order = popular_order(m)))
        rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
    if (rc == CX_OK && (blended || pop_blended) &&
        (cx__hstats_build(ev, n_ev, s.keep, &m->ui, n_users, n_items, &hs) ||
         !(als = malloc(((size_t)n_items + 1) * sizeof *als)) ||
         !(scratch = malloc((2 * (size_t)n_items + 1) * sizeof *scratch))))
        rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
    size_t nr = 0;
    if (rc == CX_OK &&
        (!(users = scored_users(&s, n_users, include, 0, 0, &nr)) ||
         !(rows_m = malloc((nr + 1) * NM * sizeof *rows_m)) ||
         !(rows_b = malloc((nr + 1) * NM * sizeof *rows_b))))
        rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
    for (size_t a = 0; rc == CX_OK && a < nr; a++) {
        uint32_t u = users[a];
        size_t n_rel = (size_t)(s.test_ptr[u + 1] - s.test_ptr[u]);
        const uint32_t *rel = s.test_items + s.test_ptr[u];
        const uint32_t *skip = m->ui.idx + m->ui.ptr[u];
        size_t n_skip = (size_t)(m->ui.ptr[u + 1] - m->ui.ptr[u]);
        const float *x = m->has_vec[u] ? m->X + (size_t)u * m->k : NULL;
        size_t nb;
        if (x && als && (blended || pop_blended))
            cx__k.scores(m->Y, x, m->k, n_items, NULL, als);
        if (pop_blended)
            nb = cx__blend_rank_model(m, hs, &bp, u, NULL, o.k, scratch, h);
        else
            nb = popular_list(m, order, u, o.k, h);
        score_list(h, nb, o.k, rel, n_rel, rows_b + a * NM, seen_b);
        if (blended) {
            size_t n = cx__blend_rank_model(m, hs, &bl, u, x ? als : NULL,
                                            diverse ? pool : o.k, scratch,
                                            diverse ? ph : h);
            if (diverse)
                n = cx__diversify(NULL, m, item_cat, n_cat, ph, n, o.k,
                                  o.max_per_category, o.diversity);
            score_list(diverse ? ph : h, n, o.k, rel, n_rel, rows_m + a * NM,
                       seen_m);
        } else if (x && diverse) {
            size_t n = cx__rank_exact(m, x, pool, skip, n_skip, ph);
            n = cx__diversify(NULL, m, item_cat, n_cat, ph, n, o.k,
                              o.max_per_category, o.diversity);
            score_list(ph, n, o.k, rel, n_rel, rows_m + a * NM, seen_m);
        } else if (x) {
            size_t n = cx__rank_exact(m, x, o.k, skip, n_skip, h);
            score_list(h, n, o.k, rel, n_rel, rows_m + a * NM, seen_m);
        } else {
            score_list(h, nb, o.k, rel, n_rel, rows_m + a * NM, seen_m);
        }
    }
    if (rc == CX_OK) {
        double vm[CX_METRIC_COUNT], vb[CX_METRIC_COUNT];
        finish(rows_m, nr, seen_m, n_items, vm);
        finish(rows_b, nr, seen_b, n_items, vb);
        if (ci && bootstrap(rows_m, rows_b, nr, o.bootstrap, o.seed, vm, vb,
                            ci))
            rc = cx__fail(e, CX_ENOMEM, "%s: out of memory", fn);
        memcpy(model, vm, sizeof vm);
        if (baseline)
            memcpy(baseline, vb, sizeof vb);
    }
    cx__model_free(m);
    cx__hstats_free(hs);
    free(ev);
    free(include), free(item_cat), free(ph);
    cx__split_free(&s);
    free(h), free(seen_m), free(seen_b), free(order), free(users);
    free(rows_m), free(rows_b), free(als), free(scratch);
    return rc;
}

CX_API int cx_evaluate(cx_engine *e, const cx_eval_opts *opts, double *model,
                       double *baseline)
{
    return evaluate(e, opts, model, baseline, NULL, "cx_evaluate");
}

CX_API int cx_evaluate_ci(cx_engine *e, const cx_eval_opts *opts,
                          double *model, double *baseline, double *ci)
{
    return evaluate(e, opts, model, baseline, ci, "cx_evaluate_ci");
}
