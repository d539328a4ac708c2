/* eval.c -- offline evaluation on a per-customer time split.
 * Each customer's newest items are held out, a model is trained on the
 * rest, and its top-k is scored against a popularity baseline. */
#include "internal.h"

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

/* The split: keep[ev] = 0 for held-out events; per customer, the sorted
 * list of relevant held-out items (test_ptr/test_items). */
typedef struct split {
    uint8_t *keep;
    uint64_t *test_ptr;
    uint32_t *test_items;
} split;

static int make_split(const cx_engine *e, const cx_eval_opts *o, split *s)
{
    uint32_t nu = e->customers.n, ni = e->items.n;
    s->keep = malloc(e->n_ev + 1);
    s->test_ptr = calloc((size_t)nu + 1, sizeof *s->test_ptr);
    s->test_items = malloc((e->n_ev + 1) * sizeof *s->test_items);
    uint32_t *stamp = malloc(((size_t)ni + 1) * sizeof *stamp);
    uint32_t *pos = malloc(((size_t)ni + 1) * sizeof *pos);
    first_seen *fs = malloc((e->n_ev + 1) * sizeof *fs);
    double *r = malloc(((size_t)ni + 1) * sizeof *r);
    uint32_t *mask = malloc(((size_t)ni + 1) * sizeof *mask);
    if (!s->keep || !s->test_ptr || !s->test_items || !stamp || !pos ||
        !fs || !r || !mask) {
        free(stamp), free(pos), free(fs), free(r), free(mask);
        return CX_ENOMEM;
    }
    memset(s->keep, 1, e->n_ev + 1);
    for (uint32_t i = 0; i < ni; i++)
        stamp[i] = CX_NONE;
    uint64_t nt = 0;
    for (uint32_t u = 0; u < nu; u++) {
        size_t n = 0;
        /* Newest arrival first: keep each item's earliest event by time,
         * the earlier arrival on equal times. */
        for (uint32_t ev = e->cust_last[u]; ev != CX_NONE;
             ev = e->ev_prev[ev]) {
            uint32_t it = e->ev[ev].item;
            if (stamp[it] != u) {
                stamp[it] = u;
                pos[it] = (uint32_t)n;
                fs[n++] = (first_seen){it, ev, e->ev[ev].ts};
            } else if (e->ev[ev].ts <= fs[pos[it]].ts) {
                fs[pos[it]].ev = ev;
                fs[pos[it]].ts = e->ev[ev].ts;
            }
        }
        size_t hold = (size_t)floor(o->test_fraction * (double)n + 0.5);
        if (n < o->min_items || n < 2 || hold == 0) {
            s->test_ptr[u + 1] = nt;
            continue;
        }
        if (hold >= n)
            hold = n - 1;
        qsort(fs, n, sizeof *fs, by_first);
        /* Mark held-out items with stamp = u + nu... reuse pos as flag. */
        for (size_t j = 0; j < n; j++) {
            pos[fs[j].item] = j >= n - hold;
            r[fs[j].item] = 0;
            mask[fs[j].item] = 0;
        }
        for (uint32_t ev = e->cust_last[u]; ev != CX_NONE;
             ev = e->ev_prev[ev]) {
            const cx__event *x = &e->ev[ev];
            if (!pos[x->item])
                continue;
            s->keep[ev] = 0;
            r[x->item] += cx__signal_strength(&e->opt, x);
            mask[x->item] |= CX_TYPE_BIT(x->type);
        }
        for (size_t j = n - hold; j < n; j++) {
            uint32_t it = fs[j].item;
            if ((mask[it] & o->relevant) && r[it] > 0)
                s->test_items[nt++] = it;
        }
        qsort(s->test_items + s->test_ptr[u], nt - s->test_ptr[u],
              sizeof *s->test_items, cx__cmp_u32);
        s->test_ptr[u + 1] = nt;
    }
    free(stamp), free(pos), free(fs), free(r), free(mask);
    return CX_OK;
}

