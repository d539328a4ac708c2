/* test_threads.c -- one engine shared by readers and writers at once:
 * 4 threads rank (cx_recommend, cx_similar_items, cx_layout,
 * cx_recommend_batch) while one ingests batches and another trains twice
 * on 2 threads.  Runs
 * under ThreadSanitizer too (make check-tsan), so the loops are bounded
 * and the shop is small.
 *
 * cmocka's asserts are not thread-safe: the threads count problems and
 * the main thread asserts on the counts. */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#define READERS 4
#define MIN_ROUNDS 40     /* every reader does at least this much */
#define MAX_ROUNDS 20000  /* and stops here if the writers never finish */
#define K 8
#define BATCH_M 6

typedef struct shared {
    cx_engine *e;
    synth_shop shop;
    size_t first;              /* signals ingested before the threads */
    atomic_size_t ingested;    /* rows the writer got accepted */
    atomic_int writer_done, trainer_done;
    int train_rc[2];
    int ingest_rc;
} shared;

typedef struct reader {
    shared *s;
    int id;
    size_t calls, bad_status, bad_result, nonempty, mid_ingest, rounds;
    int last_rc;
    char last_call[32];
} reader;

static int valid_reason(int r)
{
    return r >= CX_REASON_PERSONAL && r <= CX_REASON_CATEGORY;
}

/* One result list is well formed: n <= k, ids non-NULL, known, distinct;
 * scores finite and best first; reasons valid. */
static int well_formed(const char *const *items, const float *scores,
                       const int *reasons, size_t n, size_t k)
{
    if (n > k)
        return 0;
    for (size_t j = 0; j < n; j++) {
        if (!items[j] || items[j][0] != 'i' || !valid_reason(reasons[j]) ||
            !isfinite(scores[j]))
            return 0;
        if (j && scores[j] > scores[j - 1])
            return 0;
        for (size_t t = 0; t < j; t++)
            if (strcmp(items[t], items[j]) == 0)
                return 0;
    }
    return 1;
}

static void status(reader *r, int rc, const char *call)
{
    r->calls++;
    if (rc != CX_OK) {
        r->bad_status++;
        r->last_rc = rc;
        snprintf(r->last_call, sizeof r->last_call, "%s", call);
    }
}

