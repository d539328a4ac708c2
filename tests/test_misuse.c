/* test_misuse.c -- every public function against bad arguments: NULL
 * engines and out-pointers, bad ids, NaN and infinities, bad k, empty and
 * untrained engines, bad options.  Each call must return its documented
 * status, leave a message in cx_errmsg, change nothing, and leave the
 * engine working. */
#include "testutil.h"

#include <limits.h>

static char long_id[CX_MAX_ID_LEN + 2];  /* CX_MAX_ID_LEN + 1 bytes */
static char max_id[CX_MAX_ID_LEN + 1];   /* exactly CX_MAX_ID_LEN bytes */


static void init_ids(void)
{
    memset(long_id, 'x', CX_MAX_ID_LEN + 1);
    long_id[CX_MAX_ID_LEN + 1] = 0;
    memset(max_id, 'm', CX_MAX_ID_LEN);
    max_id[CX_MAX_ID_LEN] = 0;
}

/* A tiny trained engine: 4 customers, 5 items. */
static cx_engine *small_engine(int train)
{
    const char *c[] = {"a", "a", "b", "b", "c", "c", "d"};
    const char *i[] = {"x", "y", "y", "z", "z", "w", "v"};
    int t[] = {CX_VIEW, CX_PURCHASE, CX_VIEW, CX_CLICK, CX_ADD_TO_CART,
               CX_VIEW, CX_VIEW};
    cx_engine *e = tu_engine(7, c, i, t, NULL, NULL);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 4));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 2));
    if (train)
        TU_OK(e, cx_train(e, NULL, NULL));
    return e;
}

/* The engine still ingests, trains and serves. */
static void check_works(cx_engine *e)
{
    int64_t before = tu_stat(e, CX_STAT_SIGNALS);
    const char *c[] = {"works-1", "works-1", "works-2"};
    const char *i[] = {"works-x", "works-y", "works-x"};
    int t[] = {CX_VIEW, CX_PURCHASE, CX_CLICK};
    TU_OK(e, cx_ingest(e, 3, c, i, t, NULL, NULL, NULL));
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), before + 3);
    TU_OK(e, cx_train(e, NULL, NULL));
    const char *items[4];
    size_t n = 0;
    TU_OK(e, cx_recommend(e, "works-2", 4, NULL, items, NULL, NULL, &n));
    assert_true(n > 0);
}

/* ===================================================================== */
/* Functions without an engine                                           */
/* ===================================================================== */

static void test_strerror(void **state)
{
    (void)state;
    const char *unknown = cx_strerror(1);
    assert_non_null(unknown);
    assert_true(strlen(unknown) > 0);
    const char *seen[15];
    for (int code = 0; code >= CX_EREADONLY; code--) {
        const char *s = cx_strerror(code);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, unknown);
        for (int j = 0; j < -code; j++)
            assert_string_not_equal(s, seen[j]);
        seen[-code] = s;
    }
    assert_string_equal(cx_strerror(CX_OK), "ok");
    const int bad[] = {1, 2, CX_EREADONLY - 1, -100, INT_MIN, INT_MAX};
    for (size_t j = 0; j < sizeof bad / sizeof *bad; j++)
        assert_string_equal(cx_strerror(bad[j]), unknown);
}

static void test_version(void **state)
{
    (void)state;
    assert_string_equal(cx_version(), CX_VERSION_STRING);
    assert_int_equal(cx_version_number(), CX_VERSION_NUMBER);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", CX_VERSION_MAJOR, CX_VERSION_MINOR,
             CX_VERSION_PATCH);
    assert_string_equal(buf, CX_VERSION_STRING);
}

static void test_open_close(void **state)
{
    (void)state;
    cx_engine *e = (cx_engine *)&e; /* must be reset to NULL */
    FAILS(NULL, cx_open(NULL, NULL, 0), CX_EINVAL);
    FAILS(NULL, cx_open(&e, "/proc/version", 0), CX_EIO); /* a file */
    assert_null(e);
    e = (cx_engine *)&e;
    FAILS(NULL, cx_open(&e, "", 0), CX_EINVAL);
    assert_null(e);
    e = (cx_engine *)&e;
    FAILS(NULL, cx_open(&e, NULL, 1), CX_EINVAL);
    assert_null(e);
    /* CX_OPEN_SIGNALS only with CX_OPEN_READONLY, said in words. */
    char dir[256];
    tu_mkdtemp(dir, sizeof dir, "misuse_sig");
    e = (cx_engine *)&e;
    FAILS(NULL, cx_open(&e, dir, CX_OPEN_SIGNALS), CX_EINVAL);
    assert_null(e);
    assert_non_null(strstr(cx_errmsg(NULL), "CX_OPEN_SIGNALS"));
    e = (cx_engine *)&e;
    FAILS(NULL, cx_open(&e, NULL, CX_OPEN_SIGNALS), CX_EINVAL);
    assert_null(e);
    FAILS(NULL, cx_open(&e, NULL, CX_OPEN_READONLY | CX_OPEN_SIGNALS),
          CX_EINVAL);
    FAILS(NULL, cx_open(&e, dir, 8), CX_EINVAL);
    assert_null(e);
    tu_rmdir(dir);
    cx_close(NULL);
    TU_OK(NULL, cx_open(&e, NULL, 0));
    assert_non_null(e);
    /* No failure recorded on a new engine. */
    assert_string_equal(cx_errmsg(e), "");
    /* Options structs: NULL is a no-op, defaults as documented. */
    cx_rec_opts_init(NULL);
    cx_eval_opts_init(NULL);
    cx_rec_opts ro;
    cx_rec_opts_init(&ro);
    assert_int_equal(ro.size, sizeof ro);
    assert_int_equal(ro.exclude, CX_EXCLUDE_SEEN);
    assert_int_equal(ro.in_stock_only, 1);
    assert_int_equal(ro.exact, 0);
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    assert_int_equal(eo.size, sizeof eo);
    assert_int_equal(eo.k, 10);
    check_works(e);
    cx_close(e);
}

/* ===================================================================== */
/* Options                                                               */
/* ===================================================================== */

typedef struct opt_case {
    int key;
    double lo, hi, def; /* accepted bounds, default */
    int is_int;
} opt_case;

