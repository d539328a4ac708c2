/* live.c -- what keeps the engine fresh between trainings: fold-in of
 * customers and new items against the current model, and time-decayed
 * popularity updated in O(1) per signal.
 *
 * Concurrency: customer fold-ins are published by readers into a table
 * of atomic pointers whose pages never move; a replaced entry is retired
 * and freed by the next writer that holds the engine lock (when no reader
 * can still hold it).  Item fold-ins are computed by writers and
 * published under the write lock. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* ===================================================================== */
/* Live popularity                                                       */
/* ===================================================================== */

/* Scores are kept as sum s * 2^((ts - t0) / h): adding is O(1), and all
 * items share the factor 2^(-(now - t0) / h), so the raw values rank
 * correctly.  t0 moves forward (and the arrays are rescaled) before the
 * exponent passes SPAN half-lives. */
#define SPAN 60.0

static double pop_weight(double h, int64_t t0, int64_t ts)
{
    return h > 0 ? exp2((double)(ts - t0) / h) : 1.0;
}

void cx__pop_add(cx_engine *e, uint32_t i, double s, int64_t ts)
{
    if (!(s > 0))
        return;
    e->item_pop[i] += s * pop_weight(e->opt.pop_half_life, e->pop_t0, ts);
    e->item_trend[i] += s * pop_weight(e->opt.trend_half_life, e->trend_t0,
                                       ts);
    cx__top_bump(e, CX__LIST_POPULAR, i);
    cx__top_bump(e, CX__LIST_TRENDING, i);
}

double cx__pop_score(const cx_engine *e, uint32_t i, int trending)
{
    double h = trending ? e->opt.trend_half_life : e->opt.pop_half_life;
    int64_t t0 = trending ? e->trend_t0 : e->pop_t0;
    double raw = trending ? e->item_trend[i] : e->item_pop[i];
    return raw * pop_weight(h, e->ts_max, t0);
}

/* ===================================================================== */
/* Top sets                                                              */
/* ===================================================================== */

/* Each list keeps the set of its CX__TOP_M best items, unordered.  Keys
 * only rise between rebuilds (a signal adds positive strength; a
 * created_at that falls forces a rebuild), so an item outside the set can
 * only enter on its own rise: the set stays exactly the top CX__TOP_M by
 * (key, lower index first).  A rise is checked against a lower bound of
 * the members first, so most signals cost one comparison. */
typedef struct cx__top top;

static double top_key(const cx_engine *e, int list, uint32_t i)
{
    double k;
    if (list == CX__LIST_POPULAR)
        k = e->item_pop[i];
    else if (list == CX__LIST_TRENDING)
        k = e->item_trend[i];
    else
        k = (e->item_flags[i] & CX__ITEM_CATALOGUED) ? (double)e->item_created[i]
                                                    : 0;
    return k > 0 ? k : 0;
}

static int top_better(double ka, uint32_t a, double kb, uint32_t b)
{
    return ka > kb || (ka == kb && a < b);
}

#define TOP_SLOTS (2 * CX__TOP_M)

static size_t top_hash(uint32_t i)
{
    return (size_t)((i * 0x9E3779B1u) >> 22) & (TOP_SLOTS - 1);
}

/* The slot holding item i, or the empty slot where it would go. */
static size_t top_find(const top *t, uint32_t i)
{
    size_t h = top_hash(i);
    while (t->slot[h] != CX_NONE && t->member[t->slot[h]] != i)
        h = (h + 1) & (TOP_SLOTS - 1);
    return h;
}

/* Remove the entry at slot h, shifting later entries of its probe run
 * back (no tombstones). */
static void top_unslot(top *t, size_t h)
{
    t->slot[h] = CX_NONE;
    for (size_t j = (h + 1) & (TOP_SLOTS - 1); t->slot[j] != CX_NONE;
         j = (j + 1) & (TOP_SLOTS - 1)) {
        size_t home = top_hash(t->member[t->slot[j]]);
        /* Move j's entry to h unless its home lies cyclically in (h, j]. */
        if ((j > h && (home <= h || home > j)) ||
            (j < h && home <= h && home > j)) {
            t->slot[h] = t->slot[j];
            t->slot[j] = CX_NONE;
            h = j;
        }
    }
}

