/* test_quality.c -- the blend, bootstrap intervals, cx_tune: plain ALS
 * is reproduced exactly, tuning never reads the test part, and in every
 * synthetic regime the tuned blend beats popularity, untuned ALS and each
 * of its components on a held-out time split. */
#include "testutil.h"
#include "internal.h" /* the model's item statistics (test_blend_candidates) */

#include <math.h>

static uint64_t bench_like_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const int blend_key[4] = {CX_OPT_BLEND_ALS, CX_OPT_BLEND_POPULAR,
                                 CX_OPT_BLEND_REPEAT, CX_OPT_BLEND_COBOUGHT};

static void set_blend(cx_engine *e, double a, double p, double r, double c)
{
    const double w[4] = {a, p, r, c};
    for (int j = 0; j < 4; j++)
        TU_OK(e, cx_set_option(e, blend_key[j], w[j]));
}

static cx_engine *regime_engine(int regime, size_t n, uint64_t seed,
                                synth_shop *shop)
{
    synth_config c;
    assert_int_equal(synth_config_regime(&c, regime, n), 0);
    c.seed = seed;
    assert_int_equal(synth_generate(&c, shop), 0);
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, shop_upsert_catalogue(e, shop));
    TU_OK(e, shop_ingest(e, shop, 0, shop->n_signals, 4096));
    return e;
}

/* ===================================================================== */
/* The blend                                                             */
/* ===================================================================== */

/* Weights 1, 0, 0, 0: cx_recommend ranks by the ALS score alone, as the
 * engine always did: every score is the dot product of the vectors, every
 * reason PERSONAL, and the batch call agrees bit for bit. */
static void test_plain_blend_is_als(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = regime_engine(SYNTH_REGIME_GROCERY, 20000, 1, &shop);
    set_blend(e, 1, 0, 0, 0);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
    TU_OK(e, cx_train(e, NULL, NULL));
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = 1;
    float x[16], y[16];
    for (uint32_t c = 0; c < 40; c++) {
        char id[24];
        synth_customer_id(c, id);
        const char *it[10], *bit[10];
        float sc[10], bsc[10];
        int rs[10], brs[10];
        size_t n, bn;
        TU_OK(e, cx_recommend(e, id, 10, &o, it, sc, rs, &n));
        const char *ids[1] = {id};
        TU_OK(e, cx_recommend_batch(e, 1, ids, 10, &o, bit, bsc, brs, &bn));
        if (cx_customer_vector(e, id, x, 16, NULL) != CX_OK)
            continue;
        assert_int_equal(n, bn);
        for (size_t j = 0; j < n; j++) {
            assert_int_equal(rs[j], CX_REASON_PERSONAL);
            /* the batch computes by BLAS: the same to rounding */
            assert_true(fabs(sc[j] - bsc[j]) < 1e-5);
            TU_OK(e, cx_item_vector(e, it[j], y, 16, NULL));
            assert_true(fabs(sc[j] - tu_dot(x, y, 16)) < 1e-5);
            if (j)
                assert_true(sc[j] <= sc[j - 1]);
        }
    }
    cx_close(e);
    synth_free(&shop);
}

/* The served blend ranks candidates (the top of one 4-bit pass by the ALS
 * and popularity terms, co-bought and bought items); opts.exact ranks
 * every item.  On a taste shop and
 * a grocery shop the two lists agree on at least 99% of their items, and
 * where they share an item its score is the same.  The statistics are
 * built by cx_train when the blend is on, not by a request. */
