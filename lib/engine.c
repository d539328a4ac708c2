/* engine.c -- engine lifecycle, options by key, statistics and locking.
 * Readers share the engine lock; writers are serialised by a mutex and
 * take the engine lock only to publish what they prepared outside it
 * (see cx__plan). */
#include "internal.h"
#include "quality.h"
#include "db.h"

#include <math.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
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
    o->candidates = 8;
    o->fold_in = CX_FOLD_LAZY;
    o->trend_half_life = 86400;
    o->pop_half_life = 30 * 86400;
    o->lapsed_after = 60 * 86400;
    o->loyal_purchases = 3;
    o->sync = CX_SYNC_FULL;
    o->sync_interval = 1000;
    o->refresh_interval = 1000;
    o->weight[CX_VIEW] = 1;
    o->weight[CX_CLICK] = 2;
    o->weight[CX_ADD_TO_CART] = 5;
    o->weight[CX_PURCHASE] = 10;
    o->weight[CX_RATING] = 5;
    o->weight[CX_RETURN] = -15;
    o->weight[CX_DISLIKE] = -10;
    /* Chosen on the synthetic regimes of tools/synth (seed 2, not the
     * shops the figures are reported on): see the README's "Blend". */
    o->blend_als = 1;
    o->blend_pop = 0.2;
    o->blend_rep = 1;
    o->blend_co = 0.1;
    o->consumable = 0.2;
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
    {CX_OPT_FOLD_IN, "fold_in", 0, 2, 1, OFF(fold_in)},
    {CX_OPT_TRENDING_HALF_LIFE, "trending_half_life", 1, 1e12, 0,
     OFF(trend_half_life)},
    {CX_OPT_POPULAR_HALF_LIFE, "popular_half_life", 0, 1e12, 0,
     OFF(pop_half_life)},
    {CX_OPT_LAPSED_AFTER, "lapsed_after", 1, 1e12, 0, OFF(lapsed_after)},
    {CX_OPT_LOYAL_PURCHASES, "loyal_purchases", 2, 1000, 1,
     OFF(loyal_purchases)},
    {CX_OPT_SYNC, "sync", 0, 2, 1, OFF(sync)},
    {CX_OPT_SYNC_INTERVAL, "sync_interval", 1, 60000, 1, OFF(sync_interval)},
    {CX_OPT_REFRESH_INTERVAL, "refresh_interval", 0, 3600000, 1,
     OFF(refresh_interval)},
    {CX_OPT_BLEND_ALS, "blend_als", 0, 1000, 0, OFF(blend_als)},
    {CX_OPT_BLEND_POPULAR, "blend_popular", 0, 1000, 0, OFF(blend_pop)},
    {CX_OPT_BLEND_REPEAT, "blend_repeat", 0, 1000, 0, OFF(blend_rep)},
    {CX_OPT_BLEND_COBOUGHT, "blend_cobought", 0, 1000, 0, OFF(blend_co)},
    {CX_OPT_CONSUMABLE, "consumable", 0, 1, 0, OFF(consumable)},
};

static const opt_spec *find_spec(int key)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (specs[i].key == key)
            return &specs[i];
    return NULL;
}

