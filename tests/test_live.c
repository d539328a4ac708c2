/* test_live.c -- the real-time API: fold-in of customers and new items
 * against the published model (checked against a double-precision solve of
 * the contract's formula), fold-in modes, anonymous sessions, trending,
 * popular and new-arrival lists, the cold start, background training, and
 * the vector accessors.
 *
 * Every test builds its own small engines (one training thread, small k)
 * so that tests are independent and the file stays fast under ASan. */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define VMAX 64 /* room for a vector: k is at most 16 here */
#define DAY 86400

/* ===================================================================== */
/* Cleanup that survives a failed assertion                              */
/* ===================================================================== */

/* cmocka leaves a test by longjmp when an assertion fails; what the test
 * allocated is registered here and released by the teardown, so that
 * ASan's leak report only ever names the library. */
enum { GC_MEM, GC_ENGINE, GC_SHOP };
#define GC_MAX 128
static struct {
    void *p[GC_MAX];
    int kind[GC_MAX];
    size_t n;
} gc;

static void gc_drop(void *p, int kind)
{
    if (kind == GC_ENGINE)
        cx_close(p);
    else if (kind == GC_SHOP)
        synth_free(p);
    else
        free(p);
}

static void *gc_add(void *p, int kind)
{
    assert_non_null(p);
    assert_true(gc.n < GC_MAX);
    gc.p[gc.n] = p;
    gc.kind[gc.n++] = kind;
    return p;
}

/* Release p now and forget it. */
static void gc_release(void *p, int kind)
{
    for (size_t j = gc.n; j-- > 0;)
        if (gc.p[j] == p && gc.kind[j] == kind) {
            memmove(gc.p + j, gc.p + j + 1, (gc.n - j - 1) * sizeof *gc.p);
            memmove(gc.kind + j, gc.kind + j + 1,
                    (gc.n - j - 1) * sizeof *gc.kind);
            gc.n--;
            break;
        }
    gc_drop(p, kind);
}

static int gc_teardown(void **state)
{
    (void)state;
    while (gc.n) {
        gc.n--;
        gc_drop(gc.p[gc.n], gc.kind[gc.n]);
    }
    return 0;
}

static void *gc_malloc(size_t n) { return gc_add(malloc(n ? n : 1), GC_MEM); }
static void *gc_calloc(size_t n, size_t size)
{
    return gc_add(calloc(n ? n : 1, size), GC_MEM);
}
static void gc_free(void *p)
{
    if (p)
        gc_release(p, GC_MEM);
}
static cx_engine *gc_engine(cx_engine *e) { return gc_add(e, GC_ENGINE); }
static void gc_close(cx_engine *e)
{
    if (e)
        gc_release(e, GC_ENGINE);
}

/* ===================================================================== */
/* Helpers                                                               */
/* ===================================================================== */


static int popular(cx_engine *e, size_t k, const cx_rec_opts *o, result *r)
{
    memset(r, 0, sizeof *r);
    return cx_popular(e, k, o, r->items, r->scores, r->reasons, &r->n);
}

static int trending(cx_engine *e, size_t k, const cx_rec_opts *o, result *r)
{
    memset(r, 0, sizeof *r);
    return cx_trending(e, k, o, r->items, r->scores, r->reasons, &r->n);
}

static int arrivals(cx_engine *e, size_t k, const cx_rec_opts *o, result *r)
{
    memset(r, 0, sizeof *r);
    return cx_new_arrivals(e, k, o, r->items, r->scores, r->reasons, &r->n);
}

static int session(cx_engine *e, size_t n, const char *const *items,
                   const int *types, const float *values, size_t k,
                   const cx_rec_opts *o, result *r)
{
    memset(r, 0, sizeof *r);
    return cx_recommend_session(e, n, items, types, values, k, o, r->items,
                                r->scores, r->reasons, &r->n);
}

/* Position of id in r, or -1. */
static long rank_of(const result *r, const char *id)
{
    for (size_t j = 0; j < r->n; j++)
        if (strcmp(r->items[j], id) == 0)
            return (long)j;
    return -1;
}

static int contains(const result *r, const char *id)
{
    return rank_of(r, id) >= 0;
}

/* Same ids in the same order, scores within tol, same reasons. */
static void assert_same_result(const result *a, const result *b, double tol)
{
    if (a->n != b->n)
        print_error("lengths differ: %zu vs %zu\n", a->n, b->n);
    assert_int_equal(a->n, b->n);
    for (size_t j = 0; j < a->n; j++) {
        if (strcmp(a->items[j], b->items[j]) ||
            fabs((double)a->scores[j] - b->scores[j]) > tol ||
            a->reasons[j] != b->reasons[j])
            print_error("row %zu: %s %.7g %d vs %s %.7g %d\n", j,
                        a->items[j], a->scores[j], a->reasons[j],
                        b->items[j], b->scores[j], b->reasons[j]);
        assert_string_equal(a->items[j], b->items[j]);
        assert_true(fabs((double)a->scores[j] - b->scores[j]) <= tol);
        assert_int_equal(a->reasons[j], b->reasons[j]);
    }
}

static void assert_all_reasons(const result *r, int reason)
{
    for (size_t j = 0; j < r->n; j++) {
        if (r->reasons[j] != reason)
            print_error("row %zu (%s): reason %d, want %d\n", j, r->items[j],
                        r->reasons[j], reason);
        assert_int_equal(r->reasons[j], reason);
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static double opt(cx_engine *e, int key)
{
    double v = NAN;
    TU_OK(e, cx_get_option(e, key, &v));
    return v;
}

/* Shop item index of an id ("i0123"). */
static uint32_t item_ix(const char *id)
{
    return (uint32_t)strtoul(id + 1, NULL, 10);
}

/* A shop of about n_signals signals, trained with one thread. */
static cx_engine *trained_shop(const synth_config *c, int k, int solver,
                               int iterations, synth_shop *shop)
{
    cx_engine *e = gc_engine(tu_shop_engine_cfg(c, shop));
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, k));
    TU_OK(e, cx_set_option(e, CX_OPT_SOLVER, solver));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, iterations));
    TU_OK(e, cx_train(e, NULL, NULL));
    return e;
}

/* Load an already generated shop into a new engine (same options as
 * trained_shop), with a fold-in mode, and train it. */
static cx_engine *load_shop(const synth_shop *shop, int k, int fold)
{
    cx_engine *e = NULL;
    assert_int_equal(cx_open(&e, NULL, 0), CX_OK);
    tu_plain(e);
    gc_engine(e);
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, k));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 5));
    TU_OK(e, cx_set_option(e, CX_OPT_FOLD_IN, fold));
    TU_OK(e, tu_upsert_catalogue(e, shop));
    TU_OK(e, tu_ingest_signals(e, shop, 0, shop->n_signals, 4096));
    TU_OK(e, cx_train(e, NULL, NULL));
    return e;
}

/* Per item: number of shop signals (items with signals at training time
 * have trained vectors). */
static size_t *item_counts(const synth_shop *s)
{
    size_t *cnt = gc_calloc(s->n_items, sizeof *cnt);
    for (size_t j = 0; j < s->n_signals; j++)
        cnt[s->signals[j].item]++;
    return cnt;
}

/* ===================================================================== */
/* The reference fold-in, from the header's formula, in double           */
/* ===================================================================== */

/* A customer's aggregated row: net r per item (model row index). */
typedef struct agg {
    size_t n, cap;
    uint32_t *item;
    double *r;
} agg;

static void agg_init(agg *a, size_t cap)
{
    a->n = 0;
    a->cap = cap;
    a->item = gc_calloc(cap, sizeof *a->item);
    a->r = gc_calloc(cap, sizeof *a->r);
}

static void agg_free(agg *a)
{
    gc_free(a->item), gc_free(a->r);
}

/* The strength weight[type] * v of one signal, with the engine's weights. */
static double strength(cx_engine *e, int type, double value)
{
    double w = opt(e, CX_OPT_WEIGHT + type);
    double v = type == CX_RATING ? (value - 3.0) / 2.0 : value;
    return w * v;
}

static void agg_add(agg *a, uint32_t item, double s)
{
    for (size_t j = 0; j < a->n; j++)
        if (a->item[j] == item) {
            a->r[j] += s;
            return;
        }
    assert_true(a->n < a->cap);
    a->item[a->n] = item;
    a->r[a->n++] = s;
}

/* Every shop signal of synth customer c. */
static void agg_shop(agg *a, cx_engine *e, const synth_shop *s, uint32_t c)
{
    for (size_t j = 0; j < s->n_signals; j++) {
        const synth_signal *g = &s->signals[j];
        if (g->customer == c)
            agg_add(a, g->item, strength(e, g->type, g->value));
    }
}

/* Solve A x = b (n x n, row-major, destroyed) by Gaussian elimination
 * with partial pivoting. */
static void gauss(double *A, double *b, int n, double *x)
{
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[p * n + c]))
                p = r;
        assert_true(fabs(A[p * n + c]) > 1e-300);
        if (p != c) {
            for (int d = 0; d < n; d++) {
                double t = A[c * n + d];
                A[c * n + d] = A[p * n + d];
                A[p * n + d] = t;
            }
            double t = b[c];
            b[c] = b[p];
            b[p] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double f = A[r * n + c] / A[c * n + c];
            if (f == 0)
                continue;
            for (int d = c; d < n; d++)
                A[r * n + d] -= f * A[c * n + d];
            b[r] -= f * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int d = r + 1; d < n; d++)
            s -= A[r * n + d] * x[d];
        x[r] = s / A[r * n + r];
    }
}

/* Y'Y + lambda I in double (k x k). */
static double *gram(const float *Y, size_t ny, int k, double lambda)
{
    double *G = gc_calloc((size_t)k * k, sizeof *G);
    for (size_t i = 0; i < ny; i++) {
        const float *y = Y + i * k;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
                G[a * k + b] += (double)y[a] * y[b];
    }
    for (int a = 0; a < k; a++)
        G[a * k + a] += lambda;
    return G;
}

/* x = (Y'Y + lambda I + sum (c-1) y y')^-1 sum_{p=1} c y over the row a,
 * the Gram matrix over the model's ny rows of Y; pairs may also use rows
 * past them (vectors of items new since training, appended by the
 * caller: nyx rows in all). */