/* The member ranking last; sets t->lo to it. */
static uint32_t top_worst(const cx_engine *e, int list, top *t)
{
    uint32_t w = 0;
    double kw = top_key(e, list, t->member[0]);
    for (uint32_t j = 1; j < t->n; j++) {
        double k = top_key(e, list, t->member[j]);
        if (top_better(kw, t->member[w], k, t->member[j]))
            w = j, kw = k;
    }
    t->lo = kw;
    t->lo_item = t->member[w];
    return w;
}

void cx__top_bump(cx_engine *e, int list, uint32_t i)
{
    top *t = &e->top[list];
    double k = top_key(e, list, i);
    if (!t->valid || !(k > 0))
        return;
    if (t->n == CX__TOP_M && !top_better(k, i, t->lo, t->lo_item))
        return;
    size_t h = top_find(t, i);
    if (t->slot[h] != CX_NONE)
        return; /* a member already */
    if (t->n < CX__TOP_M) {
        t->member[t->n] = i;
        t->slot[h] = t->n++;
        if (t->n == CX__TOP_M)
            top_worst(e, list, t);
        return;
    }
    uint32_t w = top_worst(e, list, t);
    if (!top_better(k, i, t->lo, t->lo_item))
        return;
    top_unslot(t, top_find(t, t->member[w]));
    t->member[w] = i;
    t->slot[top_find(t, i)] = w;
    top_worst(e, list, t);
}

void cx__top_drop(cx_engine *e, int list, uint32_t i)
{
    top *t = &e->top[list];
    if (t->valid && t->slot[top_find(t, i)] != CX_NONE)
        t->valid = 0;
}

void cx__top_rescaled(cx_engine *e, int list)
{
    /* Every key was multiplied by the same factor: the members stand,
     * the bound is recomputed. */
    if (e->top[list].n == CX__TOP_M)
        top_worst(e, list, &e->top[list]);
}

/* The set of list built from scratch into *t. */
static void top_build(const cx_engine *e, int list, top *t)
{
    t->n = 0;
    t->valid = 1;
    t->lo = 0;
    t->lo_item = CX_NONE;
    memset(t->slot, 0xff, sizeof t->slot);
    /* A min-heap on (key, index) of the best CX__TOP_M. */
    uint32_t *hp = t->member;
    size_t n = 0;
    for (uint32_t i = 0; i < e->items.n; i++) {
        double k = top_key(e, list, i);
        if (!(k > 0))
            continue;
        size_t at;
        if (n < CX__TOP_M) {
            at = n++;
            while (at > 0 && top_better(top_key(e, list, hp[(at - 1) / 2]),
                                        hp[(at - 1) / 2], k, i)) {
                hp[at] = hp[(at - 1) / 2];
                at = (at - 1) / 2;
            }
            hp[at] = i;
            continue;
        }
        if (!top_better(k, i, top_key(e, list, hp[0]), hp[0]))
            continue;
        at = 0;
        for (;;) {
            size_t c = 2 * at + 1;
            if (c >= n)
                break;
            if (c + 1 < n && top_better(top_key(e, list, hp[c]), hp[c],
                                        top_key(e, list, hp[c + 1]),
                                        hp[c + 1]))
                c++;
            if (!top_better(k, i, top_key(e, list, hp[c]), hp[c]))
                break;
            hp[at] = hp[c];
            at = c;
        }
        hp[at] = i;
    }
    t->n = (uint32_t)n;
    for (uint32_t j = 0; j < t->n; j++)
        t->slot[top_find(t, t->member[j])] = j;
    if (t->n == CX__TOP_M)
        top_worst(e, list, t);
}

void cx__top_refresh(cx_engine *e)
{
    for (int list = 0; list < CX__LISTS; list++) {
        if (e->top[list].valid)
            continue;
        top *t = malloc(sizeof *t);
        if (!t)
            continue; /* readers scan the catalogue meanwhile */
        top_build(e, list, t);
        cx__wrlock(e);
        e->top[list] = *t;
        cx__wrunlock(e);
        free(t);
    }
}

const uint32_t *cx__top_items(const cx_engine *e, int list, size_t *n)
{
    const top *t = &e->top[list];
    *n = t->n;
    return t->valid ? t->member : NULL;
}

/* The planned copy of *where in p, if there is one. */
static void *planned(cx__plan *p, void **where)
{
    for (int i = 0; i < p->n; i++)
        if (p->g[i].where == where)
            return p->g[i].fresh;
    return NULL;
}

