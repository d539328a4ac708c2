/* test_explain.c -- explanations (the exact ALS decomposition) and
 * diversity (per-category cap, MMR) in the ranking calls. */
#include "testutil.h"

#define K 10

typedef struct fixture {
    cx_engine *e;
    synth_shop shop;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    synth_config c;
    synth_config_default(&c, 20000);
    c.n_items = 400;
    c.n_categories = 16;
    f->e = tu_shop_engine_cfg(&c, &f->shop);
    TU_OK(f->e, cx_set_option(f->e, CX_OPT_THREADS, 1));
    TU_OK(f->e, cx_set_option(f->e, CX_OPT_FACTORS, 16));
    TU_OK(f->e, cx_train(f->e, NULL, NULL));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cx_close(f->e);
    synth_free(&f->shop);
    free(f);
    return 0;
}

static size_t recommend(cx_engine *e, const char *who, size_t k,
                        const cx_rec_opts *o, const char **items,
                        float *scores)
{
    int reasons[64];
    size_t n = 0;
    TU_OK(e, cx_recommend(e, who, k, o, items, scores, reasons, &n));
    return n;
}

/* A customer new since training, folded in from a few purchases: their
 * vector is the exact solve, so the explanation's score must equal the
 * served score x'y. */
static void test_explain_sums_to_the_score(void **state)
{
    fixture *f = *state;
    cx_engine *e = f->e;
    const char *items[5];
    for (int j = 0; j < 5; j++)
        items[j] = f->shop.items[3 * j + 1].id;
    const char *cust[5] = {"exp-1", "exp-1", "exp-1", "exp-1", "exp-1"};
    int types[5] = {CX_PURCHASE, CX_VIEW, CX_ADD_TO_CART, CX_VIEW,
                    CX_DISLIKE};
    TU_OK(e, cx_ingest(e, 5, cust, items, types, NULL, NULL, NULL));
    const char *rec[K];
    float sc[K];
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = 1;
    size_t n = recommend(e, "exp-1", K, &o, rec, sc);
    assert_true(n == K);
    float x[16], y[16];
    int src;
    TU_OK(e, cx_customer_vector(e, "exp-1", x, 16, &src));
    assert_int_equal(src, 1);
    for (size_t r = 0; r < n; r++) {
        const char *why[8];
        float contrib[8], score;
        size_t cnt;
        TU_OK(e, cx_explain(e, "exp-1", rec[r], 8, why, contrib, &cnt,
                            &score));
        TU_OK(e, cx_item_vector(e, rec[r], y, 16, NULL));
        double xy = tu_dot(x, y, 16);
        assert_true(fabs(score - xy) <= 1e-4 * fmax(1, fabs(xy)));
        assert_true(fabs(score - sc[r]) <= 1e-4 * fmax(1, fabs(sc[r])));
        /* Four positive pairs (the dislike is not one): all listed, they
         * sum to the score, largest first, and are the customer's. */
        assert_int_equal(cnt, 4);
        double sum = 0;
        for (size_t j = 0; j < cnt; j++) {
            sum += contrib[j];
            if (j)
                assert_true(contrib[j] <= contrib[j - 1]);
            int mine = 0;
            for (int t = 0; t < 4; t++)
                mine |= strcmp(why[j], items[t]) == 0;
            assert_true(mine);
        }
        assert_true(fabs(sum - score) <= 1e-4 * fmax(1, fabs(score)));
    }
    /* n smaller than the pairs: the largest ones, the same score. */
    const char *why1[1];
    float c1[1], s1, all_c[8], s_all;
    const char *why_all[8];
    size_t cnt1, cnt_all;
    TU_OK(e, cx_explain(e, "exp-1", rec[0], 1, why1, c1, &cnt1, &s1));
    TU_OK(e, cx_explain(e, "exp-1", rec[0], 8, why_all, all_c, &cnt_all,
                        &s_all));
    assert_int_equal(cnt1, 1);
    assert_string_equal(why1[0], why_all[0]);
    assert_true(s1 == s_all);
}

/* A trained customer: the decomposition names their own items and sums
 * to its own score, which the few-step CG vector approximates. */