static void ref_fold_x(const float *Y, size_t ny, size_t nyx, int k,
                       double lambda, double alpha, const agg *a, double *x)
{
    double *A = gram(Y, ny, k, lambda);
    double *b = gc_calloc((size_t)k, sizeof *b);
    for (size_t j = 0; j < a->n; j++) {
        double r = a->r[j];
        if (r == 0)
            continue;
        assert_true(a->item[j] < nyx);
        const float *y = Y + (size_t)a->item[j] * k;
        double c = 1 + alpha * fabs(r);
        for (int p = 0; p < k; p++)
            for (int q = 0; q < k; q++)
                A[p * k + q] += (c - 1) * y[p] * y[q];
        if (r > 0)
            for (int p = 0; p < k; p++)
                b[p] += c * y[p];
    }
    gauss(A, b, k, x);
    gc_free(A), gc_free(b);
}

static void ref_fold(const float *Y, size_t ny, int k, double lambda,
                     double alpha, const agg *a, double *x)
{
    ref_fold_x(Y, ny, ny, k, lambda, alpha, a, x);
}

static double inf_norm(const double *x, int k)
{
    double m = 0;
    for (int d = 0; d < k; d++)
        m = fmax(m, fabs(x[d]));
    return m;
}

/* |x - ref| <= tol * max(1, |ref|_inf) per component. */
static void assert_vec_close(const char *what, const float *x,
                             const double *ref, int k, double tol)
{
    double lim = tol * fmax(1, inf_norm(ref, k));
    for (int d = 0; d < k; d++) {
        if (!(fabs(x[d] - ref[d]) <= lim))
            print_error("%s: component %d: got %.9g, want %.9g (lim %.3g)\n",
                        what, d, x[d], ref[d], lim);
        assert_true(fabs(x[d] - ref[d]) <= lim);
    }
}

/* ===================================================================== */
/* 1. Fold-in against the reference                                      */
/* ===================================================================== */

static void test_fold_in_matches_reference(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 8000); /* 200 customers, 200 items */
    c.seed = 3;
    static synth_shop shop;
    cx_engine *e = gc_engine(tu_shop_engine_cfg(&c, &shop));
    gc_add(&shop, GC_SHOP);
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 12));
    TU_OK(e, cx_set_option(e, CX_OPT_SOLVER, CX_SOLVER_CHOLESKY));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 6));
    TU_OK(e, cx_set_option(e, CX_OPT_REGULARIZATION, 0.1));
    TU_OK(e, cx_train(e, NULL, NULL));
    const float *Y, *X;
    size_t ny, nx, k, kx;
    TU_OK(e, cx_factors(e, 1, &Y, &ny, &k));
    TU_OK(e, cx_factors(e, 0, &X, &nx, &kx));
    assert_int_equal(k, 12);
    assert_int_equal(kx, 12);
    assert_int_equal(ny, shop.n_items);
    double lambda = opt(e, CX_OPT_REGULARIZATION);
    double alpha = opt(e, CX_OPT_ALPHA);
    size_t *cnt = item_counts(&shop);
    int64_t t_new = shop.signals[shop.n_signals - 1].ts + 60;

    /* (a) a known customer: one item again, two new ones, a dislike. */
    const uint32_t known = 5;
    char known_id[24];
    synth_customer_id(known, known_id);
    agg ka;
    agg_init(&ka, shop.n_items);
    agg_shop(&ka, e, &shop, known);
    assert_true(ka.n >= 2);
    uint32_t again = ka.item[0], fresh[3];
    size_t nf = 0;
    for (uint32_t i = 0; i < shop.n_items && nf < 3; i++) {
        int touched = 0;
        for (size_t j = 0; j < ka.n; j++)
            touched |= ka.item[j] == i;
        if (!touched && cnt[i] >= 5)
            fresh[nf++] = i;
    }
    assert_int_equal(nf, 3);

    /* (b) a new customer: views (twice on one item), click, cart,
     * purchase of 2, a 1-star rating (negative) and a dislike. */
    uint32_t nitems[6];
    size_t nn = 0;
    for (uint32_t i = shop.n_items; i-- > 0 && nn < 6;)
        if (cnt[i] >= 5)
            nitems[nn++] = i;
    assert_int_equal(nn, 6);

    const char *cu[] = {known_id, known_id, known_id, known_id,
                        "fresh-customer", "fresh-customer",
                        "fresh-customer", "fresh-customer",
                        "fresh-customer", "fresh-customer",
                        "fresh-customer"};
    uint32_t it[] = {again, fresh[0], fresh[1], fresh[2],
                     nitems[0], nitems[0], nitems[1], nitems[2],
                     nitems[3], nitems[4], nitems[5]};
    int ty[] = {CX_VIEW, CX_PURCHASE, CX_ADD_TO_CART, CX_DISLIKE,
                CX_VIEW, CX_VIEW, CX_CLICK, CX_ADD_TO_CART,
                CX_PURCHASE, CX_RATING, CX_DISLIKE};
    float va[] = {1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1};
    enum { NS = sizeof ty / sizeof *ty };
    const char *ids[NS];
    int64_t ts[NS];
    for (size_t j = 0; j < NS; j++) {
        ids[j] = shop.items[it[j]].id;
        ts[j] = t_new + (int64_t)j;
    }
    agg na;
    agg_init(&na, shop.n_items);
    for (size_t j = 0; j < NS; j++)
        agg_add(j < 4 ? &ka : &na, it[j], strength(e, ty[j], va[j]));
    TU_OK(e, cx_ingest(e, NS, cu, ids, ty, va, ts, NULL));

    float x[VMAX];
    double ref[VMAX];
    int src = -1;
    /* The known customer: the whole row, old signals and new. */
    TU_OK(e, cx_customer_vector(e, known_id, x, VMAX, &src));
    assert_int_equal(src, 1);
    ref_fold(Y, ny, (int)k, lambda, alpha, &ka, ref);
    assert_vec_close("known customer", x, ref, (int)k, 1e-4);
    /* ... and it moved away from the trained row. */
    size_t ku = tu_customer_index(e, known_id);
    assert_true(ku < nx);
    double moved = 0;
    for (size_t d = 0; d < k; d++)
        moved = fmax(moved, fabs(x[d] - X[ku * k + d]));
    assert_true(moved > 1e-3);

    /* The new customer. */
    src = -1;
    TU_OK(e, cx_customer_vector(e, "fresh-customer", x, VMAX, &src));
    assert_int_equal(src, 1);
    ref_fold(Y, ny, (int)k, lambda, alpha, &na, ref);
    assert_vec_close("new customer", x, ref, (int)k, 1e-4);

    /* A full re-solve of that row by the training solver gives the same
     * vector: G = Y'Y + lambda I in float, signed confidences. */
    double *Gd = gram(Y, ny, (int)k, lambda);
    float *G = gc_malloc(k * k * sizeof *G);
    for (size_t j = 0; j < k * k; j++)
        G[j] = (float)Gd[j];
    uint32_t idx[16];
    float conf[16];
    size_t np = 0;
    for (size_t j = 0; j < na.n; j++) {
        if (na.r[j] == 0)
            continue;
        float cc = (float)(1 + alpha * fabs(na.r[j]));
        idx[np] = na.item[j];
        conf[np++] = na.r[j] > 0 ? cc : -cc;
    }
    assert_int_equal(np, 6);
    float *scratch =
        gc_malloc((k * k + k + 128 * (k + 1) + np) * sizeof *scratch);
    float xs[VMAX];
    assert_int_equal(cx__solve_cholesky(G, Y, (int)k, idx, conf, np, xs,
                                        scratch),
                     CX_OK);
    assert_vec_close("cholesky vs reference", xs, ref, (int)k, 1e-4);
    double xd[VMAX];
    for (size_t d = 0; d < k; d++)
        xd[d] = xs[d];
    assert_vec_close("fold-in vs cholesky", x, xd, (int)k, 1e-4);

    /* Serving uses that vector: personal scores are x . y. */
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = 1;
    result r;
    TU_OK(e, rec(e, "fresh-customer", 10, &o, &r));
    assert_int_equal(r.n, 10);
    assert_all_reasons(&r, CX_REASON_PERSONAL);
    for (size_t j = 0; j < r.n; j++) {
        uint32_t i = item_ix(r.items[j]);
        double want = 0;
        for (size_t d = 0; d < k; d++)
            want += ref[d] * Y[(size_t)i * k + d];
        assert_true(fabs(r.scores[j] - want) <= 1e-4 * fmax(1, fabs(want)));
        for (size_t s = 4; s < NS; s++)
            assert_int_not_equal(i, it[s]);
    }

    /* A customer all of whose signals were in training: the trained row,
     * bit for bit, as source 0. */
    size_t checked = 0;
    for (uint32_t cu2 = 20; cu2 < 40; cu2++) {
        char id[24];
        synth_customer_id(cu2, id);
        size_t u = tu_customer_index(e, id);
        if (u >= nx)
            continue;
        src = -1;
        int rc = cx_customer_vector(e, id, x, VMAX, &src);
        if (rc == CX_ENOTFOUND)
            continue; /* no positive signal: no vector */
        TU_OK(e, rc);
        assert_int_equal(src, 0);
        assert_memory_equal(x, X + u * k, k * sizeof *x);
        checked++;
    }
    assert_true(checked >= 15);

    /* A customer with only negative signals has no vector and gets
     * popular items. */
    const char *nc[] = {"only-negative"};
    const char *ni[] = {shop.items[nitems[0]].id};
    int nt[] = {CX_DISLIKE};
    TU_OK(e, cx_ingest(e, 1, nc, ni, nt, NULL, ts, NULL));
    assert_int_equal(cx_customer_vector(e, "only-negative", x, VMAX, &src),
                     CX_ENOTFOUND);
    TU_OK(e, rec(e, "only-negative", 5, NULL, &r));
    assert_int_equal(r.n, 5);
    assert_all_reasons(&r, CX_REASON_POPULAR);
    assert_false(contains(&r, ni[0]));

    gc_free(Gd), gc_free(G), gc_free(scratch), gc_free(cnt);
    agg_free(&ka), agg_free(&na);
    gc_close(e);
    gc_release(&shop, GC_SHOP);
}

/* ===================================================================== */
/* 2. Fold-in modes                                                      */
/* ===================================================================== */

