/* test_lists.c -- the customer-free lists (popular, trending, new
 * arrivals) and rankings confined to one category, against slow
 * references, while signals and the catalogue keep changing.
 *
 * The engine answers these from kept structures (the lists' top sets and
 * the items-by-category index, see internal.h); the references here are
 * computed from scratch from what the test sent, so a set or an index
 * that misses an update fails. */
#include "testutil.h"

#define DAY 86400
#define T0 1767225600LL
#define NI_MAX 2200
#define NCAT 30

/* What the test sent, per item index (engine index = order of first
 * upsert, every item is upserted before any signal names it). */
static struct {
    size_t n;
    double pop[NI_MAX], trend[NI_MAX]; /* raw: sum s * 2^((ts - T0) / h) */
    int64_t created[NI_MAX];
    int cat[NI_MAX], in_stock[NI_MAX], removed[NI_MAX];
    int64_t ts_max, created_max;
} ref;

static char ids[NI_MAX][16];

static unsigned long long rng = 12345;
static unsigned long long rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void cat_name(int c, char *out) { snprintf(out, 16, "c%02d", c); }

/* Upsert items [from, to) with their reference fields. */
static void upsert(cx_engine *e, const size_t *which, size_t n)
{
    const char *id[64], *cp[64];
    char cn[64][16];
    double price[64];
    int stock[64];
    int64_t created[64];
    assert_true(n <= 64);
    for (size_t j = 0; j < n; j++) {
        size_t i = which[j];
        id[j] = ids[i];
        cat_name(ref.cat[i], cn[j]);
        cp[j] = cn[j];
        price[j] = 10;
        stock[j] = ref.in_stock[i];
        created[j] = ref.created[i];
        ref.removed[i] = 0;
        if (ref.created[i] > ref.created_max)
            ref.created_max = ref.created[i];
    }
    TU_OK(e, cx_items_upsert(e, n, id, cp, price, stock, created, NULL));
}

static void new_items(cx_engine *e, size_t n)
{
    size_t which[64];
    while (n) {
        size_t m = n < 64 ? n : 64;
        for (size_t j = 0; j < m; j++) {
            size_t i = ref.n++;
            assert_true(i < NI_MAX);
            snprintf(ids[i], sizeof ids[i], "i%04zu", i);
            ref.cat[i] = (int)(rnd() % NCAT);
            ref.in_stock[i] = rnd() % 5 != 0;
            /* some never dated: not new arrivals */
            ref.created[i] = rnd() % 7 ? T0 - (int64_t)(rnd() % (90 * DAY))
                                       : 0;
            which[j] = i;
        }
        upsert(e, which, m);
        n -= m;
    }
}

/* n signals on skewed items at times in [t, t + span). */
static void signals(cx_engine *e, size_t n, int64_t t, int64_t span)
{
    enum { B = 500 };
    const char *cu[B], *it[B];
    int ty[B];
    float val[B];
    int64_t ts[B];
    char cid[B][16];
    while (n) {
        size_t m = n < B ? n : B;
        for (size_t j = 0; j < m; j++) {
            double p = (double)(rnd() >> 11) * 0x1p-53;
            size_t i = (size_t)((double)ref.n * p * p);
            snprintf(cid[j], sizeof cid[j], "u%llu", rnd() % 300);
            cu[j] = cid[j];
            it[j] = ids[i];
            unsigned k = (unsigned)(rnd() % 10);
            ty[j] = k < 7 ? CX_VIEW : k < 9 ? CX_PURCHASE : CX_DISLIKE;
            val[j] = 0.5f + (float)(rnd() % 1000) / 500.0f;
            ts[j] = t + (int64_t)(rnd() % (uint64_t)span);
            double w = ty[j] == CX_VIEW ? 1 : ty[j] == CX_PURCHASE ? 10 : 0;
            ref.pop[i] += w * val[j] * exp2((double)(ts[j] - T0) / (30.0 * DAY));
            ref.trend[i] += w * val[j] * exp2((double)(ts[j] - T0) / DAY);
            if (ts[j] > ref.ts_max)
                ref.ts_max = ts[j];
        }
        TU_OK(e, cx_ingest(e, m, cu, it, ty, val, ts, NULL));
        n -= m;
    }
}