static int plan_rescale(cx_engine *e, cx__plan *p, double **col, double h,
                        int64_t t0, int64_t ts_max, int64_t *t0_out)
{
    *t0_out = t0;
    if (!(h > 0) || (double)(ts_max - t0) <= SPAN * h)
        return CX_OK;
    *t0_out = ts_max;
    double *a = planned(p, (void **)col);
    if (!a)
        a = cx__plan_array(p, (void **)col, e->items.n * sizeof **col,
                           e->item_cap * sizeof **col);
    if (!a)
        return CX_ENOMEM;
    double f = pop_weight(h, ts_max, t0);
    for (uint32_t i = 0; i < e->items.n; i++)
        a[i] *= f;
    return CX_OK;
}

int cx__pop_plan(cx_engine *e, int64_t ts_max, cx__plan *p, int64_t *t0_pop,
                 int64_t *t0_trend)
{
    int rc = plan_rescale(e, p, &e->item_pop, e->opt.pop_half_life,
                          e->pop_t0, ts_max, t0_pop);
    if (rc == CX_OK)
        rc = plan_rescale(e, p, &e->item_trend, e->opt.trend_half_life,
                          e->trend_t0, ts_max, t0_trend);
    return rc;
}

void cx__pop_set_t0(cx_engine *e, const int64_t t0[2])
{
    if (e->pop_t0 != t0[0])
        cx__top_rescaled(e, CX__LIST_POPULAR);
    if (e->trend_t0 != t0[1])
        cx__top_rescaled(e, CX__LIST_TRENDING);
    e->pop_t0 = t0[0];
    e->trend_t0 = t0[1];
}

int cx__pop_rebuild(cx_engine *e)
{
    cx__plan p;
    memset(&p, 0, sizeof p);
    double *pop = cx__plan_array(&p, (void **)&e->item_pop, 0,
                                 e->item_cap * sizeof *pop);
    double *trend = cx__plan_array(&p, (void **)&e->item_trend, 0,
                                   e->item_cap * sizeof *trend);
    if (p.failed) {
        cx__plan_release(&p, 0);
        return cx__fail(e, CX_ENOMEM, "out of memory");
    }
    int64_t t0 = e->ts_max;
    double hp = e->opt.pop_half_life, ht = e->opt.trend_half_life;
    for (size_t j = 0; j < e->n_ev; j++) {
        const cx__event *ev = &e->ev[j];
        double s = cx__signal_strength(&e->opt, ev);
        if (s > 0) {
            pop[ev->item] += s * pop_weight(hp, t0, ev->ts);
            trend[ev->item] += s * pop_weight(ht, t0, ev->ts);
        }
    }
    cx__wrlock(e);
    cx__plan_commit(&p);
    e->pop_t0 = e->trend_t0 = t0;
    e->top[CX__LIST_POPULAR].valid = e->top[CX__LIST_TRENDING].valid = 0;
    cx__wrunlock(e);
    cx__plan_release(&p, 1);
    cx__top_refresh(e);
    return CX_OK;
}

/* ===================================================================== */
/* The least-squares solve                                               */
/* ===================================================================== */

double cx__decay(const cx__options *o, int64_t ref, int64_t ts)
{
    return o->half_life > 0 && ts < ref
               ? exp2(-(double)(ref - ts) / o->half_life)
               : 1.0;
}

/* x = (G + sum_j (|c_j| - 1) y_j y_j')^-1 sum_{c_j > 0} c_j y_j, in double.
 * G is the full k x k Gram matrix; rows[j] the item (or customer) vectors.
 * work: k*k + k doubles.  CX_EINVAL when the system is not numerically
 * positive definite. */
static int solve(const double *G, int k, const float *const *rows,
                 const float *conf, size_t n, float *x, double *work)
{
    double *A = work, *b = work + (size_t)k * k;
    memcpy(A, G, (size_t)k * k * sizeof *A);
    memset(b, 0, (size_t)k * sizeof *b);
    cx__k.fold_update(A, b, k, rows, conf, n);
    if (cx__k.chol_solve(A, b, k))
        return CX_EINVAL;
    for (int d = 0; d < k; d++) {
        if (!isfinite(b[d]))
            return CX_EINVAL;
        x[d] = (float)b[d];
    }
    return CX_OK;
}

/* ===================================================================== */
/* Model fold-in state                                                   */
/* ===================================================================== */