int cx__option_check(const cx_engine *e, int key, double v)
{
    if (isnan(v))
        return cx__fail(e, CX_EINVAL, "option %d: value is NaN", key);
    if (key >= CX_OPT_WEIGHT && key < CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES) {
        if (!isfinite(v) || fabs(v) > 1e6)
            return cx__fail(e, CX_ERANGE,
                            "signal weight %g out of range [-1e6, 1e6]", v);
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
    return CX_OK;
}

void cx__option_put(cx__options *o, int key, double v)
{
    if (key >= CX_OPT_WEIGHT && key < CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES) {
        o->weight[key - CX_OPT_WEIGHT] = v;
        return;
    }
    const opt_spec *s = find_spec(key);
    char *p = (char *)o + s->off;
    if (s->is_int == 1)
        *(int *)p = (int)v;
    else if (s->is_int == 2)
        *(uint64_t *)p = (uint64_t)v;
    else
        *(double *)p = v;
}

int cx__option_key_valid(int key)
{
    return (key >= CX_OPT_WEIGHT && key < CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES)
           || find_spec(key) != NULL;
}

int cx__option_keys(int *keys)
{
    int n = 0;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        keys[n++] = specs[i].key;
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        keys[n++] = CX_OPT_WEIGHT + t;
    return n;
}

double cx__option_get(const cx__options *o, int key)
{
    if (key >= CX_OPT_WEIGHT && key < CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES)
        return o->weight[key - CX_OPT_WEIGHT];
    const opt_spec *s = find_spec(key);
    const char *p = (const char *)o + s->off;
    return s->is_int == 1   ? *(const int *)p
           : s->is_int == 2 ? (double)*(const uint64_t *)p
                            : *(const double *)p;
}

CX_API int cx_set_option(cx_engine *e, int key, double v)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_set_option: engine is NULL");
    int rc = cx__option_check(e, key, v);
    if (rc)
        return rc;
    pthread_mutex_lock(&e->wmu);
    if (e->db && ((rc = cx__db_option(e, key, v)) ||
                  (key == CX_OPT_SYNC && (rc = cx__db_set_sync(e, (int)v))))) {
        pthread_mutex_unlock(&e->wmu);
        return rc;
    }
    cx__wrlock(e);
    cx__option_put(&e->opt, key, v);
    cx__wrunlock(e);
    /* Popularity counts positive strengths with the lists' half-lives: a
     * change to either re-counts them. */
    if ((key >= CX_OPT_WEIGHT && key < CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES) ||
        key == CX_OPT_TRENDING_HALF_LIFE || key == CX_OPT_POPULAR_HALF_LIFE)
        rc = cx__pop_rebuild(e);
    pthread_mutex_unlock(&e->wmu);
    return rc;
}

CX_API int cx_get_option(const cx_engine *e, int key, double *v)
{
    if (!e || !v)
        return cx__fail(e, CX_EINVAL, "cx_get_option: NULL argument");
    cx_engine *w = (cx_engine *)e; /* the lock is not part of the value */
    if (!cx__option_key_valid(key))
        return cx__fail(e, CX_EINVAL, "unknown option key %d", key);
    cx__rdlock(w);
    *v = cx__option_get(&e->opt, key);
    cx__rdunlock(w);
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
    if (path && !*path)
        return cx__fail(NULL, CX_EINVAL, "cx_open: path is empty (NULL "
                        "opens an in-memory engine)");
    if (flags & ~(unsigned)(CX_OPEN_READONLY | CX_OPEN_SIGNALS |
                            CX_OPEN_VERIFY))
        return cx__fail(NULL, CX_EINVAL, "cx_open: unknown flags 0x%x",
                        flags);
    if ((flags & CX_OPEN_SIGNALS) && !(flags & CX_OPEN_READONLY))
        return cx__fail(NULL, CX_EINVAL, "cx_open: CX_OPEN_SIGNALS is for "
                        "read-only engines (CX_OPEN_READONLY | "
                        "CX_OPEN_SIGNALS); a writer ingests anyway");
    if ((flags & CX_OPEN_READONLY) && !path)
        return cx__fail(NULL, CX_EINVAL, "cx_open: CX_OPEN_READONLY needs a "
                        "data directory path");
    cx__kernels_init();
    cx_engine *e = calloc(1, sizeof *e);
    if (!e)
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    atomic_init(&e->readers, 0);
    atomic_init(&e->writer, 0);
    pthread_mutex_init(&e->wmu, NULL);
    pthread_mutex_init(&e->train_mu, NULL);
    pthread_mutex_init(&e->retire_mu, NULL);
    pthread_mutex_init(&e->bg_mu, NULL);
    pthread_mutex_init(&e->evidx_mu, NULL);
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
    for (int l = 0; l < CX__LISTS; l++) {
        e->top[l].valid = 1;
        memset(e->top[l].slot, 0xff, sizeof e->top[l].slot);
    }
    if (path) {
        int rc = cx__db_open(e, path, flags);
        if (rc) {
            cx_close(e);
            return rc;
        }
    }
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
    if (m->mapped) {
        for (int f = 0; f < 8; f++)
            if (m->map[f])
                munmap(m->map[f], m->map_len[f]);
    } else {
        free(m->X);
        free(m->Y);
        free(m->has_vec);
        free(m->Gy);
        cx__csr_free(&m->ui);
    }
    free(m->inv_norm);
    free(m->Yq);
    free(m->q_scale);
    free(m->q_cos_scale);
    free(m->Gx);
    cx__hstats_free(atomic_load(&m->hstats));
    cx__nbrs_free(atomic_load(&m->nbrs));
    free(m);
}

