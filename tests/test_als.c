/* test_als.c -- ALS numerics against slow, obviously-correct references in
 * double precision on tiny inputs: the two one-row solvers, whole training
 * runs (normal equations of each half step), the loss, reproducibility and
 * the confidence convention of cx__build_pairs. */
#include "testutil.h"

#define NU 7
#define NI 9
#define K 4
#define LAMBDA 0.1

/* ===================================================================== */
/* References                                                            */
/* ===================================================================== */

/* Deterministic values in [-1, 1). */
static double lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) * 0x1.0p-52 - 1.0;
}

/* Solve A x = b (k x k, row-major, destroyed) by Gaussian elimination with
 * partial pivoting. */
static void gauss(double *A, double *b, double *x, int k)
{
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(A[r * k + c]) > fabs(A[piv * k + c]))
                piv = r;
        for (int j = 0; j < k; j++) {
            double t = A[c * k + j];
            A[c * k + j] = A[piv * k + j];
            A[piv * k + j] = t;
        }
        double t = b[c];
        b[c] = b[piv];
        b[piv] = t;
        assert_true(fabs(A[c * k + c]) > 1e-300);
        for (int r = c + 1; r < k; r++) {
            double f = A[r * k + c] / A[c * k + c];
            for (int j = c; j < k; j++)
                A[r * k + j] -= f * A[c * k + j];
            b[r] -= f * b[c];
        }
    }
    for (int r = k - 1; r >= 0; r--) {
        double s = b[r];
        for (int j = r + 1; j < k; j++)
            s -= A[r * k + j] * x[j];
        x[r] = s / A[r * k + r];
    }
}

/* The closed form of one row: x = A^-1 b with
 *   A = F'F + lambda I + sum (|c| - 1) f f',   b = sum_{c > 0} c f,
 * over the pairs (idx[j], conf[j]) against factors F (n x k). */
static void ref_row(const float *F, size_t n, int k, double lambda,
                    const uint32_t *idx, const float *conf, size_t np,
                    double *x)
{
    double A[K * K], b[K];
    assert_true(k <= K);
    for (int i = 0; i < k; i++) {
        b[i] = 0;
        for (int j = 0; j < k; j++) {
            double s = i == j ? lambda : 0;
            for (size_t r = 0; r < n; r++)
                s += (double)F[r * k + i] * F[r * k + j];
            A[i * k + j] = s;
        }
    }
    for (size_t p = 0; p < np; p++) {
        const float *f = F + (size_t)idx[p] * k;
        double ca = fabs((double)conf[p]);
        for (int i = 0; i < k; i++) {
            if (conf[p] > 0)
                b[i] += conf[p] * (double)f[i];
            for (int j = 0; j < k; j++)
                A[i * k + j] += (ca - 1) * f[i] * f[j];
        }
    }
    gauss(A, b, x, k);
}

/* G = F'F + lambda I in float, as the library's gram() makes it. */
static void make_gram(const float *F, size_t n, int k, double lambda,
                      float *G)
{
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            double s = i == j ? lambda : 0;
            for (size_t r = 0; r < n; r++)
                s += (double)F[r * k + i] * F[r * k + j];
            G[i * k + j] = (float)s;
        }
}

static double max_err(const float *x, const double *ref, int k)
{
    double e = 0;
    for (int d = 0; d < k; d++) {
        double t = fabs(x[d] - ref[d]) / fmax(1.0, fabs(ref[d]));
        e = t > e ? t : e;
    }
    return e;
}

/* Hand-made rows over NI items: positive, negative, exactly 1, a net-zero
 * pair (-1) and a row with only a negative pair. */
typedef struct row {
    size_t n;
    uint32_t idx[NI];
    float conf[NI];
} row;

static const row rows[] = {
    {3, {0, 3, 5}, {11, 3, -21}},
    {5, {1, 2, 4, 6, 8}, {21, 5, -1, 3.5f, 1.5f}},
    {1, {7}, {-31}},
    {9, {0, 1, 2, 3, 4, 5, 6, 7, 8}, {3, -3, 41, 1, -11, 7, 2, 5, -1}},
    {1, {2}, {1}},
    {2, {4, 8}, {201, -101}},
};
#define NROWS (sizeof rows / sizeof rows[0])

static void random_factors(float *F, size_t n, int k, uint64_t seed)
{
    for (size_t i = 0; i < n * (size_t)k; i++)
        F[i] = (float)lcg(&seed);
}