static void test_fold_in_modes(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 6000);
    c.seed = 21;
    static synth_shop shop;
    assert_int_equal(synth_generate(&c, &shop), 0);
    gc_add(&shop, GC_SHOP);
    cx_engine *lazy = load_shop(&shop, 8, CX_FOLD_LAZY);
    cx_engine *eager = load_shop(&shop, 8, CX_FOLD_EAGER);
    cx_engine *off = load_shop(&shop, 8, CX_FOLD_OFF);
    size_t *cnt = item_counts(&shop);

    /* Same data, same seed: the same model. */
    const float *Xl, *Xe, *Xo;
    size_t nx, k, n2, k2;
    TU_OK(lazy, cx_factors(lazy, 0, &Xl, &nx, &k));
    TU_OK(eager, cx_factors(eager, 0, &Xe, &n2, &k2));
    assert_int_equal(nx, n2);
    assert_memory_equal(Xl, Xe, nx * k * sizeof *Xl);
    TU_OK(off, cx_factors(off, 0, &Xo, &n2, &k2));
    assert_memory_equal(Xl, Xo, nx * k * sizeof *Xl);

    char known[24];
    synth_customer_id(7, known);
    size_t ku = tu_customer_index(lazy, known);
    assert_true(ku < nx);
    const char *cu[] = {known, known, "newbie", "newbie", "newbie"};
    const char *it[5];
    int ty[] = {CX_PURCHASE, CX_ADD_TO_CART, CX_VIEW, CX_PURCHASE, CX_CLICK};
    uint32_t pick[5];
    size_t np = 0;
    for (uint32_t i = 0; i < shop.n_items && np < 5; i++)
        if (cnt[i] >= 8)
            pick[np++] = i;
    assert_int_equal(np, 5);
    for (size_t j = 0; j < 5; j++)
        it[j] = shop.items[pick[j]].id;
    int64_t t_new = shop.signals[shop.n_signals - 1].ts + 10;
    int64_t ts[] = {t_new, t_new, t_new, t_new + 1, t_new + 2};

    int64_t l0 = tu_stat(lazy, CX_STAT_FOLDED_CUSTOMERS);
    int64_t e0 = tu_stat(eager, CX_STAT_FOLDED_CUSTOMERS);
    TU_OK(lazy, cx_ingest(lazy, 5, cu, it, ty, NULL, ts, NULL));
    TU_OK(eager, cx_ingest(eager, 5, cu, it, ty, NULL, ts, NULL));
    TU_OK(off, cx_ingest(off, 5, cu, it, ty, NULL, ts, NULL));
    /* Lazy only appends; eager solved both customers. */
    assert_int_equal(tu_stat(lazy, CX_STAT_FOLDED_CUSTOMERS), l0);
    assert_int_equal(tu_stat(eager, CX_STAT_FOLDED_CUSTOMERS), e0 + 2);

    float xl[VMAX], xe[VMAX], xo[VMAX];
    int sl = -1, se = -1, so = -1;
    const char *who[] = {known, "newbie"};
    for (size_t w = 0; w < 2; w++) {
        TU_OK(lazy, cx_customer_vector(lazy, who[w], xl, VMAX, &sl));
        /* The lazy read solved once, and caches. */
        assert_int_equal(tu_stat(lazy, CX_STAT_FOLDED_CUSTOMERS),
                         l0 + (int64_t)w + 1);
        TU_OK(lazy, cx_customer_vector(lazy, who[w], xl, VMAX, &sl));
        assert_int_equal(tu_stat(lazy, CX_STAT_FOLDED_CUSTOMERS),
                         l0 + (int64_t)w + 1);
        TU_OK(eager, cx_customer_vector(eager, who[w], xe, VMAX, &se));
        assert_int_equal(sl, 1);
        assert_int_equal(se, 1);
        for (size_t d = 0; d < k; d++)
            assert_true(fabs(xl[d] - xe[d]) <= 1e-6);
    }
    assert_int_equal(tu_stat(eager, CX_STAT_FOLDED_CUSTOMERS), e0 + 2);
    /* The fold-in did move the known customer. */
    TU_OK(lazy, cx_customer_vector(lazy, known, xl, VMAX, &sl));
    double moved = 0;
    for (size_t d = 0; d < k; d++)
        moved = fmax(moved, fabs(xl[d] - Xl[ku * k + d]));
    assert_true(moved > 1e-4);

    /* The same recommendations. */
    result a, b;
    for (int exact = 0; exact <= 1; exact++) {
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = exact;
        for (size_t w = 0; w < 2; w++) {
            TU_OK(lazy, rec(lazy, who[w], 20, &o, &a));
            TU_OK(eager, rec(eager, who[w], 20, &o, &b));
            assert_int_equal(a.n, 20);
            assert_all_reasons(&a, CX_REASON_PERSONAL);
            assert_same_result(&a, &b, 1e-6);
        }
    }
    /* The batch call serves the same vectors. */
    {
        const char *custs[] = {known, "newbie", "stranger"};
        const char *bi[3 * 20];
        float bs[3 * 20];
        int br[3 * 20];
        size_t bc[3];
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = 1;
        TU_OK(lazy, cx_recommend_batch(lazy, 3, custs, 20, &o, bi, bs, br,
                                       bc));
        for (size_t w = 0; w < 3; w++) {
            TU_OK(lazy, rec(lazy, custs[w], 20, &o, &a));
            memset(&b, 0, sizeof b);
            b.n = bc[w];
            for (size_t j = 0; j < bc[w]; j++) {
                b.items[j] = bi[w * 20 + j];
                b.scores[j] = bs[w * 20 + j];
                b.reasons[j] = br[w * 20 + j];
            }
            assert_same_result(&a, &b, 1e-5);
        }
    }
    /* One more signal: lazy re-solves at the next read only. */
    int64_t l1 = tu_stat(lazy, CX_STAT_FOLDED_CUSTOMERS);
    int64_t e1 = tu_stat(eager, CX_STAT_FOLDED_CUSTOMERS);
    const char *cu2[] = {"newbie"};
    const char *it2[] = {shop.items[pick[0]].id};
    int ty2[] = {CX_ADD_TO_CART};
    int64_t ts2[] = {t_new + 5};
    TU_OK(lazy, cx_ingest(lazy, 1, cu2, it2, ty2, NULL, ts2, NULL));
    TU_OK(eager, cx_ingest(eager, 1, cu2, it2, ty2, NULL, ts2, NULL));
    assert_int_equal(tu_stat(lazy, CX_STAT_FOLDED_CUSTOMERS), l1);
    assert_int_equal(tu_stat(eager, CX_STAT_FOLDED_CUSTOMERS), e1 + 1);
    TU_OK(lazy, rec(lazy, "newbie", 20, NULL, &a));
    assert_int_equal(tu_stat(lazy, CX_STAT_FOLDED_CUSTOMERS), l1 + 1);
    TU_OK(eager, rec(eager, "newbie", 20, NULL, &b));
    assert_same_result(&a, &b, 1e-6);
    TU_OK(lazy, cx_customer_vector(lazy, "newbie", xl, VMAX, &sl));
    TU_OK(eager, cx_customer_vector(eager, "newbie", xe, VMAX, &se));
    for (size_t d = 0; d < k; d++)
        assert_true(fabs(xl[d] - xe[d]) <= 1e-6);

    /* Off: the new customer gets popular items and has no vector; the
     * known one keeps the trained vector. */
    TU_OK(off, rec(off, "newbie", 10, NULL, &a));
    assert_int_equal(a.n, 10);
    assert_all_reasons(&a, CX_REASON_POPULAR);
    assert_int_equal(cx_customer_vector(off, "newbie", xo, VMAX, &so),
                     CX_ENOTFOUND);
    TU_OK(off, cx_customer_vector(off, known, xo, VMAX, &so));
    assert_int_equal(so, 0);
    assert_memory_equal(xo, Xo + ku * k, k * sizeof *xo);
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = 1;
    TU_OK(off, rec(off, known, 10, &o, &a));
    assert_int_equal(a.n, 10);
    assert_all_reasons(&a, CX_REASON_PERSONAL);
    const float *Y;
    size_t ny;
    TU_OK(off, cx_factors(off, 1, &Y, &ny, &k2));
    for (size_t j = 0; j < a.n; j++) {
        double want = tu_dot(Xo + ku * k, Y + item_ix(a.items[j]) * k, k);
        assert_true(fabs(a.scores[j] - want) <= 1e-4 * fmax(1, fabs(want)));
    }
    assert_int_equal(tu_stat(off, CX_STAT_FOLDED_CUSTOMERS), 0);

    gc_free(cnt);
    gc_close(lazy), gc_close(eager), gc_close(off);
    gc_release(&shop, GC_SHOP);
}

/* ===================================================================== */
/* 3. A new taste shows at once                                          */
/* ===================================================================== */

/* Number of items of category cat in r, and the sum of their ranks. */
static size_t count_cat(const synth_shop *s, const result *r, uint32_t cat,
                        double *rank_sum)
{
    size_t n = 0;
    double sum = 0;
    for (size_t j = 0; j < r->n; j++)
        if (s->items[item_ix(r->items[j])].cat == cat) {
            n++;
            sum += (double)j;
        }
    if (rank_sum)
        *rank_sum = sum;
    return n;
}