/* The reference list: eligible items by score, then index. */
typedef struct { size_t i; double s; } scored;

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static size_t reference(int list, int in_stock_only, int cat, scored *out)
{
    size_t n = 0;
    int64_t newest = ref.created_max > ref.ts_max ? ref.created_max
                                                  : ref.ts_max;
    for (size_t i = 0; i < ref.n; i++) {
        if (ref.removed[i] || (in_stock_only && !ref.in_stock[i]) ||
            (cat >= 0 && ref.cat[i] != cat))
            continue;
        double s;
        if (list == CX__LIST_POPULAR)
            s = ref.pop[i] > 0 ? ref.pop[i] * exp2((double)(T0 - ref.ts_max) /
                                                  (30.0 * DAY))
                               : 0;
        else if (list == CX__LIST_TRENDING)
            s = ref.trend[i] > 0
                    ? ref.trend[i] * exp2((double)(T0 - ref.ts_max) / DAY)
                    : 0;
        else if (ref.created[i] > 0)
            s = -(double)(newest - ref.created[i]) / DAY; /* minus the age */
        else
            continue;
        out[n++] = (scored){i, s};
    }
    qsort(out, n, sizeof *out, by_score);
    return n;
}

static void check_list(cx_engine *e, int list, int in_stock_only, int cat)
{
    static scored want[NI_MAX];
    static result got;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.in_stock_only = in_stock_only;
    char cn[16];
    if (cat >= 0) {
        cat_name(cat, cn);
        o.category = cn;
    }
    size_t k = 40;
    size_t nw = reference(list, in_stock_only, cat, want);
    memset(&got, 0, sizeof got);
    int rc = list == CX__LIST_POPULAR
                 ? cx_popular(e, k, &o, got.items, got.scores, got.reasons,
                              &got.n)
             : list == CX__LIST_TRENDING
                 ? cx_trending(e, k, &o, got.items, got.scores, got.reasons,
                               &got.n)
                 : cx_new_arrivals(e, k, &o, got.items, got.scores,
                                   got.reasons, &got.n);
    TU_OK(e, rc);
    assert_int_equal(got.n, nw < k ? nw : k);
    for (size_t j = 0; j < got.n; j++) {
        double w = list == CX__LIST_NEW ? -want[j].s : want[j].s;
        double tol = 1e-4 * (fabs(w) > 1 ? fabs(w) : 1);
        if (!(fabs(got.scores[j] - w) <= tol))
            fprintf(stderr, "list %d stock %d cat %d: rank %zu is %s %g, "
                        "want %s %g\n", list, in_stock_only, cat, j,
                        got.items[j], got.scores[j], ids[want[j].i], w);
        assert_true(fabs(got.scores[j] - w) <= tol);
        /* The same item, unless its reference score ties a neighbour's
         * within float precision. */
        if (strcmp(got.items[j], ids[want[j].i]) != 0) {
            size_t i = (size_t)atol(got.items[j] + 1);
            double s = 0;
            for (size_t q = 0; q < nw; q++)
                if (want[q].i == i)
                    s = list == CX__LIST_NEW ? -want[q].s : want[q].s;
            assert_true(fabs(s - w) <= tol);
        }
    }
}

static void check_all(cx_engine *e)
{
    for (int list = 0; list < CX__LISTS; list++) {
        check_list(e, list, 0, -1);
        check_list(e, list, 1, -1);
        check_list(e, list, 0, (int)(rnd() % NCAT));
        check_list(e, list, 1, (int)(rnd() % NCAT));
    }
}

/* Lists stay exact through signals (including a jump far past the
 * trending half-life, which rescales the kept scores), new items, moved
 * categories, created_at moving both ways, stock changes and removals. */
static void test_lists_follow_reference(void **state)
{
    (void)state;
    memset(&ref, 0, sizeof ref);
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    new_items(e, 1500);
    check_all(e); /* no signals yet: popular and trending are by index */
    int64_t t = T0 - 20 * DAY;
    for (int round = 0; round < 10; round++) {
        signals(e, 3000, t, 3 * DAY);
        t += 2 * DAY;
        if (round == 5)
            t += 120 * DAY; /* 120 trending half-lives: a rescale */
        size_t which[64];
        for (size_t j = 0; j < 60; j++) {
            size_t i;
            int dup;
            do { /* distinct items: one row each */
                i = (size_t)(rnd() % ref.n);
                dup = 0;
                for (size_t q = 0; q < j; q++)
                    dup |= which[q] == i;
            } while (dup);
            which[j] = i;
            switch (rnd() % 4) {
            case 0: ref.cat[i] = (int)(rnd() % NCAT); break;
            case 1: ref.created[i] += (int64_t)(rnd() % (60 * DAY)); break;
            case 2: ref.created[i] -= (int64_t)(rnd() % (60 * DAY));
                    if (ref.created[i] < 0)
                        ref.created[i] = 1;
                    break;
            default: ref.in_stock[i] = !ref.in_stock[i];
            }
        }
        upsert(e, which, 60);
        for (int j = 0; j < 5; j++) {
            size_t i = (size_t)(rnd() % ref.n);
            TU_OK(e, cx_item_remove(e, ids[i]));
            ref.removed[i] = 1;
        }
        new_items(e, 40);
        check_all(e);
    }
    /* A half-life change rebuilds the scores and the sets. */
    TU_OK(e, cx_set_option(e, CX_OPT_TRENDING_HALF_LIFE, 2 * DAY));
    for (size_t i = 0; i < ref.n; i++)
        ref.trend[i] = 0;
    /* (the reference for the new half-life is not kept: only popular and
     * new arrivals are checked after it) */
    check_list(e, CX__LIST_POPULAR, 0, -1);
    check_list(e, CX__LIST_NEW, 1, -1);
    cx_close(e);
}