/* ===================================================================== */
/* One-row solvers                                                       */
/* ===================================================================== */

static void test_cholesky_matches_closed_form(void **state)
{
    (void)state;
    cx__kernels_init();
    float F[NI * K], G[K * K], x[K];
    float scratch[K * K + K + 128 * (K + 1) + NI];
    random_factors(F, NI, K, 7);
    make_gram(F, NI, K, LAMBDA, G);
    for (size_t r = 0; r < NROWS; r++) {
        double ref[K];
        ref_row(F, NI, K, LAMBDA, rows[r].idx, rows[r].conf, rows[r].n, ref);
        memset(x, 0, sizeof x);
        assert_int_equal(cx__solve_cholesky(G, F, K, rows[r].idx,
                                            rows[r].conf, rows[r].n, x,
                                            scratch),
                         CX_OK);
        double err = max_err(x, ref, K);
        if (err > 1e-4)
            print_error("row %zu: error %g\n", r, err);
        assert_true(err <= 1e-4);
    }
    /* A row whose only pair is negative has b = 0, so x = 0. */
    double ref[K];
    ref_row(F, NI, K, LAMBDA, rows[2].idx, rows[2].conf, 1, ref);
    for (int d = 0; d < K; d++)
        assert_true(fabs(ref[d]) < 1e-12);
}

/* More pairs than the solver's gather block (128 rows per ssyrk), with
 * k not a multiple of the SIMD width. */
static void test_cholesky_many_pairs(void **state)
{
    (void)state;
    cx__kernels_init();
    enum { N = 300, KK = 3 };
    static float F[N * KK];
    static uint32_t idx[N];
    static float conf[N];
    float G[KK * KK], x[KK];
    static float scratch[KK * KK + KK + 128 * (KK + 1) + N];
    random_factors(F, N, KK, 99);
    make_gram(F, N, KK, LAMBDA, G);
    uint64_t s = 5;
    for (int i = 0; i < N; i++) {
        idx[i] = (uint32_t)i;
        double u = lcg(&s);
        conf[i] = (float)(u > 0 ? 1 + 10 * u : -(1 + 10 * -u));
    }
    double ref[K]; /* ref_row works for any k <= K */
    ref_row(F, N, KK, LAMBDA, idx, conf, N, ref);
    assert_int_equal(cx__solve_cholesky(G, F, KK, idx, conf, N, x, scratch),
                     CX_OK);
    assert_true(max_err(x, ref, KK) <= 1e-4);
}

static void test_cg_converges(void **state)
{
    (void)state;
    cx__kernels_init();
    float F[NI * K], G[K * K], x[K];
    float scratch[3 * K + 2 * NI];
    random_factors(F, NI, K, 11);
    make_gram(F, NI, K, LAMBDA, G);
    for (size_t r = 0; r < NROWS; r++) {
        double ref[K];
        ref_row(F, NI, K, LAMBDA, rows[r].idx, rows[r].conf, rows[r].n, ref);
        double refn = 0;
        for (int d = 0; d < K; d++)
            refn += ref[d] * ref[d];
        refn = sqrt(refn);
        /* Many steps from 0 reach the closed form. */
        memset(x, 0, sizeof x);
        cx__solve_cg(G, F, K, rows[r].idx, rows[r].conf, rows[r].n, 50, x,
                     scratch);
        assert_true(max_err(x, ref, K) <= 1e-4);
        /* CG's Euclidean error decreases monotonically (Hestenes-Stiefel)
         * and vanishes after k steps in exact arithmetic. */
        double prev = INFINITY;
        for (int steps = 1; steps <= K + 2; steps++) {
            memset(x, 0, sizeof x);
            cx__solve_cg(G, F, K, rows[r].idx, rows[r].conf, rows[r].n,
                         steps, x, scratch);
            double e = 0;
            for (int d = 0; d < K; d++)
                e += (x[d] - ref[d]) * (x[d] - ref[d]);
            e = sqrt(e);
            assert_true(e <= prev * (1 + 1e-3) + 1e-6 * fmax(1, refn));
            if (steps >= K)
                assert_true(e <= 1e-4 * fmax(1, refn));
            prev = e;
        }
        /* Started at the solution, CG stays there. */
        for (int d = 0; d < K; d++)
            x[d] = (float)ref[d];
        cx__solve_cg(G, F, K, rows[r].idx, rows[r].conf, rows[r].n, 3, x,
                     scratch);
        assert_true(max_err(x, ref, K) <= 1e-4);
    }
}