static void test_taste_rises(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 12000);
    c.seed = 5;
    c.n_items = 300;
    c.n_categories = 12;
    c.taste_strength = 0.95;
    static synth_shop shop;
    cx_engine *e = trained_shop(&c, 16, CX_SOLVER_CG, 8, &shop);
    gc_add(&shop, GC_SHOP);
    size_t *cnt = item_counts(&shop);
    size_t ni = shop.n_items, nc = shop.n_categories;
    uint8_t *seen = gc_calloc(ni, 1);
    size_t *per_cat = gc_calloc(nc, sizeof *per_cat);
    int64_t t_new = shop.signals[shop.n_signals - 1].ts + 100;
    size_t done = 0;
    for (uint32_t cu = 0; cu < 30 && done < 6; cu++) {
        char id[24];
        synth_customer_id(cu, id);
        result before, after;
        TU_OK(e, rec(e, id, 20, NULL, &before));
        if (before.n < 20 || before.reasons[0] != CX_REASON_PERSONAL)
            continue;
        /* X: the category least present in the top 20, not a favourite. */
        memset(per_cat, 0, nc * sizeof *per_cat);
        for (size_t j = 0; j < before.n; j++)
            per_cat[shop.items[item_ix(before.items[j])].cat]++;
        uint32_t X = UINT32_MAX;
        for (uint32_t k = 0; k < nc; k++)
            if (k != shop.fav[2 * cu] && k != shop.fav[2 * cu + 1] &&
                (X == UINT32_MAX || per_cat[k] < per_cat[X]))
                X = k;
        assert_true(X != UINT32_MAX);
        /* Three of X's most signalled in-stock items they have not seen. */
        memset(seen, 0, ni);
        for (size_t j = 0; j < shop.n_signals; j++)
            if (shop.signals[j].customer == cu)
                seen[shop.signals[j].item] = 1;
        uint32_t pick[3];
        size_t np = 0;
        for (; np < 3; np++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t i = 0; i < ni; i++)
                if (shop.items[i].cat == X && !seen[i] &&
                    shop.items[i].in_stock &&
                    (best == UINT32_MAX || cnt[i] > cnt[best]))
                    best = i;
            if (best == UINT32_MAX)
                break;
            pick[np] = best;
            seen[best] = 1;
        }
        if (np < 3)
            continue;
        /* The whole ranking, to compare the rank of X's other items. */
        cx_rec_opts all;
        cx_rec_opts_init(&all);
        all.exact = 1;
        all.in_stock_only = 0;
        result full0, full1;
        TU_OK(e, rec(e, id, ni, &all, &full0));
        size_t n_before = count_cat(&shop, &before, X, NULL);

        const char *cus[] = {id, id, id};
        const char *its[3];
        int tys[] = {CX_VIEW, CX_VIEW, CX_VIEW};
        int64_t tss[] = {t_new, t_new + 1, t_new + 2};
        for (size_t j = 0; j < 3; j++)
            its[j] = shop.items[pick[j]].id;
        TU_OK(e, cx_ingest(e, 3, cus, its, tys, NULL, tss, NULL));
        TU_OK(e, rec(e, id, 20, NULL, &after));
        TU_OK(e, rec(e, id, ni, &all, &full1));
        size_t n_after = count_cat(&shop, &after, X, NULL);
        /* Average rank of X's items other than the three just viewed
         * (those are now excluded as seen). */
        double s0 = 0, s1 = 0;
        size_t m = 0;
        for (size_t j = 0; j < full0.n; j++) {
            uint32_t i = item_ix(full0.items[j]);
            if (shop.items[i].cat != X)
                continue;
            long r1 = rank_of(&full1, full0.items[j]);
            if (r1 < 0)
                continue;
            s0 += (double)j;
            s1 += (double)r1;
            m++;
        }
        assert_true(m >= 5);
        print_message("customer %s, category %u: %zu -> %zu of the top 20, "
                      "average rank %.1f -> %.1f\n",
                      id, X, n_before, n_after, s0 / (double)m,
                      s1 / (double)m);
        assert_true(n_after > n_before);
        assert_true(s1 < s0);
        for (size_t j = 0; j < 3; j++)
            assert_false(contains(&after, its[j]));
        done++;
    }
    assert_int_equal(done, 6);
    gc_free(seen), gc_free(per_cat), gc_free(cnt);
    gc_close(e);
    gc_release(&shop, GC_SHOP);
}

/* ===================================================================== */
/* 4. Sessions                                                           */
/* ===================================================================== */

