/* test_recommend.c -- ranking on a small synthetic shop trained with the
 * default options: business rules, fallbacks, fast vs exact paths, batch,
 * similar items, the planted taste and offline evaluation.
 *
 * The group fixture builds one shop and one trained engine.  Tests that
 * change the engine (remove an item, add one, ingest) undo what they did
 * or only touch what no other test looks at, and run last. */
#include "testutil.h"


typedef struct fixture {
    synth_shop shop;
    cx_engine *e;
    size_t n_items;     /* catalogue size */
    uint32_t *seen;     /* per customer x item: CX_TYPE_BIT mask */
    double *r;          /* per customer x item: net r (no decay) */
    double *pop;        /* per item: sum of positive strengths */
} fixture;

/* Shop item index of an id ("i0123"). */
static uint32_t item_ix(const char *id)
{
    return (uint32_t)strtoul(id + 1, NULL, 10);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    /* 500 customers, 400 items in 16 categories: a customer's two
     * favourites are a small part of the catalogue. */
    synth_config c;
    synth_config_default(&c, 20000);
    c.n_items = 400;
    c.n_categories = 16;
    f->e = tu_shop_engine_cfg(&c, &f->shop);
    /* Popularity without decay: the plain sums below (the decayed kind
     * is tested in test_live.c). */
    TU_OK(f->e, cx_set_option(f->e, CX_OPT_POPULAR_HALF_LIFE, 0));
    TU_OK(f->e, cx_train(f->e, NULL, NULL));
    size_t nc = f->shop.n_customers, ni = f->shop.n_items;
    f->n_items = ni;
    f->seen = calloc(nc * ni, sizeof *f->seen);
    f->r = calloc(nc * ni, sizeof *f->r);
    f->pop = calloc(ni, sizeof *f->pop);
    cx__options o;
    cx__options_default(&o);
    for (size_t j = 0; j < f->shop.n_signals; j++) {
        const synth_signal *g = &f->shop.signals[j];
        double v = g->type == CX_RATING ? (g->value - 3.0) / 2.0 : g->value;
        double s = o.weight[g->type] * v;
        size_t at = (size_t)g->customer * ni + g->item;
        f->seen[at] |= CX_TYPE_BIT(g->type);
        f->r[at] += s;
        if (s > 0)
            f->pop[g->item] += s;
    }
    /* The engine's item index is the shop's (catalogue upserted first). */
    for (size_t i = 0; i < ni; i++)
        assert_string_equal(cx_item_id(f->e, i), f->shop.items[i].id);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cx_close(f->e);
    synth_free(&f->shop);
    free(f->seen), free(f->r), free(f->pop);
    free(f);
    return 0;
}


static int contains(const result *r, const char *id)
{
    for (size_t j = 0; j < r->n; j++)
        if (strcmp(r->items[j], id) == 0)
            return 1;
    return 0;
}

static void assert_no_duplicates(const result *r)
{
    for (size_t a = 0; a < r->n; a++)
        for (size_t b = a + 1; b < r->n; b++)
            assert_string_not_equal(r->items[a], r->items[b]);
}

static void assert_sorted(const result *r)
{
    for (size_t j = 1; j < r->n; j++)
        assert_true(r->scores[j] <= r->scores[j - 1]);
}

/* Customers of the model that have a vector to serve. */
static int has_vector(cx_engine *e, size_t u)
{
    return u < e->model->n_users && e->model->has_vec[u];
}

/* ===================================================================== */
/* Rules                                                                 */
/* ===================================================================== */

static void test_category_filter(void **state)
{
    fixture *f = *state;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    result r;
    size_t total = 0;
    for (size_t c = 0; c < 60; c++) {
        char id[24];
        synth_customer_id((uint32_t)c, id);
        /* Each customer's favourite category, found through an item. */
        uint32_t fav = f->shop.fav[2 * c];
        const char *cat = NULL;
        for (size_t i = 0; i < f->n_items && !cat; i++)
            if (f->shop.items[i].cat == fav)
                cat = f->shop.items[i].category;
        assert_non_null(cat);
        o.category = cat;
        TU_OK(f->e, rec(f->e, id, 10, &o, &r));
        total += r.n;
        for (size_t j = 0; j < r.n; j++) {
            const char *got;
            TU_OK(f->e, cx_item_get(f->e, r.items[j], &got, NULL, NULL,
                                    NULL));
            assert_string_equal(got, cat);
        }
    }
    assert_true(total > 60 * 5);
    o.category = "no-such-category";
    assert_int_equal(rec(f->e, "c0000001", 10, &o, &r), CX_ENOTFOUND);
    assert_int_equal(r.n, 0);
}

static void test_in_stock_filter(void **state)
{
    fixture *f = *state;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    result r;
    size_t oos_default = 0, oos_any = 0;
    const char *who[] = {"c0000000", "c0000007", "c0000042", "c0000100",
                         "nobody-at-all"};
    for (size_t w = 0; w < sizeof who / sizeof *who; w++) {
        for (int exact = 0; exact <= 1; exact++) {
            o.exact = exact;
            o.in_stock_only = 1;
            TU_OK(f->e, rec(f->e, who[w], f->n_items, &o, &r));
            assert_true(r.n > 0);
            for (size_t j = 0; j < r.n; j++)
                oos_default += !f->shop.items[item_ix(r.items[j])].in_stock;
            o.in_stock_only = 0;
            TU_OK(f->e, rec(f->e, who[w], f->n_items, &o, &r));
            for (size_t j = 0; j < r.n; j++)
                oos_any += !f->shop.items[item_ix(r.items[j])].in_stock;
        }
    }
    assert_int_equal(oos_default, 0);
    assert_true(oos_any > 0);
    /* cx_item_get agrees with the catalogue. */
    for (size_t i = 0; i < f->n_items; i++) {
        int stock = -1;
        TU_OK(f->e, cx_item_get(f->e, f->shop.items[i].id, NULL, NULL,
                                &stock, NULL));
        assert_int_equal(stock, f->shop.items[i].in_stock);
    }
}