/* A system that is not positive definite is refused, x untouched. */
static void test_cholesky_refuses_singular(void **state)
{
    (void)state;
    cx__kernels_init();
    float F[NI * K], G[K * K], x[K] = {1, 2, 3, 4};
    float scratch[K * K + K + 128 * (K + 1) + NI];
    memset(F, 0, sizeof F);
    F[0] = 1; /* rank 1: only dimension 0 is ever seen */
    make_gram(F, NI, K, 0.0, G);
    uint32_t idx[] = {0};
    float conf[] = {5};
    assert_int_equal(cx__solve_cholesky(G, F, K, idx, conf, 1, x, scratch),
                     CX_EINVAL);
    assert_true(x[0] == 1 && x[1] == 2 && x[2] == 3 && x[3] == 4);
}

/* ===================================================================== */
/* Tiny training set                                                     */
/* ===================================================================== */

typedef struct tev {
    uint32_t c, i;
    int type;
    float v;
} tev;

/* Item 8 has no signals; customer 3 has only a dislike. */
static const tev tiny[] = {
    {0, 0, CX_VIEW, 1},     {0, 1, CX_PURCHASE, 1}, {0, 2, CX_VIEW, 1},
    {0, 2, CX_VIEW, 1},     {0, 5, CX_CLICK, 1},    {1, 0, CX_PURCHASE, 1},
    {1, 0, CX_RETURN, 1},   {1, 3, CX_VIEW, 1},     {1, 4, CX_ADD_TO_CART, 1},
    {2, 1, CX_VIEW, 1},     {2, 2, CX_RATING, 5},   {2, 6, CX_PURCHASE, 2},
    {3, 3, CX_DISLIKE, 1},  {4, 4, CX_VIEW, 1},     {4, 5, CX_VIEW, 1},
    {4, 6, CX_VIEW, 1},     {4, 7, CX_CLICK, 1},    {5, 0, CX_VIEW, 1},
    {5, 7, CX_PURCHASE, 1}, {5, 2, CX_RATING, 1},   {6, 1, CX_ADD_TO_CART, 1},
    {6, 5, CX_PURCHASE, 1}, {6, 6, CX_VIEW, 1},     {6, 3, CX_VIEW, 1},
    {6, 3, CX_RATING, 3},
};
#define NTINY (sizeof tiny / sizeof tiny[0])

static cx__event tiny_ev[NTINY];

static cx__train_input tiny_input(void)
{
    for (size_t j = 0; j < NTINY; j++)
        tiny_ev[j] = (cx__event){tiny[j].c, tiny[j].i, 1000 + (int64_t)j,
                                 tiny[j].v, (uint8_t)tiny[j].type, 0, 0};
    return (cx__train_input){tiny_ev, NTINY, NULL, NU, NI, 1000 + NTINY, NULL};
}

static cx__options tiny_options(int solver, int iterations)
{
    cx__options o;
    cx__options_default(&o);
    o.factors = K;
    o.iterations = iterations;
    o.solver = solver;
    o.threads = 1;
    o.regularization = LAMBDA;
    o.init_scale = 0.5; /* large enough that the first half step matters */
    return o;
}

#define ref_init cx__init_factors

/* Every customer row of X solves its normal equations against Y. */
static void check_customer_rows(const cx__csr *ui, const float *X,
                                const float *Y, double lambda)
{
    for (uint32_t u = 0; u < ui->rows; u++) {
        double ref[K];
        uint64_t p0 = ui->ptr[u], p1 = ui->ptr[u + 1];
        ref_row(Y, NI, K, lambda, ui->idx + p0, ui->conf + p0,
                (size_t)(p1 - p0), ref);
        double err = max_err(X + (size_t)u * K, ref, K);
        if (err > 1e-4)
            print_error("customer %u: error %g\n", u, err);
        assert_true(err <= 1e-4);
    }
}

/* Every item row of Y solves its normal equations against X. */
static void check_item_rows(const cx__csr *ui, const float *X,
                            const float *Y, double lambda)
{
    for (uint32_t i = 0; i < NI; i++) {
        uint32_t idx[NU];
        float conf[NU];
        size_t n = 0;
        for (uint32_t u = 0; u < ui->rows; u++)
            for (uint64_t p = ui->ptr[u]; p < ui->ptr[u + 1]; p++)
                if (ui->idx[p] == i) {
                    idx[n] = u;
                    conf[n++] = ui->conf[p];
                }
        double ref[K];
        ref_row(X, NU, K, lambda, idx, conf, n, ref);
        double err = max_err(Y + (size_t)i * K, ref, K);
        if (err > 1e-4)
            print_error("item %u: error %g\n", i, err);
        assert_true(err <= 1e-4);
    }
}