static int gram_d(const float *F, uint32_t n, int k, double lambda,
                  double **out)
{
    /* Float ssyrk would lose digits the fold-in needs; accumulate rows
     * in double (once per model, O(n k^2)). */
    double *G = calloc((size_t)k * k, sizeof *G);
    double *row = malloc((size_t)k * sizeof *row);
    if (!G || !row) {
        free(G), free(row);
        return CX_ENOMEM;
    }
    for (uint32_t r = 0; r < n; r++) {
        const float *f = F + (size_t)r * k;
        for (int d = 0; d < k; d++)
            row[d] = f[d];
        for (int a = 0; a < k; a++) {
            double v = row[a];
            if (v == 0)
                continue;
            double *g = G + (size_t)a * k;
            for (int c = a; c < k; c++)
                g[c] += v * row[c];
        }
    }
    for (int a = 0; a < k; a++) {
        G[(size_t)a * k + a] += lambda;
        for (int c = 0; c < a; c++)
            G[(size_t)a * k + c] = G[(size_t)c * k + a];
    }
    free(row);
    *out = G;
    return CX_OK;
}

int cx__model_prepare_fold(cx__model *m, const cx__options *o,
                           int64_t ts_ref)
{
    m->opt = *o;
    m->ts_ref = ts_ref;
    int rc = gram_d(m->Y, m->n_items, m->k, o->regularization, &m->Gy);
    if (rc == CX_OK)
        rc = gram_d(m->X, m->n_users, m->k, o->regularization, &m->Gx);
    return rc;
}

/* ===================================================================== */
/* Gathering a row                                                       */
/* ===================================================================== */

typedef struct fpair {
    uint32_t key;   /* item (customer fold-in) or customer (item fold-in) */
    float conf;
    double r;
} fpair;

static int by_key(const void *a, const void *b)
{
    uint32_t x = ((const fpair *)a)->key, y = ((const fpair *)b)->key;
    return (x > y) - (x < y);
}

/* Merge equal keys (summing r in input order), then sort by key; returns
 * the new count.  O(n) with a hash table for long rows: a customer with
 * thousands of views of a few items costs their views, not a sort. */
static size_t merge(fpair *p, size_t n)
{
    size_t w = 0;
    if (n <= 32) {
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            while (j < w && p[j].key != p[i].key)
                j++;
            if (j < w)
                p[j].r += p[i].r;
            else
                p[w++] = p[i];
        }
    } else {
        size_t cap = 64;
        while (cap < 2 * n)
            cap *= 2;
        uint32_t slot_buf[1024];
        uint32_t *slot = cap <= 1024 ? slot_buf : malloc(cap * sizeof *slot);
        if (!slot) { /* fall back to sorting the whole row */
            qsort(p, n, sizeof *p, by_key);
            for (size_t i = 0; i < n; i++) {
                if (w && p[w - 1].key == p[i].key)
                    p[w - 1].r += p[i].r;
                else
                    p[w++] = p[i];
            }
            return w;
        }
        memset(slot, 0xff, cap * sizeof *slot);
        for (size_t i = 0; i < n; i++) {
            size_t h = (p[i].key * 0x9E3779B1u) & (cap - 1);
            while (slot[h] != CX_NONE && p[slot[h]].key != p[i].key)
                h = (h + 1) & (cap - 1);
            if (slot[h] != CX_NONE) {
                p[slot[h]].r += p[i].r;
            } else {
                p[w] = p[i];
                slot[h] = (uint32_t)w++;
            }
        }
        if (slot != slot_buf)
            free(slot);
    }
    /* A canonical order, so equal rows give bit-equal solves. */
    if (w > 32)
        qsort(p, w, sizeof *p, by_key);
    else
        for (size_t i = 1; i < w; i++) {
            fpair t = p[i];
            size_t j = i;
            for (; j && p[j - 1].key > t.key; j--)
                p[j] = p[j - 1];
            p[j] = t;
        }
    return w;
}

const float *cx__item_vec(const cx_engine *e, uint32_t i, float *inv_norm)
{
    const cx__model *m = e->model;
    if (!m)
        return NULL;
    if (i < m->n_items && m->inv_norm[i] > 0) {
        if (inv_norm)
            *inv_norm = m->inv_norm[i];
        return m->Y + (size_t)i * m->k;
    }
    uint32_t s = i < e->items.n ? e->item_xslot[i] : CX_NONE;
    if (s == CX_NONE)
        return NULL;
    if (inv_norm)
        *inv_norm = e->xv_inv_norm[s];
    return e->xv + (size_t)s * m->k;
}

/* Confidences and vectors of merged pairs; pairs without a vector on the
 * other side are dropped (a zero vector adds nothing to the system). */