static void test_session_equals_stored_customer(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 8000);
    c.seed = 9;
    static synth_shop shop;
    cx_engine *e = gc_engine(tu_shop_engine_cfg(&c, &shop));
    gc_add(&shop, GC_SHOP);
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 6));
    /* With time decay: signals at or after the model's newest count in
     * full, as a session's do. */
    TU_OK(e, cx_set_option(e, CX_OPT_HALF_LIFE, 7 * DAY));
    TU_OK(e, cx_train(e, NULL, NULL));
    size_t *cnt = item_counts(&shop);
    const char *sitems[5];
    size_t np = 0;
    for (uint32_t i = 3; i < shop.n_items && np < 5; i += 7)
        if (cnt[i] >= 5)
            sitems[np++] = shop.items[i].id;
    assert_int_equal(np, 5);
    int stypes[] = {CX_VIEW, CX_CLICK, CX_ADD_TO_CART, CX_PURCHASE,
                    CX_RATING};
    float svals[] = {1, 3, 1, 2, 4};

    /* The session before the twin exists, then the stored twin. */
    result s_before[2], s_after, stored;
    for (int exact = 0; exact <= 1; exact++) {
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = exact;
        TU_OK(e, session(e, 5, sitems, stypes, svals, 20, &o,
                         &s_before[exact]));
    }
    int64_t newest = shop.signals[shop.n_signals - 1].ts;
    const char *tw[] = {"twin", "twin", "twin", "twin", "twin"};
    int64_t ts[] = {newest, newest, newest, newest, newest};
    TU_OK(e, cx_ingest(e, 5, tw, sitems, stypes, svals, ts, NULL));
    const char *tl[] = {"twin-later", "twin-later", "twin-later",
                        "twin-later", "twin-later"};
    int64_t tsl[] = {newest + 3600, newest + 3601, newest + 3602,
                     newest + 7200, newest + DAY};
    TU_OK(e, cx_ingest(e, 5, tl, sitems, stypes, svals, tsl, NULL));
    const char *twins[] = {"twin", "twin-later"};
    for (int exact = 0; exact <= 1; exact++) {
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = exact;
        TU_OK(e, session(e, 5, sitems, stypes, svals, 20, &o, &s_after));
        for (size_t w = 0; w < 2; w++) {
            TU_OK(e, rec(e, twins[w], 20, &o, &stored));
            assert_int_equal(stored.n, 20);
            assert_all_reasons(&stored, CX_REASON_PERSONAL);
            assert_same_result(&s_after, &stored, 1e-5);
            assert_same_result(&s_before[exact], &stored, 1e-5);
        }
        /* The session's items are excluded. */
        for (size_t j = 0; j < 5; j++)
            assert_false(contains(&s_after, sitems[j]));
    }
    /* Nothing was stored by the sessions. */
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS),
                     (int64_t)shop.n_signals + 10);

    /* A longer list still leaves the session's items out, and a dislike
     * in the session excludes its item too. */
    const char *si2[] = {sitems[0], sitems[1], sitems[2]};
    int st2[] = {CX_PURCHASE, CX_VIEW, CX_DISLIKE};
    result r;
    TU_OK(e, session(e, 3, si2, st2, NULL, shop.n_items, NULL, &r));
    assert_true(r.n > 50);
    for (size_t j = 0; j < 3; j++)
        assert_false(contains(&r, si2[j]));

    /* No usable signal: popular items, as cx_popular gives them. */
    result pop;
    TU_OK(e, popular(e, 15, NULL, &pop));
    assert_int_equal(pop.n, 15);
    TU_OK(e, session(e, 0, NULL, NULL, NULL, 15, NULL, &r));
    assert_all_reasons(&r, CX_REASON_POPULAR);
    assert_same_result(&r, &pop, 0);
    const char *unknown[] = {"no-such-item-1", "no-such-item-2"};
    int ut[] = {CX_PURCHASE, CX_VIEW};
    TU_OK(e, session(e, 2, unknown, ut, NULL, 15, NULL, &r));
    assert_all_reasons(&r, CX_REASON_POPULAR);
    assert_same_result(&r, &pop, 0);
    /* Unknown items mixed with known ones are ignored. */
    const char *mixed[] = {sitems[0], "no-such-item-1", sitems[1],
                           sitems[2], sitems[3], sitems[4]};
    int mt[] = {stypes[0], CX_PURCHASE, stypes[1], stypes[2], stypes[3],
                stypes[4]};
    float mv[] = {svals[0], 1, svals[1], svals[2], svals[3], svals[4]};
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = 1;
    TU_OK(e, rec(e, "twin", 20, &o, &stored));
    TU_OK(e, session(e, 6, mixed, mt, mv, 20, &o, &r));
    assert_same_result(&r, &stored, 1e-5);

    /* Misuse. */
    const char *items[4];
    size_t n = 0;
    int bad_types[] = {-1, 7, CX_SIGNAL_CUSTOM + 3, CX_MAX_SIGNAL_TYPES};
    assert_int_equal(cx_recommend_session(e, 2, NULL, stypes, NULL, 4, NULL,
                                          items, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_recommend_session(e, 2, sitems, NULL, NULL, 4, NULL,
                                          items, NULL, NULL, &n),
                     CX_EINVAL);
    for (size_t j = 0; j < sizeof bad_types / sizeof *bad_types; j++) {
        int bt[] = {CX_VIEW, bad_types[j]};
        assert_int_equal(cx_recommend_session(e, 2, sitems, bt, NULL, 4,
                                              NULL, items, NULL, NULL, &n),
                         CX_EINVAL);
    }
    float nanv[] = {1, NAN};
    assert_int_equal(cx_recommend_session(e, 2, sitems, stypes, nanv, 4,
                                          NULL, items, NULL, NULL, &n),
                     CX_EINVAL);
    const char *nullid[] = {sitems[0], NULL};
    assert_int_equal(cx_recommend_session(e, 2, nullid, stypes, NULL, 4,
                                          NULL, items, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_recommend_session(NULL, 1, sitems, stypes, NULL, 4,
                                          NULL, items, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_recommend_session(e, 1, sitems, stypes, NULL, 0,
                                          NULL, items, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_recommend_session(e, 1, sitems, stypes, NULL, 4,
                                          NULL, NULL, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_recommend_session(e, 1, sitems, stypes, NULL, 4,
                                          NULL, items, NULL, NULL, NULL),
                     CX_EINVAL);
    assert_int_equal(cx_recommend_session(e, 10001, sitems, stypes, NULL, 4,
                                          NULL, items, NULL, NULL, &n),
                     CX_EINVAL);
    /* Still fine afterwards. */
    TU_OK(e, cx_recommend_session(e, 1, sitems, stypes, NULL, 4, NULL,
                                  items, NULL, NULL, &n));
    assert_int_equal(n, 4);

    /* Before training: popular items. */
    cx_engine *u = NULL;
    assert_int_equal(cx_open(&u, NULL, 0), CX_OK);
    tu_plain(u);
    gc_engine(u);
    TU_OK(u, tu_upsert_catalogue(u, &shop));
    TU_OK(u, tu_ingest_signals(u, &shop, 0, shop.n_signals, 4096));
    TU_OK(u, session(u, 5, sitems, stypes, svals, 10, NULL, &r));
    assert_int_equal(r.n, 10);
    assert_all_reasons(&r, CX_REASON_POPULAR);
    gc_close(u);

    gc_free(cnt);
    gc_close(e);
    gc_release(&shop, GC_SHOP);
}

/* ===================================================================== */
/* 5. A new item reaches its co-buyers without retraining                */
/* ===================================================================== */

static void test_new_item_reaches_co_buyers(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 20000); /* 500 customers */
    c.seed = 7;
    c.n_items = 200;
    c.n_categories = 8;
    c.taste_strength = 0.9;
    static synth_shop shop;
    cx_engine *e = trained_shop(&c, 16, CX_SOLVER_CG, 8, &shop);
    gc_add(&shop, GC_SHOP);
    size_t ni = shop.n_items, nc = shop.n_customers;
    /* Who bought what. */
    uint8_t *bought = gc_calloc(nc * ni, 1);
    size_t *buyers = gc_calloc(ni, sizeof *buyers);
    for (size_t j = 0; j < shop.n_signals; j++) {
        const synth_signal *g = &shop.signals[j];
        if (g->type == SYNTH_PURCHASE &&
            !bought[(size_t)g->customer * ni + g->item]) {
            bought[(size_t)g->customer * ni + g->item] = 1;
            buyers[g->item]++;
        }
    }
    uint32_t A = 0;
    for (uint32_t i = 0; i < ni; i++)
        if (shop.items[i].in_stock && buyers[i] > buyers[A])
            A = i;
    assert_true(buyers[A] >= 20);
    const char *a_id = shop.items[A].id;
    int64_t created_max = 0;
    for (size_t i = 0; i < ni; i++)
        created_max = shop.items[i].created_at > created_max
                          ? shop.items[i].created_at
                          : created_max;

    /* N: new, in stock, A's category, the newest creation. */
    const char *nid[] = {"new-item-N"};
    const char *ncat[] = {shop.items[A].category};
    double nprice[] = {shop.items[A].price};
    int nstock[] = {1};
    int64_t ncreated[] = {created_max + 1000};
    TU_OK(e, cx_items_upsert(e, 1, nid, ncat, nprice, nstock, ncreated,
                             NULL));
    float y[VMAX];
    int src = -1;
    assert_int_equal(cx_item_vector(e, nid[0], y, VMAX, &src), CX_ENOTFOUND);
    /* Never invisible: first of the new arrivals, and nobody's
     * personal pick yet. */
    result r;
    TU_OK(e, arrivals(e, 5, NULL, &r));
    assert_true(r.n >= 1);
    assert_string_equal(r.items[0], nid[0]);
    assert_int_equal(r.reasons[0], CX_REASON_NEW);
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    for (uint32_t cu = 0; cu < nc; cu += 3) {
        char id[24];
        synth_customer_id(cu, id);
        TU_OK(e, rec(e, id, 10, &o, &r));
        if (r.n && r.reasons[0] == CX_REASON_PERSONAL)
            assert_false(contains(&r, nid[0]));
    }

    /* A's neighbour list, made before N has a vector. */
    result sa0;
    TU_OK(e, cx_similar_items(e, a_id, 10, &o, sa0.items, sa0.scores,
                              sa0.reasons, &sa0.n));
    assert_false(contains(&sa0, nid[0]));

    /* Ten buyers of A buy two of N each. */
    uint32_t co[10], others[20];
    size_t nco = 0, no = 0;
    for (uint32_t cu = 0; cu < nc; cu++) {
        if (!bought[(size_t)cu * ni + A])
            continue;
        if (nco < 10)
            co[nco++] = cu;
        else if (no < 20)
            others[no++] = cu;
    }
    assert_int_equal(nco, 10);
    assert_true(no >= 10);
    char co_id[10][24];
    const char *cus[10], *its[10];
    int tys[10];
    float vals[10];
    int64_t tss[10];
    int64_t t_new = shop.signals[shop.n_signals - 1].ts + 100;
    for (size_t j = 0; j < 10; j++) {
        synth_customer_id(co[j], co_id[j]);
        cus[j] = co_id[j];
        its[j] = nid[0];
        tys[j] = CX_PURCHASE;
        vals[j] = 2;
        tss[j] = t_new + (int64_t)j;
    }
    int64_t fi0 = tu_stat(e, CX_STAT_FOLDED_ITEMS);
    TU_OK(e, cx_ingest(e, 10, cus, its, tys, vals, tss, NULL));
    assert_true(tu_stat(e, CX_STAT_FOLDED_ITEMS) > fi0);
    src = -1;
    TU_OK(e, cx_item_vector(e, nid[0], y, VMAX, &src));
    assert_int_equal(src, 1);
    double ny2 = 0;
    for (size_t d = 0; d < 16; d++)
        ny2 += (double)y[d] * y[d];
    assert_true(ny2 > 0);

    /* Other buyers of A now see N, without retraining; it ranks far
     * better for them than for customers who never bought A. */
    int64_t gen = tu_stat(e, CX_STAT_GENERATION);
    size_t reached = 0, n_non = 0;
    double rank_buyers = 0, rank_non = 0;
    cx_rec_opts all;
    cx_rec_opts_init(&all);
    all.exact = 1;
    for (size_t j = 0; j < no; j++) {
        char id[24];
        synth_customer_id(others[j], id);
        TU_OK(e, rec(e, id, 10, &o, &r));
        reached += contains(&r, nid[0]);
        TU_OK(e, rec(e, id, ni + 1, &all, &r));
        long at = rank_of(&r, nid[0]);
        assert_true(at >= 0);
        rank_buyers += (double)at;
    }
    for (uint32_t cu = 1; cu < nc && n_non < 40; cu += 7) {
        int touched = 0;
        for (size_t j = 0; j < shop.n_signals; j++)
            touched |= shop.signals[j].customer == cu &&
                       shop.signals[j].item == A;
        if (touched)
            continue;
        char id[24];
        synth_customer_id(cu, id);
        TU_OK(e, rec(e, id, ni + 1, &all, &r));
        if (r.n == 0 || r.reasons[0] != CX_REASON_PERSONAL)
            continue;
        long at = rank_of(&r, nid[0]);
        assert_true(at >= 0);
        rank_non += (double)at;
        n_non++;
    }
    assert_true(n_non >= 20);
    rank_buyers /= (double)no;
    rank_non /= (double)n_non;
    print_message("N reached the top 10 of %zu of %zu other buyers of %s; "
                  "average rank %.1f for them, %.1f for non-buyers\n",
                  reached, no, a_id, rank_buyers, rank_non);
    assert_true(3 * reached >= no);
    assert_true(rank_buyers < 0.5 * rank_non);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), gen);

    /* Similar items: N is scored by its vector now, and A and N are
     * neighbours. */
    const float *Y;
    size_t nyr, k;
    TU_OK(e, cx_factors(e, 1, &Y, &nyr, &k));
    assert_int_equal(nyr, ni);
    cx_rec_opts_init(&o);
    result sn, sa;
    TU_OK(e, cx_similar_items(e, nid[0], 10, &o, sn.items, sn.scores,
                              sn.reasons, &sn.n));
    assert_int_equal(sn.n, 10);
    assert_all_reasons(&sn, CX_REASON_SIMILAR);
    TU_OK(e, cx_similar_items(e, a_id, 10, &o, sa.items, sa.scores,
                              sa.reasons, &sa.n));
    assert_true(contains(&sn, a_id) || contains(&sa, nid[0]));
    /* A's answer comes from the list made before N's fold-in, N scored
     * by its vector now: as the exact scan has it. */
    {
        cx_rec_opts ex;
        cx_rec_opts_init(&ex);
        ex.exact = 1;
        result sx;
        TU_OK(e, cx_similar_items(e, a_id, 10, &ex, sx.items, sx.scores,
                                  sx.reasons, &sx.n));
        assert_int_equal(sa.n, sx.n);
        for (size_t j = 0; j < sx.n; j++) {
            assert_string_equal(sa.items[j], sx.items[j]);
            assert_float_equal(sa.scores[j], sx.scores[j], 1e-6);
        }
    }
    /* N's similarity scores are cosines of its fold-in vector. */
    for (size_t j = 0; j < sn.n; j++) {
        uint32_t t = item_ix(sn.items[j]);
        double nt = sqrt(tu_dot(Y + t * k, Y + t * k, k));
        double cos = nt > 0 ? tu_dot(y, Y + t * k, k) / (sqrt(ny2) * nt) : 0;
        assert_true(fabs(sn.scores[j] - cos) <= 1e-4);
    }

    /* A co-buyer's own vector is the solve of their whole row against the
     * current item vectors, N's fold-in vector included (the freshness
     * promise: their next recommendation reflects their purchase of N).
     * Runs last: the other checks above stand on their own. */
    float *Yx = gc_malloc((nyr + 1) * k * sizeof *Yx);
    memcpy(Yx, Y, nyr * k * sizeof *Yx);
    memcpy(Yx + nyr * k, y, k * sizeof *Yx);
    agg a;
    agg_init(&a, ni + 1);
    agg_shop(&a, e, &shop, co[0]);
    agg_add(&a, (uint32_t)nyr, strength(e, CX_PURCHASE, 2));
    double ref[VMAX];
    ref_fold_x(Yx, nyr, nyr + 1, (int)k, opt(e, CX_OPT_REGULARIZATION),
               opt(e, CX_OPT_ALPHA), &a, ref);
    float x[VMAX];
    src = -1;
    TU_OK(e, cx_customer_vector(e, co_id[0], x, VMAX, &src));
    assert_int_equal(src, 1);
    {
        /* Diagnostic: the same row without the N pair. */
        agg b;
        agg_init(&b, ni + 1);
        agg_shop(&b, e, &shop, co[0]);
        double ref_wo[VMAX], d_with = 0, d_wo = 0;
        ref_fold(Y, nyr, (int)k, opt(e, CX_OPT_REGULARIZATION),
                 opt(e, CX_OPT_ALPHA), &b, ref_wo);
        for (size_t d = 0; d < k; d++) {
            d_with = fmax(d_with, fabs(x[d] - ref[d]));
            d_wo = fmax(d_wo, fabs(x[d] - ref_wo[d]));
        }
        if (d_with > 1e-4)
            print_message("co-buyer %s: max |x - ref| %.3g with N's "
                          "vector, %.3g without the N pair\n",
                          co_id[0], d_with, d_wo);
        agg_free(&b);
    }
    assert_vec_close("co-buyer with N", x, ref, (int)k, 1e-4);
    agg_free(&a);
    gc_free(Yx);

    gc_free(bought), gc_free(buyers);
    gc_close(e);
    gc_release(&shop, GC_SHOP);
}

/* ===================================================================== */
/* 6. Trending and popular                                               */
/* ===================================================================== */

#define T_NOW ((int64_t)1767225600 + 90 * DAY)

/* Hand-made signals: P many long ago, T few in the last hours, R a
 * purchase yesterday, Q a little, D only dislikes. */
static cx_engine *trend_engine(void)
{
    cx_engine *e = NULL;
    assert_int_equal(cx_open(&e, NULL, 0), CX_OK);
    tu_plain(e);
    gc_engine(e);
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_POPULAR_HALF_LIFE, 0));
    const char *ids[] = {"P", "T", "Q", "R", "D"};
    const char *cats[] = {"a", "b", "a", "b", "a"};
    TU_OK(e, cx_items_upsert(e, 5, ids, cats, NULL, NULL, NULL, NULL));
    enum { NS = 20 + 5 + 2 + 2 + 3 };
    const char *cu[NS], *it[NS];
    int ty[NS];
    int64_t ts[NS];
    char cid[NS][16];
    size_t n = 0;
    for (int j = 0; j < 20; j++, n++) {
        it[n] = "P", ty[n] = CX_VIEW, ts[n] = T_NOW - 30 * DAY + j * 60;
    }
    for (int j = 0; j < 5; j++, n++) {
        it[n] = "T", ty[n] = CX_VIEW, ts[n] = T_NOW - (j + 1) * 3600;
    }
    for (int j = 0; j < 2; j++, n++) {
        it[n] = "Q", ty[n] = CX_VIEW, ts[n] = T_NOW - 10 * DAY;
    }
    it[n] = "R", ty[n] = CX_PURCHASE, ts[n] = T_NOW - DAY, n++;
    it[n] = "R", ty[n] = CX_VIEW, ts[n] = T_NOW, n++; /* the newest */
    for (int j = 0; j < 3; j++, n++) {
        it[n] = "D", ty[n] = CX_DISLIKE, ts[n] = T_NOW - 2 * 3600;
    }
    assert_int_equal(n, NS);
    for (size_t j = 0; j < NS; j++) {
        snprintf(cid[j], sizeof cid[j], "u%02zu", j);
        cu[j] = cid[j];
    }
    TU_OK(e, cx_ingest(e, NS, cu, it, ty, NULL, ts, NULL));
    return e;
}