static cx__model *train_tiny(const cx__options *o, cx_progress_fn fn,
                             void *user)
{
    cx__train_input in = tiny_input();
    cx__model *m = NULL;
    assert_int_equal(cx__train_model(NULL, &in, o, fn, user, &m), CX_OK);
    assert_non_null(m);
    return m;
}

/* One Cholesky iteration from the reproduced initial Y: X solves against
 * Y0 and then Y against that X, both exactly. */
static void test_train_cholesky_one_iteration(void **state)
{
    (void)state;
    cx__kernels_init();
    cx__options o = tiny_options(CX_SOLVER_CHOLESKY, 1);
    cx__model *m = train_tiny(&o, NULL, NULL);
    float Y0[NI * K];
    ref_init(Y0, NI, K, o.seed, 1, o.init_scale);
    check_customer_rows(&m->ui, m->X, Y0, LAMBDA);
    check_item_rows(&m->ui, m->X, m->Y, LAMBDA);
    /* Item 8 has no pairs: its vector is zero.  Customer 3 (a dislike
     * only) is solved (b = 0, so x = 0) but has no vector to serve. */
    for (int d = 0; d < K; d++) {
        assert_true(m->Y[8 * K + d] == 0.0f);
        assert_true(m->X[3 * K + d] == 0.0f);
    }
    assert_int_equal(m->has_vec[3], 0);
    assert_int_equal(m->has_vec[0], 1);
    cx__model_free(m);
}

/* Training is deterministic, so the run with n + 1 iterations starts its
 * last iteration from the Y of the run with n: its X solves exactly
 * against that Y, and its Y against its own X. */
static void test_train_cholesky_normal_equations(void **state)
{
    (void)state;
    cx__kernels_init();
    cx__options o2 = tiny_options(CX_SOLVER_CHOLESKY, 2);
    cx__options o3 = tiny_options(CX_SOLVER_CHOLESKY, 3);
    cx__model *m2 = train_tiny(&o2, NULL, NULL);
    cx__model *m3 = train_tiny(&o3, NULL, NULL);
    check_customer_rows(&m3->ui, m3->X, m2->Y, LAMBDA);
    check_item_rows(&m3->ui, m3->X, m3->Y, LAMBDA);
    /* The first two iterations of both runs are the same computation. */
    cx__model *m2b = train_tiny(&o2, NULL, NULL);
    assert_memory_equal(m2->X, m2b->X, sizeof(float) * NU * K);
    assert_memory_equal(m2->Y, m2b->Y, sizeof(float) * NI * K);
    cx__model_free(m2);
    cx__model_free(m2b);
    cx__model_free(m3);
}

/* ===================================================================== */
/* Loss                                                                  */
/* ===================================================================== */

typedef struct losses {
    int n;
    double v[64];
    int iterations;
} losses;

static int record(void *user, int it, int iterations, double loss)
{
    losses *l = user;
    assert_int_equal(it, l->n + 1);
    l->iterations = iterations;
    l->v[l->n++] = loss;
    return 0;
}

/* The implicit library's loss evaluated directly over every (customer,
 * item) cell:
 *   sum_ui c_ui (p_ui - x_u.y_i)^2 + lambda (|X|^2 + |Y|^2),
 * c = |conf| for stored pairs and 1 elsewhere, p = conf > 0, divided by
 * the total confidence sum |conf| + (unseen cells).  Like implicit's
 * calculate_loss (and loss_rows), a stored pair with p = 0 also adds the
 * constant |conf| (its per-pair term is |c| + (|c|-1)s^2 - 2c+ s, where
 * the |c| is meant for p = 1); the constant does not depend on the
 * factors, so it changes no solution, and we reproduce it to compare
 * exactly. */