void cx__fold_free_table(void **pages, size_t npages)
{
    for (size_t p = 0; p < npages; p++) {
        _Atomic(cx__fold *) *page = pages[p];
        for (size_t j = 0; page && j < CX__FOLD_PAGE; j++)
            free(atomic_load_explicit(&page[j], memory_order_relaxed));
        free(page);
    }
    free(pages);
}

static void free_retired(cx__fold *f)
{
    while (f) {
        cx__fold *next = f->next;
        free(f);
        f = next;
    }
}

/* The engine lock.  Writers are already serialised by wmu and hold this
 * lock for microseconds, so waiting is spinning first: a reader that slept
 * on a futex would pay a wake-up (and, on a virtual machine, a halted
 * vCPU's) for every writer.  After 5-10 us a waiter yields a few times
 * (on a saturated CPU the thread it waits for may be the one to run), then
 * sleeps 20 us at a time: more yields could hand the CPU to the
 * idle-priority training thread for a whole time slice (measured: 1-2 ms
 * stalls), while a sleeper that wakes preempts that thread at once.
 * Writers go first: a waiting writer stops new readers from entering.
 * Sequentially consistent operations on the two counters make "count in,
 * then check the writer" and "raise the flag, then check the count"
 * exclude each other. */
static void backoff(unsigned *spins)
{
    ++*spins;
    if (*spins < 256) { /* ~5-10 us of pause instructions */
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return;
    }
    if (*spins < 256 + 4) { /* let a thread of this CPU finish first */
        sched_yield();
        return;
    }
    struct timespec nap = {0, 20000};
    nanosleep(&nap, NULL);
}

void cx__rdlock(const cx_engine *ce)
{
    cx_engine *e = (cx_engine *)ce; /* the lock is not part of the value */
    unsigned spins = 0;
    for (;;) {
        while (atomic_load(&e->writer))
            backoff(&spins);
        atomic_fetch_add(&e->readers, 1);
        if (!atomic_load(&e->writer))
            return;
        atomic_fetch_sub(&e->readers, 1);
    }
}

void cx__rdunlock(const cx_engine *ce)
{
    cx_engine *e = (cx_engine *)ce;
    atomic_fetch_sub(&e->readers, 1);
}

void cx__wrlock(cx_engine *e)
{
    unsigned spins = 0;
    atomic_store(&e->writer, 1);
    while (atomic_load(&e->readers))
        backoff(&spins);
}

void cx__wrunlock(cx_engine *e)
{
    /* No reader is inside: nobody holds a retired fold-in any more. */
    pthread_mutex_lock(&e->retire_mu);
    cx__fold *r = e->retired;
    struct cx__evidx *rb = e->evidx_retired;
    e->retired = NULL;
    e->evidx_retired = NULL;
    pthread_mutex_unlock(&e->retire_mu);
    atomic_store(&e->writer, 0);
    free_retired(r);
    cx__evidx_free(rb);
}

void cx__retire(cx_engine *e, cx__fold *f)
{
    pthread_mutex_lock(&e->retire_mu);
    f->next = e->retired;
    e->retired = f;
    pthread_mutex_unlock(&e->retire_mu);
}