static void test_explain_trained_customer(void **state)
{
    fixture *f = *state;
    cx_engine *e = f->e;
    const char *rec[K];
    float sc[K];
    size_t n = recommend(e, "c0000003", K, NULL, rec, sc);
    assert_true(n > 0);
    const char *why[64];
    float contrib[64], score;
    size_t cnt;
    TU_OK(e, cx_explain(e, "c0000003", rec[0], 64, why, contrib, &cnt,
                        &score));
    assert_true(cnt > 0);
    double sum = 0;
    for (size_t j = 0; j < cnt; j++) {
        sum += contrib[j];
        int seen = 0;
        for (size_t s = 0; s < f->shop.n_signals && !seen; s++) {
            const synth_signal *g = &f->shop.signals[s];
            seen = g->customer == 3 &&
                   strcmp(f->shop.items[g->item].id, why[j]) == 0;
        }
        assert_true(seen);
    }
    if (cnt < 64)
        assert_true(fabs(sum - score) <= 1e-4 * fmax(1, fabs(score)));
    assert_true(fabs(score - sc[0]) <= 0.05 * fmax(0.1, fabs(sc[0])));
}

static void test_explain_misuse(void **state)
{
    fixture *f = *state;
    cx_engine *e = f->e;
    const char *why[2];
    float c[2], s;
    size_t n;
    const char *item = f->shop.items[0].id;
    assert_int_equal(cx_explain(NULL, "c0000001", item, 2, why, c, &n, &s),
                     CX_EINVAL);
    assert_int_equal(cx_explain(e, "c0000001", item, 2, NULL, c, &n, &s),
                     CX_EINVAL);
    assert_int_equal(cx_explain(e, "c0000001", item, 2, why, c, NULL, &s),
                     CX_EINVAL);
    assert_int_equal(cx_explain(e, "nobody", item, 2, why, c, &n, &s),
                     CX_ENOTFOUND);
    assert_int_equal(cx_explain(e, "c0000001", "no-item", 2, why, c, &n, &s),
                     CX_ENOTFOUND);
    assert_true(strlen(cx_errmsg(e)) > 0);
    /* Only negative signals: nothing explains a score. */
    const char *cu[] = {"grumpy"}, *it[] = {item};
    int ty[] = {CX_DISLIKE};
    TU_OK(e, cx_ingest(e, 1, cu, it, ty, NULL, NULL, NULL));
    assert_int_equal(cx_explain(e, "grumpy", f->shop.items[1].id, 2, why, c,
                                &n, &s), CX_ENOTFOUND);
    cx_engine *fresh = tu_engine(1, cu, it, ty, NULL, NULL);
    assert_int_equal(cx_explain(fresh, "grumpy", item, 2, why, c, &n, &s),
                     CX_ENOTTRAINED);
    cx_close(fresh);
}

/* ---------------------------------------------------------------- */

static uint32_t category_of(cx_engine *e, const char *item)
{
    const char *cat;
    TU_OK(e, cx_item_get(e, item, &cat, NULL, NULL, NULL));
    return cx__hash_str(cat);
}

static void test_category_cap(void **state)
{
    fixture *f = *state;
    cx_engine *e = f->e;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.max_per_category = 2;
    const char *rec[K], *plain[K];
    float sc[K], psc[K];
    for (int c = 0; c < 20; c++) {
        char who[24];
        synth_customer_id((uint32_t)c, who);
        size_t n = recommend(e, who, K, &o, rec, sc);
        assert_int_equal(n, K);
        for (size_t a = 0; a < n; a++) {
            int same = 0;
            for (size_t b = 0; b < n; b++)
                same += category_of(e, rec[a]) == category_of(e, rec[b]);
            assert_true(same <= 2);
            if (a)
                assert_true(sc[a] <= sc[a - 1]); /* a cap keeps order */
        }
        /* The first pick is the most relevant item. */
        recommend(e, who, K, NULL, plain, psc);
        assert_string_equal(rec[0], plain[0]);
    }
    /* Lists without a customer are capped too. */
    int reasons[K];
    size_t n;
    TU_OK(e, cx_popular(e, K, &o, rec, sc, reasons, &n));
    for (size_t a = 0; a < n; a++) {
        int same = 0;
        for (size_t b = 0; b < n; b++)
            same += category_of(e, rec[a]) == category_of(e, rec[b]);
        assert_true(same <= 2);
    }
}

/* Mean pairwise cosine of a list's item vectors. */
static double intra_similarity(cx_engine *e, const char **items, size_t n)
{
    float v[K][16];
    double s = 0;
    int pairs = 0;
    for (size_t j = 0; j < n; j++)
        TU_OK(e, cx_item_vector(e, items[j], v[j], 16, NULL));
    for (size_t a = 0; a < n; a++)
        for (size_t b = a + 1; b < n; b++) {
            double d = tu_dot(v[a], v[b], 16);
            d /= sqrt(tu_dot(v[a], v[a], 16) * tu_dot(v[b], v[b], 16));
            s += d;
            pairs++;
        }
    return pairs ? s / pairs : 0;
}