static double ref_loss(const cx__csr *ui, const float *X, const float *Y,
                       uint32_t nu, uint32_t ni, int k, double lambda)
{
    double loss = 0, total = 0, norms = 0;
    uint64_t nnz = ui->ptr[nu];
    for (uint32_t u = 0; u < nu; u++)
        for (uint32_t i = 0; i < ni; i++) {
            double c = 1, p = 0, s = tu_dot(X + (size_t)u * k,
                                             Y + (size_t)i * k, (size_t)k);
            for (uint64_t q = ui->ptr[u]; q < ui->ptr[u + 1]; q++)
                if (ui->idx[q] == i) {
                    c = fabs((double)ui->conf[q]);
                    p = ui->conf[q] > 0;
                    if (!p)
                        loss += c; /* implicit's constant, see above */
                }
            loss += c * (p - s) * (p - s);
        }
    for (uint64_t q = 0; q < nnz; q++)
        total += fabs((double)ui->conf[q]);
    for (size_t j = 0; j < (size_t)nu * k; j++)
        norms += (double)X[j] * X[j];
    for (size_t j = 0; j < (size_t)ni * k; j++)
        norms += (double)Y[j] * Y[j];
    loss += lambda * norms;
    return loss / (total + (double)nu * ni - (double)nnz);
}

static void test_loss_matches_direct_evaluation(void **state)
{
    (void)state;
    cx__kernels_init();
    for (int solver = 0; solver <= 1; solver++) {
        for (int its = 1; its <= 4; its += 3) {
            cx__options o = tiny_options(solver, its);
            losses l = {0};
            cx__model *m = train_tiny(&o, record, &l);
            double ref = ref_loss(&m->ui, m->X, m->Y, NU, NI, K, LAMBDA);
            double got = cx__loss(&m->ui, m->X, m->Y, NU, NI, K, LAMBDA);
            assert_true(fabs(got - ref) <= 1e-5 * fabs(ref));
            /* The progress callback and the model report the same. */
            assert_int_equal(l.n, its);
            assert_int_equal(l.iterations, its);
            assert_true(fabs(l.v[its - 1] - ref) <= 1e-5 * fabs(ref));
            assert_true(fabs(m->loss - ref) <= 1e-5 * fabs(ref));
            cx__model_free(m);
        }
    }
    /* Random factors, far from any optimum. */
    cx__train_input in = tiny_input();
    cx__options o = tiny_options(CX_SOLVER_CG, 1);
    cx__csr ui;
    assert_int_equal(cx__build_pairs(&in, &o, &ui), CX_OK);
    float X[NU * K], Y[NI * K];
    random_factors(X, NU, K, 3);
    random_factors(Y, NI, K, 4);
    double ref = ref_loss(&ui, X, Y, NU, NI, K, 0.3);
    double got = cx__loss(&ui, X, Y, NU, NI, K, 0.3);
    assert_true(fabs(got - ref) <= 1e-5 * fabs(ref));
    cx__csr_free(&ui);
}

static void check_monotone(const losses *l)
{
    for (int i = 1; i < l->n; i++) {
        if (!(l->v[i] <= l->v[i - 1] * (1 + 1e-6)))
            print_error("loss went up at iteration %d: %.9g -> %.9g\n",
                        i + 1, l->v[i - 1], l->v[i]);
        assert_true(l->v[i] <= l->v[i - 1] * (1 + 1e-6));
    }
}

static void test_loss_never_increases(void **state)
{
    (void)state;
    cx__kernels_init();
    for (int solver = 0; solver <= 1; solver++) {
        cx__options o = tiny_options(solver, 10);
        o.init_scale = 0.01;
        losses l = {0};
        cx__model *m = train_tiny(&o, record, &l);
        assert_int_equal(l.n, 10);
        check_monotone(&l);
        assert_true(l.v[9] < l.v[0]);
        cx__model_free(m);
    }
    /* The same on a small synthetic shop through the public API. */
    synth_shop shop;
    cx_engine *e = tu_shop_engine(6000, -1, 3, &shop);
    for (int solver = 0; solver <= 1; solver++) {
        losses l = {0};
        TU_OK(e, cx_set_option(e, CX_OPT_SOLVER, solver));
        TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
        TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 10));
        TU_OK(e, cx_train(e, record, &l));
        assert_int_equal(l.n, 10);
        check_monotone(&l);
    }
    cx_close(e);
    synth_free(&shop);
}

/* Without regularisation and with more factors than customers the
 * customer side's systems are singular: Cholesky falls back to CG, and
 * every factor stays finite. */