/* One signal's documented contribution at T_NOW. */
static double decayed(double w, int64_t t, double half_life)
{
    return w * (half_life > 0 ? pow(0.5, (double)(T_NOW - t) / half_life)
                              : 1);
}

/* The documented score of an item among trend_engine's signals. */
static double trend_ref(const char *item, double half_life)
{
    double s = 0;
    if (!strcmp(item, "P"))
        for (int j = 0; j < 20; j++)
            s += decayed(1, T_NOW - 30 * DAY + j * 60, half_life);
    if (!strcmp(item, "T"))
        for (int j = 0; j < 5; j++)
            s += decayed(1, T_NOW - (j + 1) * 3600, half_life);
    if (!strcmp(item, "Q"))
        s += 2 * decayed(1, T_NOW - 10 * DAY, half_life);
    if (!strcmp(item, "R"))
        s += decayed(10, T_NOW - DAY, half_life) +
             decayed(1, T_NOW, half_life);
    return s; /* D: dislikes only, nothing */
}

/* Every item's score is the reference, the list is sorted, items with a
 * positive score come in the reference order. */
static void check_scores(const result *r, double half_life, int reason)
{
    assert_true(r->n > 0);
    for (size_t j = 0; j < r->n; j++) {
        double want = trend_ref(r->items[j], half_life);
        if (!(fabs(r->scores[j] - want) <= 1e-3 * fmax(want, 1e-6)))
            print_error("%s: score %.9g, want %.9g\n", r->items[j],
                        r->scores[j], want);
        assert_true(fabs(r->scores[j] - want) <= 1e-3 * fmax(want, 1e-6));
        assert_int_equal(r->reasons[j], reason);
        if (j)
            assert_true(r->scores[j] <= r->scores[j - 1]);
    }
}

static void test_trending_and_popular(void **state)
{
    (void)state;
    cx_engine *e = trend_engine();
    double th = opt(e, CX_OPT_TRENDING_HALF_LIFE);
    assert_true(th == DAY);
    result t, p;
    /* Before any training. */
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 0);
    TU_OK(e, trending(e, 10, NULL, &t));
    TU_OK(e, popular(e, 10, NULL, &p));
    check_scores(&t, DAY, CX_REASON_TRENDING);
    check_scores(&p, 0, CX_REASON_POPULAR);
    assert_true(rank_of(&t, "T") >= 0 && rank_of(&t, "P") >= 0);
    assert_true(rank_of(&t, "T") < rank_of(&t, "P"));
    assert_true(rank_of(&p, "P") < rank_of(&p, "T"));
    assert_string_equal(p.items[0], "P");
    assert_true(fabs(p.scores[0] - 20) <= 1e-3 * 20);
    /* One value by hand: T = sum of 0.5^(h / 24) for h = 1..5. */
    double want_t = 0;
    for (int h = 1; h <= 5; h++)
        want_t += pow(0.5, h / 24.0);
    long rt = rank_of(&t, "T");
    assert_true(fabs(t.scores[rt] - want_t) <= 1e-3 * want_t);
    /* D has only dislikes: never above zero. */
    long rd = rank_of(&t, "D");
    if (rd >= 0)
        assert_true(t.scores[rd] <= 0);
    rd = rank_of(&p, "D");
    if (rd >= 0)
        assert_true(p.scores[rd] <= 0);

    /* Category filter, on both lists. */
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.category = "a";
    result ta, pa;
    TU_OK(e, trending(e, 10, &o, &ta));
    TU_OK(e, popular(e, 10, &o, &pa));
    for (size_t j = 0; j < ta.n; j++)
        assert_true(!strcmp(ta.items[j], "P") || !strcmp(ta.items[j], "Q") ||
                    !strcmp(ta.items[j], "D"));
    for (size_t j = 0; j < pa.n; j++)
        assert_true(!strcmp(pa.items[j], "P") || !strcmp(pa.items[j], "Q") ||
                    !strcmp(pa.items[j], "D"));
    assert_true(ta.n >= 2 && pa.n >= 2);
    assert_string_equal(pa.items[0], "P");
    o.category = "b";
    TU_OK(e, trending(e, 10, &o, &ta));
    assert_int_equal(ta.n, 2);
    assert_string_equal(ta.items[0], "R");
    assert_string_equal(ta.items[1], "T");
    /* Deny and allow apply too. */
    cx_rec_opts_init(&o);
    const char *deny[] = {"T"};
    o.deny = deny;
    o.n_deny = 1;
    TU_OK(e, trending(e, 10, &o, &ta));
    assert_false(contains(&ta, "T"));

    /* Negative signals never raise a score (at old timestamps, so the
     * time reference does not move). */
    const char *nc[] = {"x1", "x2", "x3", "x4"};
    const char *ni[] = {"T", "P", "D", "R"};
    int nt[] = {CX_DISLIKE, CX_RETURN, CX_DISLIKE, CX_RATING};
    float nv[] = {1, 1, 1, 1}; /* a 1-star rating: negative */
    int64_t nts[] = {T_NOW - 3600, T_NOW - 20 * DAY, T_NOW - 60,
                     T_NOW - 60};
    TU_OK(e, cx_ingest(e, 4, nc, ni, nt, nv, nts, NULL));
    result t2, p2;
    TU_OK(e, trending(e, 10, NULL, &t2));
    TU_OK(e, popular(e, 10, NULL, &p2));
    check_scores(&t2, DAY, CX_REASON_TRENDING);
    check_scores(&p2, 0, CX_REASON_POPULAR);

    /* A longer trending half-life, set afterwards, re-ranks: the old
     * crowd wins again. */
    TU_OK(e, cx_set_option(e, CX_OPT_TRENDING_HALF_LIFE, 1e9));
    TU_OK(e, trending(e, 10, NULL, &t));
    check_scores(&t, 1e9, CX_REASON_TRENDING);
    assert_string_equal(t.items[0], "P");
    /* And a popularity half-life of a week: yesterday's purchase wins. */
    TU_OK(e, cx_set_option(e, CX_OPT_POPULAR_HALF_LIFE, 7 * DAY));
    TU_OK(e, popular(e, 10, NULL, &p));
    check_scores(&p, 7 * DAY, CX_REASON_POPULAR);
    assert_string_equal(p.items[0], "R");
    assert_true(rank_of(&p, "T") < rank_of(&p, "P"));

    /* The same after training. */
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 2));
    TU_OK(e, cx_train(e, NULL, NULL));
    TU_OK(e, trending(e, 10, NULL, &t2));
    assert_same_result(&t, &t2, 0);
    TU_OK(e, popular(e, 10, NULL, &p2));
    assert_same_result(&p, &p2, 0);

    /* Misuse. */
    const char *items[2];
    size_t n;
    assert_int_equal(cx_trending(NULL, 2, NULL, items, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_trending(e, 0, NULL, items, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_popular(e, 2, NULL, NULL, NULL, NULL, &n),
                     CX_EINVAL);
    assert_int_equal(cx_popular(e, 2, NULL, items, NULL, NULL, NULL),
                     CX_EINVAL);
    assert_int_equal(cx_set_option(e, CX_OPT_TRENDING_HALF_LIFE, 0),
                     CX_ERANGE);
    assert_int_equal(cx_set_option(e, CX_OPT_POPULAR_HALF_LIFE, -1),
                     CX_ERANGE);
    gc_close(e);
}

/* ===================================================================== */
/* 7. New arrivals                                                       */
/* ===================================================================== */

static void test_new_arrivals(void **state)
{
    (void)state;
    const int64_t T0 = 1767225600;
    cx_engine *e = NULL;
    assert_int_equal(cx_open(&e, NULL, 0), CX_OK);
    tu_plain(e);
    gc_engine(e);
    const char *ids[] = {"n1", "n2", "n3", "n4", "n5", "n6", "n7"};
    const char *cats[] = {"a", "a", "a", "a", "a", "a", "b"};
    int stock[] = {1, 1, 1, 1, 0, 1, 1};
    int64_t created[] = {T0 + 100, T0 + 500, T0 + 300, 0, T0 + 400,
                         T0 + 600, T0 + 200};
    TU_OK(e, cx_items_upsert(e, 7, ids, cats, NULL, stock, created, NULL));
    TU_OK(e, cx_item_remove(e, "n6"));
    /* Signals: the newest at T0 + 1000; "s" exists only through them. */
    const char *cu[] = {"u1", "u2"};
    const char *it[] = {"n1", "s"};
    int ty[] = {CX_VIEW, CX_PURCHASE};
    int64_t ts[] = {T0 + 1000, T0 + 900};
    TU_OK(e, cx_ingest(e, 2, cu, it, ty, NULL, ts, NULL));

    result r;
    TU_OK(e, arrivals(e, 10, NULL, &r));
    const char *want[] = {"n2", "n3", "n7", "n1"};
    assert_int_equal(r.n, 4);
    for (size_t j = 0; j < r.n; j++) {
        assert_string_equal(r.items[j], want[j]);
        assert_int_equal(r.reasons[j], CX_REASON_NEW);
        if (j)
            assert_true(r.scores[j] >= r.scores[j - 1]);
    }
    /* Ages in days at the newest signal. */
    assert_true(fabs(r.scores[0] - 500.0 / DAY) <= 1e-5);
    assert_true(fabs(r.scores[3] - 900.0 / DAY) <= 1e-5);
    /* Out of stock ones when asked for. */
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.in_stock_only = 0;
    TU_OK(e, arrivals(e, 10, &o, &r));
    const char *want2[] = {"n2", "n5", "n3", "n7", "n1"};
    assert_int_equal(r.n, 5);
    for (size_t j = 0; j < r.n; j++)
        assert_string_equal(r.items[j], want2[j]);
    /* Category, deny, k. */
    cx_rec_opts_init(&o);
    o.category = "b";
    TU_OK(e, arrivals(e, 10, &o, &r));
    assert_int_equal(r.n, 1);
    assert_string_equal(r.items[0], "n7");
    cx_rec_opts_init(&o);
    const char *deny[] = {"n2"};
    o.deny = deny;
    o.n_deny = 1;
    TU_OK(e, arrivals(e, 2, &o, &r));
    assert_int_equal(r.n, 2);
    assert_string_equal(r.items[0], "n3");
    assert_string_equal(r.items[1], "n7");
    /* Upserted again, the removed one is back, first. */
    const char *back[] = {"n6"};
    TU_OK(e, cx_items_upsert(e, 1, back, NULL, NULL, NULL, NULL, NULL));
    TU_OK(e, arrivals(e, 10, NULL, &r));
    assert_int_equal(r.n, 5);
    assert_string_equal(r.items[0], "n6");
    /* Back in stock: listed. */
    const char *n5[] = {"n5"};
    int one[] = {1};
    TU_OK(e, cx_items_upsert(e, 1, n5, NULL, NULL, one, NULL, NULL));
    TU_OK(e, arrivals(e, 10, NULL, &r));
    assert_int_equal(r.n, 6);
    assert_string_equal(r.items[2], "n5");
    /* A later creation than any signal is its own reference. */
    const char *n8[] = {"n8"};
    int64_t c8[] = {T0 + 5000};
    TU_OK(e, cx_items_upsert(e, 1, n8, NULL, NULL, NULL, c8, NULL));
    TU_OK(e, arrivals(e, 10, NULL, &r));
    assert_string_equal(r.items[0], "n8");
    assert_true(fabs(r.scores[0]) <= 1e-5);
    assert_true(fabs(r.scores[1] - 4400.0 / DAY) <= 1e-5);
    /* An empty engine: nothing, no error. */
    cx_engine *z = NULL;
    assert_int_equal(cx_open(&z, NULL, 0), CX_OK);
    tu_plain(z);
    gc_engine(z);
    TU_OK(z, arrivals(z, 10, NULL, &r));
    assert_int_equal(r.n, 0);
    gc_close(z);
    gc_close(e);
}

/* ===================================================================== */
/* 8. Cold start                                                         */
/* ===================================================================== */

static void cold_start_matches(cx_engine *e, const synth_shop *shop)
{
    const char *deny[] = {shop->items[0].id, shop->items[1].id};
    for (int v = 0; v < 5; v++) {
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        switch (v) {
        case 1: o.category = shop->items[3].category; break;
        case 2: o.in_stock_only = 0; break;
        case 3: o.deny = deny, o.n_deny = 2; break;
        case 4: o.exact = 1; break;
        }
        result a, b;
        TU_OK(e, rec(e, "stranger", 15, &o, &a));
        TU_OK(e, popular(e, 15, &o, &b));
        assert_true(a.n > 0);
        assert_all_reasons(&a, CX_REASON_POPULAR);
        assert_same_result(&a, &b, 0);
    }
}

static void test_cold_start_is_popular(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 6000);
    c.seed = 13;
    static synth_shop shop;
    cx_engine *e = gc_engine(tu_shop_engine_cfg(&c, &shop));
    gc_add(&shop, GC_SHOP);
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 8));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 3));
    cold_start_matches(e, &shop); /* untrained */
    TU_OK(e, cx_train(e, NULL, NULL));
    cold_start_matches(e, &shop); /* trained, default decay */
    TU_OK(e, cx_set_option(e, CX_OPT_POPULAR_HALF_LIFE, 0));
    cold_start_matches(e, &shop); /* no decay */
    gc_close(e);
    gc_release(&shop, GC_SHOP);
}