static void test_allow_list(void **state)
{
    fixture *f = *state;
    const char *allow[21];
    for (size_t j = 0; j < 20; j++)
        allow[j] = f->shop.items[j * 10 + 3].id;
    allow[20] = "not-in-the-catalogue"; /* unknown ids are ignored */
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.allow = allow;
    o.n_allow = 21;
    o.in_stock_only = 0;
    o.exclude = 0;
    result r;
    const uint32_t neg = CX_TYPE_BIT(CX_RETURN) | CX_TYPE_BIT(CX_DISLIKE);
    for (uint32_t c = 0; c < 40; c++) {
        char id[24];
        synth_customer_id(c, id);
        TU_OK(f->e, rec(f->e, id, 50, &o, &r));
        /* Nothing excluded but the customer's negative items: the rest
         * of the 20 known allowed items, best first. */
        size_t want = 0;
        for (size_t a = 0; a < 20; a++) {
            size_t at = (size_t)c * f->n_items + a * 10 + 3;
            want += !(f->seen[at] & neg) && !(f->r[at] < 0);
        }
        assert_int_equal(r.n, want);
        assert_sorted(&r);
        assert_no_duplicates(&r);
        for (size_t j = 0; j < r.n; j++) {
            int in = 0;
            for (size_t a = 0; a < 20; a++)
                in |= strcmp(r.items[j], allow[a]) == 0;
            assert_true(in);
        }
    }
    /* With the default rules the allowed set only shrinks. */
    cx_rec_opts_init(&o);
    o.allow = allow;
    o.n_allow = 21;
    TU_OK(f->e, rec(f->e, "c0000003", 5, &o, &r));
    for (size_t j = 0; j < r.n; j++)
        assert_int_equal(item_ix(r.items[j]) % 10, 3);
    TU_OK(f->e, rec(f->e, "unknown-customer", 50, &o, &r));
    assert_true(r.n > 0 && r.n <= 20);
    for (size_t j = 0; j < r.n; j++) {
        assert_int_equal(item_ix(r.items[j]) % 10, 3);
        assert_int_equal(r.reasons[j], CX_REASON_POPULAR);
    }
}

static void test_deny_list(void **state)
{
    fixture *f = *state;
    for (uint32_t c = 0; c < 40; c++) {
        char id[24];
        synth_customer_id(c, id);
        for (int exact = 0; exact <= 1; exact++) {
            cx_rec_opts o;
            cx_rec_opts_init(&o);
            o.exact = exact;
            result r, d;
            TU_OK(f->e, rec(f->e, id, 10, &o, &r));
            assert_int_equal(r.n, 10);
            const char *deny[5];
            for (size_t j = 0; j < 5; j++)
                deny[j] = r.items[j];
            o.deny = deny;
            o.n_deny = 5;
            TU_OK(f->e, rec(f->e, id, 10, &o, &d));
            for (size_t j = 0; j < 5; j++)
                assert_false(contains(&d, deny[j]));
            /* Denying changes no score: the rest move up. */
            if (exact)
                for (size_t j = 0; j < 5; j++)
                    assert_string_equal(d.items[j], r.items[j + 5]);
        }
    }
}

static void test_exclude_mask(void **state)
{
    fixture *f = *state;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.in_stock_only = 0;
    result r;
    size_t back = 0;
    for (uint32_t c = 0; c < 80; c++) {
        char id[24];
        synth_customer_id(c, id);
        const uint32_t *seen = f->seen + (size_t)c * f->n_items;
        o.exclude = CX_EXCLUDE_SEEN;
        TU_OK(f->e, rec(f->e, id, f->n_items, &o, &r));
        for (size_t j = 0; j < r.n; j++)
            assert_false(seen[item_ix(r.items[j])] & CX_EXCLUDE_SEEN);
        /* Only views excluded: clicked items are allowed back. */
        o.exclude = CX_TYPE_BIT(CX_VIEW);
        TU_OK(f->e, rec(f->e, id, f->n_items, &o, &r));
        for (size_t j = 0; j < r.n; j++)
            assert_false(seen[item_ix(r.items[j])] & CX_TYPE_BIT(CX_VIEW));
        o.exclude = 0;
        TU_OK(f->e, rec(f->e, id, f->n_items, &o, &r));
        for (size_t j = 0; j < r.n; j++)
            back += (seen[item_ix(r.items[j])] & CX_EXCLUDE_SEEN) != 0;
    }
    assert_true(back > 0);
}

/* Returned, disliked or net-negative items never come back, whatever the
 * exclusion mask. */
static void test_negative_items_never_return(void **state)
{
    fixture *f = *state;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exclude = 0;
    o.in_stock_only = 0;
    size_t customers = 0, checked = 0;
    result r;
    const uint32_t neg = CX_TYPE_BIT(CX_RETURN) | CX_TYPE_BIT(CX_DISLIKE);
    for (uint32_t c = 0; c < f->shop.n_customers; c++) {
        const uint32_t *seen = f->seen + (size_t)c * f->n_items;
        const double *rr = f->r + (size_t)c * f->n_items;
        int any = 0;
        for (size_t i = 0; i < f->n_items; i++)
            any |= (seen[i] & neg) || rr[i] < 0;
        if (!any)
            continue;
        customers++;
        char id[24];
        synth_customer_id(c, id);
        for (int exact = 0; exact <= 1; exact++) {
            o.exact = exact;
            TU_OK(f->e, rec(f->e, id, f->n_items, &o, &r));
            for (size_t j = 0; j < r.n; j++) {
                uint32_t i = item_ix(r.items[j]);
                assert_false(seen[i] & neg);
                assert_false(rr[i] < 0);
                checked++;
            }
        }
    }
    assert_true(customers >= 5);
    assert_true(checked > 0);
}

/* ===================================================================== */
/* Sizes and fallbacks                                                   */
/* ===================================================================== */

static void test_k_larger_than_catalogue(void **state)
{
    fixture *f = *state;
    size_t items = (size_t)tu_stat(f->e, CX_STAT_ITEMS);
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.in_stock_only = 0;
    o.exclude = 0;
    result r;
    const char *who[] = {"c0000000", "c0000011", "stranger"};
    for (size_t w = 0; w < 3; w++)
        for (int exact = 0; exact <= 1; exact++) {
            o.exact = exact;
            TU_OK(f->e, rec(f->e, who[w], KMAX, &o, &r));
            assert_true(r.n <= items);
            assert_true(r.n >= items - 10); /* minus negatives */
            assert_no_duplicates(&r);
            assert_sorted(&r);
        }
}