static void test_blend_candidates(void **state)
{
    (void)state;
    const int regimes[2] = {SYNTH_REGIME_TASTE, SYNTH_REGIME_GROCERY};
    for (int g = 0; g < 2; g++) {
        synth_shop shop;
        cx_engine *e = regime_engine(regimes[g], 60000, 3, &shop);
        TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
        set_blend(e, 1, 0, 0, 0);
        TU_OK(e, cx_train(e, NULL, NULL));
        assert_null(atomic_load(&e->model->hstats)); /* plain: not needed */
        set_blend(e, 1, 0.2, 1, 0.1);
        TU_OK(e, cx_train(e, NULL, NULL));
        assert_non_null(atomic_load(&e->model->hstats));
        cx_rec_opts x;
        cx_rec_opts_init(&x);
        x.exact = 1;
        size_t same = 0, total = 0;
        for (uint32_t c = 0; c < 300 && c < shop.n_customers; c++) {
            char id[24];
            synth_customer_id(c, id);
            const char *a[20], *b[20];
            float sa[20], sb[20];
            size_t na, nb;
            TU_OK(e, cx_recommend(e, id, 20, NULL, a, sa, NULL, &na));
            TU_OK(e, cx_recommend(e, id, 20, &x, b, sb, NULL, &nb));
            total += nb;
            for (size_t i = 0; i < na; i++)
                for (size_t j = 0; j < nb; j++)
                    if (a[i] == b[j]) {
                        same++;
                        assert_true(fabsf(sa[i] - sb[j]) < 1e-5f);
                    }
        }
        printf("blend candidates (%s): %zu of %zu items as with every "
               "item scored\n", g ? "grocery" : "taste", same, total);
        assert_true(total > 0);
        assert_true((double)same >= 0.99 * (double)total);
        cx_close(e);
        synth_free(&shop);
    }
}

/* The default blend on a grocery shop: a customer's staples come back
 * with the REPEAT reason, and nothing negative or durable that they
 * bought does. */