/* ===================================================================== */
/* 9. Background training                                                */
/* ===================================================================== */

typedef struct progress {
    atomic_int calls;
    int sleep_ms;
    int stop_at; /* return non-zero at this iteration (0 = never) */
} progress;

static int on_progress(void *user, int iteration, int iterations,
                       double loss)
{
    (void)iterations, (void)loss;
    progress *p = user;
    atomic_fetch_add(&p->calls, 1);
    if (p->sleep_ms)
        sleep_ms(p->sleep_ms);
    return p->stop_at && iteration >= p->stop_at;
}

static void test_background_training(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 6000);
    c.seed = 17;
    static synth_shop shop;
    cx_engine *e = gc_engine(tu_shop_engine_cfg(&c, &shop));
    gc_add(&shop, GC_SHOP);
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 8));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 10));
    TU_OK(e, cx_set_option(e, CX_OPT_SOLVER, CX_SOLVER_CHOLESKY));
    assert_int_equal(cx_train_wait(e), CX_EINVAL); /* none started */
    assert_int_equal(cx_train_wait(NULL), CX_EINVAL);
    assert_int_equal(cx_train_start(NULL, NULL, NULL), CX_EINVAL);
    TU_OK(e, cx_train(e, NULL, NULL));
    int64_t g0 = tu_stat(e, CX_STAT_GENERATION);
    assert_int_equal(g0, 1);
    assert_int_equal(tu_stat(e, CX_STAT_TRAINING), 0);

    /* Start: returns at once (the training takes >= 10 x 30 ms). */
    /* Static: the training thread writes to it, even past a failed
     * assertion (until the teardown's cx_close). */
    static progress p, q, s;
    memset(&p, 0, sizeof p);
    p.sleep_ms = 30;
    double t0 = now_s();
    TU_OK(e, cx_train_start(e, on_progress, &p));
    double dt = now_s() - t0;
    assert_true(dt < 0.15);
    assert_int_equal(cx_train_start(e, on_progress, &p), CX_EBUSY);
    /* Wait until it is past its snapshot, then ingest. */
    for (int j = 0; j < 10000 && atomic_load(&p.calls) < 1; j++)
        sleep_ms(1);
    assert_true(atomic_load(&p.calls) >= 1);
    assert_int_equal(tu_stat(e, CX_STAT_TRAINING), 1);
    /* Serving goes on from the old model meanwhile. */
    result r;
    char known[24];
    synth_customer_id(3, known);
    TU_OK(e, rec(e, known, 5, NULL, &r));
    assert_int_equal(r.n, 5);
    size_t *cnt = item_counts(&shop);
    uint32_t pick[3];
    size_t np = 0;
    for (uint32_t i = 0; i < shop.n_items && np < 3; i++)
        if (cnt[i] >= 8)
            pick[np++] = i;
    assert_int_equal(np, 3);
    int64_t t_new = shop.signals[shop.n_signals - 1].ts + 30;
    const char *cu[] = {"bg-new", "bg-new", known, known};
    const char *it[] = {shop.items[pick[0]].id, shop.items[pick[1]].id,
                        shop.items[pick[2]].id, shop.items[pick[0]].id};
    int ty[] = {CX_PURCHASE, CX_VIEW, CX_ADD_TO_CART, CX_CLICK};
    int64_t ts[] = {t_new, t_new, t_new + 1, t_new + 2};
    TU_OK(e, cx_ingest(e, 4, cu, it, ty, NULL, ts, NULL));
    /* And an item new during the training, bought by three others. */
    const char *bgi[] = {"bg-item"};
    TU_OK(e, cx_items_upsert(e, 1, bgi, NULL, NULL, NULL, NULL, NULL));
    const char *cu3[] = {"c0000010", "c0000011", "c0000012"};
    const char *it3[] = {"bg-item", "bg-item", "bg-item"};
    int ty3[] = {CX_PURCHASE, CX_PURCHASE, CX_PURCHASE};
    int64_t ts3[] = {t_new + 3, t_new + 3, t_new + 3};
    TU_OK(e, cx_ingest(e, 3, cu3, it3, ty3, NULL, ts3, NULL));
    int64_t n_sig = tu_stat(e, CX_STAT_SIGNALS);
    assert_int_equal(n_sig, (int64_t)shop.n_signals + 7);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), g0);

    TU_OK(e, cx_train_wait(e));
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), g0 + 1);
    assert_int_equal(tu_stat(e, CX_STAT_TRAINING), 0);
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), n_sig);
    assert_int_equal(atomic_load(&p.calls), 10);
    assert_int_equal(cx_train_wait(e), CX_EINVAL); /* already waited for */
    /* The new item is not in the model: folded in against it. */
    assert_true(tu_item_index(e, "bg-item") >=
                (size_t)tu_stat(e, CX_STAT_MODEL_ITEMS));
    float yb[VMAX];
    int sb = -1;
    TU_OK(e, cx_item_vector(e, "bg-item", yb, VMAX, &sb));
    assert_int_equal(sb, 1);
    assert_true(tu_stat(e, CX_STAT_FOLDED_ITEMS) >= 1);

    /* The signals the training did not see are folded against the new
     * model. */
    const float *Y;
    size_t ny, k;
    TU_OK(e, cx_factors(e, 1, &Y, &ny, &k));
    /* The new customer came after the snapshot: not a row of the model. */
    assert_true(tu_customer_index(e, "bg-new") >=
                (size_t)tu_stat(e, CX_STAT_MODEL_CUSTOMERS));
    double lambda = opt(e, CX_OPT_REGULARIZATION);
    double alpha = opt(e, CX_OPT_ALPHA);
    agg a;
    agg_init(&a, shop.n_items);
    agg_add(&a, pick[0], strength(e, CX_PURCHASE, 1));
    agg_add(&a, pick[1], strength(e, CX_VIEW, 1));
    float x[VMAX];
    double ref[VMAX];
    int src = -1;
    TU_OK(e, cx_customer_vector(e, "bg-new", x, VMAX, &src));
    assert_int_equal(src, 1);
    ref_fold(Y, ny, (int)k, lambda, alpha, &a, ref);
    assert_vec_close("bg-new", x, ref, (int)k, 1e-4);
    agg_free(&a);
    agg_init(&a, shop.n_items);
    agg_shop(&a, e, &shop, 3);
    agg_add(&a, pick[2], strength(e, CX_ADD_TO_CART, 1));
    agg_add(&a, pick[0], strength(e, CX_CLICK, 1));
    src = -1;
    TU_OK(e, cx_customer_vector(e, known, x, VMAX, &src));
    assert_int_equal(src, 1);
    ref_fold(Y, ny, (int)k, lambda, alpha, &a, ref);
    assert_vec_close("known customer after publish", x, ref, (int)k, 1e-4);
    agg_free(&a);

    /* A cancelled background training keeps the old model. */
    const float *X0;
    size_t nx0, k0;
    TU_OK(e, cx_factors(e, 0, &X0, &nx0, &k0));
    float *copy = gc_malloc(nx0 * k0 * sizeof *copy);
    memcpy(copy, X0, nx0 * k0 * sizeof *copy);
    memset(&q, 0, sizeof q);
    q.stop_at = 2;
    TU_OK(e, cx_train_start(e, on_progress, &q));
    assert_int_equal(cx_train_wait(e), CX_ECANCELED);
    assert_true(strlen(cx_errmsg(e)) > 0);
    assert_int_equal(atomic_load(&q.calls), 2);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), g0 + 1);
    assert_int_equal(tu_stat(e, CX_STAT_TRAINING), 0);
    const float *X1;
    size_t nx1, k1;
    TU_OK(e, cx_factors(e, 0, &X1, &nx1, &k1));
    assert_int_equal(nx1, nx0);
    assert_memory_equal(X1, copy, nx0 * k0 * sizeof *copy);
    gc_free(copy);
    /* And a plain one after it works. */
    TU_OK(e, cx_train_start(e, NULL, NULL));
    TU_OK(e, cx_train_wait(e));
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), g0 + 2);
    gc_close(e);

    /* cx_close during a long background training cancels it promptly. */
    e = NULL;
    assert_int_equal(cx_open(&e, NULL, 0), CX_OK);
    tu_plain(e);
    gc_engine(e);
    TU_OK(e, tu_upsert_catalogue(e, &shop));
    TU_OK(e, tu_ingest_signals(e, &shop, 0, shop.n_signals, 4096));
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 8));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 1000));
    memset(&s, 0, sizeof s);
    s.sleep_ms = 5;
    TU_OK(e, cx_train_start(e, on_progress, &s));
    for (int j = 0; j < 10000 && atomic_load(&s.calls) < 1; j++)
        sleep_ms(1);
    assert_true(atomic_load(&s.calls) >= 1);
    t0 = now_s();
    gc_close(e);
    dt = now_s() - t0;
    int calls = atomic_load(&s.calls);
    print_message("cx_close during training: %.3f s after %d iterations\n",
                  dt, calls);
    assert_true(dt < 2.0);
    assert_true(calls < 1000);
    sleep_ms(30);
    assert_int_equal(atomic_load(&s.calls), calls); /* really stopped */

    gc_free(cnt);
    gc_release(&shop, GC_SHOP);
}