/* Add one ranked list's metrics into acc[]. */
static void score_list(const cx__hit *h, size_t n, size_t k,
                       const uint32_t *rel, size_t n_rel, double *acc,
                       uint8_t *seen)
{
    double dcg = 0, idcg = 0, ap = 0;
    size_t hits = 0;
    for (size_t j = 0; j < n; j++) {
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
    acc[CX_METRIC_PRECISION] += (double)hits / (double)k;
    acc[CX_METRIC_RECALL] += (double)hits / (double)ideal;
    acc[CX_METRIC_NDCG] += dcg / idcg;
    acc[CX_METRIC_MAP] += ap / (double)ideal;
    acc[CX_METRIC_HIT_RATE] += hits > 0;
    acc[CX_METRIC_USERS] += 1;
}

static void finish(double *acc, const uint8_t *seen, uint32_t ni)
{
    double users = acc[CX_METRIC_USERS];
    for (int i = 0; i < CX_METRIC_USERS; i++)
        acc[i] = users > 0 ? acc[i] / users : 0;
    size_t cov = 0;
    for (uint32_t i = 0; i < ni; i++)
        cov += seen[i];
    acc[CX_METRIC_COVERAGE] = ni ? (double)cov / ni : 0;
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

CX_API int cx_evaluate(cx_engine *e, const cx_eval_opts *opts, double *model,
                       double *baseline)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_evaluate: engine is NULL");
    if (!model)
        return cx__fail(e, CX_EINVAL, "cx_evaluate: model is NULL");
    cx_eval_opts o;
    cx_eval_opts_init(&o);
    if (opts) {
        /* A caller built before the replay fields has a shorter struct:
         * the missing fields keep their defaults. */
        size_t old = offsetof(cx_eval_opts, relevant) + sizeof o.relevant;
        if (opts->size < old || opts->size > 4096)
            return cx__fail(e, CX_EINVAL, "cx_evaluate: options not "
                            "initialised with cx_eval_opts_init");
        memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
        o.size = sizeof o;
    }
    if (!(o.diversity >= 0) || !isfinite(o.diversity))
        return cx__fail(e, CX_EINVAL, "cx_evaluate: diversity must be a "
                        "finite number >= 0");
    if (!o.experiment != !o.variant)
        return cx__fail(e, CX_EINVAL, "cx_evaluate: experiment and variant "
                        "go together");
    if (o.k == 0 || o.k > 10000)
        return cx__fail(e, CX_EINVAL, "cx_evaluate: k = %zu, must be "
                        "1..10000", o.k);
    if (!(o.test_fraction > 0 && o.test_fraction < 1))
        return cx__fail(e, CX_EINVAL, "cx_evaluate: test_fraction must be "
                        "in (0, 1)");
    /* The split and a copy of the signals are taken under the writer
     * mutex; the training and scoring run with no lock held. */
    pthread_mutex_lock(&e->wmu);
    split s = {0};
    cx__model *m = NULL;
    uint32_t n_items = e->items.n, n_users = e->customers.n;
    size_t n_ev = e->n_ev;
    cx__options opt = e->opt;
    int64_t ts_max = e->ts_max;
    cx__hit *h = malloc(o.k * sizeof *h);
    uint8_t *seen_m = calloc((size_t)n_items + 1, 1);
    uint8_t *seen_b = calloc((size_t)n_items + 1, 1);
    cx__event *ev = malloc((n_ev + 1) * sizeof *ev);
    uint32_t *order = NULL;
    int rc = CX_OK;
    if (!h || !seen_m || !seen_b || !ev || (rc = make_split(e, &o, &s)))
        rc = cx__fail(e, CX_ENOMEM, "cx_evaluate: out of memory");
    if (rc == CX_OK && n_ev == 0)
        rc = cx__fail(e, CX_EINVAL, "cx_evaluate: no signals");
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
            rc = cx__fail(e, CX_ENOMEM, "cx_evaluate: out of memory");
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
                rc = cx__fail(e, CX_EINVAL, "cx_evaluate: variant '%s' "
                              "carries k = %g, must be 1..10000", o.variant,
                              val);
            else if ((size_t)val != o.k && !(h2 = malloc((size_t)val *
                                                         sizeof *h2)))
                rc = cx__fail(e, CX_ENOMEM, "cx_evaluate: out of memory");
            else
                o.k = (size_t)val;
        }
        if (rc == CX_OK && cx_variant_get(e, o.experiment, o.variant,
                                          CX_OVERRIDE_DIVERSITY, &val) ==
                               CX_OK) {
            if (!(val >= 0) || !isfinite(val))
                rc = cx__fail(e, CX_EINVAL, "cx_evaluate: variant '%s' "
                              "carries diversity %g", o.variant, val);
            o.diversity = val;
        }
        if (rc == CX_OK && cx_variant_get(e, o.experiment, o.variant,
                                          CX_OVERRIDE_CATEGORY_CAP, &val) ==
                               CX_OK) {
            if (!(val >= 0 && val <= 1e6) || val != floor(val))
                rc = cx__fail(e, CX_EINVAL, "cx_evaluate: variant '%s' "
                              "carries category cap %g", o.variant, val);
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
        rc = cx__fail(e, CX_ENOMEM, "cx_evaluate: out of memory");
    pthread_mutex_unlock(&e->wmu);
    int diverse = o.max_per_category || o.diversity > 0;
    size_t pool = diverse ? (4 * o.k > o.k + 50 ? 4 * o.k : o.k + 50) : o.k;
    cx__hit *ph = rc == CX_OK && diverse ? malloc(pool * sizeof *ph) : NULL;
    if (rc == CX_OK && diverse && !ph)
        rc = cx__fail(e, CX_ENOMEM, "cx_evaluate: out of memory");
    if (rc == CX_OK) {
        cx__train_input in = {ev, n_ev, s.keep, n_users, n_items, ts_max,
                              NULL};
        rc = cx__train_model(e, &in, &opt, NULL, NULL, &m);
    }
    if (rc == CX_OK && !(order = popular_order(m)))
        rc = cx__fail(e, CX_ENOMEM, "cx_evaluate: out of memory");
    double acc_m[CX_METRIC_COUNT] = {0}, acc_b[CX_METRIC_COUNT] = {0};
    for (uint32_t u = 0; rc == CX_OK && u < n_users; u++) {
        size_t n_rel = (size_t)(s.test_ptr[u + 1] - s.test_ptr[u]);
        if (!n_rel || (include && !include[u]))
            continue;
        const uint32_t *rel = s.test_items + s.test_ptr[u];
        const uint32_t *skip = m->ui.idx + m->ui.ptr[u];
        size_t n_skip = (size_t)(m->ui.ptr[u + 1] - m->ui.ptr[u]);
        /* Popularity, skipping what the customer already has. */
        size_t nb = 0;
        for (uint32_t j = 0; j < m->n_items && nb < o.k; j++) {
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
        score_list(h, nb, o.k, rel, n_rel, acc_b, seen_b);
        if (m->has_vec[u] && diverse) {
            size_t n = cx__rank_exact(m, m->X + (size_t)u * m->k, pool, skip,
                                      n_skip, ph);
            n = cx__diversify(NULL, m, item_cat, n_cat, ph, n, o.k,
                              o.max_per_category, o.diversity);
            score_list(ph, n, o.k, rel, n_rel, acc_m, seen_m);
        } else if (m->has_vec[u]) {
            size_t n = cx__rank_exact(m, m->X + (size_t)u * m->k, o.k, skip,
                                      n_skip, h);
            score_list(h, n, o.k, rel, n_rel, acc_m, seen_m);
        } else {
            score_list(h, nb, o.k, rel, n_rel, acc_m, seen_m);
        }
    }
    if (rc == CX_OK) {
        finish(acc_m, seen_m, n_items);
        finish(acc_b, seen_b, n_items);
        memcpy(model, acc_m, sizeof acc_m);
        if (baseline)
            memcpy(baseline, acc_b, sizeof acc_b);
    }
    cx__model_free(m);
    free(ev);
    free(include), free(item_cat), free(ph);
    free(s.keep), free(s.test_ptr), free(s.test_items);
    free(h), free(seen_m), free(seen_b), free(order);
    return rc;
}
