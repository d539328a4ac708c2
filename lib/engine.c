/* engine.c -- engine lifecycle, options by key, statistics and locking.
 * The engine is guarded by one reader-writer lock: ranking calls read,
 * ingest/catalogue/training write. */
#include "internal.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

CX_API const char *cx_version(void) { return CX_VERSION_STRING; }
CX_API int cx_version_number(void) { return CX_VERSION_NUMBER; }

int cx__ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

int cx__cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ===================================================================== */
/* Options                                                               */
/* ===================================================================== */

void cx__options_default(cx__options *o)
{
    memset(o, 0, sizeof *o);
    o->factors = 64;
    o->iterations = 15;
    o->regularization = 0.05;
    o->alpha = 2.0;
    o->solver = CX_SOLVER_CG;
    o->cg_steps = 3;
    o->threads = 0;
    o->seed = 42;
    o->half_life = 0;
    o->init_scale = 0.01;
    o->candidates = 4;
    o->weight[CX_VIEW] = 1;
    o->weight[CX_CLICK] = 2;
    o->weight[CX_ADD_TO_CART] = 5;
    o->weight[CX_PURCHASE] = 10;
    o->weight[CX_RATING] = 5;
    o->weight[CX_RETURN] = -15;
    o->weight[CX_DISLIKE] = -10;
}

/* One row per option: where it lives, its bounds, whether it is an int. */
typedef struct opt_spec {
    int key;
    const char *name;
    double lo, hi;
    int is_int;
    size_t off;
} opt_spec;

#define OFF(f) offsetof(cx__options, f)
static const opt_spec specs[] = {
    {CX_OPT_FACTORS, "factors", 1, 1024, 1, OFF(factors)},
    {CX_OPT_ITERATIONS, "iterations", 1, 1000, 1, OFF(iterations)},
    {CX_OPT_REGULARIZATION, "regularization", 0, 1e6, 0, OFF(regularization)},
    {CX_OPT_ALPHA, "alpha", 1e-6, 1e6, 0, OFF(alpha)},
    {CX_OPT_SOLVER, "solver", 0, 1, 1, OFF(solver)},
    {CX_OPT_CG_STEPS, "cg_steps", 1, 64, 1, OFF(cg_steps)},
    {CX_OPT_THREADS, "threads", 0, 256, 1, OFF(threads)},
    {CX_OPT_SEED, "seed", 0, 9007199254740992.0, 2, OFF(seed)},
    {CX_OPT_HALF_LIFE, "half_life", 0, 1e12, 0, OFF(half_life)},
    {CX_OPT_INIT_SCALE, "init_scale", 1e-9, 10, 0, OFF(init_scale)},
    {CX_OPT_CANDIDATES, "candidates", 1, 1000, 1, OFF(candidates)},
};

static const opt_spec *find_spec(int key)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (specs[i].key == key)
            return &specs[i];
    return NULL;
}

CX_API int cx_set_option(cx_engine *e, int key, double v)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_set_option: engine is NULL");
    if (isnan(v))
        return cx__fail(e, CX_EINVAL, "option %d: value is NaN", key);
    if (key >= CX_OPT_WEIGHT && key < CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES) {
        if (!isfinite(v) || fabs(v) > 1e6)
            return cx__fail(e, CX_ERANGE,
                            "signal weight %g out of range [-1e6, 1e6]", v);
        pthread_rwlock_wrlock(&e->lock);
        e->opt.weight[key - CX_OPT_WEIGHT] = v;
        pthread_rwlock_unlock(&e->lock);
        return CX_OK;
    }
    const opt_spec *s = find_spec(key);
    if (!s)
        return cx__fail(e, CX_EINVAL, "unknown option key %d", key);
    if (v < s->lo || v > s->hi)
        return cx__fail(e, CX_ERANGE, "option %s = %g out of range [%g, %g]",
                        s->name, v, s->lo, s->hi);
    if (s->is_int && v != floor(v))
        return cx__fail(e, CX_EINVAL, "option %s needs an integer, not %g",
                        s->name, v);
    pthread_rwlock_wrlock(&e->lock);
    char *p = (char *)&e->opt + s->off;
    if (s->is_int == 1)
        *(int *)p = (int)v;
    else if (s->is_int == 2)
        *(uint64_t *)p = (uint64_t)v;
    else
        *(double *)p = v;
    pthread_rwlock_unlock(&e->lock);
    return CX_OK;
}