static void test_everything_filtered_out(void **state)
{
    fixture *f = *state;
    const char *item = NULL;
    for (size_t i = 0; i < f->n_items && !item; i++)
        if (f->shop.items[i].in_stock)
            item = f->shop.items[i].id;
    const char *allow[] = {item};
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.allow = allow;
    o.n_allow = 1;
    result r;
    TU_OK(f->e, rec(f->e, "stranger", 10, &o, &r));
    assert_int_equal(r.n, 1);
    TU_OK(f->e, cx_item_remove(f->e, item));
    assert_int_equal(cx_item_get(f->e, item, NULL, NULL, NULL, NULL),
                     CX_ENOTFOUND);
    const char *who[] = {"stranger", "c0000000", "c0000005"};
    for (size_t w = 0; w < 3; w++) {
        r.n = 99;
        assert_int_equal(rec(f->e, who[w], 10, &o, &r), CX_OK);
        assert_int_equal(r.n, 0);
    }
    /* Removed items leave every list, not only allowed ones. */
    result all;
    TU_OK(f->e, rec(f->e, "stranger", KMAX, NULL, &all));
    assert_false(contains(&all, item));
    /* Upserting brings it back, with its catalogue facts kept. */
    TU_OK(f->e, cx_items_upsert(f->e, 1, allow, NULL, NULL, NULL, NULL,
                                NULL));
    const char *cat;
    TU_OK(f->e, cx_item_get(f->e, item, &cat, NULL, NULL, NULL));
    assert_string_equal(cat, f->shop.items[item_ix(item)].category);
    TU_OK(f->e, rec(f->e, "stranger", 10, &o, &r));
    assert_int_equal(r.n, 1);
}

/* Live popularity of an item: the sum of its positive strengths. */
static void check_popular(fixture *f, const result *r, const uint32_t *seen,
                          unsigned exclude)
{
    assert_true(r->n > 0);
    for (size_t j = 0; j < r->n; j++) {
        uint32_t i = item_ix(r->items[j]);
        assert_int_equal(r->reasons[j], CX_REASON_POPULAR);
        assert_true(fabs(r->scores[j] - f->pop[i]) <=
                    1e-4 * fmax(1, f->pop[i]));
        if (j)
            assert_true(r->scores[j] <= r->scores[j - 1]);
    }
    /* Nothing left out beats the last one returned. */
    double last = r->scores[r->n - 1];
    for (size_t i = 0; i < f->n_items; i++) {
        if (!f->shop.items[i].in_stock || (seen && (seen[i] & exclude)))
            continue;
        if (!contains(r, f->shop.items[i].id))
            assert_true(f->pop[i] <= last * (1 + 1e-4));
    }
}

static void test_unknown_customer_gets_popular(void **state)
{
    fixture *f = *state;
    result r;
    for (int exact = 0; exact <= 1; exact++) {
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.exact = exact;
        TU_OK(f->e, rec(f->e, "never-seen-before", 25, &o, &r));
        assert_int_equal(r.n, 25);
        check_popular(f, &r, NULL, 0);
    }
    /* NULL options mean the defaults. */
    TU_OK(f->e, rec(f->e, "never-seen-before", 5, NULL, &r));
    check_popular(f, &r, NULL, 0);
}

static void test_untrained_engine_gets_popular(void **state)
{
    fixture *f = *state;
    cx_engine *e;
    assert_int_equal(cx_open(&e, NULL, 0), CX_OK);
    tu_plain(e);
    TU_OK(e, cx_set_option(e, CX_OPT_POPULAR_HALF_LIFE, 0));
    TU_OK(e, tu_upsert_catalogue(e, &f->shop));
    result r;
    /* A catalogue and no signals: nothing is popular yet, but the items
     * are there. */
    TU_OK(e, rec(e, "c0000001", 5, NULL, &r));
    assert_int_equal(r.n, 5);
    TU_OK(e, tu_ingest_signals(e, &f->shop, 0, f->shop.n_signals, 5000));
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 0);
    for (uint32_t c = 0; c < 5; c++) {
        char id[24];
        synth_customer_id(c, id);
        TU_OK(e, rec(e, id, 20, NULL, &r));
        check_popular(f, &r, f->seen + (size_t)c * f->n_items,
                      CX_EXCLUDE_SEEN | CX_TYPE_BIT(CX_RETURN) |
                          CX_TYPE_BIT(CX_DISLIKE));
    }
    const char *custs[] = {"c0000001", "ghost"};
    const char *items[2 * 8];
    int reasons[2 * 8];
    size_t counts[2];
    TU_OK(e, cx_recommend_batch(e, 2, custs, 8, NULL, items, NULL, reasons,
                                counts));
    assert_int_equal(counts[0], 8);
    assert_int_equal(counts[1], 8);
    for (size_t j = 0; j < 16; j++)
        assert_int_equal(reasons[j], CX_REASON_POPULAR);
    cx_close(e);
}

/* ===================================================================== */
/* Fast path, batch                                                      */
/* ===================================================================== */

