/* als.c -- implicit-feedback ALS (Hu, Koren & Volinsky 2008).
 * Conjugate gradient (Takacs et al. 2011) or exact Cholesky per row; rows
 * are independent, so any thread count gives the same factors. */
#include "internal.h"
#include "db.h"
#include "quality.h"

#include <cblas.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ===================================================================== */
/* One-row solvers                                                       */
/* ===================================================================== */

/* Minimise sum_i c_i (p_i - x.y_i)^2 + lambda |x|^2 (plus all unseen
 * items at c = 1, p = 0, which G = F'F + lambda I carries), by `steps` CG
 * steps from the current x, as the implicit library does.  The pair terms
 * go through gathered-row kernels: s = Y_u v, then out += Y_u' (w * s).
 * scratch: 3k + 2n floats. */
void cx__solve_cg(const float *G, const float *F, int k, const uint32_t *idx,
                  const float *conf, size_t n, int steps, float *x,
                  float *scratch)
{
    float *r = scratch, *p = scratch + k, *Ap = scratch + 2 * k;
    float *s = scratch + 3 * k, *coef = s + n;
    cx__k.symv(G, x, r, k);
    for (int d = 0; d < k; d++)
        r[d] = -r[d];
    cx__k.gdots(F, idx, n, k, x, s);
    for (size_t i = 0; i < n; i++) {
        float c = conf[i], ca = fabsf(c), cp = c > 0 ? c : 0;
        coef[i] = cp - (ca - 1) * s[i];
    }
    cx__k.gaxpys(F, idx, coef, n, k, r);
    memcpy(p, r, (size_t)k * sizeof *p);
    float rsold = cx__k.dot(r, r, k);
    for (int it = 0; it < steps && rsold > 1e-20f; it++) {
        cx__k.symv(G, p, Ap, k);
        cx__k.gdots(F, idx, n, k, p, s);
        for (size_t i = 0; i < n; i++)
            coef[i] = (fabsf(conf[i]) - 1) * s[i];
        cx__k.gaxpys(F, idx, coef, n, k, Ap);
        float pAp = cx__k.dot(p, Ap, k);
        if (!(pAp > 0))
            break;
        float a = rsold / pAp;
        cx__k.axpy(a, p, x, k);
        cx__k.axpy(-a, Ap, r, k);
        float rsnew = cx__k.dot(r, r, k);
        if (rsnew < 1e-20f)
            break;
        float beta = rsnew / rsold;
        for (int d = 0; d < k; d++)
            p[d] = r[d] + beta * p[d];
        rsold = rsnew;
    }
}

#define GATHER 128 /* rows gathered per ssyrk call */

/* LAPACK, exported by libopenblas itself. */
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda,
                    int *info);
extern void spotrs_(const char *uplo, const int *n, const int *nrhs,
                    const float *a, const int *lda, float *b, const int *ldb,
                    int *info);

/* Exact solve of (G + sum (c_i - 1) y_i y_i') x = sum_{c_i > 0} c_i y_i.
 * The rank updates go to ssyrk in blocks of sqrt(c_i - 1) y_i, then
 * spotrf/spotrs.  A row-major upper triangle is LAPACK's column-major
 * lower one.  scratch: k*k + k + GATHER*(k+1) + n floats.  CX_EINVAL if
 * the system is not numerically positive definite (x untouched). */