CX_API int cx_get_option(const cx_engine *e, int key, double *v)
{
    if (!e || !v)
        return cx__fail(e, CX_EINVAL, "cx_get_option: NULL argument");
    cx_engine *w = (cx_engine *)e; /* the lock is not part of the value */
    if (key >= CX_OPT_WEIGHT && key < CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES) {
        pthread_rwlock_rdlock(&w->lock);
        *v = e->opt.weight[key - CX_OPT_WEIGHT];
        pthread_rwlock_unlock(&w->lock);
        return CX_OK;
    }
    const opt_spec *s = find_spec(key);
    if (!s)
        return cx__fail(e, CX_EINVAL, "unknown option key %d", key);
    pthread_rwlock_rdlock(&w->lock);
    const char *p = (const char *)&e->opt + s->off;
    *v = s->is_int == 1   ? *(const int *)p
         : s->is_int == 2 ? (double)*(const uint64_t *)p
                          : *(const double *)p;
    pthread_rwlock_unlock(&w->lock);
    return CX_OK;
}

/* ===================================================================== */
/* Lifecycle                                                             */
/* ===================================================================== */

CX_API int cx_open(cx_engine **out, const char *path, unsigned flags)
{
    if (!out)
        return cx__fail(NULL, CX_EINVAL, "cx_open: out is NULL");
    *out = NULL;
    if (path)
        return cx__fail(NULL, CX_ENOTSUP,
                        "cx_open: data directories are not supported by "
                        "this version; pass NULL for an in-memory engine");
    if (flags)
        return cx__fail(NULL, CX_EINVAL, "cx_open: unknown flags 0x%x",
                        flags);
    cx__kernels_init();
    cx_engine *e = calloc(1, sizeof *e);
    if (!e)
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    /* Writers first: with glibc's default (readers first) a steady
     * stream of ranking calls keeps cx_ingest and cx_train waiting for as
     * long as it lasts.  No call takes the lock twice, which this kind
     * requires. */
    pthread_rwlockattr_t attr;
    int bad = pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    if (!bad)
        pthread_rwlockattr_setkind_np(
            &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    if (!bad) {
        bad = pthread_rwlock_init(&e->lock, &attr);
        pthread_rwlockattr_destroy(&attr);
    }
    if (bad) {
        free(e);
        return cx__fail(NULL, CX_ENOMEM, "cx_open: cannot create lock");
    }
    cx__options_default(&e->opt);
    /* The "no category" category is index 0 and the default channel
     * "web" is channel 0, so defaults never need a lookup. */
    if (cx__idmap_reserve(&e->categories, 1, 1) ||
        cx__idmap_reserve(&e->channels, 1, 4)) {
        cx_close(e);
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    }
    cx__idmap_add(&e->categories, "", NULL);
    cx__idmap_add(&e->channels, "web", NULL);
    *out = e;
    return CX_OK;
}

void cx__csr_free(cx__csr *c)
{
    free(c->ptr);
    free(c->idx);
    free(c->conf);
    free(c->mask);
    memset(c, 0, sizeof *c);
}

void cx__model_free(cx__model *m)
{
    if (!m)
        return;
    free(m->X);
    free(m->Y);
    free(m->has_vec);
    free(m->inv_norm);
    free(m->Yq);
    free(m->q_scale);
    free(m->q_cos_scale);
    cx__csr_free(&m->ui);
    free(m);
}

CX_API void cx_close(cx_engine *e)
{
    if (!e)
        return;
    cx__forget_errors(e);
    cx__model_free(e->model);
    cx__idmap_free(&e->customers);
    cx__idmap_free(&e->items);
    cx__idmap_free(&e->categories);
    cx__idmap_free(&e->channels);
    cx__idmap_free(&e->tagsets);
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        free(e->type_name[t]);
    free(e->item_cat);
    free(e->item_price);
    free(e->item_flags);
    free(e->item_created);
    free(e->item_tags);
    free(e->item_pop);
    free(e->ev);
    free(e->ev_prev);
    free(e->cust_last);
    pthread_rwlock_destroy(&e->lock);
    free(e);
}

/* ===================================================================== */
/* Growing per-index columns                                             */
/* ===================================================================== */

int cx__grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return CX_OK;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return CX_ENOMEM;
    *p = q;
    *cap = c;
    return CX_OK;
}

int cx__reserve_items(cx_engine *e, size_t n)
{
    size_t need = (size_t)e->items.n + n;
    if (need <= e->item_cap)
        return CX_OK;
    size_t c = e->item_cap ? e->item_cap : 256;
    while (c < need)
        c *= 2;
    /* Grow every column to c; a failure leaves the old ones valid. */
#define GROW_COL(f)                                                        \
    do {                                                                   \
        void *q = realloc(e->f, c * sizeof *e->f);                         \
        if (!q)                                                            \
            return CX_ENOMEM;                                              \
        e->f = q;                                                          \
    } while (0)
    GROW_COL(item_cat);
    GROW_COL(item_price);
    GROW_COL(item_flags);
    GROW_COL(item_created);
    GROW_COL(item_tags);
    GROW_COL(item_pop);
#undef GROW_COL
    e->item_cap = c;
    return CX_OK;
}