static void test_fast_path_matches_exact(void **state)
{
    fixture *f = *state;
    const float *X, *Y;
    size_t nx, ny, k, k2;
    TU_OK(f->e, cx_factors(f->e, 0, &X, &nx, &k));
    TU_OK(f->e, cx_factors(f->e, 1, &Y, &ny, &k2));
    assert_int_equal(k, 64);
    assert_int_equal(k, k2);
    cx_rec_opts fast, exact;
    cx_rec_opts_init(&fast);
    cx_rec_opts_init(&exact);
    exact.exact = 1;
    size_t same = 0, users = 0;
    result a, b;
    for (size_t u = 0; u < nx; u++) {
        if (!has_vector(f->e, u))
            continue;
        const char *id = cx_customer_id(f->e, u);
        TU_OK(f->e, rec(f->e, id, 10, &fast, &a));
        TU_OK(f->e, rec(f->e, id, 10, &exact, &b));
        users++;
        assert_int_equal(a.n, b.n);
        int eq = 1;
        for (size_t j = 0; j < a.n; j++)
            eq &= strcmp(a.items[j], b.items[j]) == 0;
        same += eq;
        for (size_t j = 0; j < a.n; j++) {
            size_t i = item_ix(a.items[j]);
            double want = tu_dot(X + u * k, Y + i * k, k);
            assert_true(fabs(a.scores[j] - want) <= 1e-4);
            assert_int_equal(a.reasons[j], CX_REASON_PERSONAL);
            want = tu_dot(X + u * k, Y + item_ix(b.items[j]) * k, k);
            assert_true(fabs(b.scores[j] - want) <= 1e-4);
        }
        assert_sorted(&a);
        assert_sorted(&b);
    }
    assert_true(users > 400);
    print_message("fast == exact top-10 for %zu of %zu customers\n", same,
                  users);
    assert_true(same * 100 >= users * 95);
}

/* Items equal position by position; a swap is accepted only between two
 * scores that tie to float rounding (sgemm vs dot). */
static void assert_same_list(const char *const *a, const float *sa,
                             const result *b, size_t n)
{
    assert_int_equal(n, b->n);
    for (size_t j = 0; j < n; j++)
        if (strcmp(a[j], b->items[j]) != 0)
            assert_true(fabs(sa[j] - b->scores[j]) <=
                        1e-5 * fmax(1, fabs(b->scores[j])));
}

static void check_batch(fixture *f, const cx_rec_opts *o, size_t k)
{
    size_t nc = f->shop.n_customers, m = 0;
    size_t cap = nc + nc / 10 + 2;
    char (*ids)[24] = malloc(cap * sizeof *ids);
    const char **custs = malloc(cap * sizeof *custs);
    for (uint32_t c = 0; c < nc; c++) {
        synth_customer_id(c, ids[m]);
        custs[m] = ids[m];
        m++;
        if (c % 10 == 3) { /* unknown customers in between */
            snprintf(ids[m], 24, "ghost%u", c);
            custs[m] = ids[m];
            m++;
        }
    }
    const char **items = calloc(m * k, sizeof *items);
    float *scores = calloc(m * k, sizeof *scores);
    int *reasons = calloc(m * k, sizeof *reasons);
    size_t *counts = calloc(m, sizeof *counts);
    TU_OK(f->e, cx_recommend_batch(f->e, m, custs, k, o, items, scores,
                                   reasons, counts));
    cx_rec_opts ex = *o;
    ex.exact = 1;
    result r;
    for (size_t j = 0; j < m; j++) {
        TU_OK(f->e, rec(f->e, custs[j], k, &ex, &r));
        assert_same_list(items + j * k, scores + j * k, &r, counts[j]);
        for (size_t t = 0; t < counts[j]; t++) {
            assert_int_equal(reasons[j * k + t], r.reasons[t]);
            assert_true(fabs(scores[j * k + t] - r.scores[t]) <=
                        1e-5 * fmax(1, fabs(r.scores[t])));
        }
        if (strncmp(custs[j], "ghost", 5) == 0)
            assert_int_equal(reasons[j * k], CX_REASON_POPULAR);
    }
    free(ids), free(custs), free(items), free(scores), free(reasons),
        free(counts);
}

static void test_batch_matches_single(void **state)
{
    fixture *f = *state;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    check_batch(f, &o, 10);
    /* Rules apply per row in the batch as in the single call. */
    const char *deny[] = {f->shop.items[0].id, f->shop.items[1].id,
                          f->shop.items[2].id};
    o.category = f->shop.items[5].category;
    o.deny = deny;
    o.n_deny = 3;
    o.in_stock_only = 0;
    o.exclude = CX_TYPE_BIT(CX_PURCHASE);
    check_batch(f, &o, 7);
    /* Allow lists take the single path inside the batch. */
    const char *allow[] = {f->shop.items[10].id, f->shop.items[20].id,
                           f->shop.items[30].id, f->shop.items[40].id};
    cx_rec_opts_init(&o);
    o.allow = allow;
    o.n_allow = 4;
    check_batch(f, &o, 3);
    /* k larger than the catalogue. */
    cx_rec_opts_init(&o);
    check_batch(f, &o, 300);
}

/* Factor counts that are not multiples of the SIMD widths (8 floats; 8
 * dimensions of the 4-bit copy, 32 in one 16-bit sum) take the kernels'
 * tail paths: the fast path, the batch and similar items must still
 * return exact scores. */
static void test_odd_factor_counts(void **state)
{
    fixture *f = *state;
    const int ks[] = {1, 5, 13, 41};
    for (size_t t = 0; t < 4; t++) {
        cx_engine *e;
        TU_OK(NULL, cx_open(&e, NULL, 0));
        tu_plain(e);
        TU_OK(e, tu_upsert_catalogue(e, &f->shop));
        TU_OK(e, tu_ingest_signals(e, &f->shop, 0, f->shop.n_signals, 8192));
        TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, ks[t]));
        TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 3));
        TU_OK(e, cx_train(e, NULL, NULL));
        const float *X, *Y;
        size_t nx, ny, k;
        TU_OK(e, cx_factors(e, 0, &X, &nx, &k));
        TU_OK(e, cx_factors(e, 1, &Y, &ny, &k));
        assert_int_equal(k, (size_t)ks[t]);
        cx_rec_opts ex;
        cx_rec_opts_init(&ex);
        ex.exact = 1;
        size_t same = 0, users = 0;
        for (size_t u = 0; u < nx; u += 3) {
            if (!has_vector(e, u))
                continue;
            const char *id = cx_customer_id(e, u);
            result a, b;
            TU_OK(e, rec(e, id, 10, NULL, &a));
            TU_OK(e, rec(e, id, 10, &ex, &b));
            users++;
            int eq = a.n == b.n;
            for (size_t j = 0; j < a.n; j++) {
                double want = tu_dot(X + u * k, Y + item_ix(a.items[j]) * k,
                                     k);
                assert_true(fabs(a.scores[j] - want) <= 1e-4);
                eq = eq && strcmp(a.items[j], b.items[j]) == 0;
            }
            same += eq;
            const char *bi[10];
            float bs[10];
            size_t bn;
            TU_OK(e, cx_recommend_batch(e, 1, &id, 10, NULL, bi, bs, NULL,
                                        &bn));
            assert_same_list(bi, bs, &b, bn);
        }
        print_message("k = %d: fast == exact for %zu of %zu customers\n",
                      ks[t], same, users);
        assert_true(same * 100 >= users * 90);
        for (size_t i = 0; i < ny; i += 11) {
            double ni = sqrt(tu_dot(Y + i * k, Y + i * k, k));
            if (ni == 0)
                continue;
            result r;
            TU_OK(e, cx_similar_items(e, cx_item_id(e, i), 5, NULL, r.items,
                                      r.scores, r.reasons, &r.n));
            for (size_t j = 0; j < r.n; j++) {
                size_t o = item_ix(r.items[j]);
                double no = sqrt(tu_dot(Y + o * k, Y + o * k, k));
                double cos = no > 0 ? tu_dot(Y + i * k, Y + o * k, k) /
                                          (ni * no)
                                    : 0;
                assert_true(fabs(r.scores[j] - cos) <= 1e-4);
            }
        }
        cx_close(e);
    }
}