static void test_blend_brings_back_staples(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = regime_engine(SYNTH_REGIME_GROCERY, 20000, 1, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
    TU_OK(e, cx_train(e, NULL, NULL));
    size_t repeats = 0, lists = 0, rebought = 0;
    int seen_reason[12] = {0};
    uint8_t *bought = calloc(200 * shop.n_items, 1);
    for (size_t j = 0; j < shop.n_signals; j++)
        if (shop.signals[j].customer < 200 &&
            shop.signals[j].type == SYNTH_PURCHASE)
            bought[shop.signals[j].customer * shop.n_items +
                   shop.signals[j].item] = 1;
    for (uint32_t c = 0; c < shop.n_customers && c < 200; c++) {
        char id[24];
        synth_customer_id(c, id);
        const char *it[10];
        float sc[10];
        int rs[10];
        size_t n;
        TU_OK(e, cx_recommend(e, id, 10, NULL, it, sc, rs, &n));
        lists += n > 0;
        for (size_t j = 0; j < n; j++) {
            assert_true(rs[j] >= 1 && rs[j] <= 11);
            seen_reason[rs[j]]++;
            repeats += rs[j] == CX_REASON_REPEAT;
            rebought += bought[c * shop.n_items + atoi(it[j] + 1)];
            if (j)
                assert_true(sc[j] <= sc[j - 1]);
        }
        /* the batch call answers the same */
        const char *bit[10];
        size_t bn;
        const char *ids[1] = {id};
        TU_OK(e, cx_recommend_batch(e, 1, ids, 10, NULL, bit, NULL, NULL,
                                    &bn));
        assert_int_equal(n, bn);
        for (size_t j = 0; j < n; j++)
            assert_string_equal(it[j], bit[j]);
    }
    print_message("grocery, default blend: %zu lists, %zu items bought "
                  "before; reasons personal %d bestseller %d repeat %d "
                  "also-bought %d\n", lists, rebought,
                  seen_reason[CX_REASON_PERSONAL],
                  seen_reason[CX_REASON_BESTSELLER],
                  seen_reason[CX_REASON_REPEAT],
                  seen_reason[CX_REASON_ALSO_BOUGHT]);
    assert_true(rebought > lists);  /* staples come back */
    assert_true(repeats > 0);
    free(bought);
    /* A consumable that the customer returned never comes back. */
    char id[24];
    synth_customer_id(0, id);
    const char *it[10];
    size_t n;
    TU_OK(e, cx_recommend(e, id, 10, NULL, it, NULL, NULL, &n));
    assert_true(n > 0);
    const char *who[1] = {id}, *what[1] = {it[0]};
    int ty[1] = {CX_RETURN};
    TU_OK(e, cx_ingest(e, 1, who, what, ty, NULL, NULL, NULL));
    const char *it2[10];
    size_t n2;
    TU_OK(e, cx_recommend(e, id, 10, NULL, it2, NULL, NULL, &n2));
    for (size_t j = 0; j < n2; j++)
        assert_string_not_equal(it2[j], what[0]);
    cx_close(e);
    synth_free(&shop);
}

/* ===================================================================== */
/* Intervals                                                             */
/* ===================================================================== */

static void test_intervals(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = regime_engine(SYNTH_REGIME_TASTE, 30000, 1, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    double m[CX_METRIC_COUNT], b[CX_METRIC_COUNT], m2[CX_METRIC_COUNT];
    double ci[CX_CI_COUNT * CX_METRIC_COUNT];
    TU_OK(e, cx_evaluate_ci(e, &eo, m, b, ci));
    TU_OK(e, cx_evaluate(e, &eo, m2, NULL));
    /* the intervals change nothing else */
    assert_memory_equal(m, m2, sizeof m);
    for (int i = 0; i < CX_METRIC_COVERAGE; i++) {
        assert_true(ci[CX_CI_MODEL_LO * CX_METRIC_COUNT + i] <= m[i]);
        assert_true(ci[CX_CI_MODEL_HI * CX_METRIC_COUNT + i] >= m[i]);
        assert_true(ci[CX_CI_BASELINE_LO * CX_METRIC_COUNT + i] <= b[i]);
        assert_true(ci[CX_CI_BASELINE_HI * CX_METRIC_COUNT + i] >= b[i]);
        assert_true(ci[CX_CI_DIFF_LO * CX_METRIC_COUNT + i] <= m[i] - b[i]);
        assert_true(ci[CX_CI_DIFF_HI * CX_METRIC_COUNT + i] >= m[i] - b[i]);
    }
    double w = ci[CX_CI_MODEL_HI * CX_METRIC_COUNT + CX_METRIC_NDCG] -
               ci[CX_CI_MODEL_LO * CX_METRIC_COUNT + CX_METRIC_NDCG];
    print_message("taste, ndcg@10 %.4f [%.4f, %.4f], popularity %.4f\n",
                  m[CX_METRIC_NDCG],
                  ci[CX_CI_MODEL_LO * CX_METRIC_COUNT + CX_METRIC_NDCG],
                  ci[CX_CI_MODEL_HI * CX_METRIC_COUNT + CX_METRIC_NDCG],
                  b[CX_METRIC_NDCG]);
    assert_true(w > 0 && w < 0.1);
    /* a strong taste is a real gain over popularity */
    assert_true(ci[CX_CI_DIFF_LO * CX_METRIC_COUNT + CX_METRIC_NDCG] > 0);
    /* same seed, same intervals */
    double ci2[CX_CI_COUNT * CX_METRIC_COUNT];
    TU_OK(e, cx_evaluate_ci(e, &eo, m2, NULL, ci2));
    assert_memory_equal(ci, ci2, sizeof ci);
    cx_close(e);
    synth_free(&shop);
}

/* ===================================================================== */
/* Tuning never reads the test part                                      */
/* ===================================================================== */

/* Two engines share every signal cx_evaluate would train on; their test
 * parts (each customer's newest signals) differ: one random, one planted
 * on the shop's bestsellers, which rewards a popularity-heavy blend.  A
 * tuner that read the test part would see different scores: the trial
 * tables must be identical. */
static void test_tune_never_reads_test(void **state)
{
    (void)state;
    synth_config c;
    synth_config_regime(&c, SYNTH_REGIME_DEFAULT, 20000);
    synth_shop shop;
    assert_int_equal(synth_generate(&c, &shop), 0);
    size_t nc = shop.n_customers, ns = shop.n_signals;
    size_t *cnt = calloc(nc, sizeof *cnt);
    int64_t *last = calloc(nc, sizeof *last);
    size_t *pop = calloc(shop.n_items, sizeof *pop);
    for (size_t j = 0; j < ns; j++) {
        const synth_signal *g = &shop.signals[j];
        cnt[g->customer]++;
        last[g->customer] = g->ts > last[g->customer] ? g->ts
                                                      : last[g->customer];
        pop[g->item]++;
    }
    uint32_t top[10] = {0};
    for (int t = 0; t < 10; t++) {
        uint32_t best = 0;
        for (uint32_t i = 0; i < shop.n_items; i++)
            if (pop[i] > pop[best])
                best = i;
        top[t] = best;
        pop[best] = 0;
    }
    cx_engine *eng[2];
    uint64_t rs = 7;
    for (int v = 0; v < 2; v++) {
        TU_OK(NULL, cx_open(&eng[v], NULL, 0));
        cx_engine *e = eng[v];
        TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
        TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 5));
        TU_OK(e, shop_upsert_catalogue(e, &shop));
        TU_OK(e, shop_ingest(e, &shop, 0, ns, 4096));
        /* m planted signals per customer, so that the events split with
         * fraction 0.2 holds out exactly them. */
        for (uint32_t u = 0; u < nc; u++) {
            size_t n = cnt[u], m = 0;
            for (size_t t = 1; t <= n && !m; t++)
                if ((size_t)floor(0.2 * (double)(n + t) + 0.5) == t &&
                    n + t >= 3)
                    m = t;
            char id[24];
            synth_customer_id(u, id);
            for (size_t t = 0; t < m; t++) {
                uint32_t item = v ? top[(u + t) % 10]
                                  : (uint32_t)(bench_like_rand(&rs) %
                                               shop.n_items);
                const char *who[1] = {id}, *what[1] = {shop.items[item].id};
                int ty[1] = {CX_PURCHASE};
                int64_t ts[1] = {last[u] + 1000 + (int64_t)t};
                TU_OK(e, cx_ingest(e, 1, who, what, ty, NULL, ts, NULL));
            }
        }
    }
    /* The planted part does reward popularity. */
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    eo.split = CX_SPLIT_EVENTS;
    double m0[CX_METRIC_COUNT], b0[CX_METRIC_COUNT], m1[CX_METRIC_COUNT],
        b1[CX_METRIC_COUNT];
    TU_OK(eng[0], cx_evaluate(eng[0], &eo, m0, b0));
    TU_OK(eng[1], cx_evaluate(eng[1], &eo, m1, b1));
    print_message("popularity ndcg@10 on the test part: random %.4f, "
                  "planted %.4f\n", b0[CX_METRIC_NDCG], b1[CX_METRIC_NDCG]);
    assert_true(b1[CX_METRIC_NDCG] > b0[CX_METRIC_NDCG] + 0.2);
    cx_tune_opts to;
    cx_tune_opts_init(&to);
    to.seconds = 0;
    to.trials = 20;
    to.apply = 0;
    cx_tune_trial t[2][24];
    size_t nt[2];
    for (int v = 0; v < 2; v++)
        TU_OK(eng[v], cx_tune(eng[v], &to, t[v], 24, &nt[v]));
    assert_int_equal(nt[0], 20);
    assert_int_equal(nt[0], nt[1]);
    for (size_t j = 0; j < nt[0]; j++) {
        t[0][j].seconds = t[1][j].seconds = 0;
        assert_memory_equal(&t[0][j], &t[1][j], sizeof t[0][j]);
    }
    for (int v = 0; v < 2; v++)
        cx_close(eng[v]);
    free(cnt), free(last), free(pop);
    synth_free(&shop);
}