static const opt_case opts[] = {
    {CX_OPT_FACTORS, 1, 1024, 64, 1},
    {CX_OPT_ITERATIONS, 1, 1000, 15, 1},
    {CX_OPT_REGULARIZATION, 0, 1e6, 0.05, 0},
    {CX_OPT_SOLVER, 0, 1, CX_SOLVER_CG, 1},
    {CX_OPT_CG_STEPS, 1, 64, 3, 1},
    {CX_OPT_THREADS, 0, 256, 0, 1},
    {CX_OPT_SEED, 0, 9007199254740992.0, 42, 1},
    {CX_OPT_HALF_LIFE, 0, 1e12, 0, 0},
    {CX_OPT_CANDIDATES, 1, 1000, 8, 1},
    {CX_OPT_FOLD_IN, 0, 2, CX_FOLD_LAZY, 1},
    {CX_OPT_TRENDING_HALF_LIFE, 1, 1e12, 86400, 0},
    {CX_OPT_POPULAR_HALF_LIFE, 0, 1e12, 30 * 86400, 0},
    {CX_OPT_LAPSED_AFTER, 1, 1e12, 60 * 86400, 0},
    {CX_OPT_LOYAL_PURCHASES, 2, 1000, 3, 1},
    {CX_OPT_SYNC, 0, 2, CX_SYNC_FULL, 1},
    {CX_OPT_SYNC_INTERVAL, 1, 60000, 1000, 1},
    {CX_OPT_REFRESH_INTERVAL, 0, 3600000, 1000, 1},
    {CX_OPT_BLEND_ALS, 0, 1000, 1, 0},
    {CX_OPT_BLEND_POPULAR, 0, 1000, 0.2, 0},
    {CX_OPT_BLEND_REPEAT, 0, 1000, 1, 0},
    {CX_OPT_BLEND_COBOUGHT, 0, 1000, 0.1, 0},
    {CX_OPT_CONSUMABLE, 0, 1, 0.2, 0},
};

static void test_options(void **state)
{
    (void)state;
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    double v;
    FAILS(NULL, cx_set_option(NULL, CX_OPT_FACTORS, 8), CX_EINVAL);
    FAILS(NULL, cx_get_option(NULL, CX_OPT_FACTORS, &v), CX_EINVAL);
    FAILS(e, cx_get_option(e, CX_OPT_FACTORS, NULL), CX_EINVAL);
    const int unknown[] = {0, -1, 25, 999, CX_OPT_WEIGHT - 1,
                           CX_OPT_WEIGHT + CX_MAX_SIGNAL_TYPES, INT_MAX};
    for (size_t j = 0; j < sizeof unknown / sizeof *unknown; j++) {
        FAILS(e, cx_set_option(e, unknown[j], 1), CX_EINVAL);
        FAILS(e, cx_get_option(e, unknown[j], &v), CX_EINVAL);
    }
    for (size_t j = 0; j < sizeof opts / sizeof *opts; j++) {
        const opt_case *c = &opts[j];
        TU_OK(e, cx_get_option(e, c->key, &v));
        assert_true(v == c->def);
        FAILS(e, cx_set_option(e, c->key, NAN), CX_EINVAL);
        FAILS(e, cx_set_option(e, c->key, INFINITY), CX_ERANGE);
        FAILS(e, cx_set_option(e, c->key, -INFINITY), CX_ERANGE);
        FAILS(e, cx_set_option(e, c->key, c->lo - 1), CX_ERANGE);
        FAILS(e, cx_set_option(e, c->key, c->hi + (c->hi > 1e9 ? 2 : 1)),
              CX_ERANGE);
        if (c->is_int)
            FAILS(e, cx_set_option(e, c->key, c->lo + 0.5), CX_EINVAL);
        /* Failures change nothing. */
        TU_OK(e, cx_get_option(e, c->key, &v));
        assert_true(v == c->def);
        /* Both bounds are accepted. */
        TU_OK(e, cx_set_option(e, c->key, c->lo));
        TU_OK(e, cx_get_option(e, c->key, &v));
        assert_true(v == c->lo);
        TU_OK(e, cx_set_option(e, c->key, c->hi));
        TU_OK(e, cx_get_option(e, c->key, &v));
        assert_true(v == c->hi);
        TU_OK(e, cx_set_option(e, c->key, c->def));
    }
    /* alpha and init_scale must be > 0. */
    FAILS(e, cx_set_option(e, CX_OPT_ALPHA, 0), CX_ERANGE);
    FAILS(e, cx_set_option(e, CX_OPT_ALPHA, -1), CX_ERANGE);
    FAILS(e, cx_set_option(e, CX_OPT_INIT_SCALE, 0), CX_ERANGE);
    FAILS(e, cx_set_option(e, CX_OPT_INIT_SCALE, NAN), CX_EINVAL);
    TU_OK(e, cx_get_option(e, CX_OPT_ALPHA, &v));
    assert_true(v == 2.0);
    TU_OK(e, cx_get_option(e, CX_OPT_INIT_SCALE, &v));
    assert_true(v == 0.01);
    /* Weights: finite, |w| <= 1e6, any of the 32 types. */
    FAILS(e, cx_set_option(e, CX_OPT_WEIGHT + CX_VIEW, NAN), CX_EINVAL);
    FAILS(e, cx_set_option(e, CX_OPT_WEIGHT + CX_VIEW, INFINITY), CX_ERANGE);
    FAILS(e, cx_set_option(e, CX_OPT_WEIGHT + CX_VIEW, 2e6), CX_ERANGE);
    TU_OK(e, cx_get_option(e, CX_OPT_WEIGHT + CX_VIEW, &v));
    assert_true(v == 1);
    TU_OK(e, cx_get_option(e, CX_OPT_WEIGHT + CX_RETURN, &v));
    assert_true(v == -15);
    TU_OK(e, cx_set_option(e, CX_OPT_WEIGHT + 31, -1e6));
    TU_OK(e, cx_get_option(e, CX_OPT_WEIGHT + 31, &v));
    assert_true(v == -1e6);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 4));
    check_works(e);
    cx_close(e);
}

/* ===================================================================== */
/* Catalogue                                                             */
/* ===================================================================== */