static void test_train_without_regularization(void **state)
{
    (void)state;
    cx__kernels_init();
    for (int solver = 0; solver <= 1; solver++) {
        cx__options o = tiny_options(solver, 5);
        o.regularization = 0;
        o.factors = 8;
        losses l = {0};
        cx__train_input in = tiny_input();
        cx__model *m = NULL;
        assert_int_equal(cx__train_model(NULL, &in, &o, record, &l, &m),
                         CX_OK);
        for (size_t j = 0; j < (size_t)NU * 8; j++)
            assert_true(isfinite(m->X[j]));
        for (size_t j = 0; j < (size_t)NI * 8; j++)
            assert_true(isfinite(m->Y[j]));
        for (int j = 0; j < l.n; j++)
            assert_true(isfinite(l.v[j]));
        cx__model_free(m);
    }
}

static int stop_at_2(void *user, int it, int iterations, double loss)
{
    (void)user, (void)iterations, (void)loss;
    return it == 2;
}

/* A callback that stops training: CX_ECANCELED, old model kept. */
static void test_train_cancel_keeps_model(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = tu_shop_engine(3000, -1, 4, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 8));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 3));
    TU_OK(e, cx_train(e, NULL, NULL));
    const float *X0, *X1;
    size_t r0, c0, r1, c1;
    TU_OK(e, cx_factors(e, 0, &X0, &r0, &c0));
    float *copy = malloc(r0 * c0 * sizeof *copy);
    memcpy(copy, X0, r0 * c0 * sizeof *copy);
    TU_OK(e, cx_set_option(e, CX_OPT_SEED, 7));
    assert_int_equal(cx_train(e, stop_at_2, NULL), CX_ECANCELED);
    assert_true(strlen(cx_errmsg(e)) > 0);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 1);
    TU_OK(e, cx_factors(e, 0, &X1, &r1, &c1));
    assert_ptr_equal(X0, X1);
    assert_memory_equal(copy, X1, r0 * c0 * sizeof *copy);
    free(copy);
    cx_close(e);
    synth_free(&shop);
}

/* ===================================================================== */
/* Reproducibility                                                       */
/* ===================================================================== */

static void train_copy(cx_engine *e, int threads, float **X, float **Y,
                       size_t *nx, size_t *ny)
{
    const float *px, *py;
    size_t r, c;
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, threads));
    TU_OK(e, cx_train(e, NULL, NULL));
    TU_OK(e, cx_factors(e, 0, &px, &r, &c));
    *nx = r * c;
    *X = malloc(*nx * sizeof **X);
    memcpy(*X, px, *nx * sizeof **X);
    TU_OK(e, cx_factors(e, 1, &py, &r, &c));
    *ny = r * c;
    *Y = malloc(*ny * sizeof **Y);
    memcpy(*Y, py, *ny * sizeof **Y);
}

static void test_reproducible_across_threads(void **state)
{
    (void)state;
    synth_shop shop;
    /* ~375 customers and 200 items: several 64-row chunks per side. */
    cx_engine *e = tu_shop_engine(15000, -1, 5, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 24));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 4));
    for (int solver = 0; solver <= 1; solver++) {
        TU_OK(e, cx_set_option(e, CX_OPT_SOLVER, solver));
        TU_OK(e, cx_set_option(e, CX_OPT_SEED, 42));
        float *X1, *Y1, *X2, *Y2, *X3, *Y3;
        size_t nx, ny, nx2, ny2, nx3, ny3;
        train_copy(e, 1, &X1, &Y1, &nx, &ny);
        train_copy(e, 2, &X2, &Y2, &nx2, &ny2);
        assert_int_equal(nx, nx2);
        assert_int_equal(ny, ny2);
        assert_memory_equal(X1, X2, nx * sizeof *X1);
        assert_memory_equal(Y1, Y2, ny * sizeof *Y1);
        TU_OK(e, cx_set_option(e, CX_OPT_SEED, 43));
        train_copy(e, 2, &X3, &Y3, &nx3, &ny3);
        assert_int_equal(nx, nx3);
        assert_memory_not_equal(X1, X3, nx * sizeof *X1);
        assert_memory_not_equal(Y1, Y3, ny * sizeof *Y1);
        free(X1), free(Y1), free(X2), free(Y2), free(X3), free(Y3);
    }
    cx_close(e);
    synth_free(&shop);
}

/* ===================================================================== */
/* Confidence convention                                                 */
/* ===================================================================== */