typedef const float *(*vec_fn)(cx_engine *e, uint32_t key, void *ctx);

static int solve_pairs(cx_engine *e, const double *G, int k, fpair *p,
                       size_t n, double alpha, vec_fn vec, void *ctx,
                       float *x, int *has_vec)
{
    const float *rows_buf[256];
    float conf_buf[256];
    double work_buf[64 * 64 + 64];
    size_t wn = (size_t)k * k + k;
    const float **rows = n <= 256 ? rows_buf : malloc(n * sizeof *rows);
    float *conf = n <= 256 ? conf_buf : malloc(n * sizeof *conf);
    double *work = wn <= 64 * 64 + 64 ? work_buf : malloc(wn * sizeof *work);
    int rc = CX_OK;
    *has_vec = 0;
    if (!rows || !conf || !work) {
        rc = CX_ENOMEM;
        goto out;
    }
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        const float *v = vec(e, p[j].key, ctx);
        if (!v)
            continue;
        float c = cx__confidence(p[j].r, alpha);
        if (c > 0)
            *has_vec = 1;
        rows[m] = v;
        conf[m] = c;
        m++;
    }
    if (*has_vec)
        rc = solve(G, k, rows, conf, m, x, work);
    if (rc == CX_EINVAL)
        *has_vec = 0, rc = CX_OK;
out:
    if (rows != rows_buf)
        free(rows);
    if (conf != conf_buf)
        free(conf);
    if (work != work_buf)
        free(work);
    return rc;
}

static const float *item_row(cx_engine *e, uint32_t i, void *ctx)
{
    CX_UNUSED(ctx);
    return cx__item_vec(e, i, NULL);
}

int cx__fold_pairs(const cx_engine *e, const cx__model *m,
                   const uint32_t *items, const double *r, size_t n,
                   float *x, int *has_vec)
{
    fpair buf[64];
    fpair *p = n <= 64 ? buf : malloc(n * sizeof *p);
    if (!p)
        return CX_ENOMEM;
    for (size_t j = 0; j < n; j++)
        p[j] = (fpair){items[j], 0, r[j]};
    size_t np = merge(p, n);
    int rc = solve_pairs((cx_engine *)e, m->Gy, m->k, p, np, m->opt.alpha,
                         item_row, NULL, x, has_vec);
    if (p != buf)
        free(p);
    return rc;
}

/* The merged (item, r) pairs of customer u under model m, into *out
 * (buf, or a malloc'd array the caller frees when *out != buf). */
static int gather_customer(const cx_engine *e, const cx__model *m,
                           uint32_t u, fpair *buf, size_t cap, fpair **out,
                           size_t *count)
{
    fpair *p = buf;
    size_t n = 0;
    int rc = CX_OK;
    cx__walk w;
    uint32_t ev;
    for (cx__walk_init(&w, e, u); (ev = cx__walk_next(&w)) != CX_NONE;) {
        const cx__event *v = &e->ev[ev];
        double s = cx__signal_strength(&m->opt, v) *
                   cx__decay(&m->opt, m->ts_ref, v->ts);
        if (n == cap) {
            fpair *q = p == buf ? malloc(2 * cap * sizeof *q)
                                : realloc(p, 2 * cap * sizeof *q);
            if (!q) {
                rc = CX_ENOMEM;
                break;
            }
            if (p == buf)
                memcpy(q, buf, cap * sizeof *q);
            p = q;
            cap *= 2;
        }
        p[n++] = (fpair){v->item, 0, s};
    }
    *out = p;
    *count = rc ? 0 : merge(p, n);
    return rc;
}

/* Fold customer u in against model m from all their signals. */
static int fold_customer(cx_engine *e, const cx__model *m, uint32_t u,
                         float *x, int *has_vec)
{
    fpair buf[128], *p;
    size_t n;
    int rc = gather_customer(e, m, u, buf, 128, &p, &n);
    if (rc == CX_OK)
        rc = solve_pairs(e, m->Gy, m->k, p, n, m->opt.alpha, item_row, NULL,
                         x, has_vec);
    if (p != buf)
        free(p);
    return rc;
}

static int by_contrib(const void *a, const void *b)
{
    float x = ((const fpair *)a)->conf, y = ((const fpair *)b)->conf;
    uint32_t i = ((const fpair *)a)->key, j = ((const fpair *)b)->key;
    return x != y ? (x < y) - (x > y) : (i > j) - (i < j);
}