static void test_items_upsert(void **state)
{
    (void)state;
    init_ids();
    cx_engine *e = small_engine(0);
    int64_t items = tu_stat(e, CX_STAT_ITEMS);
    const char *ids[] = {"new-1", "new-2", "new-3"};
    const char *cats[] = {"c", "c", "c"};
    double prices[] = {1, 2, 3};
    int stock[] = {1, 0, 1};
    int64_t created[] = {1, 2, 3};
    const char *tags[] = {"a", "b,c", ""};
    FAILS(NULL, cx_items_upsert(NULL, 3, ids, cats, prices, stock, created,
                                tags),
          CX_EINVAL);
    FAILS(e, cx_items_upsert(e, 3, NULL, cats, prices, stock, created, tags),
          CX_EINVAL);
    TU_OK(e, cx_items_upsert(e, 0, NULL, NULL, NULL, NULL, NULL, NULL));
    /* Row 1 bad in each column in turn: nothing applied. */
    const char *bad_ids[][3] = {{"new-1", NULL, "new-3"},
                                {"new-1", "", "new-3"},
                                {"new-1", long_id, "new-3"}};
    for (size_t j = 0; j < 3; j++)
        FAILS(e, cx_items_upsert(e, 3, bad_ids[j], cats, prices, stock,
                                 created, tags),
              CX_EINVAL);
    const char *bad_cats[][3] = {{"c", NULL, "c"}, {"c", long_id, "c"}};
    for (size_t j = 0; j < 2; j++)
        FAILS(e, cx_items_upsert(e, 3, ids, bad_cats[j], prices, stock,
                                 created, tags),
              CX_EINVAL);
    const double bad_prices[] = {NAN, INFINITY, -INFINITY, -0.01};
    for (size_t j = 0; j < 4; j++) {
        double p[] = {1, bad_prices[j], 3};
        FAILS(e, cx_items_upsert(e, 3, ids, cats, p, stock, created, tags),
              CX_EINVAL);
        assert_non_null(strstr(cx_errmsg(e), "row 1"));
    }
    const int64_t bad_created[] = {-1, ((int64_t)1 << 40) + 1};
    for (size_t j = 0; j < 2; j++) {
        int64_t c[] = {1, bad_created[j], 3};
        FAILS(e, cx_items_upsert(e, 3, ids, cats, prices, stock, c, tags),
              CX_EINVAL);
    }
    const char *bad_tags[] = {"a", "1,2,3,4,5,6,7,8,9", "c"};
    FAILS(e, cx_items_upsert(e, 3, ids, cats, prices, stock, created,
                             bad_tags),
          CX_EINVAL);
    assert_int_equal(tu_stat(e, CX_STAT_ITEMS), items);
    assert_int_equal(cx_item_get(e, "new-1", NULL, NULL, NULL, NULL),
                     CX_ENOTFOUND);
    /* The limits themselves are accepted. */
    const char *ok_tags[] = {"1,2,3,4,5,6,7,8", NULL, ""};
    const char *ok_ids[] = {"new-1", max_id, "new-3"};
    double ok_prices[] = {0, 1e9, 3};
    TU_OK(e, cx_items_upsert(e, 3, ok_ids, cats, ok_prices, stock, created,
                             ok_tags));
    assert_int_equal(tu_stat(e, CX_STAT_ITEMS), items + 3);
    double price;
    int in_stock;
    int64_t at;
    const char *cat;
    TU_OK(e, cx_item_get(e, max_id, &cat, &price, &in_stock, &at));
    assert_string_equal(cat, "c");
    assert_true(price == 1e9);
    assert_int_equal(in_stock, 0);
    assert_int_equal(at, 2);
    check_works(e);
    cx_close(e);
}

static void test_item_remove_get(void **state)
{
    (void)state;
    init_ids();
    cx_engine *e = small_engine(1);
    FAILS(NULL, cx_item_remove(NULL, "x"), CX_EINVAL);
    FAILS(e, cx_item_remove(e, NULL), CX_EINVAL);
    FAILS(e, cx_item_remove(e, ""), CX_EINVAL);
    FAILS(e, cx_item_remove(e, long_id), CX_EINVAL);
    FAILS(e, cx_item_remove(e, "no-such-item"), CX_ENOTFOUND);
    FAILS(NULL, cx_item_get(NULL, "x", NULL, NULL, NULL, NULL), CX_EINVAL);
    FAILS(e, cx_item_get(e, NULL, NULL, NULL, NULL, NULL), CX_EINVAL);
    FAILS(e, cx_item_get(e, "", NULL, NULL, NULL, NULL), CX_EINVAL);
    FAILS(e, cx_item_get(e, long_id, NULL, NULL, NULL, NULL), CX_EINVAL);
    FAILS(e, cx_item_get(e, "no-such-item", NULL, NULL, NULL, NULL),
          CX_ENOTFOUND);
    /* Every out-pointer may be NULL; items from signals have defaults. */
    TU_OK(e, cx_item_get(e, "x", NULL, NULL, NULL, NULL));
    const char *cat = NULL;
    double price = -1;
    int stock = -1;
    int64_t at = -1;
    TU_OK(e, cx_item_get(e, "x", &cat, &price, &stock, &at));
    assert_string_equal(cat, "");
    assert_true(price == 0);
    assert_int_equal(stock, 1);
    assert_int_equal(at, 0);
    TU_OK(e, cx_item_remove(e, "x"));
    FAILS(e, cx_item_get(e, "x", NULL, NULL, NULL, NULL), CX_ENOTFOUND);
    TU_OK(e, cx_item_remove(e, "x")); /* removing twice is harmless */
    check_works(e);
    cx_close(e);
}

/* ===================================================================== */
/* Signal types                                                          */
/* ===================================================================== */