/* conf of pair (u, i) in ui, or NAN when absent. */
static float pair_conf(const cx__csr *ui, uint32_t u, uint32_t i,
                       uint32_t *mask)
{
    for (uint64_t p = ui->ptr[u]; p < ui->ptr[u + 1]; p++)
        if (ui->idx[p] == i) {
            if (mask)
                *mask = ui->mask[p];
            return ui->conf[p];
        }
    return NAN;
}

static void assert_close(double got, double want)
{
    if (!(fabs(got - want) <= 1e-5 * fmax(1, fabs(want))))
        print_error("got %.9g, want %.9g\n", got, want);
    assert_true(fabs(got - want) <= 1e-5 * fmax(1, fabs(want)));
}

static void test_build_pairs_convention(void **state)
{
    (void)state;
    const int64_t T = 1000000;
    cx__event ev[] = {
        /* customer 0: three views of item 0, one purchase of item 1, one
         * view of item 2, a purchase of 2 units of item 3 */
        {0, 0, T, 1, CX_VIEW, 0, 0},     {0, 0, T, 1, CX_VIEW, 0, 0},
        {0, 1, T, 1, CX_PURCHASE, 0, 0}, {0, 0, T, 1, CX_VIEW, 0, 0},
        {0, 2, T, 1, CX_VIEW, 0, 0},     {0, 3, T, 2, CX_PURCHASE, 0, 0},
        /* customer 1: purchase then return; ratings 5, 1 and 3 */
        {1, 0, T, 1, CX_PURCHASE, 0, 0}, {1, 0, T, 1, CX_RETURN, 0, 0},
        {1, 1, T, 5, CX_RATING, 0, 0},   {1, 2, T, 1, CX_RATING, 0, 0},
        {1, 3, T, 3, CX_RATING, 0, 0},   {1, 4, T, 1, CX_DISLIKE, 0, 0},
        /* customer 3 (2 has nothing): a custom type, and one event that
         * the keep mask drops */
        {3, 0, T, 1, CX_SIGNAL_CUSTOM, 0, 0},
        {3, 1, T, 1, CX_PURCHASE, 0, 0},
    };
    size_t n = sizeof ev / sizeof ev[0];
    uint8_t keep[sizeof ev / sizeof ev[0]];
    memset(keep, 1, sizeof keep);
    keep[n - 1] = 0;
    cx__options o;
    cx__options_default(&o);
    o.weight[CX_SIGNAL_CUSTOM] = 3;
    double a = o.alpha;
    cx__train_input in = {ev, n, keep, 4, 5, T, NULL};
    cx__csr ui;
    assert_int_equal(cx__build_pairs(&in, &o, &ui), CX_OK);
    assert_int_equal(ui.rows, 4);
    uint32_t mask = 0;
    /* Repeats accumulate: 3 views = 3 * weight 1. */
    assert_close(pair_conf(&ui, 0, 0, &mask), 1 + a * 3);
    assert_int_equal(mask, CX_TYPE_BIT(CX_VIEW));
    /* A purchase weighs more than a view. */
    assert_close(pair_conf(&ui, 0, 1, NULL), 1 + a * 10);
    assert_close(pair_conf(&ui, 0, 2, NULL), 1 + a * 1);
    assert_true(pair_conf(&ui, 0, 1, NULL) > pair_conf(&ui, 0, 2, NULL));
    /* Quantities multiply. */
    assert_close(pair_conf(&ui, 0, 3, NULL), 1 + a * 20);
    /* Purchase + return: r = 10 - 15 = -5, a confident no. */
    assert_close(pair_conf(&ui, 1, 0, &mask), -(1 + a * 5));
    assert_int_equal(mask, CX_TYPE_BIT(CX_PURCHASE) | CX_TYPE_BIT(CX_RETURN));
    /* Ratings: (v - 3) / 2 * 5. */
    assert_close(pair_conf(&ui, 1, 1, NULL), 1 + a * 5);
    assert_close(pair_conf(&ui, 1, 2, NULL), -(1 + a * 5));
    assert_close(pair_conf(&ui, 1, 3, NULL), -1); /* r = 0: like unseen */
    assert_close(pair_conf(&ui, 1, 4, NULL), -(1 + a * 10));
    /* Customer 2 has no pairs; custom weights apply; keep drops. */
    assert_int_equal(ui.ptr[3] - ui.ptr[2], 0);
    assert_close(pair_conf(&ui, 3, 0, NULL), 1 + a * 3);
    assert_true(isnan(pair_conf(&ui, 3, 1, NULL)));
    /* Items within a row are sorted (ranking relies on it). */
    for (uint32_t u = 0; u < ui.rows; u++)
        for (uint64_t p = ui.ptr[u] + 1; p < ui.ptr[u + 1]; p++)
            assert_true(ui.idx[p - 1] < ui.idx[p]);
    cx__csr_free(&ui);
}

