/* bench_live.c -- the real-time path: fold-in latency, anonymous sessions,
 * serving throughput while ingesting and retraining, lazy vs eager fold-in.
 *
 * One engine: the tools/synth shop of 1,000,000 signals over a 20,000-item
 * catalogue (25,000 customers), 64 factors, trained with 3 ALS iterations
 * on 2 threads (model quality does not matter for timing).  Then:
 *   fold-in   customers new since training with 20 / 200 / 2000 distinct
 *             items: ingest one signal (one of their items, so the count
 *             stays), then time the fold-in alone (cx_customer_vector
 *             under CX_FOLD_LAZY); and cx_ingest of one signal under
 *             CX_FOLD_EAGER, which includes it.
 *   session   cx_recommend_session, 5 signals, top-10.
 *   lazy/eager customers send S signals (one cx_ingest each) then ask for
 *             one cx_recommend; whole session timed, modes in turns.
 *   phases    2 reader threads loop on cx_recommend top-10: at rest; while
 *             a writer ingests 10,000 signals/s (10 every millisecond);
 *             and while, on top of that, cx_train_start/cx_train_wait run
 *             back to back (1 training thread).
 * Figures only: nothing here passes or fails.
 * Usage: bench_live [--quick]   (or CX_BENCH_QUICK=1: 10x smaller) */
#include "benchutil.h"
#include "cxengine.h"
#include "synth.h"
#include "shopload.h"

#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

/* Targets (the issue). */
#define TARGET_FOLD20_US 30.0
#define TARGET_FOLD200_US 100.0
#define TARGET_SESSION_US 100.0
#define TARGET_RETRAIN_P99_RATIO 2.0
#define TARGET_INGEST_RATE 10000.0

#define FACTORS 64
#define K 10
#define WARM 200
#define SLICE 50          /* sessions per turn in lazy vs eager */
#define WRITE_EVERY_NS 1000000L
#define WRITE_BATCH 10    /* 10 signals per ms = 10,000/s */
#define LAT_CAP 1000000   /* latencies kept per reader per phase */

static size_t SHOP_SIGNALS = 1000000, SHOP_ITEMS = 20000;
static size_t FOLD_REPS[3] = {5000, 2000, 300};
static size_t FOLD_CUST[3] = {500, 100, 20};
static const size_t FOLD_N[3] = {20, 200, 2000};
static size_t SESSION_REPS = 5000, LE_SESSIONS = 1500;
static double PHASE_S = 4.0;
#define PACED_RATE 2000.0 /* queries/s per reader in the paced phases */

static bjson J;

static void die_on(cx_engine *e, int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "%s: %s (%s)\n", what, cx_strerror(rc),
                cx_errmsg(e));
        exit(1);
    }
}

typedef struct lat {
    double med, p99, p999, max, mean;
    size_t n;
} lat;

/* Sorts us[]. */
static lat summarise(double *us, size_t n)
{
    lat l = {0, 0, 0, 0, 0, n};
    for (size_t i = 0; i < n; i++)
        l.mean += us[i];
    l.mean /= (double)(n ? n : 1);
    l.med = percentile(us, n, 50);
    l.p99 = percentile(us, n, 99);
    l.p999 = percentile(us, n, 99.9);
    l.max = n ? us[n - 1] : 0;
    return l;
}

static void jlat(const char *tag, lat l)
{
    char k[128];
    snprintf(k, sizeof k, "%s_median_us", tag);
    bjson_num(&J, k, l.med);
    snprintf(k, sizeof k, "%s_p99_us", tag);
    bjson_num(&J, k, l.p99);
    snprintf(k, sizeof k, "%s_p999_us", tag);
    bjson_num(&J, k, l.p999);
    snprintf(k, sizeof k, "%s_max_us", tag);
    bjson_num(&J, k, l.max);
    snprintf(k, sizeof k, "%s_mean_us", tag);
    bjson_num(&J, k, l.mean);
}

static int64_t stat_of(cx_engine *e, int key)
{
    int64_t v = -1;
    cx_stat(e, key, &v);
    return v;
}

/* ================================================================= */
/* The engine                                                        */
/* ================================================================= */