static void test_signal_types(void **state)
{
    (void)state;
    cx_engine *e = small_engine(0);
    int t = -5;
    char name65[66];
    memset(name65, 'n', 65);
    name65[65] = 0;
    FAILS(NULL, cx_signal_type_define(NULL, "w", 1, &t), CX_EINVAL);
    FAILS(e, cx_signal_type_define(e, NULL, 1, &t), CX_EINVAL);
    FAILS(e, cx_signal_type_define(e, "w", 1, NULL), CX_EINVAL);
    FAILS(e, cx_signal_type_define(e, "", 1, &t), CX_EINVAL);
    FAILS(e, cx_signal_type_define(e, name65, 1, &t), CX_EINVAL);
    FAILS(e, cx_signal_type_define(e, "w", NAN, &t), CX_EINVAL);
    FAILS(e, cx_signal_type_define(e, "w", INFINITY, &t), CX_ERANGE);
    FAILS(e, cx_signal_type_define(e, "w", -2e6, &t), CX_ERANGE);
    assert_int_equal(t, -5);
    FAILS(e, cx_signal_type_lookup(e, "w", &t), CX_ENOTFOUND);
    FAILS(NULL, cx_signal_type_lookup(NULL, "view", &t), CX_EINVAL);
    FAILS(e, cx_signal_type_lookup(e, NULL, &t), CX_EINVAL);
    FAILS(e, cx_signal_type_lookup(e, "view", NULL), CX_EINVAL);
    FAILS(e, cx_signal_type_lookup(e, "", &t), CX_ENOTFOUND);
    TU_OK(e, cx_signal_type_lookup(e, "add_to_cart", &t));
    assert_int_equal(t, CX_ADD_TO_CART);
    /* Names: built-ins need no engine; gaps and bounds give NULL. */
    assert_string_equal(cx_signal_type_name(NULL, CX_VIEW), "view");
    assert_string_equal(cx_signal_type_name(e, CX_DISLIKE), "dislike");
    assert_null(cx_signal_type_name(e, -1));
    assert_null(cx_signal_type_name(e, 7));
    assert_null(cx_signal_type_name(e, CX_SIGNAL_CUSTOM));
    assert_null(cx_signal_type_name(e, CX_MAX_SIGNAL_TYPES));
    assert_null(cx_signal_type_name(NULL, CX_SIGNAL_CUSTOM));
    /* Fill every custom slot, then one more. */
    char name[16];
    for (int j = CX_SIGNAL_CUSTOM; j < CX_MAX_SIGNAL_TYPES; j++) {
        snprintf(name, sizeof name, "custom%d", j);
        TU_OK(e, cx_signal_type_define(e, name, j, &t));
        assert_int_equal(t, j);
        assert_string_equal(cx_signal_type_name(e, j), name);
    }
    FAILS(e, cx_signal_type_define(e, "one-too-many", 1, &t), CX_ELIMIT);
    /* Redefining returns the number and updates the weight. */
    TU_OK(e, cx_signal_type_define(e, "custom9", -3, &t));
    assert_int_equal(t, 9);
    double w;
    TU_OK(e, cx_get_option(e, CX_OPT_WEIGHT + 9, &w));
    assert_true(w == -3);
    TU_OK(e, cx_signal_type_define(e, "view", 0.5, &t));
    assert_int_equal(t, CX_VIEW);
    TU_OK(e, cx_get_option(e, CX_OPT_WEIGHT + CX_VIEW, &w));
    assert_true(w == 0.5);
    check_works(e);
    cx_close(e);
}

/* ===================================================================== */
/* Ingest                                                                */
/* ===================================================================== */

typedef struct row3 {
    const char *c[3], *i[3], *ch[3];
    int t[3];
    float v[3];
    int64_t ts[3];
} row3;

static row3 good_rows(void)
{
    row3 r = {{"p", "q", "r"}, {"x", "new-item", "z"}, {"web", "app", "web"},
              {CX_VIEW, CX_PURCHASE, CX_RATING}, {1, 2, 4},
              {1700000000, 1700000001, 1700000002}};
    return r;
}

static void expect_nothing_applied(cx_engine *e, const int64_t *before)
{
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), before[0]);
    assert_int_equal(tu_stat(e, CX_STAT_CUSTOMERS), before[1]);
    assert_int_equal(tu_stat(e, CX_STAT_ITEMS), before[2]);
}

static void test_ingest_bad_rows(void **state)
{
    (void)state;
    init_ids();
    cx_engine *e = small_engine(1);
    int64_t before[3] = {tu_stat(e, CX_STAT_SIGNALS),
                         tu_stat(e, CX_STAT_CUSTOMERS),
                         tu_stat(e, CX_STAT_ITEMS)};
    row3 r = good_rows();
    FAILS(NULL, cx_ingest(NULL, 3, r.c, r.i, r.t, r.v, r.ts, r.ch),
          CX_EINVAL);
    FAILS(e, cx_ingest(e, 3, NULL, r.i, r.t, r.v, r.ts, r.ch), CX_EINVAL);
    FAILS(e, cx_ingest(e, 3, r.c, NULL, r.t, r.v, r.ts, r.ch), CX_EINVAL);
    FAILS(e, cx_ingest(e, 3, r.c, r.i, NULL, r.v, r.ts, r.ch), CX_EINVAL);
    TU_OK(e, cx_ingest(e, 0, NULL, NULL, NULL, NULL, NULL, NULL));
    expect_nothing_applied(e, before);

    /* One bad field in the middle row; rows 0 and 2 are fine and add a
     * new customer and item, which must not appear either. */
    for (int v = 0; v < 23; v++) {
        r = good_rows();
        switch (v) {
        case 0: r.c[1] = NULL; break;
        case 1: r.c[1] = ""; break;
        case 2: r.c[1] = long_id; break;
        case 3: r.i[1] = NULL; break;
        case 4: r.i[1] = ""; break;
        case 5: r.i[1] = long_id; break;
        case 6: r.t[1] = -1; break;
        case 7: r.t[1] = 7; break;                  /* gap after dislike */
        case 8: r.t[1] = CX_SIGNAL_CUSTOM + 3; break; /* undefined */
        case 9: r.t[1] = CX_MAX_SIGNAL_TYPES; break;
        case 10: r.v[1] = NAN; break;
        case 11: r.v[1] = INFINITY; break;
        case 12: r.v[1] = -INFINITY; break;
        case 13: r.v[1] = 0; break;                 /* counts are > 0 */
        case 14: r.v[1] = -1; break;
        case 15: r.v[1] = 2e6f; break;
        case 16: r.t[1] = CX_RATING; r.v[1] = 5.5f; break;
        case 17: r.t[1] = CX_RATING; r.v[1] = -0.5f; break;
        case 18: r.ts[1] = -1; break;
        case 19: r.ts[1] = ((int64_t)1 << 40) + 1; break;
        case 20: r.ch[1] = ""; break;
        case 21: r.ch[1] = long_id; break;
        case 22: r.ch[1] = "0123456789012345678901234567890123456789012345"
                           "678901234567890123456789"; break; /* 70 bytes */
        }
        int rc = cx_ingest(e, 3, r.c, r.i, r.t, r.v, r.ts, r.ch);
        if (rc != CX_EINVAL)
            print_error("variant %d -> %d\n", v, rc);
        assert_int_equal(rc, CX_EINVAL);
        assert_non_null(strstr(cx_errmsg(e), "row 1"));
        expect_nothing_applied(e, before);
    }
    /* The edges are accepted: ratings 0 and 5, a value of 1e6, a 64-byte
     * channel, an id of exactly CX_MAX_ID_LEN bytes. */
    r = good_rows();
    r.t[0] = CX_RATING;
    r.v[0] = 0;
    r.v[2] = 5;
    r.v[1] = 1e6f;
    r.c[1] = max_id;
    r.ch[1] = "0123456789012345678901234567890123456789012345678901234567890123";
    TU_OK(e, cx_ingest(e, 3, r.c, r.i, r.t, r.v, r.ts, r.ch));
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), before[0] + 3);
    check_works(e);
    cx_close(e);
}