/* Lists longer than the ranking code's on-stack buffers: a customer who
 * has seen 1500 items, deny and allow lists of 300. */
static void test_long_lists(void **state)
{
    (void)state;
    enum { NI = 2000, SEEN = 1500, L = 300 };
    static char ids[NI][16];
    static const char *items[NI], *cust[NI], *lst[L];
    static int types[NI];
    for (int i = 0; i < NI; i++) {
        snprintf(ids[i], sizeof ids[i], "item%d", i);
        items[i] = ids[i];
        cust[i] = i < SEEN ? "big" : (i % 2 ? "odd" : "even");
        types[i] = CX_VIEW;
    }
    cx_engine *e = tu_engine(NI, cust, items, types, NULL, NULL);
    /* Everyone else touches everything once, so every item has a vector
     * and some popularity. */
    for (int i = 0; i < NI; i++)
        cust[i] = "everyone";
    TU_OK(e, cx_ingest(e, NI, cust, items, types, NULL, NULL, NULL));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 8));
    for (int trained = 0; trained <= 1; trained++) {
        if (trained)
            TU_OK(e, cx_train(e, NULL, NULL));
        for (int exact = 0; exact <= 1; exact++) {
            cx_rec_opts o;
            cx_rec_opts_init(&o);
            o.exact = exact;
            result r;
            TU_OK(e, rec(e, "big", KMAX, &o, &r));
            assert_int_equal(r.n, NI - SEEN);
            for (size_t j = 0; j < r.n; j++)
                assert_true(atoi(r.items[j] + 4) >= SEEN);
            /* Deny 300 of the 500 left. */
            for (int j = 0; j < L; j++)
                lst[j] = ids[SEEN + j];
            o.deny = lst;
            o.n_deny = L;
            TU_OK(e, rec(e, "big", KMAX, &o, &r));
            assert_int_equal(r.n, NI - SEEN - L);
            for (size_t j = 0; j < r.n; j++)
                assert_true(atoi(r.items[j] + 4) >= SEEN + L);
            /* Allow 300: 150 seen, 150 not. */
            for (int j = 0; j < L; j++)
                lst[j] = ids[SEEN - L / 2 + j];
            o.deny = NULL;
            o.n_deny = 0;
            o.allow = lst;
            o.n_allow = L;
            TU_OK(e, rec(e, "big", KMAX, &o, &r));
            assert_int_equal(r.n, L / 2);
            TU_OK(e, rec(e, "stranger", KMAX, &o, &r));
            assert_int_equal(r.n, L);
        }
    }
    cx_close(e);
}

/* ===================================================================== */
/* Similar items                                                         */
/* ===================================================================== */

static void test_similar_items(void **state)
{
    fixture *f = *state;
    const float *Y;
    size_t ny, k;
    TU_OK(f->e, cx_factors(f->e, 1, &Y, &ny, &k));
    size_t checked = 0;
    for (size_t i = 0; i < ny; i += 3) {
        double ni = sqrt(tu_dot(Y + i * k, Y + i * k, k));
        if (ni == 0)
            continue;
        for (int exact = 0; exact <= 1; exact++) {
            cx_rec_opts o;
            cx_rec_opts_init(&o);
            o.exact = exact;
            o.in_stock_only = exact; /* both settings */
            result r;
            memset(&r, 0, sizeof r);
            TU_OK(f->e, cx_similar_items(f->e, f->shop.items[i].id, 12, &o,
                                         r.items, r.scores, r.reasons,
                                         &r.n));
            assert_int_equal(r.n, 12);
            assert_sorted(&r);
            assert_no_duplicates(&r);
            for (size_t j = 0; j < r.n; j++) {
                size_t t = item_ix(r.items[j]);
                assert_true(t != i);
                assert_int_equal(r.reasons[j], CX_REASON_SIMILAR);
                double nt = sqrt(tu_dot(Y + t * k, Y + t * k, k));
                double cos = nt > 0 ? tu_dot(Y + i * k, Y + t * k, k) /
                                          (ni * nt)
                                    : 0;
                assert_true(r.scores[j] >= -1.0001f &&
                            r.scores[j] <= 1.0001f);
                assert_true(fabs(r.scores[j] - cos) <= 1e-4);
                checked++;
            }
        }
    }
    assert_true(checked > 1000);
}

static void similar(cx_engine *e, const char *id, size_t k,
                    const cx_rec_opts *o, result *r)
{
    memset(r, 0, sizeof *r);
    TU_OK(e, cx_similar_items(e, id, k, o, r->items, r->scores, r->reasons,
                              &r->n));
}

/* The second similar_items of a seed comes from the seed's neighbour list
 * (the first one made it); either answers as the exact scan does, rules
 * included: a deny list the list can serve, and one that takes away so
 * many of its items that the scan must run. */