static cx_engine *build(void)
{
    synth_config c;
    synth_config_default(&c, SHOP_SIGNALS);
    c.n_items = SHOP_ITEMS;
    synth_shop s;
    double t = now_s();
    if (synth_generate(&c, &s)) {
        fprintf(stderr, "synth_generate failed\n");
        exit(1);
    }
    double tg = now_s() - t;
    cx_engine *e;
    die_on(NULL, cx_open(&e, NULL, 0), "open");
    t = now_s();
    die_on(e, shop_upsert_catalogue(e, &s), "catalogue");
    die_on(e, shop_ingest(e, &s, 0, s.n_signals, 10000), "ingest");
    double ti = now_s() - t;
    cx_set_option(e, CX_OPT_FACTORS, FACTORS);
    cx_set_option(e, CX_OPT_ITERATIONS, 3);
    cx_set_option(e, CX_OPT_THREADS, 2);
    t = now_s();
    die_on(e, cx_train(e, NULL, NULL), "train");
    printf("synthetic shop: %zu customers, %zu items, %zu signals "
           "(generated %.1f s, loaded %.1f s); trained %d factors, 3 "
           "iterations, 2 threads: %.1f s\n", s.n_customers, s.n_items,
           s.n_signals, tg, ti, FACTORS, now_s() - t);
    synth_free(&s);
    return e;
}