/* Channels: a batch may repeat a new channel any number of times; more
 * than 255 distinct channels in all is CX_ELIMIT, and nothing applies. */
static void test_ingest_channel_limit(void **state)
{
    (void)state;
    cx_engine *e = small_engine(0);
    enum { N = 600 };
    static const char *c[N], *i[N], *ch[N];
    static int t[N];
    static char names[N][16];
    for (int j = 0; j < N; j++) {
        c[j] = "chan-cust";
        i[j] = "chan-item";
        ch[j] = "app";
        t[j] = CX_VIEW;
    }
    int64_t sig = tu_stat(e, CX_STAT_SIGNALS);
    TU_OK(e, cx_ingest(e, N, c, i, t, NULL, NULL, ch));
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), sig + N);
    /* "web" and "app" exist: 253 more fit, 254 do not. */
    for (int j = 0; j < N; j++) {
        snprintf(names[j], sizeof names[j], "ch%d", j % 254);
        ch[j] = names[j];
    }
    int64_t before[3] = {tu_stat(e, CX_STAT_SIGNALS),
                         tu_stat(e, CX_STAT_CUSTOMERS),
                         tu_stat(e, CX_STAT_ITEMS)};
    FAILS(e, cx_ingest(e, N, c, i, t, NULL, NULL, ch), CX_ELIMIT);
    expect_nothing_applied(e, before);
    for (int j = 0; j < N; j++) {
        snprintf(names[j], sizeof names[j], "ch%d", j % 253);
        ch[j] = names[j];
    }
    TU_OK(e, cx_ingest(e, N, c, i, t, NULL, NULL, ch));
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), before[0] + N);
    const char *one[] = {"one-more"};
    FAILS(e, cx_ingest(e, 1, c, i, t, NULL, NULL, one), CX_ELIMIT);
    check_works(e);
    cx_close(e);
}

/* ===================================================================== */
/* Training and serving                                                  */
/* ===================================================================== */

static void test_train_misuse(void **state)
{
    (void)state;
    FAILS(NULL, cx_train(NULL, NULL, NULL), CX_EINVAL);
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    FAILS(e, cx_train(e, NULL, NULL), CX_EINVAL);
    const char *ids[] = {"only-in-catalogue"};
    TU_OK(e, cx_items_upsert(e, 1, ids, NULL, NULL, NULL, NULL, NULL));
    FAILS(e, cx_train(e, NULL, NULL), CX_EINVAL);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 0);
    check_works(e);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 1);
    cx_close(e);
}

static void recommend_misuse(cx_engine *e)
{
    const char *items[8];
    float scores[8];
    int reasons[8];
    size_t n = 77;
    cx_rec_opts o;
    FAILS(NULL, cx_recommend(NULL, "a", 3, NULL, items, scores, reasons, &n),
          CX_EINVAL);
    FAILS(e, cx_recommend(e, "a", 3, NULL, NULL, scores, reasons, &n),
          CX_EINVAL);
    FAILS(e, cx_recommend(e, "a", 3, NULL, items, scores, reasons, NULL),
          CX_EINVAL);
    const char *bad_ids[] = {NULL, "", long_id};
    for (size_t j = 0; j < 3; j++) {
        n = 77;
        FAILS(e, cx_recommend(e, bad_ids[j], 3, NULL, items, scores, reasons,
                              &n),
              CX_EINVAL);
        assert_int_equal(n, 0);
    }
    const size_t bad_k[] = {0, (size_t)CX_MAX_K + 1, SIZE_MAX};
    for (size_t j = 0; j < 3; j++) {
        n = 77;
        FAILS(e, cx_recommend(e, "a", bad_k[j], NULL, items, scores, reasons,
                              &n),
              CX_EINVAL);
        assert_int_equal(n, 0);
    }
    /* Options not initialised. */
    memset(&o, 0, sizeof o);
    FAILS(e, cx_recommend(e, "a", 3, &o, items, scores, reasons, &n),
          CX_EINVAL);
    cx_rec_opts_init(&o);
    o.n_allow = 2;
    FAILS(e, cx_recommend(e, "a", 3, &o, items, scores, reasons, &n),
          CX_EINVAL);
    cx_rec_opts_init(&o);
    o.n_deny = 1;
    FAILS(e, cx_recommend(e, "a", 3, &o, items, scores, reasons, &n),
          CX_EINVAL);
    const char *deny[] = {"x", NULL};
    o.deny = deny;
    o.n_deny = 2;
    FAILS(e, cx_recommend(e, "a", 3, &o, items, scores, reasons, &n),
          CX_EINVAL);
    deny[1] = long_id;
    FAILS(e, cx_recommend(e, "a", 3, &o, items, scores, reasons, &n),
          CX_EINVAL);
    cx_rec_opts_init(&o);
    o.category = long_id;
    FAILS(e, cx_recommend(e, "a", 3, &o, items, scores, reasons, &n),
          CX_EINVAL);
    o.category = "no-such-category";
    FAILS(e, cx_recommend(e, "a", 3, &o, items, scores, reasons, &n),
          CX_ENOTFOUND);
    /* Fine: scores and reasons may be NULL, k may be huge, "" is the
     * default category. */
    TU_OK(e, cx_recommend(e, "a", 3, NULL, items, NULL, NULL, &n));
    TU_OK(e, cx_recommend(e, "a", CX_MAX_K, NULL, items, NULL, NULL, &n));
    assert_true(n <= 8);
    o.category = "";
    TU_OK(e, cx_recommend(e, "someone-new", 3, &o, items, scores, reasons,
                          &n));
}

static void test_recommend_misuse(void **state)
{
    (void)state;
    init_ids();
    for (int trained = 0; trained <= 1; trained++) {
        cx_engine *e = small_engine(trained);
        recommend_misuse(e);
        check_works(e);
        cx_close(e);
    }
    /* An empty engine recommends nothing, without an error. */
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    const char *items[4];
    size_t n = 9;
    TU_OK(e, cx_recommend(e, "anyone", 4, NULL, items, NULL, NULL, &n));
    assert_int_equal(n, 0);
    recommend_misuse(e);
    check_works(e);
    cx_close(e);
}