CX_API void cx_close(cx_engine *e)
{
    if (!e)
        return;
    if (e->bg_started) {
        atomic_store(&e->cancel, 1);
        pthread_join(e->bg, NULL);
    }
    cx__db_close(e);
    cx__forget_errors(e);
    cx__model_free(e->model);
    cx__idmap_free(&e->customers);
    cx__idmap_free(&e->items);
    cx__idmap_free(&e->categories);
    cx__idmap_free(&e->channels);
    cx__idmap_free(&e->tagsets);
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        free(e->type_name[t]);
    cx__catidx_free(e->catidx);
    cx__evidx_free(atomic_load(&e->evidx));
    cx__evidx_free(e->evidx_retired);
    cx__free_array(e->item_cat);
    cx__free_array(e->item_price);
    cx__free_array(e->item_flags);
    cx__free_array(e->item_created);
    cx__free_array(e->item_tags);
    cx__free_array(e->item_pop);
    cx__free_array(e->item_trend);
    cx__free_array(e->item_last);
    cx__free_array(e->item_xslot);
    cx__free_array(e->ev);
    cx__free_array(e->ev_prev);
    cx__free_array(e->ev_iprev);
    cx__free_array(e->cust_last);
    cx__fold_free_table(e->fold_pages, e->fold_npages);
    free_retired(e->retired);
    free(e->xv);
    free(e->xv_inv_norm);
    free(e->xv_item);
    cx__experiments_free(e->exps);
    cx__image_free(e->image); /* last: the arrays above may be in it */
    pthread_mutex_destroy(&e->retire_mu);
    pthread_mutex_destroy(&e->bg_mu);
    pthread_mutex_destroy(&e->evidx_mu);
    pthread_mutex_destroy(&e->train_mu);
    pthread_mutex_destroy(&e->wmu);
    free(e);
}

/* ===================================================================== */
/* Growing per-index columns                                             */
/* ===================================================================== */

/* The serving scan streams the 4-bit item factors (3.2 MB at 100,000
 * items and 64 factors) once per request: on 4 KiB pages that is a TLB
 * miss every 4 KiB; on 2 MiB pages the same pass measured about 5% of a
 * whole cx_layout faster. */
void *cx__alloc_big(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return calloc(1, bytes ? bytes : 1);
    size_t n = (bytes + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, n);
    if (!p)
        return calloc(1, bytes);
#ifdef MADV_HUGEPAGE
    /* Only a hint: refused (no THP), the array works on small pages. */
    (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    memset(p, 0, n); /* fault the pages in while the hint holds */
    return p;
}

int cx__grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return CX_OK;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q;
    if (cx__image_holds(*p)) { /* it moves to the heap */
        if ((q = malloc(c * elem)) != NULL)
            memcpy(q, *p, *cap * elem);
    } else {
        q = realloc(*p, c * elem);
    }
    if (!q)
        return CX_ENOMEM;
    *p = q;
    *cap = c;
    return CX_OK;
}

/* ===================================================================== */
/* Plans: grow outside the lock, publish under it                        */
/* ===================================================================== */

void *cx__plan_array(cx__plan *p, void **where, size_t used_bytes,
                     size_t new_bytes)
{
    if (p->failed)
        return NULL;
    if (p->n == (int)(sizeof p->g / sizeof p->g[0])) {
        p->failed = 1;
        return NULL;
    }
    char *q = malloc(new_bytes ? new_bytes : 1);
    if (!q) {
        p->failed = 1;
        return NULL;
    }
    if (used_bytes)
        memcpy(q, *where, used_bytes);
    memset(q + used_bytes, 0, new_bytes - used_bytes);
    p->g[p->n].where = where;
    p->g[p->n].fresh = q;
    p->g[p->n].old = NULL;
    p->g[p->n].keep_old = 0;
    p->n++;
    return q;
}

void cx__plan_link(cx__plan *p, void **where, void *fresh)
{
    if (p->n == (int)(sizeof p->g / sizeof p->g[0])) {
        p->failed = 1;
        free(fresh);
        return;
    }
    p->g[p->n].where = where;
    p->g[p->n].fresh = fresh;
    p->g[p->n].old = NULL;
    p->g[p->n].keep_old = 1;
    p->n++;
}

void cx__plan_cap(cx__plan *p, void *where, int size, uint64_t value)
{
    if (p->ncap == (int)(sizeof p->cap / sizeof p->cap[0])) {
        p->failed = 1;
        return;
    }
    p->cap[p->ncap].where = where;
    p->cap[p->ncap].size = size;
    p->cap[p->ncap].value = value;
    p->ncap++;
}