static void *read_loop(void *arg)
{
    reader *r = arg;
    shared *s = r->s;
    uint64_t st = 0x9E3779B97F4A7C15ull * (uint64_t)(r->id + 1);
    /* Read until both writers are done: with a readers-first lock they
     * would wait until MAX_ROUNDS. */
    int round = 0;
    for (; round < MAX_ROUNDS && (round < MIN_ROUNDS ||
                                  !atomic_load(&s->writer_done) ||
                                  !atomic_load(&s->trainer_done));
         round++) {
        const char *items[BATCH_M * K];
        float scores[BATCH_M * K];
        int reasons[BATCH_M * K];
        size_t n = 0, counts[BATCH_M];
        char ids[BATCH_M][24];
        const char *custs[BATCH_M];
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t c = (uint32_t)((st >> 33) % (s->shop.n_customers + 20));
        /* Some customers beyond the shop: unknown to the engine. */
        synth_customer_id(c, ids[0]);
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = round & 1;
        int rc = cx_recommend(s->e, ids[0], K, &o, items, scores, reasons,
                              &n);
        status(r, rc, "cx_recommend");
        if (rc == CX_OK) {
            r->bad_result += !well_formed(items, scores, reasons, n, K);
            r->nonempty += n > 0;
        }
        const char *item = s->shop.items[(st >> 17) % s->shop.n_items].id;
        rc = cx_similar_items(s->e, item, K, NULL, items, scores, reasons,
                              &n);
        status(r, rc, "cx_similar_items");
        if (rc == CX_OK) {
            r->bad_result += !well_formed(items, scores, reasons, n, K);
            for (size_t j = 0; j < n; j++)
                r->bad_result += strcmp(items[j], item) == 0;
        }
        /* A page: neighbour lists and the basket index are made and
         * remade (the writer adds signals) by whichever reader first
         * needs them. */
        {
            cx_layout_row rows[4];
            cx_layout_item li[4 * K];
            size_t nr = 0;
            cx_layout_spec sp;
            cx_layout_spec_init(&sp);
            sp.max_rows = 4;
            sp.items_per_row = K;
            sp.min_row = 1;
            rc = cx_layout(s->e, ids[0], &sp, rows, 4, li, 4 * K, &nr);
            status(r, rc, "cx_layout");
            for (size_t j = 0; rc == CX_OK && j < nr; j++)
                r->bad_result += rows[j].count == 0 ||
                                 rows[j].first + rows[j].count > 4 * K;
        }
        for (int j = 0; j < BATCH_M; j++) {
            synth_customer_id((uint32_t)((c + 7 * j) %
                                         (s->shop.n_customers + 20)),
                              ids[j]);
            custs[j] = ids[j];
        }
        rc = cx_recommend_batch(s->e, BATCH_M, custs, K, NULL, items, scores,
                                reasons, counts);
        status(r, rc, "cx_recommend_batch");
        if (rc == CX_OK)
            for (int j = 0; j < BATCH_M; j++)
                r->bad_result += !well_formed(items + j * K,
                                              scores + j * K,
                                              reasons + j * K, counts[j], K);
        int64_t v;
        rc = cx_stat(s->e, CX_STAT_SIGNALS, &v);
        status(r, rc, "cx_stat");
        if (rc == CX_OK) {
            r->bad_result += v < (int64_t)s->first ||
                             v > (int64_t)s->shop.n_signals;
            r->mid_ingest += v > (int64_t)s->first &&
                             v < (int64_t)s->shop.n_signals;
        }
        const float *f;
        size_t rows, cols;
        rc = cx_factors(s->e, 1, &f, &rows, &cols);
        status(r, rc, "cx_factors");
        if (rc == CX_OK)
            r->bad_result += cols != 16 || rows == 0;
    }
    r->rounds = (size_t)round;
    return NULL;
}

static void *write_loop(void *arg)
{
    shared *s = arg;
    size_t batch = 150;
    int rc = CX_OK;
    for (size_t at = s->first; at < s->shop.n_signals && rc == CX_OK;
         at += batch) {
        size_t to = at + batch < s->shop.n_signals ? at + batch
                                                   : s->shop.n_signals;
        rc = tu_ingest_signals(s->e, &s->shop, at, to, batch);
        if (rc == CX_OK)
            atomic_fetch_add(&s->ingested, to - at);
    }
    s->ingest_rc = rc;
    atomic_store(&s->writer_done, 1);
    return NULL;
}

static void *train_loop(void *arg)
{
    shared *s = arg;
    s->train_rc[0] = cx_train(s->e, NULL, NULL);
    /* The second run uses Cholesky: OpenBLAS inside the workers. */
    int rc = cx_set_option(s->e, CX_OPT_SOLVER, CX_SOLVER_CHOLESKY);
    s->train_rc[1] = rc ? rc : cx_train(s->e, NULL, NULL);
    atomic_store(&s->trainer_done, 1);
    return NULL;
}