static void test_batch_misuse(void **state)
{
    (void)state;
    init_ids();
    for (int trained = 0; trained <= 1; trained++) {
        cx_engine *e = small_engine(trained);
        const char *custs[] = {"a", "b", "nobody"};
        const char *items[3 * 4];
        size_t counts[3] = {7, 7, 7};
        FAILS(NULL, cx_recommend_batch(NULL, 3, custs, 4, NULL, items, NULL,
                                       NULL, counts),
              CX_EINVAL);
        FAILS(e, cx_recommend_batch(e, 3, NULL, 4, NULL, items, NULL, NULL,
                                    counts),
              CX_EINVAL);
        FAILS(e, cx_recommend_batch(e, 3, custs, 4, NULL, NULL, NULL, NULL,
                                    counts),
              CX_EINVAL);
        FAILS(e, cx_recommend_batch(e, 3, custs, 4, NULL, items, NULL, NULL,
                                    NULL),
              CX_EINVAL);
        FAILS(e, cx_recommend_batch(e, 3, custs, 0, NULL, items, NULL, NULL,
                                    counts),
              CX_EINVAL);
        FAILS(e, cx_recommend_batch(e, 3, custs, (size_t)CX_MAX_K + 1, NULL,
                                    items, NULL, NULL, counts),
              CX_EINVAL);
        const char *bad[][3] = {{"a", NULL, "b"}, {"a", "", "b"},
                                {"a", long_id, "b"}};
        for (size_t j = 0; j < 3; j++)
            FAILS(e, cx_recommend_batch(e, 3, bad[j], 4, NULL, items, NULL,
                                        NULL, counts),
                  CX_EINVAL);
        cx_rec_opts o;
        memset(&o, 0, sizeof o);
        FAILS(e, cx_recommend_batch(e, 3, custs, 4, &o, items, NULL, NULL,
                                    counts),
              CX_EINVAL);
        cx_rec_opts_init(&o);
        o.category = "no-such-category";
        FAILS(e, cx_recommend_batch(e, 3, custs, 4, &o, items, NULL, NULL,
                                    counts),
              CX_ENOTFOUND);
        TU_OK(e, cx_recommend_batch(e, 0, custs, 4, NULL, items, NULL, NULL,
                                    counts));
        TU_OK(e, cx_recommend_batch(e, 3, custs, 4, NULL, items, NULL, NULL,
                                    counts));
        for (size_t j = 0; j < 3; j++)
            assert_true(counts[j] <= 4);
        check_works(e);
        cx_close(e);
    }
}

static void test_similar_misuse(void **state)
{
    (void)state;
    init_ids();
    const char *items[4];
    size_t n = 5;
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    FAILS(e, cx_similar_items(e, "x", 4, NULL, items, NULL, NULL, &n),
          CX_ENOTFOUND);
    cx_close(e);
    e = small_engine(0);
    FAILS(e, cx_similar_items(e, "x", 4, NULL, items, NULL, NULL, &n),
          CX_ENOTTRAINED);
    cx_close(e);
    e = small_engine(1);
    FAILS(NULL, cx_similar_items(NULL, "x", 4, NULL, items, NULL, NULL, &n),
          CX_EINVAL);
    FAILS(e, cx_similar_items(e, "x", 4, NULL, NULL, NULL, NULL, &n),
          CX_EINVAL);
    FAILS(e, cx_similar_items(e, "x", 4, NULL, items, NULL, NULL, NULL),
          CX_EINVAL);
    const char *bad[] = {NULL, "", long_id};
    for (size_t j = 0; j < 3; j++)
        FAILS(e, cx_similar_items(e, bad[j], 4, NULL, items, NULL, NULL, &n),
              CX_EINVAL);
    FAILS(e, cx_similar_items(e, "x", 0, NULL, items, NULL, NULL, &n),
          CX_EINVAL);
    FAILS(e, cx_similar_items(e, "x", (size_t)CX_MAX_K + 1, NULL, items,
                              NULL, NULL, &n),
          CX_EINVAL);
    FAILS(e, cx_similar_items(e, "no-such-item", 4, NULL, items, NULL, NULL,
                              &n),
          CX_ENOTFOUND);
    assert_int_equal(n, 0);
    TU_OK(e, cx_similar_items(e, "x", 4, NULL, items, NULL, NULL, &n));
    assert_true(n > 0 && n <= 4);
    for (size_t j = 0; j < n; j++)
        assert_string_not_equal(items[j], "x");
    check_works(e);
    cx_close(e);
}

/* ===================================================================== */
/* Introspection                                                         */
/* ===================================================================== */

static void test_introspection_misuse(void **state)
{
    (void)state;
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    int64_t v;
    const float *data;
    size_t rows, cols;
    /* An empty engine: zeros, some memory. */
    for (int key = CX_STAT_CUSTOMERS; key <= CX_STAT_MODEL_ITEMS; key++)
        assert_int_equal(tu_stat(e, key), 0);
    assert_true(tu_stat(e, CX_STAT_MEMORY) > 0);
    FAILS(e, cx_factors(e, 0, &data, &rows, &cols), CX_ENOTTRAINED);
    assert_null(cx_customer_id(e, 0));
    assert_null(cx_item_id(e, 0));
    cx_close(e);

    e = small_engine(1);
    FAILS(NULL, cx_stat(NULL, CX_STAT_ITEMS, &v), CX_EINVAL);
    FAILS(e, cx_stat(e, CX_STAT_ITEMS, NULL), CX_EINVAL);
    FAILS(e, cx_stat(e, 0, &v), CX_EINVAL);
    FAILS(e, cx_stat(e, CX_STAT_TRAINING + 1, &v), CX_EINVAL);
    FAILS(NULL, cx_factors(NULL, 0, &data, &rows, &cols), CX_EINVAL);
    FAILS(e, cx_factors(e, 0, NULL, &rows, &cols), CX_EINVAL);
    FAILS(e, cx_factors(e, 0, &data, NULL, &cols), CX_EINVAL);
    FAILS(e, cx_factors(e, 0, &data, &rows, NULL), CX_EINVAL);
    FAILS(e, cx_factors(e, 2, &data, &rows, &cols), CX_EINVAL);
    FAILS(e, cx_factors(e, -1, &data, &rows, &cols), CX_EINVAL);
    TU_OK(e, cx_factors(e, 1, &data, &rows, &cols));
    assert_int_equal(rows, 5);
    assert_int_equal(cols, 4);
    assert_int_equal(tu_stat(e, CX_STAT_CUSTOMERS), 4);
    assert_int_equal(tu_stat(e, CX_STAT_ITEMS), 5);
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), 7);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 1);
    assert_int_equal(tu_stat(e, CX_STAT_FACTORS), 4);
    assert_int_equal(tu_stat(e, CX_STAT_MODEL_CUSTOMERS), 4);
    assert_int_equal(tu_stat(e, CX_STAT_MODEL_ITEMS), 5);
    assert_null(cx_customer_id(NULL, 0));
    assert_null(cx_item_id(NULL, 0));
    assert_string_equal(cx_customer_id(e, 3), "d");
    assert_null(cx_customer_id(e, 4));
    assert_null(cx_customer_id(e, SIZE_MAX));
    assert_string_equal(cx_item_id(e, 4), "v");
    assert_null(cx_item_id(e, 5));
    check_works(e);
    cx_close(e);
}