int cx__solve_cholesky(const float *G, const float *F, int k,
                       const uint32_t *idx, const float *conf, size_t n,
                       float *x, float *scratch)
{
    float *A = scratch, *b = A + (size_t)k * k;
    float *Ys = b + k, *cp = Ys + (size_t)GATHER * k;
    memcpy(A, G, (size_t)k * k * sizeof *A);
    memset(b, 0, (size_t)k * sizeof *b);
    for (size_t i = 0; i < n; i++)
        cp[i] = conf[i] > 0 ? conf[i] : 0;
    cx__k.gaxpys(F, idx, cp, n, k, b);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float w = fabsf(conf[i]) - 1;
        if (w == 0)
            continue;
        float sw = sqrtf(w);
        const float *y = F + (size_t)idx[i] * k;
        float *dst = Ys + m * (size_t)k;
        for (int d = 0; d < k; d++)
            dst[d] = sw * y[d];
        if (++m == GATHER) {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, (int)m,
                        1.0f, Ys, k, 1.0f, A, k);
            m = 0;
        }
    }
    if (m)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, (int)m, 1.0f,
                    Ys, k, 1.0f, A, k);
    int info = 0, one = 1;
    spotrf_("L", &k, A, &k, &info);
    if (info)
        return CX_EINVAL;
    spotrs_("L", &k, &one, A, &k, b, &k, &info);
    if (info)
        return CX_EINVAL;
    for (int d = 0; d < k; d++)
        if (!isfinite(b[d]))
            return CX_EINVAL;
    memcpy(x, b, (size_t)k * sizeof *x);
    return CX_OK;
}

/* ===================================================================== */
/* Parallel rows                                                         */
/* ===================================================================== */

#define CHUNK 64

typedef struct half_step {
    const cx__csr *m;    /* rows to solve */
    const float *F;      /* the other side's factors */
    const float *G;      /* F'F + lambda I */
    float *out;          /* this side's factors */
    int k, solver, cg_steps;
    atomic_size_t next;  /* next chunk to claim */
    size_t nchunks;
    /* loss mode */
    double *partial;     /* per chunk */
} half_step;

static void solve_rows(half_step *h, float *scratch)
{
    int k = h->k;
    for (;;) {
        size_t c = atomic_fetch_add(&h->next, 1);
        if (c >= h->nchunks)
            return;
        uint32_t lo = (uint32_t)(c * CHUNK);
        uint32_t hi = lo + CHUNK < h->m->rows ? lo + CHUNK : h->m->rows;
        for (uint32_t u = lo; u < hi; u++) {
            uint64_t p0 = h->m->ptr[u], p1 = h->m->ptr[u + 1];
            float *x = h->out + (size_t)u * k;
            /* The next row's first vectors are cold: start fetching them
             * now, while this row computes. */
            if (u + 1 < h->m->rows)
                for (uint64_t q = p1; q < p1 + 8 && q < h->m->ptr[u + 2]; q++)
                    for (int d = 0; d < k; d += 16)
                        __builtin_prefetch(h->F + (size_t)h->m->idx[q] * k + d);
            if (p0 == p1) {
                memset(x, 0, (size_t)k * sizeof *x);
                continue;
            }
            const uint32_t *idx = h->m->idx + p0;
            const float *conf = h->m->conf + p0;
            size_t n = (size_t)(p1 - p0);
            if (h->solver == CX_SOLVER_CHOLESKY &&
                cx__solve_cholesky(h->G, h->F, k, idx, conf, n, x,
                                   scratch) == CX_OK)
                continue;
            /* CG, or a Cholesky that met a numerically singular system:
             * then many CG steps approach the same solution. */
            cx__solve_cg(h->G, h->F, k, idx, conf, n,
                         h->solver == CX_SOLVER_CHOLESKY ? 4 * k
                                                         : h->cg_steps,
                         x, scratch);
        }
    }
}

/* Rows' share of the loss: sum_i c_i (p_i - x.y_i)^2 over the stored pairs
 * plus the unseen ones, computed as x'(F'F)x + sum ((c-1)(x.y) - 2cp)(x.y)
 * + sum c, like the implicit library. */