static void test_readers_and_writers(void **state)
{
    (void)state;
    shared *s = calloc(1, sizeof *s);
    synth_config c;
    synth_config_default(&c, 6000);
    assert_int_equal(synth_generate(&c, &s->shop), 0);
    assert_int_equal(cx_open(&s->e, NULL, 0), CX_OK);
    tu_plain(s->e);
    cx_engine *e = s->e;
    TU_OK(e, tu_upsert_catalogue(e, &s->shop));
    s->first = s->shop.n_signals / 2;
    TU_OK(e, tu_ingest_signals(e, &s->shop, 0, s->first, 1000));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 3));
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 2));
    TU_OK(e, cx_train(e, NULL, NULL));

    pthread_t rt[READERS], wt, tt;
    reader rd[READERS];
    for (int j = 0; j < READERS; j++) {
        rd[j] = (reader){.s = s, .id = j};
        assert_int_equal(pthread_create(&rt[j], NULL, read_loop, &rd[j]), 0);
    }
    assert_int_equal(pthread_create(&wt, NULL, write_loop, s), 0);
    assert_int_equal(pthread_create(&tt, NULL, train_loop, s), 0);
    for (int j = 0; j < READERS; j++)
        assert_int_equal(pthread_join(rt[j], NULL), 0);
    assert_int_equal(pthread_join(wt, NULL), 0);
    assert_int_equal(pthread_join(tt, NULL), 0);

    size_t calls = 0, nonempty = 0, mid = 0, rounds = 0;
    for (int j = 0; j < READERS; j++) {
        if (rd[j].bad_status)
            print_error("reader %d: %zu failed calls, last %s -> %d\n", j,
                        rd[j].bad_status, rd[j].last_call, rd[j].last_rc);
        assert_int_equal(rd[j].bad_status, 0);
        assert_int_equal(rd[j].bad_result, 0);
        calls += rd[j].calls;
        nonempty += rd[j].nonempty;
        mid += rd[j].mid_ingest;
        rounds += rd[j].rounds;
        /* The writers finished while this reader was still reading. */
        assert_true(rd[j].rounds < MAX_ROUNDS);
    }
    /* How much the threads overlapped (informative: scheduling decides). */
    print_message("%zu reader calls, %zu of their cx_stat saw a partial "
                  "ingest\n", calls, mid);
    assert_int_equal(calls, rounds * 6);
    assert_true(nonempty > rounds / 2);
    TU_OK(e, s->ingest_rc);
    TU_OK(e, s->train_rc[0]);
    TU_OK(e, s->train_rc[1]);
    assert_int_equal(atomic_load(&s->ingested), s->shop.n_signals - s->first);
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), s->shop.n_signals);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 3);
    /* Training is reproducible under any interleaving: a retrain on
     * everything on one thread gives the factors of a fresh engine. */
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_train(e, NULL, NULL));
    cx_engine *g;
    TU_OK(NULL, cx_open(&g, NULL, 0));
    tu_plain(g);
    TU_OK(g, tu_upsert_catalogue(g, &s->shop));
    TU_OK(g, tu_ingest_signals(g, &s->shop, 0, s->shop.n_signals, 1000));
    TU_OK(g, cx_set_option(g, CX_OPT_FACTORS, 16));
    TU_OK(g, cx_set_option(g, CX_OPT_ITERATIONS, 3));
    TU_OK(g, cx_set_option(g, CX_OPT_SOLVER, CX_SOLVER_CHOLESKY));
    TU_OK(g, cx_set_option(g, CX_OPT_THREADS, 2));
    TU_OK(g, cx_train(g, NULL, NULL));
    for (int which = 0; which <= 1; which++) {
        const float *a, *b;
        size_t ra, rb, ka, kb;
        TU_OK(e, cx_factors(e, which, &a, &ra, &ka));
        TU_OK(g, cx_factors(g, which, &b, &rb, &kb));
        assert_int_equal(ra, rb);
        assert_memory_equal(a, b, ra * ka * sizeof *a);
    }
    cx_close(g);
    cx_close(e);
    synth_free(&s->shop);
    free(s);
}

/* Error messages are per thread: a failure in one thread does not show
 * in another's cx_errmsg. */
typedef struct errmsg_arg {
    cx_engine *e;
    int ok;
} errmsg_arg;

static void *fail_in_thread(void *arg)
{
    errmsg_arg *a = arg;
    a->ok = cx_errmsg(a->e)[0] == 0 &&
            cx_item_remove(a->e, "thread-only") == CX_ENOTFOUND &&
            strstr(cx_errmsg(a->e), "thread-only") != NULL;
    return NULL;
}

static void test_errmsg_per_thread(void **state)
{
    (void)state;
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    tu_plain(e);
    assert_int_equal(cx_item_remove(e, "main-only"), CX_ENOTFOUND);
    errmsg_arg a = {e, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(a.ok);
    assert_non_null(strstr(cx_errmsg(e), "main-only"));
    cx_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_and_writers),
        cmocka_unit_test(test_errmsg_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