/* ===================================================================== */
/* Files                                                                 */
/* ===================================================================== */

static void test_files_misuse(void **state)
{
    (void)state;
    char dir[256], path[512];
    tu_mkdtemp(dir, sizeof dir, "misuse");
    cx_engine *e = small_engine(0), *f = (cx_engine *)&dir;
    FAILS(NULL, cx_save(NULL, "x"), CX_EINVAL);
    FAILS(e, cx_save(e, NULL), CX_EINVAL);
    FAILS(e, cx_save(e, ""), CX_EINVAL);
    snprintf(path, sizeof path, "%s/no/such/dir/engine.cx", dir);
    FAILS(e, cx_save(e, path), CX_EIO);
    FAILS(NULL, cx_load(NULL, path), CX_EINVAL);
    FAILS(NULL, cx_load(&f, NULL), CX_EINVAL);
    assert_null(f);
    FAILS(NULL, cx_load(&f, ""), CX_EINVAL);
    FAILS(NULL, cx_load(&f, path), CX_EIO);
    assert_null(f);
    FAILS(NULL, cx_load(&f, dir), CX_EIO); /* a directory */
    assert_null(f);
    FAILS(NULL, cx_export_npy(NULL, dir), CX_EINVAL);
    FAILS(e, cx_export_npy(e, NULL), CX_EINVAL);
    FAILS(e, cx_export_npy(e, ""), CX_EINVAL);
    FAILS(e, cx_export_npy(e, dir), CX_ENOTTRAINED);
    TU_OK(e, cx_train(e, NULL, NULL));
    snprintf(path, sizeof path, "%s/no/such/dir", dir);
    FAILS(e, cx_export_npy(e, path), CX_EIO);
    char *huge = malloc(5000);
    memset(huge, 'd', 4999);
    huge[4999] = 0;
    FAILS(e, cx_export_npy(e, huge), CX_EINVAL);
    free(huge);
    /* Nothing was written anywhere. */
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)))
        files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 0);
    check_works(e);
    cx_close(e);
    tu_rmdir(dir);
}

static void test_evaluate_misuse(void **state)
{
    (void)state;
    double m[CX_METRIC_COUNT], b[CX_METRIC_COUNT];
    cx_eval_opts o;
    FAILS(NULL, cx_evaluate(NULL, NULL, m, b), CX_EINVAL);
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    FAILS(e, cx_evaluate(e, NULL, m, b), CX_EINVAL); /* no signals */
    cx_close(e);
    e = small_engine(0);
    FAILS(e, cx_evaluate(e, NULL, NULL, b), CX_EINVAL);
    memset(&o, 0, sizeof o);
    FAILS(e, cx_evaluate(e, &o, m, b), CX_EINVAL);
    cx_eval_opts_init(&o);
    o.k = 0;
    FAILS(e, cx_evaluate(e, &o, m, b), CX_EINVAL);
    o.k = 10001;
    FAILS(e, cx_evaluate(e, &o, m, b), CX_EINVAL);
    const double bad_fraction[] = {0, 1, -0.5, 2, NAN, INFINITY};
    for (size_t j = 0; j < 6; j++) {
        cx_eval_opts_init(&o);
        o.test_fraction = bad_fraction[j];
        FAILS(e, cx_evaluate(e, &o, m, b), CX_EINVAL);
    }
    /* Too few items per customer to hold any out: nobody is scored. */
    TU_OK(e, cx_evaluate(e, NULL, m, b));
    assert_true(m[CX_METRIC_USERS] == 0);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 0);
    /* Intervals: the split and the resampling are checked. */
    double ci[CX_CI_COUNT * CX_METRIC_COUNT];
    FAILS(NULL, cx_evaluate_ci(NULL, NULL, m, b, ci), CX_EINVAL);
    FAILS(e, cx_evaluate_ci(e, NULL, NULL, b, ci), CX_EINVAL);
    cx_eval_opts_init(&o);
    o.bootstrap = 0;
    FAILS(e, cx_evaluate_ci(e, &o, m, b, ci), CX_EINVAL);
    o.bootstrap = 100001;
    FAILS(e, cx_evaluate_ci(e, &o, m, b, ci), CX_EINVAL);
    cx_eval_opts_init(&o);
    o.split = 2;
    FAILS(e, cx_evaluate_ci(e, &o, m, b, ci), CX_EINVAL);
    o.split = -1;
    FAILS(e, cx_evaluate(e, &o, m, b), CX_EINVAL);
    cx_eval_opts_init(&o);
    o.untuned = 7;
    FAILS(e, cx_evaluate(e, &o, m, b), CX_EINVAL);
    cx_eval_opts_init(&o);
    o.split = CX_SPLIT_EVENTS;
    TU_OK(e, cx_evaluate_ci(e, &o, m, b, ci)); /* nobody: zeros */
    assert_true(m[CX_METRIC_USERS] == 0);
    check_works(e);
    cx_close(e);
}

/* cx_tune: every argument checked before any work, and nothing changes
 * on failure. */