/* ===================================================================== */
/* 10. Vector accessors: misuse                                          */
/* ===================================================================== */

static void test_vectors_misuse(void **state)
{
    (void)state;
    const char *c[] = {"a", "a", "b", "b", "c", "c", "d"};
    const char *i[] = {"x", "y", "y", "z", "z", "w", "v"};
    int t[] = {CX_VIEW, CX_PURCHASE, CX_VIEW, CX_CLICK, CX_ADD_TO_CART,
               CX_VIEW, CX_DISLIKE};
    cx_engine *e = gc_engine(tu_engine(7, c, i, t, NULL, NULL));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 4));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 2));
    float x[8];
    int src = 7;
    /* Before training. */
    assert_int_equal(cx_customer_vector(e, "a", x, 8, &src), CX_ENOTTRAINED);
    assert_int_equal(cx_item_vector(e, "x", x, 8, &src), CX_ENOTTRAINED);
    assert_true(strlen(cx_errmsg(e)) > 0);
    TU_OK(e, cx_train(e, NULL, NULL));

    /* Fine: cap exactly k, source may be NULL. */
    TU_OK(e, cx_customer_vector(e, "a", x, 4, NULL));
    TU_OK(e, cx_item_vector(e, "x", x, 4, NULL));
    src = 7;
    TU_OK(e, cx_customer_vector(e, "a", x, 4, &src));
    assert_int_equal(src, 0);
    src = 7;
    TU_OK(e, cx_item_vector(e, "y", x, 4, &src));
    assert_int_equal(src, 0);
    /* The item vector is the trained row. */
    const float *Y;
    size_t ny, k;
    TU_OK(e, cx_factors(e, 1, &Y, &ny, &k));
    size_t iy = tu_item_index(e, "y");
    assert_true(iy < ny);
    assert_memory_equal(x, Y + iy * k, k * sizeof *x);

    static char long_id[CX_MAX_ID_LEN + 2];
    memset(long_id, 'q', CX_MAX_ID_LEN + 1);
    const char *bad[] = {NULL, "", long_id};
    for (size_t j = 0; j < 3; j++) {
        assert_int_equal(cx_customer_vector(e, bad[j], x, 8, &src),
                         CX_EINVAL);
        assert_int_equal(cx_item_vector(e, bad[j], x, 8, &src), CX_EINVAL);
    }
    assert_int_equal(cx_customer_vector(NULL, "a", x, 8, &src), CX_EINVAL);
    assert_int_equal(cx_item_vector(NULL, "x", x, 8, &src), CX_EINVAL);
    assert_int_equal(cx_customer_vector(e, "a", NULL, 8, &src), CX_EINVAL);
    assert_int_equal(cx_item_vector(e, "x", NULL, 8, &src), CX_EINVAL);
    float guard[8] = {42, 42, 42, 42, 42, 42, 42, 42};
    assert_int_equal(cx_customer_vector(e, "a", guard, 3, &src), CX_EINVAL);
    assert_int_equal(cx_item_vector(e, "x", guard, 3, &src), CX_EINVAL);
    assert_int_equal(cx_customer_vector(e, "a", guard, 0, &src), CX_EINVAL);
    for (size_t j = 3; j < 8; j++)
        assert_true(guard[j] == 42); /* nothing past cap */
    assert_true(strlen(cx_errmsg(e)) > 0);
    /* Unknown ids. */
    assert_int_equal(cx_customer_vector(e, "nobody", x, 8, &src),
                     CX_ENOTFOUND);
    assert_int_equal(cx_item_vector(e, "nothing", x, 8, &src), CX_ENOTFOUND);
    /* Known, but without a vector: only a dislike ("d"), an item added
     * after training without signals. */
    assert_int_equal(cx_customer_vector(e, "d", x, 8, &src), CX_ENOTFOUND);
    const char *ni[] = {"later"};
    TU_OK(e, cx_items_upsert(e, 1, ni, NULL, NULL, NULL, NULL, NULL));
    assert_int_equal(cx_item_vector(e, "later", x, 8, &src), CX_ENOTFOUND);
    /* Off: no fold-in for a new customer. */
    TU_OK(e, cx_set_option(e, CX_OPT_FOLD_IN, CX_FOLD_OFF));
    const char *nc[] = {"e"};
    const char *nit[] = {"x"};
    int nty[] = {CX_PURCHASE};
    TU_OK(e, cx_ingest(e, 1, nc, nit, nty, NULL, NULL, NULL));
    assert_int_equal(cx_customer_vector(e, "e", x, 8, &src), CX_ENOTFOUND);
    TU_OK(e, cx_set_option(e, CX_OPT_FOLD_IN, CX_FOLD_LAZY));
    src = 7;
    TU_OK(e, cx_customer_vector(e, "e", x, 8, &src));
    assert_int_equal(src, 1);
    /* Bad fold-in modes. */
    assert_int_equal(cx_set_option(e, CX_OPT_FOLD_IN, 3), CX_ERANGE);
    assert_int_equal(cx_set_option(e, CX_OPT_FOLD_IN, -1), CX_ERANGE);
    assert_int_equal(cx_set_option(e, CX_OPT_FOLD_IN, 1.5), CX_EINVAL);
    gc_close(e);
}

#define LIVE_TEST(t) cmocka_unit_test_teardown(t, gc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LIVE_TEST(test_fold_in_matches_reference),
        LIVE_TEST(test_fold_in_modes),
        LIVE_TEST(test_taste_rises),
        LIVE_TEST(test_session_equals_stored_customer),
        LIVE_TEST(test_new_item_reaches_co_buyers),
        LIVE_TEST(test_trending_and_popular),
        LIVE_TEST(test_new_arrivals),
        LIVE_TEST(test_cold_start_is_popular),
        LIVE_TEST(test_background_training),
        LIVE_TEST(test_vectors_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