static void loss_rows(half_step *h, float *scratch)
{
    int k = h->k;
    for (;;) {
        size_t c = atomic_fetch_add(&h->next, 1);
        if (c >= h->nchunks)
            return;
        uint32_t lo = (uint32_t)(c * CHUNK);
        uint32_t hi = lo + CHUNK < h->m->rows ? lo + CHUNK : h->m->rows;
        double l = 0;
        for (uint32_t u = lo; u < hi; u++) {
            const float *x = h->out + (size_t)u * k;
            cx__k.symv(h->G, x, scratch, k);
            for (uint64_t p = h->m->ptr[u]; p < h->m->ptr[u + 1]; p++) {
                const float *y = h->F + (size_t)h->m->idx[p] * k;
                float cf = h->m->conf[p], ca = fabsf(cf);
                float cp = cf > 0 ? cf : 0, s = cx__k.dot(y, x, k);
                l += ca + ((double)(ca - 1) * s - 2.0 * cp) * s;
            }
            l += cx__k.dot(scratch, x, k);
        }
        h->partial[c] = l;
    }
}

typedef struct worker {
    half_step *h;
    float *scratch;
    int loss;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    if (w->loss)
        loss_rows(w->h, w->scratch);
    else
        solve_rows(w->h, w->scratch);
    return NULL;
}

/* Run the half step on `nt` threads (the caller is one of them). */
static int run(half_step *h, worker *ws, int nt, int loss)
{
    pthread_t tid[256];
    int started = 0;
    atomic_store(&h->next, 0);
    for (int t = 1; t < nt; t++) {
        ws[t].h = h;
        ws[t].loss = loss;
        if (pthread_create(&tid[t], NULL, work, &ws[t]))
            break;
        started = t;
    }
    ws[0].h = h;
    ws[0].loss = loss;
    work(&ws[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    return CX_OK;
}

/* G = F'F + lambda I as a full symmetric matrix. */
static void gram(const float *F, uint32_t n, int k, double lambda, float *G)
{
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, (int)n, 1.0f, F,
                k, 0.0f, G, k);
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < i; j++)
            G[(size_t)i * k + j] = G[(size_t)j * k + i];
        G[(size_t)i * k + i] += (float)lambda;
    }
}

/* ===================================================================== */
/* Loss                                                                  */
/* ===================================================================== */

static double loss_with(half_step *h, worker *ws, int nt, const cx__csr *ui,
                        const float *X, const float *Y, uint32_t n_items,
                        int k, double lambda, float *G)
{
    gram(Y, n_items, k, 0.0, G);
    h->m = ui;
    h->F = Y;
    h->G = G;
    h->out = (float *)X;
    h->nchunks = (ui->rows + CHUNK - 1) / CHUNK;
    run(h, ws, nt, 1);
    double loss = 0, total = 0, norms = 0;
    for (size_t c = 0; c < h->nchunks; c++)
        loss += h->partial[c];
    uint64_t nnz = ui->ptr[ui->rows];
    for (uint64_t p = 0; p < nnz; p++)
        total += fabsf(ui->conf[p]);
    for (size_t i = 0; i < (size_t)ui->rows * k; i++)
        norms += (double)X[i] * X[i];
    for (size_t i = 0; i < (size_t)n_items * k; i++)
        norms += (double)Y[i] * Y[i];
    loss += lambda * norms;
    return loss / (total + (double)ui->rows * n_items - (double)nnz);
}

double cx__loss(const cx__csr *ui, const float *X, const float *Y,
                uint32_t n_users, uint32_t n_items, int k, double lambda)
{
    CX_UNUSED(n_users);
    half_step h = {0};
    worker w = {0};
    float *G = malloc((size_t)k * k * sizeof *G);
    w.scratch = malloc((size_t)k * sizeof *w.scratch);
    h.k = k;
    h.partial = calloc((ui->rows + CHUNK - 1) / CHUNK + 1, sizeof(double));
    double l = NAN;
    if (G && w.scratch && h.partial)
        l = loss_with(&h, &w, 1, ui, X, Y, n_items, k, lambda, G);
    free(G);
    free(w.scratch);
    free(h.partial);
    return l;
}

/* ===================================================================== */
/* Training                                                              */
/* ===================================================================== */