static void test_build_pairs_time_decay(void **state)
{
    (void)state;
    const int64_t T = 5000000, H = 86400;
    cx__event ev[] = {
        {0, 0, T, 1, CX_PURCHASE, 0, 0},      /* newest: full weight */
        {0, 1, T - H, 1, CX_PURCHASE, 0, 0},  /* one half-life older */
        {0, 2, T - 2 * H, 1, CX_PURCHASE, 0, 0},
        {0, 3, T, 1, CX_VIEW, 0, 0},          /* mixed ages on one pair */
        {0, 3, T - H, 1, CX_VIEW, 0, 0},
    };
    cx__options o;
    cx__options_default(&o);
    double a = o.alpha;
    cx__train_input in = {ev, 5, NULL, 1, 4, T, NULL};
    cx__csr ui;
    o.half_life = (double)H;
    assert_int_equal(cx__build_pairs(&in, &o, &ui), CX_OK);
    double r0 = (pair_conf(&ui, 0, 0, NULL) - 1) / a;
    double r1 = (pair_conf(&ui, 0, 1, NULL) - 1) / a;
    double r2 = (pair_conf(&ui, 0, 2, NULL) - 1) / a;
    assert_close(r0, 10);
    assert_close(r1, 5);
    assert_close(r2, 2.5);
    assert_close((pair_conf(&ui, 0, 3, NULL) - 1) / a, 1.5);
    cx__csr_free(&ui);
    /* Without a half-life, age does not matter. */
    o.half_life = 0;
    assert_int_equal(cx__build_pairs(&in, &o, &ui), CX_OK);
    assert_close(pair_conf(&ui, 0, 2, NULL), 1 + a * 10);
    cx__csr_free(&ui);
}

/* Through the engine: cx_train measures age from the newest signal in the
 * engine, and custom types carry their weight. */
static void test_engine_confidence(void **state)
{
    (void)state;
    const int64_t T = 1800000000, H = 3600;
    const char *cust[] = {"a", "a", "a", "b", "b"};
    const char *items[] = {"x", "y", "z", "x", "y"};
    int types[] = {CX_PURCHASE, CX_PURCHASE, CX_VIEW, CX_VIEW, 0};
    int64_t ts[] = {T, T - H, T - 3 * H, T, T};
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    int t;
    TU_OK(e, cx_signal_type_define(e, "wishlist", 4, &t));
    assert_int_equal(t, CX_SIGNAL_CUSTOM);
    types[4] = t;
    TU_OK(e, cx_set_option(e, CX_OPT_HALF_LIFE, (double)H));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 2));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 1));
    TU_OK(e, cx_ingest(e, 5, cust, items, types, NULL, ts, NULL));
    TU_OK(e, cx_train(e, NULL, NULL));
    const cx__csr *ui = &e->model->ui;
    double a = e->opt.alpha;
    assert_close(pair_conf(ui, 0, 0, NULL), 1 + a * 10);
    assert_close(pair_conf(ui, 0, 1, NULL), 1 + a * 5);
    assert_close(pair_conf(ui, 0, 2, NULL), 1 + a * 0.125);
    assert_close(pair_conf(ui, 1, 1, NULL), 1 + a * 4);
    cx_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cholesky_matches_closed_form),
        cmocka_unit_test(test_cholesky_many_pairs),
        cmocka_unit_test(test_cg_converges),
        cmocka_unit_test(test_cholesky_refuses_singular),
        cmocka_unit_test(test_train_cholesky_one_iteration),
        cmocka_unit_test(test_train_cholesky_normal_equations),
        cmocka_unit_test(test_loss_matches_direct_evaluation),
        cmocka_unit_test(test_loss_never_increases),
        cmocka_unit_test(test_train_without_regularization),
        cmocka_unit_test(test_train_cancel_keeps_model),
        cmocka_unit_test(test_reproducible_across_threads),
        cmocka_unit_test(test_build_pairs_convention),
        cmocka_unit_test(test_build_pairs_time_decay),
        cmocka_unit_test(test_engine_confidence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