void cx__plan_commit(cx__plan *p)
{
    for (int i = 0; i < p->n; i++) {
        p->g[i].old = *p->g[i].where;
        *p->g[i].where = p->g[i].fresh;
    }
    for (int i = 0; i < p->ncap; i++) {
        if (p->cap[i].size == 4)
            *(uint32_t *)p->cap[i].where = (uint32_t)p->cap[i].value;
        else
            *(uint64_t *)p->cap[i].where = p->cap[i].value;
    }
}

void cx__plan_release(cx__plan *p, int committed)
{
    for (int i = 0; i < p->n; i++) {
        if (!committed)
            free(p->g[i].fresh);
        else if (!p->g[i].keep_old)
            cx__free_array(p->g[i].old);
    }
    memset(p, 0, sizeof *p);
}

void cx__plan_release_e(cx_engine *e, cx__plan *p, int committed)
{
    for (int i = 0; committed && i < p->n; i++)
        if (e->ev_pinned && p->g[i].old == e->ev_pinned) {
            p->g[i].keep_old = 1;
            e->ev_orphan = 1;
        }
    cx__plan_release(p, committed);
}

static size_t grown(size_t cap, size_t need)
{
    size_t c = cap ? cap : 256;
    while (c < need)
        c *= 2;
    return c;
}

int cx__plan_items(cx_engine *e, size_t n, cx__plan *p)
{
    size_t need = (size_t)e->items.n + n, old = e->item_cap;
    if (need <= old)
        return CX_OK;
    size_t c = grown(old, need);
#define COL(f)                                                             \
    cx__plan_array(p, (void **)&e->f, old * sizeof *e->f, c * sizeof *e->f)
    COL(item_cat);
    COL(item_price);
    COL(item_flags);
    COL(item_created);
    COL(item_tags);
    COL(item_pop);
    COL(item_trend);
    COL(item_last);
    COL(item_xslot);
#undef COL
    cx__plan_cap(p, &e->item_cap, 8, c);
    return p->failed ? CX_ENOMEM : CX_OK;
}

int cx__plan_customers(cx_engine *e, size_t n, cx__plan *p)
{
    size_t need = (size_t)e->customers.n + n;
    if (need > e->cust_cap) {
        size_t c = grown(e->cust_cap, need);
        uint32_t *l = cx__plan_array(p, (void **)&e->cust_last,
                                     e->cust_cap * sizeof *l, c * sizeof *l);
        if (l)
            for (size_t i = e->cust_cap; i < c; i++)
                l[i] = CX_NONE;
        cx__plan_cap(p, &e->cust_cap, 8, c);
    }
    /* Fold-in pages for every customer, allocated by writers only. */
    size_t pages = (need + CX__FOLD_PAGE - 1) / CX__FOLD_PAGE;
    if (pages > e->fold_npages && !p->failed) {
        void **dir = (void **)e->fold_pages;
        if (pages > e->fold_cap) {
            size_t c = grown(e->fold_cap, pages);
            dir = cx__plan_array(p, (void **)&e->fold_pages,
                                 e->fold_npages * sizeof *dir,
                                 c * sizeof *dir);
            cx__plan_cap(p, &e->fold_cap, 8, c);
        }
        /* New pages go into the directory slots past fold_npages, which
         * readers never look at until fold_npages is published. */
        for (size_t q = e->fold_npages; dir && q < pages; q++)
            if (!(dir[q] = calloc(CX__FOLD_PAGE, sizeof(cx__fold *))))
                p->failed = 1;
        cx__plan_cap(p, &e->fold_npages, 8, pages);
        if (p->failed && dir)
            for (size_t q = e->fold_npages; q < pages; q++)
                free(dir[q]), dir[q] = NULL;
    }
    return p->failed ? CX_ENOMEM : CX_OK;
}

int cx__plan_events(cx_engine *e, size_t n, cx__plan *p)
{
    size_t need = e->n_ev + n, old = e->ev_cap;
    if (need <= old)
        return CX_OK;
    size_t c = grown(old, need);
    cx__plan_array(p, (void **)&e->ev, old * sizeof *e->ev,
                   c * sizeof *e->ev);
    cx__plan_array(p, (void **)&e->ev_prev, old * sizeof *e->ev_prev,
                   c * sizeof *e->ev_prev);
    cx__plan_array(p, (void **)&e->ev_iprev, old * sizeof *e->ev_iprev,
                   c * sizeof *e->ev_iprev);
    cx__plan_cap(p, &e->ev_cap, 8, c);
    return p->failed ? CX_ENOMEM : CX_OK;
}