/* Uniform [0, scale) values that depend only on (seed, side, row). */
void cx__init_factors(float *F, uint32_t rows, int k, uint64_t seed,
                      uint64_t side, double scale)
{
    for (uint32_t r = 0; r < rows; r++) {
        uint64_t s = seed ^ (side << 62) ^ ((uint64_t)r * 0x9E3779B97F4A7C15ull);
        for (int d = 0; d < k; d++)
            F[(size_t)r * k + d] =
                (float)((double)(cx__mix64(&s) >> 11) * 0x1.0p-53 * scale);
    }
}

int cx__train_model(const cx_engine *e, const cx__train_input *in,
                    const cx__options *o, cx_progress_fn progress,
                    void *user, cx__model **out)
{
    *out = NULL;
    int k = o->factors;
    int nt = o->threads ? o->threads : cx__ncpu();
    if (nt > 256)
        nt = 256;
    cx__model *m = calloc(1, sizeof *m);
    cx__csr iu = {0};
    worker ws[256];
    memset(ws, 0, sizeof ws);
    half_step h = {0};
    float *G = NULL;
    int rc = CX_ENOMEM, blas_threads = 0;
    if (!m)
        goto fail;
    m->k = k;
    m->n_users = in->n_users;
    m->n_items = in->n_items;
    if ((rc = cx__build_pairs(in, o, &m->ui)) ||
        (rc = cx__csr_transpose(&m->ui, in->n_items, &iu)))
        goto fail;
    rc = CX_ENOMEM;
    m->X = malloc(((size_t)in->n_users * k + 1) * sizeof *m->X);
    m->Y = malloc(((size_t)in->n_items * k + 1) * sizeof *m->Y);
    m->has_vec = calloc((size_t)in->n_users + 1, 1);
    G = malloc((size_t)k * k * sizeof *G);
    size_t maxrows = in->n_users > in->n_items ? in->n_users : in->n_items;
    h.partial = calloc(maxrows / CHUNK + 2, sizeof(double));
    if (!m->X || !m->Y || !m->has_vec || !G || !h.partial)
        goto fail;
    uint64_t maxrow = 0;
    for (uint32_t u = 0; u < m->ui.rows; u++)
        if (m->ui.ptr[u + 1] - m->ui.ptr[u] > maxrow)
            maxrow = m->ui.ptr[u + 1] - m->ui.ptr[u];
    for (uint32_t i = 0; i < iu.rows; i++)
        if (iu.ptr[i + 1] - iu.ptr[i] > maxrow)
            maxrow = iu.ptr[i + 1] - iu.ptr[i];
    size_t per = (size_t)k * k + (size_t)k * 3 + (size_t)GATHER * (k + 1) +
                 2 * (size_t)maxrow;
    /* Cholesky calls OpenBLAS from our workers: keep it from threading
     * underneath them, and restore the application's setting after. */
    if (o->solver == CX_SOLVER_CHOLESKY && nt > 1) {
        blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    for (int t = 0; t < nt; t++)
        if (!(ws[t].scratch = malloc(per * sizeof(float))))
            goto fail;
    cx__init_factors(m->X, in->n_users, k, o->seed, 0, o->init_scale);
    cx__init_factors(m->Y, in->n_items, k, o->seed, 1, o->init_scale);
    h.k = k;
    h.solver = o->solver;
    h.cg_steps = o->cg_steps;
    for (int it = 0; it < o->iterations; it++) {
        gram(m->Y, in->n_items, k, o->regularization, G);
        h.m = &m->ui;
        h.F = m->Y;
        h.G = G;
        h.out = m->X;
        h.nchunks = (in->n_users + CHUNK - 1) / CHUNK;
        run(&h, ws, nt, 0);
        gram(m->X, in->n_users, k, o->regularization, G);
        h.m = &iu;
        h.F = m->X;
        h.out = m->Y;
        h.nchunks = (in->n_items + CHUNK - 1) / CHUNK;
        run(&h, ws, nt, 0);
        if (in->cancel && atomic_load(in->cancel)) {
            rc = cx__fail(e, CX_ECANCELED, "training canceled after "
                          "iteration %d", it + 1);
            goto fail;
        }
        if (progress) {
            m->loss = loss_with(&h, ws, nt, &m->ui, m->X, m->Y, in->n_items,
                                k, o->regularization, G);
            if (progress(user, it + 1, o->iterations, m->loss)) {
                rc = cx__fail(e, CX_ECANCELED,
                              "training canceled by the progress callback "
                              "after iteration %d", it + 1);
                goto fail;
            }
        }
    }
    if (!progress)
        m->loss = loss_with(&h, ws, nt, &m->ui, m->X, m->Y, in->n_items, k,
                            o->regularization, G);
    for (uint32_t u = 0; u < in->n_users; u++)
        for (uint64_t p = m->ui.ptr[u]; p < m->ui.ptr[u + 1]; p++)
            if (m->ui.conf[p] > 0) {
                m->has_vec[u] = 1;
                break;
            }
    if ((rc = cx__model_finish(m)))
        goto fail;
    rc = CX_OK;
    *out = m;
    m = NULL;
fail:
    if (blas_threads > 0)
        openblas_set_num_threads(blas_threads);
    if (rc && rc != CX_ECANCELED)
        cx__fail(e, rc, "cx_train: %s", cx_strerror(rc));
    for (int t = 0; t < nt; t++)
        free(ws[t].scratch);
    free(h.partial);
    free(G);
    cx__csr_free(&iu);
    cx__model_free(m);
    return rc;
}

/* ===================================================================== */
/* Public entry                                                          */
/* ===================================================================== */

/* Build the fold-in table for a new model: a page per CX__FOLD_PAGE
 * customers, all empty. */
static int new_fold_table(size_t customers, void ***dir, size_t *npages)
{
    size_t n = (customers + CX__FOLD_PAGE - 1) / CX__FOLD_PAGE;
    *npages = n;
    *dir = calloc(n ? n : 1, sizeof **dir);
    if (!*dir)
        return CX_ENOMEM;
    for (size_t p = 0; p < n; p++)
        if (!((*dir)[p] = calloc(CX__FOLD_PAGE, sizeof(cx__fold *)))) {
            cx__fold_free_table(*dir, n);
            *dir = NULL;
            return CX_ENOMEM;
        }
    return CX_OK;
}

/* Copy the signals under the writer mutex, train with no lock held, then
 * publish the model with a pointer swap and fold in what arrived
 * meanwhile. */
/* Background training computes in a thread of its own at idle priority
 * (SCHED_IDLE, inherited by its workers), so serving threads always get
 * the CPU first.  The thread that takes the engine's locks to copy and
 * publish keeps its normal priority: an unprivileged thread could not
 * come back from SCHED_IDLE, and must not hold the locks while starved. */
typedef struct compute_job {
    cx_engine *e;
    const cx__train_input *in;
    const cx__options *o;
    cx_progress_fn progress;
    void *user;
    int idle;
    cx__model *m;
    int rc;
    char msg[512];
} compute_job;

static void *compute_main(void *arg)
{
    compute_job *j = arg;
    if (j->idle) { /* glibc's thread attributes cannot ask for SCHED_IDLE */
        struct sched_param sp = {0};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    }
    j->rc = cx__train_model(j->e, j->in, j->o, j->progress, j->user, &j->m);
    if (j->rc == CX_OK) {
        j->m->n_events = j->in->n_ev;
        if ((j->rc = cx__model_prepare_fold(j->m, j->o, j->in->ts_ref)))
            cx__fail(j->e, j->rc, "cx_train: out of memory");
    }
    snprintf(j->msg, sizeof j->msg, "%s", j->rc ? cx_errmsg(j->e) : "");
    cx__forget_errors(j->e);
    return NULL;
}

/* Train and prepare a model, in an idle-priority thread if `idle` (and
 * in the calling thread if such a thread cannot be created). */
static int compute(cx_engine *e, const cx__train_input *in,
                   const cx__options *o, cx_progress_fn progress, void *user,
                   int idle, cx__model **out)
{
    compute_job j = {e, in, o, progress, user, idle, NULL, CX_OK, ""};
    pthread_t t;
    if (idle && pthread_create(&t, NULL, compute_main, &j) == 0) {
        pthread_join(t, NULL);
    } else {
        j.idle = 0;
        compute_main(&j);
    }
    if (j.rc)
        cx__fail(e, j.rc, "%s", j.msg);
    *out = j.m;
    return j.rc;
}

/* Publish model m, trained on events [0, n), as the engine's model
 * (train_mu held, no other lock): a new fold-in table, the pointer swap,
 * fold-ins of what arrived since, and in a data directory a snapshot.
 * Takes m, whatever the outcome. */
int cx__model_publish(cx_engine *e, cx__model *m, size_t n, int64_t gen)
{
    int rc;
    pthread_mutex_lock(&e->wmu);
    /* Models that did not come from cx_train (a snapshot, an import, a
     * forget): events [0, n) cannot move while wmu is held. */
    cx__hstats_attach(&e->opt, m, e->ev, n);
    cx__plan p;
    memset(&p, 0, sizeof p);
    void **dir = NULL;
    size_t npages = 0;
    if ((rc = new_fold_table(e->customers.n, &dir, &npages)) ||
        (rc = cx__fold_plan_reset(e, &p))) {
        rc = cx__fail(e, rc, "cx_train: out of memory");
        cx__fold_free_table(dir, npages);
        cx__plan_release(&p, 0);
        pthread_mutex_unlock(&e->wmu);
    } else {
        void **old_dir = e->fold_pages;
        size_t old_np = e->fold_npages;
        cx__model *old = e->model;
        cx__wrlock(e);
        cx__plan_commit(&p);
        e->model = m;
        e->fold_pages = dir;
        e->fold_npages = npages;
        e->fold_cap = npages;
        atomic_store(&e->n_folded, 0);
        e->generation = gen ? gen : e->generation + 1;
        cx__wrunlock(e);
        m = NULL;
        /* Signals that arrived while training: new items get
         * vectors, and in eager mode their customers too. */
        if (cx__fold_after_ingest(e, n))
            cx__fail(e, CX_ENOMEM, "cx_train: fold-in skipped");
        pthread_mutex_unlock(&e->wmu);
        /* Freed with no lock held: writers need not wait for it. */
        cx__plan_release(&p, 1);
        cx__fold_free_table(old_dir, old_np);
        cx__model_free(old);
        /* The model serves from here; a data directory also keeps it
         * (train_mu keeps it from being replaced meanwhile). */
        if (e->db && !gen) {
            rc = cx__snapshot_write(e, e->model);
            if (rc)
                cx__fail(e, rc, "cx_train: the model serves, but its "
                         "snapshot was not saved: %s", cx_errmsg(e));
            pthread_mutex_lock(&e->wmu);
            int xrc = cx__db_exposures(e);
            pthread_mutex_unlock(&e->wmu);
            rc = rc ? rc : xrc;
        }
    }
    cx__model_free(m);
    return rc;
}

static int train(cx_engine *e, cx_progress_fn progress, void *user,
                 int background)
{
    pthread_mutex_lock(&e->train_mu);
    atomic_store(&e->training, 1);
    /* No copy: events [0, n) never change, and the array they are in is
     * pinned against being freed by a growing ingest. */
    pthread_mutex_lock(&e->wmu);
    /* Signals other processes appended (readers with CX_OPEN_SIGNALS)
     * are trained on too. */
    int rc = cx__db_catch_up(e);
    size_t n = e->n_ev;
    cx__options o = e->opt;
    cx__train_input in = {e->ev, n, NULL, e->customers.n, e->items.n,
                          e->ts_max, &e->cancel};
    e->ev_pinned = e->ev;
    e->ev_orphan = 0;
    int64_t seq_end = cx__db_last_seq(e) + 1;
    pthread_mutex_unlock(&e->wmu);
    cx__model *m = NULL;
    if (rc == CX_OK && n == 0)
        rc = cx__fail(e, CX_EINVAL, "cx_train: no signals to train on");
    if (rc == CX_OK)
        rc = compute(e, &in, &o, progress, user, background, &m);
    if (rc == CX_OK) {
        m->seq_end = seq_end;
        /* The blend's statistics while the events are still pinned,
         * with no lock held. */
        cx__hstats_attach(&o, m, in.ev, n);
    }
    pthread_mutex_lock(&e->wmu);
    if (e->ev_orphan)
        cx__free_array(e->ev_pinned);
    e->ev_pinned = NULL;
    e->ev_orphan = 0;
    pthread_mutex_unlock(&e->wmu);
    if (rc == CX_OK) {
        rc = cx__model_publish(e, m, n, 0);
        m = NULL;
    }
    cx__model_free(m);
    atomic_store(&e->training, 0);
    pthread_mutex_unlock(&e->train_mu);
    return rc;
}

CX_API int cx_train(cx_engine *e, cx_progress_fn progress, void *user)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_train: engine is NULL");
    if (cx__db_readonly(e))
        return cx__fail(e, CX_EREADONLY, "cx_train: the engine is open "
                        "read-only (the directory's writer trains)");
    return train(e, progress, user, 0);
}