static void test_tune_misuse(void **state)
{
    (void)state;
    cx_tune_trial t[4];
    size_t n = 99;
    cx_tune_opts o;
    FAILS(NULL, cx_tune(NULL, NULL, t, 4, &n), CX_EINVAL);
    cx_engine *e;
    TU_OK(NULL, cx_open(&e, NULL, 0));
    cx_tune_opts_init(&o);
    o.trials = 2;
    FAILS(e, cx_tune(e, &o, t, 4, &n), CX_EINVAL); /* no signals */
    assert_int_equal(n, 0);
    cx_close(e);
    e = small_engine(0);
    FAILS(e, cx_tune(e, NULL, t, 4, NULL), CX_EINVAL);
    FAILS(e, cx_tune(e, NULL, NULL, 4, &n), CX_EINVAL);
    memset(&o, 0, sizeof o);
    FAILS(e, cx_tune(e, &o, t, 4, &n), CX_EINVAL);
    struct { double seconds; size_t trials; unsigned params; size_t k;
             int split; double test, val; int apply; } bad[] = {
        {0, 0, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {-1, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {NAN, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {INFINITY, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {0, 2000000, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {0, 1, 0, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {0, 1, 64, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {0, 1, CX_TUNE_ALL, 0, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {0, 1, CX_TUNE_ALL, 10001, CX_SPLIT_EVENTS, 0.2, 0.2, 1},
        {0, 1, CX_TUNE_ALL, 10, 5, 0.2, 0.2, 1},
        {0, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 1, 0.2, 1},
        {0, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, NAN, 0.2, 1},
        {0, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 0, 1},
        {0, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 1, 1},
        {0, 1, CX_TUNE_ALL, 10, CX_SPLIT_EVENTS, 0.2, 0.2, 2},
    };
    for (size_t j = 0; j < sizeof bad / sizeof *bad; j++) {
        cx_tune_opts_init(&o);
        o.seconds = bad[j].seconds;
        o.trials = bad[j].trials;
        o.params = bad[j].params;
        o.k = bad[j].k;
        o.split = bad[j].split;
        o.test_fraction = bad[j].test;
        o.validation_fraction = bad[j].val;
        o.apply = bad[j].apply;
        FAILS(e, cx_tune(e, &o, t, 4, &n), CX_EINVAL);
        assert_int_equal(n, 0);
    }
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 0);
    check_works(e);
    cx_close(e);
}

/* cx_errmsg: per engine and per thread, "" when nothing failed, and the
 * message of cx_open/cx_load failures under NULL. */
static void test_errmsg(void **state)
{
    (void)state;
    cx_engine *a = small_engine(0), *b = small_engine(0);
    assert_string_equal(cx_errmsg(a), "");
    FAILS(a, cx_item_remove(a, "missing"), CX_ENOTFOUND);
    assert_non_null(strstr(cx_errmsg(a), "missing"));
    assert_string_equal(cx_errmsg(b), "");
    cx_engine *c;
    FAILS(NULL, cx_load(&c, "/nonexistent/dir/file.cx"), CX_EIO);
    assert_non_null(strstr(cx_errmsg(NULL), "/nonexistent/dir/file.cx"));
    cx_close(a);
    cx_close(b);
}

/* The real-time calls: bad arguments get a status and a message. */
static void test_live_misuse(void **state)
{
    (void)state;
    cx_engine *e = small_engine(1);
    const char *out[4];
    float sc[4];
    int why[4];
    size_t n = 9;
    typedef int (*list_fn)(cx_engine *, size_t, const cx_rec_opts *,
                           const char **, float *, int *, size_t *);
    list_fn lists[] = {cx_trending, cx_popular, cx_new_arrivals};
    for (size_t j = 0; j < 3; j++) {
        FAILS(NULL, lists[j](NULL, 4, NULL, out, sc, why, &n), CX_EINVAL);
        FAILS(e, lists[j](e, 0, NULL, out, sc, why, &n), CX_EINVAL);
        FAILS(e, lists[j](e, 4, NULL, NULL, sc, why, &n), CX_EINVAL);
        FAILS(e, lists[j](e, 4, NULL, out, sc, why, NULL), CX_EINVAL);
        cx_rec_opts o;
        cx_rec_opts_init(&o);
        o.category = "no such category";
        FAILS(e, lists[j](e, 4, &o, out, sc, why, &n), CX_ENOTFOUND);
    }
    const char *si[] = {"x", "y"};
    int st[] = {CX_VIEW, 99};
    float bad[] = {1, NAN};
    FAILS(NULL, cx_recommend_session(NULL, 1, si, st, NULL, 4, NULL, out,
                                     sc, why, &n), CX_EINVAL);
    FAILS(e, cx_recommend_session(e, 2, si, st, NULL, 4, NULL, out, sc,
                                  why, &n), CX_EINVAL);     /* type 99 */
    st[1] = CX_VIEW;
    FAILS(e, cx_recommend_session(e, 2, si, st, bad, 4, NULL, out, sc, why,
                                  &n), CX_EINVAL);          /* NaN value */
    FAILS(e, cx_recommend_session(e, 2, NULL, st, NULL, 4, NULL, out, sc,
                                  why, &n), CX_EINVAL);
    FAILS(e, cx_recommend_session(e, 20000, si, st, NULL, 4, NULL, out, sc,
                                  why, &n), CX_EINVAL);     /* too long */
    TU_OK(e, cx_recommend_session(e, 2, si, st, NULL, 4, NULL, out, sc, why,
                                  &n));
    FAILS(NULL, cx_train_start(NULL, NULL, NULL), CX_EINVAL);
    FAILS(NULL, cx_train_wait(NULL), CX_EINVAL);
    FAILS(e, cx_train_wait(e), CX_EINVAL);                  /* none started */
    FAILS(e, cx_set_option(e, CX_OPT_FOLD_IN, 3), CX_ERANGE);
    FAILS(e, cx_set_option(e, CX_OPT_TRENDING_HALF_LIFE, 0), CX_ERANGE);
    FAILS(e, cx_set_option(e, CX_OPT_POPULAR_HALF_LIFE, -1), CX_ERANGE);
    cx_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_open_close),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_items_upsert),
        cmocka_unit_test(test_item_remove_get),
        cmocka_unit_test(test_signal_types),
        cmocka_unit_test(test_ingest_bad_rows),
        cmocka_unit_test(test_ingest_channel_limit),
        cmocka_unit_test(test_train_misuse),
        cmocka_unit_test(test_recommend_misuse),
        cmocka_unit_test(test_batch_misuse),
        cmocka_unit_test(test_similar_misuse),
        cmocka_unit_test(test_introspection_misuse),
        cmocka_unit_test(test_files_misuse),
        cmocka_unit_test(test_evaluate_misuse),
        cmocka_unit_test(test_tune_misuse),
        cmocka_unit_test(test_errmsg),
        cmocka_unit_test(test_live_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