static int reserve_now(cx_engine *e, size_t n,
                       int (*plan)(cx_engine *, size_t, cx__plan *))
{
    cx__plan p;
    memset(&p, 0, sizeof p);
    int rc = plan(e, n, &p);
    if (rc == CX_OK)
        cx__plan_commit(&p);
    cx__plan_release(&p, rc == CX_OK);
    return rc;
}

int cx__reserve_items(cx_engine *e, size_t n)
{
    return reserve_now(e, n, cx__plan_items);
}

int cx__reserve_customers(cx_engine *e, size_t n)
{
    return reserve_now(e, n, cx__plan_customers);
}

void cx__item_init(cx_engine *e, uint32_t i)
{
    e->item_cat[i] = 0;
    e->item_price[i] = 0;
    e->item_flags[i] = CX__ITEM_IN_STOCK;
    e->item_created[i] = 0;
    e->item_tags[i] = CX_NONE;
    e->item_pop[i] = 0;
    e->item_trend[i] = 0;
    e->item_last[i] = CX_NONE;
    e->item_xslot[i] = CX_NONE;
}

/* ===================================================================== */
/* Introspection                                                         */
/* ===================================================================== */

static int64_t memory_of(const cx_engine *e)
{
    int64_t b = (int64_t)sizeof *e;
    b += (int64_t)e->item_cap * (4 + 8 + 1 + 8 + 4 + 8 + 8 + 4 + 4);
    b += (int64_t)e->ev_cap * (sizeof(cx__event) + 8);
    b += (int64_t)e->cust_cap * 4;
    b += (int64_t)e->fold_cap * 8 + (int64_t)e->fold_npages * CX__FOLD_PAGE * 8;
    b += (int64_t)atomic_load(&e->n_folded) *
         (int64_t)(sizeof(cx__fold) + (e->model ? e->model->k * 4 : 0));
    b += (int64_t)e->xv_cap * ((e->model ? e->model->k : 0) * 4 + 8);
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
        b += 2 * k * k * 8;
    }
    return b;
}

CX_API int cx_stat(cx_engine *e, int key, int64_t *v)
{
    if (!e || !v)
        return cx__fail(e, CX_EINVAL, "cx_stat: NULL argument");
    int rc = CX_OK;
    cx__rdlock(e);
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
    case CX_STAT_FOLDED_CUSTOMERS:
        *v = atomic_load(&e->n_folded);
        break;
    case CX_STAT_FOLDED_ITEMS: *v = e->xv_n; break;
    case CX_STAT_TRAINING: *v = atomic_load(&e->training); break;
    default: rc = cx__fail(e, CX_EINVAL, "cx_stat: unknown key %d", key);
    }
    cx__rdunlock(e);
    return rc;
}

CX_API int cx_factors(cx_engine *e, int which, const float **data,
                      size_t *rows, size_t *cols)
{
    if (!e || !data || !rows || !cols)
        return cx__fail(e, CX_EINVAL, "cx_factors: NULL argument");
    if (which != 0 && which != 1)
        return cx__fail(e, CX_EINVAL, "cx_factors: which must be 0 or 1");
    cx__rdlock(e);
    const cx__model *m = e->model;
    int rc = CX_OK;
    if (!m) {
        rc = cx__fail(e, CX_ENOTTRAINED, "cx_factors: no trained model");
    } else {
        *data = which ? m->Y : m->X;
        *rows = which ? m->n_items : m->n_users;
        *cols = (size_t)m->k;
    }
    cx__rdunlock(e);
    return rc;
}

CX_API const char *cx_customer_id(cx_engine *e, size_t i)
{
    if (!e)
        return NULL;
    cx__rdlock(e);
    const char *s = i < e->customers.n ? e->customers.str[i] : NULL;
    cx__rdunlock(e);
    return s;
}

CX_API const char *cx_item_id(cx_engine *e, size_t i)
{
    if (!e)
        return NULL;
    cx__rdlock(e);
    const char *s = i < e->items.n ? e->items.str[i] : NULL;
    cx__rdunlock(e);
    return s;
}