CX_API int cx_explain(cx_engine *e, const char *customer, const char *item,
                      size_t nmax, const char **items, float *contrib,
                      size_t *count, float *score)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_explain: engine is NULL");
    if (!count || !score || (nmax && (!items || !contrib)) ||
        !cx__id_len(customer) || !cx__id_len(item))
        return cx__fail(e, CX_EINVAL, "cx_explain: NULL output or invalid "
                        "id");
    *count = 0;
    *score = 0;
    cx__rdlock(e);
    const cx__model *m = e->model;
    uint32_t u = cx__idmap_find(&e->customers, customer);
    uint32_t i = cx__idmap_find(&e->items, item);
    const float *yi = NULL;
    int rc = CX_OK;
    fpair buf[128], *p = buf;
    size_t n = 0;
    double *A = NULL;
    if (!m)
        rc = cx__fail(e, CX_ENOTTRAINED, "cx_explain: no trained model");
    else if (u == CX_NONE || i == CX_NONE)
        rc = cx__fail(e, CX_ENOTFOUND, "cx_explain: unknown %s '%s'",
                      u == CX_NONE ? "customer" : "item",
                      u == CX_NONE ? customer : item);
    else if (!(yi = cx__item_vec(e, i, NULL)))
        rc = cx__fail(e, CX_ENOTFOUND, "cx_explain: item '%s' has no vector",
                      item);
    else if ((rc = gather_customer(e, m, u, buf, 128, &p, &n)))
        rc = cx__fail(e, rc, "cx_explain: out of memory");
    int k = m ? m->k : 0;
    const float **rows = NULL;
    float *conf = NULL;
    if (rc == CX_OK) {
        A = malloc(((size_t)k * k + 2 * (size_t)k) * sizeof *A);
        rows = malloc((n + 1) * sizeof *rows);
        conf = malloc((n + 1) * sizeof *conf);
        if (!A || !rows || !conf)
            rc = cx__fail(e, CX_ENOMEM, "cx_explain: out of memory");
    }
    size_t np = 0, pos = 0;
    if (rc == CX_OK) {
        /* A = Y'Y + lambda I + sum (c - 1) y y'; solve A z = y_i. */
        for (size_t j = 0; j < n; j++) {
            const float *v = cx__item_vec(e, p[j].key, NULL);
            if (!v)
                continue;
            rows[np] = v;
            conf[np] = cx__confidence(p[j].r, m->opt.alpha);
            pos += conf[np] > 0;
            p[np] = p[j];
            p[np].conf = conf[np];
            np++;
        }
        double *z = A + (size_t)k * k, *junk = z + k;
        memcpy(A, m->Gy, (size_t)k * k * sizeof *A);
        memset(junk, 0, (size_t)k * sizeof *junk);
        cx__k.fold_update(A, junk, k, rows, conf, np);
        for (int d = 0; d < k; d++)
            z[d] = yi[d];
        if (!pos)
            rc = cx__fail(e, CX_ENOTFOUND, "cx_explain: customer '%s' has "
                          "no positive signal", customer);
        else if (cx__k.chol_solve(A, z, k))
            rc = cx__fail(e, CX_EINVAL, "cx_explain: the customer's system "
                          "is not positive definite");
        /* Contribution of each positive pair: c_j * z'y_j. */
        double total = 0;
        size_t w = 0;
        for (size_t j = 0; rc == CX_OK && j < np; j++) {
            if (!(conf[j] > 0))
                continue;
            double dz = 0;
            for (int d = 0; d < k; d++)
                dz += z[d] * rows[j][d];
            double c = conf[j] * dz;
            total += c;
            p[w] = p[j];
            p[w].conf = (float)c;
            w++;
        }
        if (rc == CX_OK) {
            qsort(p, w, sizeof *p, by_contrib);
            size_t out = w < nmax ? w : nmax;
            for (size_t j = 0; j < out; j++) {
                items[j] = e->items.str[p[j].key];
                contrib[j] = p[j].conf;
            }
            *count = out;
            *score = (float)total;
        }
    }
    cx__rdunlock(e);
    if (p != buf)
        free(p);
    free(A);
    free(rows);
    free(conf);
    return rc;
}

/* ===================================================================== */
/* Customer vectors for readers                                          */
/* ===================================================================== */

static _Atomic(cx__fold *) *fold_slot(const cx_engine *e, uint32_t u)
{
    size_t pg = u / CX__FOLD_PAGE;
    if (pg >= e->fold_npages)
        return NULL;
    _Atomic(cx__fold *) *page = e->fold_pages[pg];
    return &page[u % CX__FOLD_PAGE];
}