static void test_mmr_diversifies(void **state)
{
    fixture *f = *state;
    cx_engine *e = f->e;
    cx_rec_opts o0, o1;
    cx_rec_opts_init(&o0);
    cx_rec_opts_init(&o1);
    o0.exact = o1.exact = 1;
    o1.diversity = 0.5;
    double s0 = 0, s1 = 0;
    for (int c = 0; c < 30; c++) {
        char who[24];
        synth_customer_id((uint32_t)c, who);
        const char *r0[K], *r1[K], *rd[K];
        float c0[K], c1[K], cd[K];
        size_t n0 = recommend(e, who, K, &o0, r0, c0);
        size_t n1 = recommend(e, who, K, &o1, r1, c1);
        assert_int_equal(n0, n1);
        assert_string_equal(r0[0], r1[0]);
        /* Reported scores stay the relevance scores. */
        for (size_t j = 0; j < n1; j++)
            assert_true(c1[j] <= c0[0]);
        s0 += intra_similarity(e, r0, n0);
        s1 += intra_similarity(e, r1, n1);
        /* diversity = 0 is the plain list, exactly. */
        cx_rec_opts z = o0;
        z.diversity = 0;
        recommend(e, who, K, &z, rd, cd);
        for (size_t j = 0; j < n0; j++)
            assert_string_equal(rd[j], r0[j]);
    }
    print_message("mean intra-list cosine: %.3f plain, %.3f with MMR 0.5\n",
                  s0 / 30, s1 / 30);
    assert_true(s1 < s0 - 0.02);
    /* Batch applies the same rules as single calls. */
    const char *who[3] = {"c0000001", "c0000002", "c0000003"};
    const char *bi[3 * K];
    float bs[3 * K];
    int br[3 * K];
    size_t counts[3];
    TU_OK(e, cx_recommend_batch(e, 3, who, K, &o1, bi, bs, br, counts));
    for (int u = 0; u < 3; u++) {
        const char *r1[K];
        float c1[K];
        size_t n1 = recommend(e, who[u], K, &o1, r1, c1);
        assert_int_equal(counts[u], n1);
        for (size_t j = 0; j < n1; j++)
            assert_string_equal(bi[u * K + j], r1[j]);
    }
}

static void test_options_struct_sizes(void **state)
{
    fixture *f = *state;
    cx_engine *e = f->e;
    /* A caller compiled before the diversity fields: its size ends at
     * `exact`, and the fields behind it must not be read. */
    struct {
        cx_rec_opts o;
        char poison[64];
    } old;
    memset(&old, 0x7f, sizeof old);
    cx_rec_opts_init(&old.o);
    old.o.max_per_category = 1;     /* garbage beyond the old size */
    old.o.diversity = 1e9;
    old.o.size = offsetof(cx_rec_opts, exact) + sizeof(int);
    const char *a[K], *b[K];
    float sa[K], sb[K];
    size_t na = recommend(e, "c0000004", K, &old.o, a, sa);
    size_t nb = recommend(e, "c0000004", K, NULL, b, sb);
    assert_int_equal(na, nb);
    for (size_t j = 0; j < na; j++)
        assert_string_equal(a[j], b[j]);
    cx_rec_opts bad;
    cx_rec_opts_init(&bad);
    bad.diversity = -1;
    int reasons[K];
    size_t n;
    assert_int_equal(cx_recommend(e, "c0000004", K, &bad, a, sa, reasons, &n),
                     CX_EINVAL);
    bad.diversity = NAN;
    assert_int_equal(cx_recommend(e, "c0000004", K, &bad, a, sa, reasons, &n),
                     CX_EINVAL);
}

/* cx_evaluate replays experiment variants: each on its own customers,
 * with its rules. */