static void test_similar_from_lists(void **state)
{
    fixture *f = *state;
    cx_rec_opts def, ex;
    cx_rec_opts_init(&def);
    cx_rec_opts_init(&ex);
    ex.exact = 1;
    const float *Y;
    size_t ny, k, seeds = 0;
    TU_OK(f->e, cx_factors(f->e, 1, &Y, &ny, &k));
    result a, b, x;
    for (size_t i = 0; i < ny; i += 2) {
        const char *id = f->shop.items[i].id;
        if (tu_dot(Y + i * k, Y + i * k, k) == 0)
            continue; /* no vector: the category's popular items */
        similar(f->e, id, 12, &def, &a); /* makes the list */
        similar(f->e, id, 12, &def, &b); /* reads it */
        similar(f->e, id, 12, &ex, &x);
        assert_same_list(a.items, a.scores, &x, 12);
        assert_same_list(b.items, b.scores, &x, 12);
        for (size_t j = 0; j < 12; j++)
            assert_float_equal(a.scores[j], b.scores[j], 0);
        seeds++;
        if (i % 10)
            continue;
        /* Denying the first 5: the list still answers. */
        cx_rec_opts d = def, dx = ex;
        d.deny = dx.deny = x.items;
        d.n_deny = dx.n_deny = 5;
        result xd;
        similar(f->e, id, 12, &d, &b);
        similar(f->e, id, 12, &dx, &xd);
        assert_same_list(b.items, b.scores, &xd, 12);
        /* Denying the 60 best: 4 of the list's 64 pass, the scan runs. */
        result big;
        similar(f->e, id, 60, &ex, &big);
        d.deny = dx.deny = big.items;
        d.n_deny = dx.n_deny = 60;
        similar(f->e, id, 12, &d, &b);
        similar(f->e, id, 12, &dx, &xd);
        assert_same_list(b.items, b.scores, &xd, 12);
        for (size_t j = 0; j < 12; j++)
            for (size_t t = 0; t < 60; t++)
                assert_string_not_equal(b.items[j], big.items[t]);
    }
    assert_true(seeds > 150);
}

/* An item added after training has no vector: the popular items of its
 * category stand in.  (Adds an item; removes it again at the end.) */
static void test_similar_items_without_vector(void **state)
{
    fixture *f = *state;
    const char *ids[] = {"brand-new-item"};
    const char *cats[] = {f->shop.items[7].category};
    TU_OK(f->e, cx_items_upsert(f->e, 1, ids, cats, NULL, NULL, NULL, NULL));
    result r;
    memset(&r, 0, sizeof r);
    TU_OK(f->e, cx_similar_items(f->e, ids[0], 10, NULL, r.items, r.scores,
                                 r.reasons, &r.n));
    assert_int_equal(r.n, 10);
    for (size_t j = 0; j < r.n; j++) {
        const char *cat;
        assert_string_not_equal(r.items[j], ids[0]);
        assert_int_equal(r.reasons[j], CX_REASON_CATEGORY);
        TU_OK(f->e, cx_item_get(f->e, r.items[j], &cat, NULL, NULL, NULL));
        assert_string_equal(cat, cats[0]);
        assert_true(fabs(r.scores[j] - f->pop[item_ix(r.items[j])]) <=
                    1e-4 * fmax(1, f->pop[item_ix(r.items[j])]));
        if (j)
            assert_true(r.scores[j] <= r.scores[j - 1]);
    }
    TU_OK(f->e, cx_item_remove(f->e, ids[0]));
    assert_int_equal(cx_similar_items(f->e, "no-such-item", 10, NULL,
                                      r.items, NULL, NULL, &r.n),
                     CX_ENOTFOUND);
}

/* ===================================================================== */
/* Quality                                                               */
/* ===================================================================== */

static void test_planted_taste(void **state)
{
    fixture *f = *state;
    size_t *cat_size = calloc(f->shop.n_categories, sizeof *cat_size);
    for (size_t i = 0; i < f->n_items; i++)
        cat_size[f->shop.items[i].cat]++;
    double rec_share = 0, cat_share = 0;
    size_t users = 0;
    result r;
    for (uint32_t c = 0; c < f->shop.n_customers; c++) {
        char id[24];
        synth_customer_id(c, id);
        TU_OK(f->e, rec(f->e, id, 10, NULL, &r));
        if (r.n == 0 || r.reasons[0] != CX_REASON_PERSONAL)
            continue;
        uint32_t f0 = f->shop.fav[2 * c], f1 = f->shop.fav[2 * c + 1];
        size_t in = 0;
        for (size_t j = 0; j < r.n; j++) {
            uint32_t cat = f->shop.items[item_ix(r.items[j])].cat;
            in += cat == f0 || cat == f1;
        }
        rec_share += (double)in / (double)r.n;
        cat_share += (double)(cat_size[f0] + (f1 != f0 ? cat_size[f1] : 0)) /
                     (double)f->n_items;
        users++;
    }
    assert_true(users > 400);
    rec_share /= (double)users;
    cat_share /= (double)users;
    print_message("planted taste: %.3f of recommendations vs %.3f of the "
                  "catalogue\n", rec_share, cat_share);
    assert_true(rec_share > 2 * cat_share);
    free(cat_size);
}

static void test_evaluate_beats_popularity(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = tu_shop_engine(20000, 0.95, 11, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 32));
    double model[CX_METRIC_COUNT], base[CX_METRIC_COUNT];
    cx_eval_opts o;
    cx_eval_opts_init(&o);
    TU_OK(e, cx_evaluate(e, &o, model, base));
    print_message("NDCG@10 model %.4f, popularity %.4f, users %.0f\n",
                  model[CX_METRIC_NDCG], base[CX_METRIC_NDCG],
                  model[CX_METRIC_USERS]);
    assert_true(model[CX_METRIC_USERS] > 0);
    assert_true(model[CX_METRIC_USERS] == base[CX_METRIC_USERS]);
    for (int m = 0; m < CX_METRIC_USERS; m++) {
        assert_true(model[m] >= 0 && model[m] <= 1);
        assert_true(base[m] >= 0 && base[m] <= 1);
    }
    assert_true(model[CX_METRIC_NDCG] > base[CX_METRIC_NDCG]);
    assert_true(model[CX_METRIC_HIT_RATE] >= model[CX_METRIC_PRECISION]);
    /* Evaluation leaves the engine untrained. */
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 0);
    /* baseline may be NULL. */
    TU_OK(e, cx_evaluate(e, NULL, model, NULL));
    cx_close(e);
    synth_free(&shop);
}