/* ===================================================================== */
/* Regression guard per regime                                           */
/* ===================================================================== */

static double ndcg_of(cx_engine *e, int untuned)
{
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    eo.split = CX_SPLIT_EVENTS;
    eo.untuned = untuned;
    double m[CX_METRIC_COUNT];
    TU_OK(e, cx_evaluate(e, &eo, m, NULL));
    return m[CX_METRIC_NDCG];
}

static void guard(int regime)
{
    synth_shop shop;
    cx_engine *e = regime_engine(regime, 30000, 1, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 8));
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    eo.split = CX_SPLIT_EVENTS;
    double m[CX_METRIC_COUNT], pop[CX_METRIC_COUNT];
    set_blend(e, 1, 0, 0, 0);
    TU_OK(e, cx_evaluate(e, &eo, m, pop));
    double als = m[CX_METRIC_NDCG], popular = pop[CX_METRIC_NDCG];
    set_blend(e, 1, 0.2, 1, 0.1);
    double dflt = ndcg_of(e, 0);
    cx_tune_opts to;
    cx_tune_opts_init(&to);
    to.seconds = 0;
    to.trials = 40;
    to.max_customers = 2000;
    cx_tune_trial t[64];
    size_t nt;
    TU_OK(e, cx_tune(e, &to, t, 64, &nt));
    double tuned = ndcg_of(e, 0);
    double w[4];
    for (int j = 0; j < 4; j++)
        TU_OK(e, cx_get_option(e, blend_key[j], &w[j]));
    double alone[4];
    for (int j = 0; j < 4; j++) {
        set_blend(e, j == 0, j == 1, j == 2, j == 3);
        alone[j] = ndcg_of(e, 0);
    }
    print_message("%-10s ndcg@10: popularity %.4f, untuned ALS %.4f, "
                  "default blend %.4f, tuned %.4f (%zu trials; blend %.3g "
                  "%.3g %.3g %.3g); alone: ALS %.4f popular %.4f repeat "
                  "%.4f co-bought %.4f\n", synth_regime_name(regime), popular,
                  als, dflt, tuned, nt, w[0], w[1], w[2], w[3], alone[0],
                  alone[1], alone[2], alone[3]);
    assert_true(tuned >= popular);
    assert_true(tuned >= als);
    for (int j = 0; j < 4; j++)
        assert_true(tuned >= alone[j]);
    cx_close(e);
    synth_free(&shop);
}