const float *cx__customer_vec(cx_engine *e, uint32_t u, int *folded,
                              cx__fold **tmp)
{
    const cx__model *m = e->model;
    *tmp = NULL;
    if (folded)
        *folded = 0;
    if (!m || u >= e->customers.n)
        return NULL;
    uint32_t last = e->cust_last[u];
    int trained = u < m->n_users && m->has_vec[u];
    if (e->opt.fold_in == CX_FOLD_OFF || last == CX_NONE ||
        last < m->n_events)
        return trained ? m->X + (size_t)u * m->k : NULL;
    if (folded)
        *folded = 1;
    _Atomic(cx__fold *) *slot = fold_slot(e, u);
    cx__fold *f = slot ? atomic_load_explicit(slot, memory_order_acquire)
                       : NULL;
    if (f && f->last_ev == last)
        return f->has_vec ? f->x : NULL;
    cx__fold *nf = malloc(sizeof *nf + (size_t)m->k * sizeof(float));
    int hv = 0;
    if (!nf || fold_customer(e, m, u, nf->x, &hv)) {
        /* Out of memory: serve the trained vector rather than fail. */
        free(nf);
        if (folded)
            *folded = 0;
        return trained ? m->X + (size_t)u * m->k : NULL;
    }
    nf->next = NULL;
    nf->last_ev = last;
    nf->has_vec = (uint32_t)hv;
    if (slot && atomic_compare_exchange_strong_explicit(
                    slot, &f, nf, memory_order_acq_rel,
                    memory_order_acquire)) {
        if (f)
            cx__retire(e, f);
        atomic_fetch_add(&e->n_folded, 1);
    } else {
        *tmp = nf; /* another thread published first: use ours once */
    }
    return hv ? nf->x : NULL;
}

/* ===================================================================== */
/* Writers: item fold-in and eager customer fold-in                      */
/* ===================================================================== */

/* Customers used for one item fold-in, newest first: bounds the cost of a
 * new item that sells fast before the next training. */
#define ITEM_FOLD_MAX 500

static const float *cust_row(cx_engine *e, uint32_t u, void *ctx)
{
    cx__fold **tofree = ctx;
    cx__fold *tmp;
    const float *v = cx__customer_vec(e, u, NULL, &tmp);
    if (tmp) { /* keep it alive until the solve is done */
        tmp->next = *tofree;
        *tofree = tmp;
    }
    return v;
}

static int fold_item(cx_engine *e, const cx__model *m, uint32_t i, float *x,
                     int *has_vec)
{
    fpair buf[ITEM_FOLD_MAX];
    size_t n = 0;
    for (uint32_t ev = e->item_last[i]; ev != CX_NONE && n < ITEM_FOLD_MAX;
         ev = e->ev_iprev[ev]) {
        const cx__event *v = &e->ev[ev];
        double s = cx__signal_strength(&m->opt, v) *
                   cx__decay(&m->opt, m->ts_ref, v->ts);
        buf[n++] = (fpair){v->cust, 0, s};
    }
    n = merge(buf, n);
    cx__fold *tofree = NULL;
    int rc = solve_pairs(e, m->Gx, m->k, buf, n, m->opt.alpha, cust_row,
                         &tofree, x, has_vec);
    while (tofree) {
        cx__fold *nx = tofree->next;
        free(tofree);
        tofree = nx;
    }
    return rc;
}

static int has_trained_vec(const cx__model *m, uint32_t i)
{
    return i < m->n_items && m->inv_norm[i] > 0;
}