/* The split is by time: a customer's newest item is the one whose first
 * signal has the latest timestamp, whatever order the signals arrived in.
 * Each customer here has four viewed items and, newest by time but
 * ingested first, a wishlisted item.  Only the wishlisted item is held out
 * (0.2 of 5 items), and a custom type is not "relevant" by default, so
 * nobody has a relevant held-out item: no customer is scored. */
static void test_evaluate_splits_by_time(void **state)
{
    (void)state;
    enum { NC = 20 };
    const int64_t T = 1767225600;
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    tu_plain(e);
    int wish;
    TU_OK(e, cx_signal_type_define(e, "wishlist", 3, &wish));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 4));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 2));
    for (int order = 0; order <= 1; order++) {
        for (int c = 0; c < NC; c++) {
            char cid[32], late[32];
            snprintf(cid, sizeof cid, "order%d-cust%d", order, c);
            snprintf(late, sizeof late, "late%d", c);
            const char *cu[5] = {cid, cid, cid, cid, cid};
            const char *it[5] = {late, "p1", "p2", "p3", "p4"};
            int ty[5] = {wish, CX_VIEW, CX_VIEW, CX_VIEW, CX_VIEW};
            int64_t ts[5] = {T + 100, T, T + 1, T + 2, T + 3};
            if (order == 1) { /* the same, arriving in time order */
                it[0] = "p1", it[1] = "p2", it[2] = "p3", it[3] = "p4";
                it[4] = late;
                ty[0] = ty[1] = ty[2] = ty[3] = CX_VIEW;
                ty[4] = wish;
                ts[0] = T, ts[1] = T + 1, ts[2] = T + 2, ts[3] = T + 3;
                ts[4] = T + 100;
            }
            TU_OK(e, cx_ingest(e, 5, cu, it, ty, NULL, ts, NULL));
        }
        double m[CX_METRIC_COUNT];
        TU_OK(e, cx_evaluate(e, NULL, m, NULL));
        assert_true(m[CX_METRIC_USERS] == 0);
        /* With the custom type relevant, every customer is scored. */
        cx_eval_opts o;
        cx_eval_opts_init(&o);
        o.relevant |= CX_TYPE_BIT(wish);
        TU_OK(e, cx_evaluate(e, &o, m, NULL));
        assert_true(m[CX_METRIC_USERS] == NC * (order + 1));
    }
    cx_close(e);
}

/* The popularity baseline of cx_evaluate against a reference written from
 * the header's definitions: per customer, the newest test_fraction of the
 * distinct items (by the time of their first signal) is held out;
 * popularity is the number of customers with r > 0 in the training part;
 * each customer gets the k most popular items they have no training pair
 * with (ties to the lower index), scored against the held-out items that
 * have a relevant type and r > 0. */