static void test_guard_grocery(void **s) { (void)s; guard(SYNTH_REGIME_GROCERY); }
static void test_guard_sparse(void **s) { (void)s; guard(SYNTH_REGIME_SPARSE); }
static void test_guard_taste(void **s) { (void)s; guard(SYNTH_REGIME_TASTE); }
static void test_guard_bestseller(void **s) { (void)s; guard(SYNTH_REGIME_BESTSELLER); }

/* ===================================================================== */
/* cx_tune applies what it chose                                         */
/* ===================================================================== */

static void test_tune_applies(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = regime_engine(SYNTH_REGIME_GROCERY, 15000, 3, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 5));
    cx_tune_opts to;
    cx_tune_opts_init(&to);
    to.seconds = 0;
    to.trials = 12;
    cx_tune_trial t[16];
    size_t nt;
    TU_OK(e, cx_tune(e, &to, t, 16, &nt));
    assert_int_equal(nt, 12);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 1);
    size_t nbest = 0, b = 0;
    for (size_t j = 0; j < nt; j++) {
        nbest += t[j].best;
        if (t[j].best)
            b = j;
        assert_true(t[j].ndcg <= t[b].ndcg || !t[b].best || j < b ||
                    t[j].ndcg <= t[b].ndcg);
    }
    assert_int_equal(nbest, 1);
    for (size_t j = 0; j < nt; j++)
        assert_true(t[j].ndcg <= t[b].ndcg);
    double v;
    TU_OK(e, cx_get_option(e, CX_OPT_FACTORS, &v));
    assert_true(v == t[b].factors);
    TU_OK(e, cx_get_option(e, CX_OPT_BLEND_REPEAT, &v));
    assert_true(fabs(v - t[b].blend_repeat) < 1e-6);
    /* max_trials smaller than the run: the count is still the run's */
    TU_OK(e, cx_set_option(e, CX_OPT_BLEND_REPEAT, 1));
    to.apply = 0;
    to.trials = 5;
    TU_OK(e, cx_tune(e, &to, t, 2, &nt));
    assert_int_equal(nt, 5);
    TU_OK(e, cx_get_option(e, CX_OPT_BLEND_REPEAT, &v));
    assert_true(v == 1); /* apply = 0 leaves the options */
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 1);
    cx_close(e);
    synth_free(&shop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_blend_is_als),
        cmocka_unit_test(test_blend_brings_back_staples),
        cmocka_unit_test(test_blend_candidates),
        cmocka_unit_test(test_intervals),
        cmocka_unit_test(test_tune_never_reads_test),
        cmocka_unit_test(test_tune_applies),
        cmocka_unit_test(test_guard_grocery),
        cmocka_unit_test(test_guard_sparse),
        cmocka_unit_test(test_guard_taste),
        cmocka_unit_test(test_guard_bestseller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