/* n distinct dense indexes below total, in random order. */
static size_t *pick(size_t total, size_t n, unsigned long long *seed)
{
    size_t *perm = malloc(total * sizeof *perm);
    for (size_t i = 0; i < total; i++)
        perm[i] = i;
    for (size_t i = 0; i < n && i < total; i++) {
        size_t j = i + bench_rand(seed) % (total - i), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    return perm;
}

static int ingest1(cx_engine *e, const char *cust, const char *item,
                   int type)
{
    return cx_ingest(e, 1, &cust, &item, &type, NULL, NULL, NULL);
}

/* ================================================================= */
/* Fold-in latency                                                   */
/* ================================================================= */

typedef struct fold_result {
    lat fold, cached, ingest_lazy, ingest_eager;
    int64_t folds_counted;
} fold_result;

static fold_result fold_size(cx_engine *e, int which)
{
    size_t n = FOLD_N[which], nc = FOLD_CUST[which], reps = FOLD_REPS[which];
    size_t ni = (size_t)stat_of(e, CX_STAT_MODEL_ITEMS);
    if (n > ni)
        n = ni;
    unsigned long long seed = 100 + (unsigned long long)which;
    char(*cid)[32] = malloc(nc * sizeof *cid);
    const char **its = malloc(nc * n * sizeof *its);
    const char **cs = malloc(n * sizeof *cs);
    int *ty = malloc(n * sizeof *ty);
    cx_set_option(e, CX_OPT_FOLD_IN, CX_FOLD_LAZY);
    float x[FACTORS];
    for (size_t c = 0; c < nc; c++) {
        snprintf(cid[c], sizeof cid[c], "fold%zu_%zu", n, c);
        size_t *perm = pick(ni, n, &seed);
        for (size_t j = 0; j < n; j++) {
            its[c * n + j] = cx_item_id(e, perm[j]);
            cs[j] = cid[c];
            unsigned long long r = bench_rand(&seed) % 10;
            ty[j] = r < 7 ? CX_VIEW : r < 9 ? CX_CLICK : CX_ADD_TO_CART;
        }
        free(perm);
        die_on(e, cx_ingest(e, n, cs, its + c * n, ty, NULL, NULL, NULL),
               "ingest fold customer");
        die_on(e, cx_customer_vector(e, cid[c], x, FACTORS, NULL),
               "first fold-in");
    }
    double *a = malloc(reps * sizeof *a), *b = malloc(reps * sizeof *b),
           *d = malloc(reps * sizeof *d);
    fold_result R;
    int64_t f0 = stat_of(e, CX_STAT_FOLDED_CUSTOMERS);
    for (size_t r = 0; r < reps; r++) {
        size_t c = r % nc;
        const char *item = its[c * n + bench_rand(&seed) % n];
        double t0 = now_s();
        die_on(e, ingest1(e, cid[c], item, CX_VIEW), "ingest");
        double t1 = now_s();
        die_on(e, cx_customer_vector(e, cid[c], x, FACTORS, NULL), "fold");
        double t2 = now_s();
        die_on(e, cx_customer_vector(e, cid[c], x, FACTORS, NULL), "read");
        double t3 = now_s();
        d[r] = (t1 - t0) * 1e6;
        a[r] = (t2 - t1) * 1e6;
        b[r] = (t3 - t2) * 1e6;
    }
    R.folds_counted = stat_of(e, CX_STAT_FOLDED_CUSTOMERS) - f0;
    R.fold = summarise(a, reps);
    R.cached = summarise(b, reps);
    R.ingest_lazy = summarise(d, reps);
    cx_set_option(e, CX_OPT_FOLD_IN, CX_FOLD_EAGER);
    for (size_t r = 0; r < reps; r++) {
        size_t c = r % nc;
        const char *item = its[c * n + bench_rand(&seed) % n];
        double t0 = now_s();
        die_on(e, ingest1(e, cid[c], item, CX_VIEW), "ingest eager");
        a[r] = (now_s() - t0) * 1e6;
    }
    R.ingest_eager = summarise(a, reps);
    cx_set_option(e, CX_OPT_FOLD_IN, CX_FOLD_LAZY);
    free(a), free(b), free(d), free(cid), free(its), free(cs), free(ty);
    return R;
}

/* ================================================================= */
/* Anonymous sessions                                                */
/* ================================================================= */

static void session_bench(cx_engine *e, lat *fast, lat *exact)
{
    size_t ni = (size_t)stat_of(e, CX_STAT_MODEL_ITEMS);
    unsigned long long seed = 7;
    double *us[2] = {malloc(SESSION_REPS * sizeof(double)),
                     malloc(SESSION_REPS * sizeof(double))};
    const char *items[K];
    float scores[K];
    int reasons[K];
    size_t n, bad = 0, personal = 0;
    for (size_t r = 0; r < WARM + 2 * SESSION_REPS; r++) {
        const char *sig[5];
        int ty[5];
        for (int j = 0; j < 5; j++) {
            sig[j] = cx_item_id(e, bench_rand(&seed) % ni);
            ty[j] = j == 4 ? CX_ADD_TO_CART : j % 2 ? CX_CLICK : CX_VIEW;
        }
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = (int)(r & 1);
        double t0 = now_s();
        int rc = cx_recommend_session(e, 5, sig, ty, NULL, K, &o, items,
                                      scores, reasons, &n);
        double t = (now_s() - t0) * 1e6;
        die_on(e, rc, "cx_recommend_session");
        bad += n != K;
        personal += n && reasons[0] == CX_REASON_PERSONAL;
        if (r >= WARM)
            us[r & 1][(r - WARM) / 2] = t;
    }
    if (bad)
        printf("  (note: %zu sessions got fewer than %d items)\n", bad, K);
    printf("  %zu of %zu sessions led by a personal item\n", personal,
           WARM + 2 * SESSION_REPS);
    *fast = summarise(us[0], SESSION_REPS);
    *exact = summarise(us[1], SESSION_REPS);
    free(us[0]);
    free(us[1]);
}

/* ================================================================= */
/* Lazy vs eager on typical traffic                                  */
/* ================================================================= */

typedef struct le_result {
    lat session[2];  /* [0] lazy, [1] eager: whole session */
    lat rec[2];      /* the recommendation alone */
} le_result;

static le_result lazy_eager(cx_engine *e, size_t S, const size_t *perm,
                            size_t *used)
{
    size_t ni = (size_t)stat_of(e, CX_STAT_MODEL_ITEMS);
    unsigned long long seed = 1000 + S;
    double *us[2], *ur[2];
    for (int m = 0; m < 2; m++) {
        us[m] = malloc(LE_SESSIONS * sizeof(double));
        ur[m] = malloc(LE_SESSIONS * sizeof(double));
    }
    size_t done[2] = {0, 0};
    const char *items[K];
    float scores[K];
    int reasons[K];
    size_t n;
    while (done[0] < LE_SESSIONS || done[1] < LE_SESSIONS) {
        for (int m = 0; m < 2; m++) {
            cx_set_option(e, CX_OPT_FOLD_IN,
                          m ? CX_FOLD_EAGER : CX_FOLD_LAZY);
            for (size_t j = 0; j < SLICE && done[m] < LE_SESSIONS; j++) {
                const char *cust = cx_customer_id(e, perm[(*used)++]);
                double t0 = now_s();
                for (size_t i = 0; i < S; i++) {
                    const char *item = cx_item_id(e, bench_rand(&seed) % ni);
                    die_on(e, ingest1(e, cust, item,
                                      i + 1 == S && S > 1 ? CX_CLICK
                                                          : CX_VIEW),
                           "ingest");
                }
                double t1 = now_s();
                die_on(e, cx_recommend(e, cust, K, NULL, items, scores,
                                       reasons, &n),
                       "recommend");
                double t2 = now_s();
                us[m][done[m]] = (t2 - t0) * 1e6;
                ur[m][done[m]++] = (t2 - t1) * 1e6;
            }
        }
    }
    cx_set_option(e, CX_OPT_FOLD_IN, CX_FOLD_LAZY);
    le_result R;
    for (int m = 0; m < 2; m++) {
        R.session[m] = summarise(us[m], LE_SESSIONS);
        R.rec[m] = summarise(ur[m], LE_SESSIONS);
        free(us[m]);
        free(ur[m]);
    }
    return R;
}

/* ================================================================= */
/* Throughput phases                                                 */
/* ================================================================= */

typedef struct phase {
    cx_engine *e;
    const char **cust;   /* customers the readers and the writer use */
    size_t n_cust;
    const char **item;
    size_t n_item;
    atomic_int stop;
    /* writer */
    size_t written, write_calls;
    double write_s, write_cpu;
    double *wus;
    size_t n_wus;
    /* trainer */
    int trainings, canceled, train_fail;
    double train_busy_s;
    /* readers: queries/s per reader on a fixed schedule, 0 = back to back */
    double reader_rate;
} phase;

/* The writer only touches customers of even index: readers' latencies
 * for odd ones show the cost of sharing the engine without fold-ins. */
typedef struct rdr {
    phase *p;
    int id;
    double *us[2];       /* by parity of the customer's index */
    size_t n[2], queries;
    int fail;
    double cpu;          /* this thread's CPU seconds */
} rdr;

static double cpu_s(clockid_t which)
{
    struct timespec t;
    clock_gettime(which, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void ts_add(struct timespec *t, long ns)
{
    t->tv_nsec += ns;
    while (t->tv_nsec >= 1000000000L) {
        t->tv_nsec -= 1000000000L;
        t->tv_sec++;
    }
}

static void *reader_main(void *arg)
{
    rdr *r = arg;
    phase *p = r->p;
    unsigned long long seed = 31 + (unsigned long long)r->id * 7919;
    const char *items[K];
    float scores[K];
    int reasons[K];
    size_t n, q = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long gap_ns = p->reader_rate > 0 ? (long)(1e9 / p->reader_rate) : 0;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        if (gap_ns) { /* open loop: the latency is the call's own */
            ts_add(&next, gap_ns);
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
        size_t i = bench_rand(&seed) % p->n_cust, odd = i & 1;
        double t0 = now_s();
        int rc = cx_recommend(p->e, p->cust[i], K, NULL, items, scores,
                              reasons, &n);
        double t = (now_s() - t0) * 1e6;
        r->fail += rc != CX_OK;
        if (q++ >= WARM && r->n[odd] < LAT_CAP)
            r->us[odd][r->n[odd]++] = t;
    }
    r->queries = q > WARM ? q - WARM : 0;
    r->cpu = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    return NULL;
}

/* 10 signals every millisecond on an absolute schedule; a writer that
 * falls behind catches up by at most 100 ms. */
static void *writer_main(void *arg)
{
    phase *p = arg;
    unsigned long long seed = 4242;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    double t0 = now_s();
    const char *cs[WRITE_BATCH], *is[WRITE_BATCH];
    int ty[WRITE_BATCH];
    char fresh[WRITE_BATCH][24];
    static atomic_size_t new_ids;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        for (int j = 0; j < WRITE_BATCH; j++) {
            unsigned long long r = bench_rand(&seed);
            if (r % 10 == 0) { /* a customer new to the engine */
                snprintf(fresh[j], sizeof fresh[j], "live%zu",
                         atomic_fetch_add(&new_ids, 1));
                cs[j] = fresh[j];
            } else {
                cs[j] = p->cust[2 * ((r >> 8) % (p->n_cust / 2))];
            }
            is[j] = p->item[(r >> 32) % p->n_item];
            ty[j] = (r >> 20) % 10 < 8 ? CX_VIEW : CX_CLICK;
        }
        double a = now_s();
        die_on(p->e, cx_ingest(p->e, WRITE_BATCH, cs, is, ty, NULL, NULL,
                               NULL),
               "live ingest");
        double b = now_s();
        if (p->n_wus < LAT_CAP)
            p->wus[p->n_wus++] = (b - a) * 1e6;
        p->written += WRITE_BATCH;
        p->write_calls++;
        ts_add(&next, WRITE_EVERY_NS);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double behind = (double)(now.tv_sec - next.tv_sec) +
                        (double)(now.tv_nsec - next.tv_nsec) * 1e-9;
        if (behind > 0.1) {
            next = now;
        } else if (behind < 0) {
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
    }
    p->write_s = now_s() - t0;
    p->write_cpu = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    return NULL;
}

static int stop_training(void *user, int it, int n, double loss)
{
    (void)it, (void)n, (void)loss;
    return atomic_load(&((phase *)user)->stop);
}

static void *trainer_main(void *arg)
{
    phase *p = arg;
    while (!atomic_load(&p->stop)) {
        double t0 = now_s();
        int rc = cx_train_start(p->e, stop_training, p);
        if (rc == CX_OK)
            rc = cx_train_wait(p->e);
        p->train_busy_s += now_s() - t0;
        if (rc == CX_OK)
            p->trainings++;
        else if (rc == CX_ECANCELED)
            p->canceled++;
        else {
            p->train_fail++;
            fprintf(stderr, "training: %s (%s)\n", cx_strerror(rc),
                    cx_errmsg(p->e));
            break;
        }
    }
    return NULL;
}

typedef struct phase_result {
    double qps, ingest_rate, train_busy;
    lat rec, ing, rec_touched, rec_untouched;
    int trainings, canceled, fails;
    double seconds;
    double cpu_readers, cpu_writer, cpu_other; /* CPU seconds */
} phase_result;

static phase_result run_phase(phase *proto, int writer, int trainer,
                              double reader_rate)
{
    phase p;
    memset(&p, 0, sizeof p);
    p.reader_rate = reader_rate;
    p.e = proto->e;
    p.cust = proto->cust, p.n_cust = proto->n_cust;
    p.item = proto->item, p.n_item = proto->n_item;
    p.wus = malloc(LAT_CAP * sizeof *p.wus);
    rdr r[2];
    pthread_t rt[2], wt, tt;
    for (int j = 0; j < 2; j++) {
        r[j] = (rdr){.p = &p, .id = j};
        r[j].us[0] = malloc(LAT_CAP * sizeof(double));
        r[j].us[1] = malloc(LAT_CAP * sizeof(double));
    }
    double t0 = now_s(), c0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int j = 0; j < 2; j++)
        pthread_create(&rt[j], NULL, reader_main, &r[j]);
    if (writer)
        pthread_create(&wt, NULL, writer_main, &p);
    if (trainer)
        pthread_create(&tt, NULL, trainer_main, &p);
    struct timespec d = {(time_t)PHASE_S,
                         (long)((PHASE_S - (double)(time_t)PHASE_S) * 1e9)};
    nanosleep(&d, NULL);
    atomic_store(&p.stop, 1);
    for (int j = 0; j < 2; j++)
        pthread_join(rt[j], NULL);
    double secs = now_s() - t0;
    if (writer)
        pthread_join(wt, NULL);
    double c1 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
    if (trainer)
        pthread_join(tt, NULL);
    phase_result R;
    memset(&R, 0, sizeof R);
    R.seconds = secs;
    R.cpu_readers = r[0].cpu + r[1].cpu;
    R.cpu_writer = writer ? p.write_cpu : 0;
    /* The rest of the process: the training and its workers (the main
     * thread sleeps), up to the end of the phase. */
    R.cpu_other = c1 - c0 - R.cpu_readers - R.cpu_writer;
    size_t nq = 0, nk = 0, nb[2] = {0, 0};
    for (int j = 0; j < 2; j++) {
        nq += r[j].queries, R.fails += r[j].fail;
        nk += r[j].n[0] + r[j].n[1];
    }
    double *all = malloc((nk ? nk : 1) * sizeof *all);
    double *by[2] = {malloc((nk ? nk : 1) * sizeof(double)),
                     malloc((nk ? nk : 1) * sizeof(double))};
    for (int j = 0; j < 2; j++)
        for (int o = 0; o < 2; o++) {
            memcpy(by[o] + nb[o], r[j].us[o], r[j].n[o] * sizeof(double));
            nb[o] += r[j].n[o];
        }
    memcpy(all, by[0], nb[0] * sizeof *all);
    memcpy(all + nb[0], by[1], nb[1] * sizeof *all);
    R.rec = summarise(all, nk);
    R.rec_touched = summarise(by[0], nb[0]);
    R.rec_untouched = summarise(by[1], nb[1]);
    free(by[0]);
    free(by[1]);
    R.qps = (double)nq / secs;
    if (writer) {
        R.ingest_rate = p.write_s > 0 ? (double)p.written / p.write_s : 0;
        R.ing = summarise(p.wus, p.n_wus);
    }
    R.trainings = p.trainings;
    R.canceled = p.canceled;
    R.fails += p.train_fail;
    R.train_busy = trainer ? p.train_busy_s / secs : 0;
    if (R.train_busy > 1) /* the last run overlaps the end of the phase */
        R.train_busy = 1;
    free(all);
    free(p.wus);
    for (int j = 0; j < 2; j++)
        free(r[j].us[0]), free(r[j].us[1]);
    return R;
}

/* ================================================================= */
/* Summary                                                           */
/* ================================================================= */

static void row(const char *what, double v, const char *unit,
                const char *target, int met)
{
    printf("  %-58s %10.2f %-6s %-14s %s\n", what, v, unit, target,
           met < 0 ? "-" : met ? "yes" : "NO");
}

int main(int argc, char **argv)
{
    const char *qe = getenv("CX_BENCH_QUICK");
    int quick = (argc > 1 && strcmp(argv[1], "--quick") == 0) ||
                (qe && strcmp(qe, "1") == 0);
    if (quick) {
        SHOP_SIGNALS /= 10, SHOP_ITEMS /= 10;
        for (int i = 0; i < 3; i++)
            FOLD_REPS[i] /= 10, FOLD_CUST[i] = FOLD_CUST[i] / 5 + 1;
        SESSION_REPS /= 10, LE_SESSIONS /= 10;
        PHASE_S = 0.5;
    }
    double t_all = now_s();
    bjson_open(&J, "build/bench/live.json");
    const char *blas = getenv("OPENBLAS_NUM_THREADS");
    printf("== live: fold-in, sessions, serving under ingest and retraining"
           "%s\n", quick ? " (--quick: 10x smaller)" : "");
    printf("%ld CPUs online; OPENBLAS_NUM_THREADS=%s, OpenBLAS threads %d\n",
           sysconf(_SC_NPROCESSORS_ONLN), blas ? blas : "(unset)",
           openblas_get_num_threads());
    cx_engine *e = build();
    size_t model_cust = (size_t)stat_of(e, CX_STAT_MODEL_CUSTOMERS);
    size_t model_items = (size_t)stat_of(e, CX_STAT_MODEL_ITEMS);

    /* ---- fold-in latency */
    printf("\n== fold-in, k = %d, customers new since training, lazy: "
           "ingest 1 signal, then cx_customer_vector (timed)\n", FACTORS);
    printf("  %-9s %6s %10s %10s %10s %12s %12s %12s %9s\n", "distinct",
           "reps", "fold med", "fold p99", "cached", "ingest lazy",
           "ingest eager", "eager p99", "folds");
    fold_result F[3];
    for (int w = 0; w < 3; w++) {
        F[w] = fold_size(e, w);
        printf("  %-9zu %6zu %8.1fus %8.1fus %8.2fus %10.2fus %10.1fus "
               "%10.1fus %9" PRId64 "\n", FOLD_N[w] < model_items
                                              ? FOLD_N[w] : model_items,
               FOLD_REPS[w], F[w].fold.med, F[w].fold.p99, F[w].cached.med,
               F[w].ingest_lazy.med, F[w].ingest_eager.med,
               F[w].ingest_eager.p99, F[w].folds_counted);
        char tag[64];
        snprintf(tag, sizeof tag, "fold%zu", FOLD_N[w]);
        jlat(tag, F[w].fold);
        snprintf(tag, sizeof tag, "fold%zu_cached", FOLD_N[w]);
        jlat(tag, F[w].cached);
        snprintf(tag, sizeof tag, "fold%zu_ingest_lazy", FOLD_N[w]);
        jlat(tag, F[w].ingest_lazy);
        snprintf(tag, sizeof tag, "fold%zu_ingest_eager", FOLD_N[w]);
        jlat(tag, F[w].ingest_eager);
        snprintf(tag, sizeof tag, "fold%zu_folds_counted", FOLD_N[w]);
        bjson_num(&J, tag, (double)F[w].folds_counted);
    }
    printf("  (folds = CX_STAT_FOLDED_CUSTOMERS growth over the lazy reps: "
           "one per rep if each read re-solved)\n");

    /* ---- anonymous sessions */
    printf("\n== cx_recommend_session: 5 signals, top-%d, %zu items\n", K,
           model_items);
    lat sf, se;
    session_bench(e, &sf, &se);
    printf("  fast (default) median %.1f us, p99 %.1f us; exact median "
           "%.1f us, p99 %.1f us\n", sf.med, sf.p99, se.med, se.p99);
    jlat("session_fast", sf);
    jlat("session_exact", se);

    /* ---- lazy vs eager */
    static const size_t SS[3] = {1, 3, 10};
    le_result L[3];
    unsigned long long seed = 99;
    size_t *perm = pick(model_cust, model_cust, &seed), used = 0;
    if (6 * LE_SESSIONS > model_cust)
        LE_SESSIONS = model_cust / 6;
    printf("\n== lazy vs eager: a known customer sends S signals (one "
           "cx_ingest each), then 1 cx_recommend top-%d; %zu sessions per "
           "cell, modes in turns of %d\n", K, LE_SESSIONS, SLICE);
    printf("  %-4s %14s %14s %14s %14s %10s %9s\n", "S", "lazy med",
           "eager med", "lazy mean", "eager mean", "rec lazy", "faster");
    for (int i = 0; i < 3; i++) {
        L[i] = lazy_eager(e, SS[i], perm, &used);
        const char *win = L[i].session[0].mean <= L[i].session[1].mean
                              ? "lazy" : "eager";
        printf("  %-4zu %12.1fus %12.1fus %12.1fus %12.1fus %8.1fus %9s\n",
               SS[i], L[i].session[0].med, L[i].session[1].med,
               L[i].session[0].mean, L[i].session[1].mean, L[i].rec[0].med,
               win);
        char tag[64];
        snprintf(tag, sizeof tag, "session_S%zu_lazy", SS[i]);
        jlat(tag, L[i].session[0]);
        snprintf(tag, sizeof tag, "session_S%zu_eager", SS[i]);
        jlat(tag, L[i].session[1]);
        snprintf(tag, sizeof tag, "session_S%zu_recommend_lazy", SS[i]);
        jlat(tag, L[i].rec[0]);
        snprintf(tag, sizeof tag, "session_S%zu_recommend_eager", SS[i]);
        jlat(tag, L[i].rec[1]);
    }
    free(perm);

    /* ---- throughput phases */
    phase proto;
    memset(&proto, 0, sizeof proto);
    proto.e = e;
    proto.n_cust = model_cust;
    proto.cust = malloc(model_cust * sizeof *proto.cust);
    for (size_t i = 0; i < model_cust; i++)
        proto.cust[i] = cx_customer_id(e, i);
    proto.n_item = model_items;
    proto.item = malloc(model_items * sizeof *proto.item);
    for (size_t i = 0; i < model_items; i++)
        proto.item[i] = cx_item_id(e, i);
    cx_set_option(e, CX_OPT_FOLD_IN, CX_FOLD_LAZY);
    cx_set_option(e, CX_OPT_THREADS, 1);
    printf("\n== serving throughput: 2 reader threads, cx_recommend top-%d, "
           "default options and CX_FOLD_LAZY, %.1f s per phase\n", K,
           PHASE_S);
    /* Phases 0-2: both readers back to back, both cores saturated (a
     * background training at idle priority then gets little CPU).
     * Phases 3-5: each reader paced at PACED_RATE queries/s, as a server
     * with headroom, where the training can progress. */
    enum { NPH = 6 };
    static const char *const pname[NPH] = {
        "at rest", "ingest 10k/s", "ingest + retrain",
        "paced: at rest", "paced: retrain", "paced: ingest+retr"};
    phase_result P[NPH];
    printf("  %-17s %9s %8s %8s %9s %10s %9s %9s %8s %10s %4s %5s %6s\n",
           "phase", "queries/s", "p50", "p99", "p99.9", "max", "p99 odd",
           "p99 even", "ingest/s", "ingest p99", "trn", "busy", "trncpu");
    for (int i = 0; i < NPH; i++) {
        P[i] = run_phase(&proto, i == 1 || i == 2 || i == 5,
                         i == 2 || i == 4 || i == 5, i >= 3 ? PACED_RATE : 0);
        printf("  %-17s %9.0f %6.1fus %6.1fus %7.1fus %8.0fus %7.1fus "
               "%7.1fus %8.0f %8.1fus %4d %4.0f%% %5.2fs\n", pname[i],
               P[i].qps, P[i].rec.med, P[i].rec.p99, P[i].rec.p999,
               P[i].rec.max, P[i].rec_untouched.p99, P[i].rec_touched.p99,
               P[i].ingest_rate, P[i].ing.p99, P[i].trainings,
               100 * P[i].train_busy, P[i].cpu_other);
        if (P[i].fails)
            printf("  (%d calls failed in this phase)\n", P[i].fails);
        static const char *const tg[NPH] = {"rest", "ingest", "retrain",
                                            "paced_rest", "paced_retrain",
                                            "paced_ingest_retrain"};
        char k[64];
        snprintf(k, sizeof k, "phase_%s_qps", tg[i]);
        bjson_num(&J, k, P[i].qps);
        snprintf(k, sizeof k, "phase_%s_recommend", tg[i]);
        jlat(k, P[i].rec);
        snprintf(k, sizeof k, "phase_%s_recommend_unwritten", tg[i]);
        jlat(k, P[i].rec_untouched);
        snprintf(k, sizeof k, "phase_%s_recommend_written", tg[i]);
        jlat(k, P[i].rec_touched);
        snprintf(k, sizeof k, "phase_%s_ingest_per_s", tg[i]);
        bjson_num(&J, k, P[i].ingest_rate);
        snprintf(k, sizeof k, "phase_%s_ingest_call", tg[i]);
        jlat(k, P[i].ing);
        snprintf(k, sizeof k, "phase_%s_trainings", tg[i]);
        bjson_num(&J, k, P[i].trainings);
        snprintf(k, sizeof k, "phase_%s_training_busy", tg[i]);
        bjson_num(&J, k, P[i].train_busy);
        snprintf(k, sizeof k, "phase_%s_cpu_readers_s", tg[i]);
        bjson_num(&J, k, P[i].cpu_readers);
        snprintf(k, sizeof k, "phase_%s_cpu_writer_s", tg[i]);
        bjson_num(&J, k, P[i].cpu_writer);
        snprintf(k, sizeof k, "phase_%s_cpu_training_s", tg[i]);
        bjson_num(&J, k, P[i].cpu_other);
    }
    printf("  (p99 odd/even: customers of odd index, which the writer never "
           "touches, and of even index, which it does (lazy fold-ins on "
           "read); ingest p99: one cx_ingest call of %d signals; trn: "
           "trainings completed (1 thread), busy: share of the phase with "
           "one running, %d canceled at the end; trncpu: CPU seconds the "
           "process spent outside the readers and the writer, i.e. in "
           "training, during the phase)\n", WRITE_BATCH, P[2].canceled);
    double ratio = P[0].rec.p99 > 0 ? P[2].rec.p99 / P[0].rec.p99 : 0;
    double ratio_p = P[3].rec.p99 > 0 ? P[4].rec.p99 / P[3].rec.p99 : 0;
    double ratio_pi = P[3].rec.p99 > 0 ? P[5].rec.p99 / P[3].rec.p99 : 0;
    bjson_num(&J, "p99_ratio_paced_retrain_over_rest", ratio_p);
    bjson_num(&J, "p99_ratio_paced_ingest_retrain_over_rest", ratio_pi);
    double ratio_i = P[0].rec.p99 > 0 ? P[1].rec.p99 / P[0].rec.p99 : 0;
    bjson_num(&J, "p99_ratio_retrain_over_rest", ratio);
    bjson_num(&J, "p99_ratio_ingest_over_rest", ratio_i);
    free(proto.cust);
    free(proto.item);

    /* ---- summary */
    printf("\n== against the issue (k = %d, %zu items)\n", FACTORS,
           model_items);
    printf("  %-58s %10s %-6s %-14s %s\n", "", "measured", "", "target",
           "met");
    row("fold-in, 20 distinct items, median", F[0].fold.med, "us",
        "<= 30 us", F[0].fold.med <= TARGET_FOLD20_US);
    row("fold-in, 20 distinct items, p99", F[0].fold.p99, "us", "-", -1);
    row("fold-in, 200 distinct items, median", F[1].fold.med, "us",
        "<= 100 us", F[1].fold.med <= TARGET_FOLD200_US);
    row("fold-in, 200 distinct items, p99", F[1].fold.p99, "us", "-", -1);
    row("fold-in, 2000 distinct items, median", F[2].fold.med, "us", "-",
        -1);
    row("fold-in, 2000 distinct items, p99", F[2].fold.p99, "us", "-", -1);
    row("eager ingest of 1 signal (20 distinct), median",
        F[0].ingest_eager.med, "us", "-", -1);
    row("session recommend, 5 signals, top-10, median", sf.med, "us",
        "<= 100 us", sf.med <= TARGET_SESSION_US);
    row("session recommend, 5 signals, top-10, p99", sf.p99, "us", "-", -1);
    row("recommend p99 at rest (2 readers)", P[0].rec.p99, "us", "-", -1);
    row("recommend p99 while ingesting", P[1].rec.p99, "us", "-", -1);
    row("recommend p99 while retraining (+ ingest)", P[2].rec.p99, "us",
        "-", -1);
    row("p99 retrain / p99 at rest", ratio, "x", "<= 2x",
        ratio <= TARGET_RETRAIN_P99_RATIO);
    row("p99 ingest / p99 at rest", ratio_i, "x", "-", -1);
    row("paced readers: p99 at rest", P[3].rec.p99, "us", "-", -1);
    row("paced readers: p99 while retraining", P[4].rec.p99, "us", "-", -1);
    row("paced: p99 retrain / p99 at rest", ratio_p, "x", "<= 2x",
        ratio_p <= TARGET_RETRAIN_P99_RATIO);
    row("paced: p99 ingest+retrain / p99 at rest", ratio_pi, "x", "-", -1);
    row("paced: trainings completed in the retrain phase", P[4].trainings,
        "", "-", -1);
    row("trainings completed during the retrain phase", P[2].trainings, "",
        "-", -1);
    row("CPU seconds spent training during the retrain phase",
        P[2].cpu_other, "s", "-", -1);
    row("achieved ingest rate, ingest phase", P[1].ingest_rate, "sig/s",
        ">= 10000", P[1].ingest_rate >= 0.98 * TARGET_INGEST_RATE);
    row("achieved ingest rate, retrain phase", P[2].ingest_rate, "sig/s",
        ">= 10000", P[2].ingest_rate >= 0.98 * TARGET_INGEST_RATE);
    for (int i = 0; i < 3; i++) {
        char w[96];
        snprintf(w, sizeof w, "session of S = %zu, lazy / eager (mean)",
                 SS[i]);
        row(w, L[i].session[1].mean > 0
                   ? L[i].session[0].mean / L[i].session[1].mean : 0,
            "x", "< 1: lazy", -1);
    }
    if (quick)
        printf("  (--quick: sizes are 10x smaller; the targets are for the "
               "full sizes)\n");
    printf("total bench time %.1f s\n", now_s() - t_all);
    bjson_num(&J, "quick", quick);
    bjson_num(&J, "seconds", now_s() - t_all);
    bjson_close(&J);
    cx_close(e);
    return 0;
}