static void test_eval_replay(void **state)
{
    fixture *f = *state;
    cx_engine *e = f->e;
    const char *names[] = {"a", "b", "c"};
    double shares[] = {1, 1, 2};
    TU_OK(e, cx_experiment_define(e, "replay", 3, names, shares));
    cx_eval_opts o;
    cx_eval_opts_init(&o);
    double all[CX_METRIC_COUNT], part[CX_METRIC_COUNT], base[CX_METRIC_COUNT];
    TU_OK(e, cx_evaluate(e, &o, all, base));
    double users = 0;
    for (int v = 0; v < 3; v++) {
        cx_eval_opts ov = o;
        ov.experiment = "replay";
        ov.variant = names[v];
        TU_OK(e, cx_evaluate(e, &ov, part, NULL));
        assert_true(part[CX_METRIC_USERS] > 0);
        users += part[CX_METRIC_USERS];
    }
    assert_true(users == all[CX_METRIC_USERS]);
    int64_t exposures;
    TU_OK(e, cx_exposures(e, "replay", "a", &exposures));
    assert_int_equal(exposures, 0); /* a replay counts none */
    /* Rules: diversity 0 is the plain evaluation; a category cap of 1
     * changes the lists (and so the metrics). */
    cx_eval_opts od = o;
    od.diversity = 0;
    TU_OK(e, cx_evaluate(e, &od, part, NULL));
    assert_memory_equal(part, all, sizeof all);
    od.max_per_category = 1;
    TU_OK(e, cx_evaluate(e, &od, part, NULL));
    assert_true(part[CX_METRIC_NDCG] != all[CX_METRIC_NDCG]);
    /* Misuse; an older, shorter struct is accepted with the defaults. */
    cx_eval_opts bad = o;
    bad.experiment = "nope";
    bad.variant = "a";
    assert_int_equal(cx_evaluate(e, &bad, part, NULL), CX_ENOTFOUND);
    bad.experiment = "replay";
    bad.variant = "zzz";
    assert_int_equal(cx_evaluate(e, &bad, part, NULL), CX_ENOTFOUND);
    bad.variant = NULL;
    assert_int_equal(cx_evaluate(e, &bad, part, NULL), CX_EINVAL);
    bad = o;
    bad.diversity = -1;
    assert_int_equal(cx_evaluate(e, &bad, part, NULL), CX_EINVAL);
    cx_eval_opts old = o;
    old.size = offsetof(cx_eval_opts, relevant) + sizeof old.relevant;
    old.max_per_category = 1; /* beyond the old size: must be ignored */
    TU_OK(e, cx_evaluate(e, &old, part, NULL));
    assert_memory_equal(part, all, sizeof all);
    /* A variant's overrides apply to its replay: options (here a signal
     * weight) to its training, k and the rules to its lists.  What counts
     * as relevant stays the engine's own judgement, so variants compare
     * on the same held-out truth; other variants are untouched. */
    double plain[CX_METRIC_COUNT], w0[CX_METRIC_COUNT], same[CX_METRIC_COUNT];
    double c0[CX_METRIC_COUNT];
    cx_eval_opts oa = o, oc = o;
    oa.experiment = oc.experiment = "replay";
    oa.variant = "a";
    oc.variant = "c";
    TU_OK(e, cx_evaluate(e, &oa, plain, NULL));
    TU_OK(e, cx_evaluate(e, &oc, c0, NULL));
    TU_OK(e, cx_variant_set(e, "replay", "a", CX_OPT_WEIGHT + CX_VIEW, 0));
    TU_OK(e, cx_evaluate(e, &oa, w0, NULL));
    assert_true(w0[CX_METRIC_NDCG] != plain[CX_METRIC_NDCG]);
    assert_true(w0[CX_METRIC_USERS] == plain[CX_METRIC_USERS]);
    TU_OK(e, cx_evaluate(e, &oa, same, NULL));
    assert_memory_equal(same, w0, sizeof w0);
    TU_OK(e, cx_evaluate(e, &oc, same, NULL));
    assert_memory_equal(same, c0, sizeof c0);
    cx_eval_opts ob = o;
    ob.experiment = "replay";
    ob.variant = "b";
    ob.k = 5;
    TU_OK(e, cx_evaluate(e, &ob, plain, NULL));
    TU_OK(e, cx_variant_set(e, "replay", "b", CX_OVERRIDE_K, 5));
    ob.k = 10;
    TU_OK(e, cx_evaluate(e, &ob, same, NULL));
    assert_memory_equal(same, plain, sizeof plain);
    TU_OK(e, cx_variant_set(e, "replay", "b", CX_OPT_FACTORS, 0));
    FAILS(e, cx_evaluate(e, &ob, same, NULL), CX_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explain_sums_to_the_score),
        cmocka_unit_test(test_explain_trained_customer),
        cmocka_unit_test(test_explain_misuse),
        cmocka_unit_test(test_category_cap),
        cmocka_unit_test(test_mmr_diversifies),
        cmocka_unit_test(test_options_struct_sizes),
        cmocka_unit_test(test_eval_replay),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