/* A ranking confined to a category equals the exact ranking of the whole
 * catalogue filtered to it: before and after items move between
 * categories (few: the moved list; many: a rebuild) and after new items
 * arrive through signals alone (the index's tail). */
static void check_category_rank(cx_engine *e, size_t n_items)
{
    static result all, one;
    const char *cat_of[4096];
    for (size_t i = 0; i < n_items; i++) {
        const char *c = NULL;
        int rc = cx_item_get(e, cx_item_id(e, i), &c, NULL, NULL, NULL);
        cat_of[i] = rc == CX_OK ? c : NULL;
    }
    for (int q = 0; q < 6; q++) {
        char cust[32];
        snprintf(cust, sizeof cust, "%s", cx_customer_id(e, (size_t)(q * 37)));
        const char *c = cat_of[(size_t)(q * 131) % n_items];
        assert_non_null(c);
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = 1;
        size_t kall = n_items < KMAX ? n_items : KMAX;
        TU_OK(e, rec(e, cust, kall, &o, &all));
        o.category = c;
        TU_OK(e, rec(e, cust, 15, &o, &one));
        size_t m = 0;
        for (size_t j = 0; j < all.n && m < 15; j++) {
            const char *ic = NULL;
            TU_OK(e, cx_item_get(e, all.items[j], &ic, NULL, NULL, NULL));
            if (strcmp(ic, c) != 0)
                continue;
            assert_true(m < one.n);
            assert_string_equal(one.items[m], all.items[j]);
            assert_true(one.scores[m] == all.scores[j]);
            m++;
        }
        assert_int_equal(one.n, m);
        /* The fast (4-bit) path confined to the category gives the same. */
        o.exact = 0;
        static result fast;
        TU_OK(e, rec(e, cust, 15, &o, &fast));
        assert_int_equal(fast.n, one.n);
        for (size_t j = 0; j < one.n; j++)
            assert_string_equal(fast.items[j], one.items[j]);
    }
}

/* A small synthetic shop, trained on one thread. */
static cx_engine *trained_shop(size_t n_signals, size_t n_items,
                               size_t n_customers, uint64_t seed, int k,
                               synth_shop *shop)
{
    synth_config c;
    synth_config_default(&c, n_signals);
    c.n_items = n_items;
    c.n_customers = n_customers;
    c.seed = seed;
    cx_engine *e = tu_shop_engine_cfg(&c, shop);
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 1));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, k));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 4));
    TU_OK(e, cx_train(e, NULL, NULL));
    return e;
}

/* 30 purchases of `distinct` items never seen before (PREFIX0...), by
 * known customers: items with no category, folded in. */
static void late_items(cx_engine *e, const char *prefix, size_t distinct)
{
    const char *cu[30], *it[30];
    int ty[30];
    char iid[30][16];
    for (size_t j = 0; j < 30; j++) {
        snprintf(iid[j], sizeof iid[j], "%s%zu", prefix, j % distinct);
        it[j] = iid[j];
        cu[j] = cx_customer_id(e, j * 11);
        ty[j] = CX_PURCHASE;
    }
    TU_OK(e, cx_ingest(e, 30, cu, it, ty, NULL, NULL, NULL));
}