int cx__reserve_customers(cx_engine *e, size_t n)
{
    size_t old = e->cust_cap;
    int rc = cx__grow((void **)&e->cust_last, &e->cust_cap,
                      (size_t)e->customers.n + n, sizeof *e->cust_last);
    if (rc == CX_OK)
        for (size_t i = old; i < e->cust_cap; i++)
            e->cust_last[i] = CX_NONE;
    return rc;
}

void cx__item_init(cx_engine *e, uint32_t i)
{
    e->item_cat[i] = 0;
    e->item_price[i] = 0;
    e->item_flags[i] = CX__ITEM_IN_STOCK;
    e->item_created[i] = 0;
    e->item_tags[i] = CX_NONE;
    e->item_pop[i] = 0;
}

/* ===================================================================== */
/* Introspection                                                         */
/* ===================================================================== */

static int64_t memory_of(const cx_engine *e)
{
    int64_t b = (int64_t)sizeof *e;
    b += (int64_t)e->item_cap * (4 + 8 + 1 + 8 + 4 + 4);
    b += (int64_t)e->ev_cap * (sizeof(cx__event) + 4);
    b += (int64_t)e->cust_cap * 4;
    const cx__idmap *maps[] = {&e->customers, &e->items, &e->categories,
                               &e->channels, &e->tagsets};
    for (size_t i = 0; i < 5; i++) {
        b += (int64_t)maps[i]->cap * 12 + (int64_t)maps[i]->nslot * 4;
        for (const cx__chunk *c = maps[i]->chunks; c; c = c->next)
            b += (int64_t)(sizeof *c + c->cap);
    }
    const cx__model *m = e->model;
    if (m) {
        int64_t k = m->k, u = m->n_users, it = m->n_items;
        b += (u + it) * k * 4 + u + it * 12;
        b += ((it + 7) / 8 * 8) * m->kq;
        b += (u + 1) * 8 + (int64_t)m->ui.ptr[u] * 12;
    }
    return b;
}

CX_API int cx_stat(cx_engine *e, int key, int64_t *v)
{
    if (!e || !v)
        return cx__fail(e, CX_EINVAL, "cx_stat: NULL argument");
    int rc = CX_OK;
    pthread_rwlock_rdlock(&e->lock);
    const cx__model *m = e->model;
    switch (key) {
    case CX_STAT_CUSTOMERS: *v = e->customers.n; break;
    case CX_STAT_ITEMS: *v = e->items.n; break;
    case CX_STAT_SIGNALS: *v = (int64_t)e->n_ev; break;
    case CX_STAT_GENERATION: *v = e->generation; break;
    case CX_STAT_FACTORS: *v = m ? m->k : 0; break;
    case CX_STAT_MODEL_CUSTOMERS: *v = m ? m->n_users : 0; break;
    case CX_STAT_MODEL_ITEMS: *v = m ? m->n_items : 0; break;
    case CX_STAT_MEMORY: *v = memory_of(e); break;
    default: rc = cx__fail(e, CX_EINVAL, "cx_stat: unknown key %d", key);
    }
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

CX_API int cx_factors(cx_engine *e, int which, const float **data,
                      size_t *rows, size_t *cols)
{
    if (!e || !data || !rows || !cols)
        return cx__fail(e, CX_EINVAL, "cx_factors: NULL argument");
    if (which != 0 && which != 1)
        return cx__fail(e, CX_EINVAL, "cx_factors: which must be 0 or 1");
    pthread_rwlock_rdlock(&e->lock);
    const cx__model *m = e->model;
    int rc = CX_OK;
    if (!m) {
        rc = cx__fail(e, CX_ENOTTRAINED, "cx_factors: no trained model");
    } else {
        *data = which ? m->Y : m->X;
        *rows = which ? m->n_items : m->n_users;
        *cols = (size_t)m->k;
    }
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

CX_API const char *cx_customer_id(cx_engine *e, size_t i)
{
    if (!e)
        return NULL;
    pthread_rwlock_rdlock(&e->lock);
    const char *s = i < e->customers.n ? e->customers.str[i] : NULL;
    pthread_rwlock_unlock(&e->lock);
    return s;
}

CX_API const char *cx_item_id(cx_engine *e, size_t i)
{
    if (!e)
        return NULL;
    pthread_rwlock_rdlock(&e->lock);
    const char *s = i < e->items.n ? e->items.str[i] : NULL;
    pthread_rwlock_unlock(&e->lock);
    return s;
}