static void test_evaluate_baseline_reference(void **state)
{
    (void)state;
    synth_shop shop;
    cx_engine *e = tu_shop_engine(5000, -1, 21, &shop);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 8));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 2));
    cx_eval_opts o;
    cx_eval_opts_init(&o);
    o.k = 7;
    o.test_fraction = 0.3;
    double model[CX_METRIC_COUNT], base[CX_METRIC_COUNT];
    TU_OK(e, cx_evaluate(e, &o, model, base));

    size_t nc = shop.n_customers, ni = shop.n_items, ns = shop.n_signals;
    cx__options w;
    cx__options_default(&w);
    /* Per (customer, item): first signal (time, arrival), r, type mask. */
    int64_t *first_ts = malloc(nc * ni * sizeof *first_ts);
    size_t *first_ev = malloc(nc * ni * sizeof *first_ev);
    double *r = calloc(nc * ni, sizeof *r);
    uint32_t *mask = calloc(nc * ni, sizeof *mask);
    uint8_t *held = calloc(nc * ni, 1);
    for (size_t j = 0; j < nc * ni; j++)
        first_ev[j] = SIZE_MAX;
    for (size_t j = 0; j < ns; j++) {
        const synth_signal *g = &shop.signals[j];
        size_t at = (size_t)g->customer * ni + g->item;
        double v = g->type == CX_RATING ? (g->value - 3.0) / 2.0 : g->value;
        r[at] += w.weight[g->type] * v;
        mask[at] |= CX_TYPE_BIT(g->type);
        if (first_ev[at] == SIZE_MAX || g->ts < first_ts[at]) {
            first_ts[at] = g->ts;
            first_ev[at] = j;
        }
    }
    /* The split. */
    size_t *order = malloc(ni * sizeof *order);
    for (size_t c = 0; c < nc; c++) {
        size_t n = 0;
        for (size_t i = 0; i < ni; i++)
            if (first_ev[c * ni + i] != SIZE_MAX)
                order[n++] = i;
        size_t hold = (size_t)floor(o.test_fraction * (double)n + 0.5);
        if (n < o.min_items || n < 2 || hold == 0)
            continue;
        if (hold >= n)
            hold = n - 1;
        /* Selection sort by (time, arrival): n is small. */
        for (size_t a = 0; a < n; a++)
            for (size_t b = a + 1; b < n; b++) {
                size_t x = c * ni + order[a], y = c * ni + order[b];
                if (first_ts[y] < first_ts[x] ||
                    (first_ts[y] == first_ts[x] && first_ev[y] < first_ev[x])) {
                    size_t t = order[a];
                    order[a] = order[b];
                    order[b] = t;
                }
            }
        for (size_t a = n - hold; a < n; a++)
            held[c * ni + order[a]] = 1;
    }
    /* Popularity from the training part, best first, ties to index. */
    double *pop = calloc(ni, sizeof *pop);
    for (size_t c = 0; c < nc; c++)
        for (size_t i = 0; i < ni; i++) {
            size_t at = c * ni + i;
            pop[i] += first_ev[at] != SIZE_MAX && !held[at] && r[at] > 0;
        }
    for (size_t i = 0; i < ni; i++)
        order[i] = i;
    for (size_t a = 0; a < ni; a++)
        for (size_t b = a + 1; b < ni; b++)
            if (pop[order[b]] > pop[order[a]] ||
                (pop[order[b]] == pop[order[a]] && order[b] < order[a])) {
                size_t t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    /* Metrics. */
    double acc[CX_METRIC_COUNT] = {0};
    uint8_t *shown = calloc(ni, 1);
    for (size_t c = 0; c < nc; c++) {
        size_t n_rel = 0;
        for (size_t i = 0; i < ni; i++) {
            size_t at = c * ni + i;
            n_rel += held[at] && (mask[at] & o.relevant) && r[at] > 0;
        }
        if (!n_rel)
            continue;
        double dcg = 0, idcg = 0, ap = 0;
        size_t hits = 0, pos = 0;
        for (size_t j = 0; j < ni && pos < o.k; j++) {
            size_t at = c * ni + order[j];
            if (first_ev[at] != SIZE_MAX && !held[at])
                continue; /* a training pair */
            shown[order[j]] = 1;
            if (held[at] && (mask[at] & o.relevant) && r[at] > 0) {
                hits++;
                dcg += 1 / log2((double)pos + 2);
                ap += (double)hits / (double)(pos + 1);
            }
            pos++;
        }
        size_t ideal = n_rel < o.k ? n_rel : o.k;
        for (size_t j = 0; j < ideal; j++)
            idcg += 1 / log2((double)j + 2);
        acc[CX_METRIC_PRECISION] += (double)hits / (double)o.k;
        acc[CX_METRIC_RECALL] += (double)hits / (double)ideal;
        acc[CX_METRIC_NDCG] += dcg / idcg;
        acc[CX_METRIC_MAP] += ap / (double)ideal;
        acc[CX_METRIC_HIT_RATE] += hits > 0;
        acc[CX_METRIC_USERS] += 1;
    }
    for (int m = 0; m < CX_METRIC_USERS; m++)
        acc[m] /= acc[CX_METRIC_USERS];
    size_t cov = 0;
    for (size_t i = 0; i < ni; i++)
        cov += shown[i];
    acc[CX_METRIC_COVERAGE] = (double)cov / (double)ni;
    assert_true(acc[CX_METRIC_USERS] > 50);
    for (int m = 0; m < CX_METRIC_COUNT; m++) {
        if (fabs(base[m] - acc[m]) > 1e-9)
            print_error("metric %d: %.12g, reference %.12g\n", m, base[m],
                        acc[m]);
        assert_true(fabs(base[m] - acc[m]) <= 1e-9);
    }
    assert_true(model[CX_METRIC_USERS] == acc[CX_METRIC_USERS]);
    free(first_ts), free(first_ev), free(r), free(mask), free(held);
    free(order), free(pop), free(shown);
    cx_close(e);
    synth_free(&shop);
}

/* A dislike that arrives after training applies at once.  (Ingests into
 * the shared engine: runs last.) */
static void test_dislike_after_training(void **state)
{
    fixture *f = *state;
    result r;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exclude = 0;
    TU_OK(f->e, rec(f->e, "c0000009", 5, &o, &r));
    assert_int_equal(r.n, 5);
    const char *top = r.items[0];
    const char *c[] = {"c0000009"};
    const char *it[] = {top};
    int ty[] = {CX_DISLIKE};
    TU_OK(f->e, cx_ingest(f->e, 1, c, it, ty, NULL, NULL, NULL));
    for (int exact = 0; exact <= 1; exact++) {
        o.exact = exact;
        TU_OK(f->e, rec(f->e, "c0000009", 5, &o, &r));
        assert_false(contains(&r, top));
    }
    /* And a view after training is excluded by the default mask. */
    cx_rec_opts_init(&o);
    TU_OK(f->e, rec(f->e, "c0000009", 5, &o, &r));
    const char *next = r.items[0];
    ty[0] = CX_VIEW;
    it[0] = next;
    TU_OK(f->e, cx_ingest(f->e, 1, c, it, ty, NULL, NULL, NULL));
    TU_OK(f->e, rec(f->e, "c0000009", 5, &o, &r));
    assert_false(contains(&r, next));
    /* A custom type with a negative weight is a "never again" too. */
    int hide;
    TU_OK(f->e, cx_signal_type_define(f->e, "hide", -4, &hide));
    o.exclude = 0;
    TU_OK(f->e, rec(f->e, "c0000009", 5, &o, &r));
    const char *third = r.items[0];
    ty[0] = hide;
    it[0] = third;
    TU_OK(f->e, cx_ingest(f->e, 1, c, it, ty, NULL, NULL, NULL));
    TU_OK(f->e, rec(f->e, "c0000009", 5, &o, &r));
    assert_false(contains(&r, third));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_category_filter),
        cmocka_unit_test(test_in_stock_filter),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_deny_list),
        cmocka_unit_test(test_exclude_mask),
        cmocka_unit_test(test_negative_items_never_return),
        cmocka_unit_test(test_k_larger_than_catalogue),
        cmocka_unit_test(test_unknown_customer_gets_popular),
        cmocka_unit_test(test_untrained_engine_gets_popular),
        cmocka_unit_test(test_fast_path_matches_exact),
        cmocka_unit_test(test_batch_matches_single),
        cmocka_unit_test(test_odd_factor_counts),
        cmocka_unit_test(test_long_lists),
        cmocka_unit_test(test_similar_items),
        cmocka_unit_test(test_similar_from_lists),
        cmocka_unit_test(test_planted_taste),
        cmocka_unit_test(test_evaluate_beats_popularity),
        cmocka_unit_test(test_evaluate_splits_by_time),
        cmocka_unit_test(test_evaluate_baseline_reference),
        /* These change the shared engine. */
        cmocka_unit_test(test_everything_filtered_out),
        cmocka_unit_test(test_similar_items_without_vector),
        cmocka_unit_test(test_dislike_after_training),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