int cx__fold_after_ingest(cx_engine *e, size_t ev_from)
{
    const cx__model *m = e->model;
    if (!m || e->opt.fold_in == CX_FOLD_OFF || ev_from >= e->n_ev)
        return CX_OK;
    int k = m->k, rc = CX_OK;
    /* Distinct items of the new events that have no trained vector. */
    uint32_t *todo = NULL;
    size_t n_todo = 0, cap = 0;
    for (size_t j = ev_from; j < e->n_ev && rc == CX_OK; j++) {
        uint32_t i = e->ev[j].item;
        if (has_trained_vec(m, i))
            continue;
        size_t t = 0;
        while (t < n_todo && todo[t] != i)
            t++;
        if (t < n_todo)
            continue;
        if (n_todo == cap) {
            size_t c = cap ? 2 * cap : 16;
            uint32_t *q = realloc(todo, c * sizeof *q);
            if (!q) {
                rc = CX_ENOMEM;
                break;
            }
            todo = q;
            cap = c;
        }
        todo[n_todo++] = i;
    }
    float *vec = n_todo ? malloc(n_todo * (size_t)k * sizeof *vec) : NULL;
    int *hv = n_todo ? malloc(n_todo * sizeof *hv) : NULL;
    if (n_todo && (!vec || !hv))
        rc = CX_ENOMEM;
    size_t n_new = 0;
    for (size_t t = 0; t < n_todo && rc == CX_OK; t++) {
        rc = fold_item(e, m, todo[t], vec + t * k, &hv[t]);
        n_new += hv[t] && e->item_xslot[todo[t]] == CX_NONE;
    }
    cx__plan p;
    memset(&p, 0, sizeof p);
    if (rc == CX_OK && e->xv_n + n_new > e->xv_cap) {
        size_t c = e->xv_cap ? e->xv_cap : 64;
        while (c < e->xv_n + n_new)
            c *= 2;
        cx__plan_array(&p, (void **)&e->xv, e->xv_n * (size_t)k * sizeof(float),
                       c * (size_t)k * sizeof(float));
        cx__plan_array(&p, (void **)&e->xv_inv_norm,
                       e->xv_n * sizeof(float), c * sizeof(float));
        cx__plan_array(&p, (void **)&e->xv_item, e->xv_n * sizeof(uint32_t),
                       c * sizeof(uint32_t));
        cx__plan_cap(&p, &e->xv_cap, 8, c);
        if (p.failed)
            rc = CX_ENOMEM;
    }
    if (rc == CX_OK && n_todo) {
        cx__wrlock(e);
        cx__plan_commit(&p);
        for (size_t t = 0; t < n_todo; t++) {
            uint32_t i = todo[t], s = e->item_xslot[i];
            if (!hv[t])
                continue;
            if (s == CX_NONE) {
                s = e->xv_n++;
                e->xv_item[s] = i;
                e->item_xslot[i] = s;
            }
            const float *y = vec + t * k;
            double n2 = 0;
            for (int d = 0; d < k; d++)
                n2 += (double)y[d] * y[d];
            memcpy(e->xv + (size_t)s * k, y, (size_t)k * sizeof *y);
            e->xv_inv_norm[s] = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        }
        cx__wrunlock(e);
    }
    cx__plan_release(&p, rc == CX_OK && n_todo);
    /* The batch's customers of those items were folded (above, for the
     * item solve) before the items had their new vectors: drop those
     * fold-ins so the next read (or the eager pass) solves again. */
    for (size_t j = ev_from; rc == CX_OK && n_todo && j < e->n_ev; j++) {
        uint32_t i = e->ev[j].item;
        if (has_trained_vec(m, i) || e->item_xslot[i] == CX_NONE)
            continue;
        _Atomic(cx__fold *) *slot = fold_slot(e, e->ev[j].cust);
        cx__fold *f = slot ? atomic_exchange(slot, NULL) : NULL;
        if (f)
            cx__retire(e, f);
    }
    free(todo);
    free(vec);
    free(hv);
    /* Eager mode: every customer of the batch, now, once each. */
    if (rc == CX_OK && e->opt.fold_in == CX_FOLD_EAGER) {
        for (size_t j = e->n_ev; j-- > ev_from;) {
            uint32_t u = e->ev[j].cust;
            if (e->cust_last[u] != j)
                continue; /* a newer event of u comes later: fold once */
            cx__fold *tmp;
            cx__customer_vec(e, u, NULL, &tmp);
            free(tmp);
        }
    }
    return rc;
}

int cx__fold_plan_reset(cx_engine *e, cx__plan *p)
{
    /* Fresh, empty item fold-in state; the caller swaps the fold table. */
    uint32_t *xs = cx__plan_array(p, (void **)&e->item_xslot, 0,
                                  e->item_cap * sizeof *xs);
    for (size_t i = 0; xs && i < e->item_cap; i++)
        xs[i] = CX_NONE;
    cx__plan_array(p, (void **)&e->xv, 0, 0);
    cx__plan_array(p, (void **)&e->xv_inv_norm, 0, 0);
    cx__plan_array(p, (void **)&e->xv_item, 0, 0);
    cx__plan_cap(p, &e->xv_cap, 8, 0);
    cx__plan_cap(p, &e->xv_n, 4, 0);
    return p->failed ? CX_ENOMEM : CX_OK;
}