static void *background(void *arg)
{
    cx_engine *e = arg;
    int rc = train(e, e->bg_progress, e->bg_user, 1);
    pthread_mutex_lock(&e->bg_mu);
    e->bg_status = rc;
    snprintf(e->bg_msg, sizeof e->bg_msg, "%s", rc ? cx_errmsg(e) : "");
    pthread_mutex_unlock(&e->bg_mu);
    cx__forget_errors(e);
    return NULL;
}

CX_API int cx_train_start(cx_engine *e, cx_progress_fn progress, void *user)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_train_start: engine is NULL");
    if (cx__db_readonly(e))
        return cx__fail(e, CX_EREADONLY, "cx_train_start: the engine is "
                        "open read-only (the directory's writer trains)");
    pthread_mutex_lock(&e->bg_mu);
    int rc = CX_OK;
    if (e->bg_started) {
        rc = cx__fail(e, CX_EBUSY, "cx_train_start: a background training "
                      "is running or has not been waited for");
    } else {
        e->bg_progress = progress;
        e->bg_user = user;
        e->bg_status = CX_OK;
        e->bg_msg[0] = 0;
        if (pthread_create(&e->bg, NULL, background, e))
            rc = cx__fail(e, CX_ENOMEM, "cx_train_start: cannot create a "
                          "thread");
        else
            e->bg_started = 1;
    }
    pthread_mutex_unlock(&e->bg_mu);
    return rc;
}

CX_API int cx_train_wait(cx_engine *e)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_train_wait: engine is NULL");
    pthread_mutex_lock(&e->bg_mu);
    int started = e->bg_started;
    pthread_t t = e->bg;
    if (started == 1)
        e->bg_started = 2; /* being waited for */
    pthread_mutex_unlock(&e->bg_mu);
    if (!started)
        return cx__fail(e, CX_EINVAL, "cx_train_wait: no background "
                        "training was started");
    if (started == 2)
        return cx__fail(e, CX_EBUSY, "cx_train_wait: another thread is "
                        "already waiting");
    pthread_join(t, NULL);
    pthread_mutex_lock(&e->bg_mu);
    e->bg_started = 0;
    int rc = e->bg_status;
    if (rc)
        cx__fail(e, rc, "%s", e->bg_msg);
    pthread_mutex_unlock(&e->bg_mu);
    return rc;
}