static void test_category_rank_follows_reference(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = trained_shop(60000, 1000, 1000, 9, 16, &shop);
    size_t n = (size_t)tu_stat(e, CX_STAT_ITEMS);
    check_category_rank(e, n);
    /* A few items change category: the index's moved list. */
    const char *mv[40], *mc[40];
    for (size_t j = 0; j < 40; j++) {
        mv[j] = cx_item_id(e, j * 23 % n);
        mc[j] = j % 2 ? "moved-a" : "moved-b";
    }
    TU_OK(e, cx_items_upsert(e, 40, mv, mc, NULL, NULL, NULL, NULL));
    check_category_rank(e, n);
    /* Many: more than the moved list holds. */
    static const char *mv2[400], *mc2[400];
    for (size_t j = 0; j < 400; j++) {
        mv2[j] = cx_item_id(e, j * 7 % n);
        mc2[j] = j % 3 ? "moved-a" : "moved-c";
    }
    for (size_t j = 0; j < 400; j += 50)
        TU_OK(e, cx_items_upsert(e, 50, mv2 + j, mc2 + j, NULL, NULL, NULL,
                                 NULL));
    check_category_rank(e, n);
    /* New items known only from signals (category ""), folded in. */
    late_items(e, "fresh", 10);
    n = (size_t)tu_stat(e, CX_STAT_ITEMS);
    check_category_rank(e, n);
    cx_close(e);
    synth_free(&shop);
}

/* Several queries in one pass over the factors give exactly what each
 * gives alone as a pool: a customer's vector and item vectors by cosine,
 * with the customer's exclusions, rules, and items folded in since
 * training.  The customer's vector in a category (sharing the customer's
 * 4-bit scores) is ranked by the fast scan where cx__rank_hits reads a
 * small category exactly: the same hits here, the candidates' margin
 * being wide enough on this shop. */
static void test_multi_matches_single(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = trained_shop(40000, 1500, 800, 4, 24, &shop);
    /* Items folded in after training take part too. */
    late_items(e, "late", 4);
    assert_true(tu_stat(e, CX_STAT_FOLDED_ITEMS) > 0);
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.in_stock_only = 1;
    static cx__hit one[7][200], many[7][200];
    for (int pass = 0; pass < 2; pass++) {
        for (size_t cust = 0; cust < 40; cust += 7) {
            cx__rdlock(e);
            cx__fold *tmp = NULL;
            uint32_t u = (uint32_t)cust;
            const float *x = cx__customer_vec(e, u, NULL, &tmp);
            assert_non_null(x);
            cx__rank_q q[7];
            float unit[4][64];
            q[0] = (cx__rank_q){x, 0, CX_NONE, CX_NONE, 150, 0, many[0]};
            for (int j = 1; j < 5; j++) {
                uint32_t seed = (uint32_t)((cust * 31 + (size_t)j * 97) %
                                           e->items.n);
                if (j == 4) /* a folded-in item as a seed */
                    seed = cx__idmap_find(&e->items, "late1");
                float inv = 0;
                const float *y;
                while (!(y = cx__item_vec(e, seed, &inv)) || !(inv > 0))
                    seed = (seed + 1) % (uint32_t)e->items.n;
                for (int d = 0; d < e->model->k; d++)
                    unit[j - 1][d] = y[d] * inv;
                q[j] = (cx__rank_q){unit[j - 1], 1, seed, CX_NONE, 30, 0,
                                    many[j]};
            }
            for (int j = 5; j < 7; j++) {
                uint32_t cat = e->item_cat[(cust * 13 + (size_t)j) %
                                           e->items.n];
                q[j] = (cx__rank_q){x, 0, CX_NONE, cat, 12, 0, many[j]};
            }
            /* The pass with the customer's exclusions lent, each
             * query alone with its own. */
            cx__skip *lent = NULL;
            TU_OK(e, cx__skip_make(e, pass ? &o : NULL, u, &lent));
            TU_OK(e, cx__rank_multi(e, pass ? &o : NULL, u, lent, q, 7));
            cx__skip_free(lent);
            for (int j = 0; j < 7; j++) {
                size_t n = 0;
                TU_OK(e, cx__rank_hits(e, pass ? &o : NULL, u, NULL, q[j].x,
                                       q[j].cosine, 0, q[j].cat, q[j].self,
                                       q[j].k, 1, one[j], &n));
                assert_int_equal(q[j].n, n);
                assert_true(n == q[j].k || (q[j].cat != CX_NONE && n > 0));
                for (size_t h = 0; h < n; h++) {
                    assert_int_equal(many[j][h].item, one[j][h].item);
                    assert_true(many[j][h].score == one[j][h].score);
                    if (q[j].cat != CX_NONE)
                        assert_int_equal(e->item_cat[many[j][h].item],
                                         q[j].cat);
                }
            }
            cx__rdunlock(e);
            free(tmp);
        }
    }
    cx_close(e);
    synth_free(&shop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_follow_reference),
        cmocka_unit_test(test_category_rank_follows_reference),
        cmocka_unit_test(test_multi_matches_single),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
