/* test_datadir.c -- the data directory: what is acknowledged comes back
 * after close and reopen, the same answers from the same model, one
 * writer at a time, torn snapshots fall back to the previous generation. */
#include "testutil.h"
#include "db.h"


static cx_engine *open_dir(const char *dir)
{
    cx_engine *e = NULL;
    int rc = cx_open(&e, dir, 0);
    if (rc)
        print_error("cx_open(%s) -> %d: %s\n", dir, rc, cx_errmsg(NULL));
    assert_int_equal(rc, CX_OK);
    assert_int_equal(cx_set_option(e, CX_OPT_THREADS, 1), CX_OK);
    return e;
}

/* Everything a call acknowledged is there after reopening. */
static void test_roundtrip(void **state)
{
    (void)state;
    char dir[256];
    tu_mkdtemp(dir, sizeof dir, "dd");
    strcat(dir, "/shop"); /* cx_open creates it */
    cx_engine *e = open_dir(dir);
    const char *ids[] = {"i1", "i2", "i3"};
    const char *cats[] = {"shoes", "hats", "shoes"};
    double prices[] = {10, 20.5, 30};
    int stock[] = {1, 0, 1};
    int64_t created[] = {1000, 2000, 3000};
    const char *tags[] = {"red,big", NULL, ""};
    TU_OK(e, cx_items_upsert(e, 3, ids, cats, prices, stock, created, tags));
    /* A second batch that touches i1 twice and keeps unspecified columns. */
    const char *ids2[] = {"i1", "i4", "i1"};
    double p2[] = {11, 5, 12};
    TU_OK(e, cx_items_upsert(e, 3, ids2, NULL, p2, NULL, NULL, NULL));
    TU_OK(e, cx_item_remove(e, "i3"));
    int wish;
    TU_OK(e, cx_signal_type_define(e, "wishlist", 3.5, &wish));
    TU_OK(e, cx_set_option(e, CX_OPT_ALPHA, 7.25));
    TU_OK(e, cx_set_option(e, CX_OPT_WEIGHT + CX_VIEW, 0.5));
    const char *c[] = {"u1", "u2", "u1", "u3"};
    const char *it[] = {"i1", "i2", "zz", "i4"};
    int ty[] = {CX_VIEW, CX_PURCHASE, wish, CX_RATING};
    float v[] = {1, 2, 1, 4.5f};
    int64_t ts[] = {5000, 5001, 5002, 5003};
    const char *ch[] = {"app", NULL, "store", "app"};
    TU_OK(e, cx_ingest(e, 4, c, it, ty, v, ts, ch));
    /* A bad batch writes nothing. */
    const char *badc[] = {"u9", ""};
    const char *badi[] = {"i1", "i1"};
    int badt[] = {CX_VIEW, CX_VIEW};
    FAILS(e, cx_ingest(e, 2, badc, badi, badt, NULL, NULL, NULL), CX_EINVAL);
    const char *vn[] = {"a", "b"};
    double sh[] = {1, 3};
    TU_OK(e, cx_experiment_define(e, "hero", 2, vn, sh));
    TU_OK(e, cx_variant_set(e, "hero", "b", CX_OVERRIDE_K, 7));
    const char *got;
    for (int i = 0; i < 5; i++)
        TU_OK(e, cx_variant(e, "hero", "u1", 1, &got));
    const char *assigned = got;
    char keep[80];
    snprintf(keep, sizeof keep, "%s", assigned);
    cx_close(e);

    e = open_dir(dir);
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), 4);
    assert_int_equal(tu_stat(e, CX_STAT_CUSTOMERS), 3);
    assert_int_equal(tu_stat(e, CX_STAT_ITEMS), 5);
    const char *cat;
    double price;
    int in_stock;
    int64_t cr;
    TU_OK(e, cx_item_get(e, "i1", &cat, &price, &in_stock, &cr));
    assert_string_equal(cat, "shoes");
    assert_true(price == 12 && in_stock == 1 && cr == 1000);
    TU_OK(e, cx_item_get(e, "i2", &cat, &price, &in_stock, &cr));
    assert_string_equal(cat, "hats");
    assert_true(price == 20.5 && in_stock == 0 && cr == 2000);
    TU_OK(e, cx_item_get(e, "i4", &cat, &price, &in_stock, &cr));
    assert_string_equal(cat, "");
    assert_true(price == 5 && in_stock == 1);
    /* i3 was removed: never recommended, but known. */
    assert_int_equal(e->item_flags[tu_item_index(e, "i3")] &
                         CX__ITEM_REMOVED, CX__ITEM_REMOVED);
    assert_int_equal(e->item_tags[tu_item_index(e, "i1")] != CX_NONE, 1);
    assert_int_equal(e->item_tags[tu_item_index(e, "i3")], CX_NONE);
    int t2;
    TU_OK(e, cx_signal_type_lookup(e, "wishlist", &t2));
    assert_int_equal(t2, wish);
    double o;
    TU_OK(e, cx_get_option(e, CX_OPT_ALPHA, &o));
    assert_true(o == 7.25);
    TU_OK(e, cx_get_option(e, CX_OPT_WEIGHT + wish, &o));
    assert_true(o == 3.5);
    TU_OK(e, cx_get_option(e, CX_OPT_WEIGHT + CX_VIEW, &o));
    assert_true(o == 0.5);
    /* The events, in order, with their channels and values. */
    const cx__event *ev = e->ev;
    assert_int_equal(ev[2].type, wish);
    assert_true(ev[3].value == 4.5f && ev[3].ts == 5003);
    assert_string_equal(e->channels.str[ev[0].channel], "app");
    assert_string_equal(e->channels.str[ev[1].channel], "web");
    assert_string_equal(e->channels.str[ev[2].channel], "store");
    assert_string_equal(e->customers.str[ev[3].cust], "u3");
    TU_OK(e, cx_variant(e, "hero", "u1", 0, &got));
    assert_string_equal(got, keep);
    int64_t n;
    TU_OK(e, cx_exposures(e, "hero", keep, &n));
    assert_int_equal(n, 5);
    TU_OK(e, cx_variant_get(e, "hero", "b", CX_OVERRIDE_K, &o));
    assert_true(o == 7);
    /* Exposures counted after a reopen add up. */
    TU_OK(e, cx_variant(e, "hero", "u1", 1, &got));
    TU_OK(e, cx_sync(e));
    cx_close(e);
    e = open_dir(dir);
    TU_OK(e, cx_exposures(e, "hero", keep, &n));
    assert_int_equal(n, 6);
    cx_close(e);
    dir[strlen(dir) - 5] = 0; /* the scratch directory above it */
    tu_rmdir(dir);
}

/* A second read-write open of the same directory is refused. */
static void test_busy(void **state)
{
    (void)state;
    char dir[256];
    tu_mkdtemp(dir, sizeof dir, "ddbusy");
    cx_engine *e = open_dir(dir), *f = NULL;
    assert_int_equal(cx_open(&f, dir, 0), CX_EBUSY);
    assert_null(f);
    assert_non_null(strstr(cx_errmsg(NULL), "another process"));
    cx_close(e);
    e = open_dir(dir); /* free again */
    cx_close(e);
    /* Not a directory, and an empty path. */
    char file[300];
    snprintf(file, sizeof file, "%s/cx.db", dir);
    assert_int_equal(cx_open(&f, file, 0), CX_EIO);
    assert_int_equal(cx_open(&f, "", 0), CX_EINVAL);
    tu_rmdir(dir);
}

typedef struct recs {
    size_t n;
    result *r;
} recs;

static void all_recs(cx_engine *e, const synth_shop *s, size_t n, recs *out)
{
    out->n = n;
    out->r = calloc(n, sizeof *out->r);
    assert_non_null(out->r);
    for (size_t u = 0; u < n; u++) {
        char id[32];
        synth_customer_id((uint32_t)(u % s->n_customers), id);
        TU_OK(e, rec(e, id, 10, NULL, &out->r[u]));
        /* The ids point into the engine: keep copies past its close. */
        for (size_t j = 0; j < out->r[u].n; j++)
            out->r[u].items[j] = strdup(out->r[u].items[j]);
    }
}

static void free_recs(recs *r)
{
    for (size_t u = 0; u < r->n; u++)
        for (size_t j = 0; j < r->r[u].n; j++)
            free((char *)r->r[u].items[j]);
    free(r->r);
}

static void same_recs(const recs *a, const recs *b)
{
    for (size_t u = 0; u < a->n; u++) {
        assert_int_equal(a->r[u].n, b->r[u].n);
        for (size_t j = 0; j < a->r[u].n; j++) {
            assert_string_equal(a->r[u].items[j], b->r[u].items[j]);
            assert_true(a->r[u].scores[j] == b->r[u].scores[j]);
        }
    }
}

/* The same recommendations for 1,000 customers before close and after
 * reopen, including customers folded in after training. */
static void test_reopen_same_answers(void **state)
{
    (void)state;
    char dir[256];
    tu_mkdtemp(dir, sizeof dir, "ddsame");
    synth_config c;
    synth_config_default(&c, 30000);
    c.n_customers = 1200;
    synth_shop s;
    assert_int_equal(synth_generate(&c, &s), 0);
    assert_true(s.n_customers >= 1000);
    cx_engine *e = open_dir(dir);
    TU_OK(e, cx_set_option(e, CX_OPT_SYNC, CX_SYNC_NORMAL));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 5));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 16));
    TU_OK(e, shop_upsert_catalogue(e, &s));
    size_t half = s.n_signals * 9 / 10;
    TU_OK(e, shop_ingest(e, &s, 0, half, 4096));
    TU_OK(e, cx_train(e, NULL, NULL));
    TU_OK(e, shop_ingest(e, &s, half, s.n_signals, 1000));
    recs before, after;
    all_recs(e, &s, 1000, &before);
    int64_t gen = tu_stat(e, CX_STAT_GENERATION);
    cx_close(e);
    e = open_dir(dir);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), gen);
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), (int64_t)s.n_signals);
    double o;
    TU_OK(e, cx_get_option(e, CX_OPT_SYNC, &o));
    assert_true(o == CX_SYNC_NORMAL);
    all_recs(e, &s, 1000, &after);
    same_recs(&before, &after);
    /* Trained model identical to what was saved. */
    const float *X;
    size_t rows, cols;
    TU_OK(e, cx_factors(e, 0, &X, &rows, &cols));
    assert_int_equal(cols, 16);
    free_recs(&after);
    cx_close(e);
    free_recs(&before);
    synth_free(&s);
    tu_rmdir(dir);
}

/* numpy's .npy layout: magic, version 1.0, header length, dict ending in
 * a newline at a multiple of 64 bytes, then the data. */
static void test_npy_layout(void **state)
{
    (void)state;
    char dir[256], path[512];
    tu_mkdtemp(dir, sizeof dir, "ddnpy");
    cx_engine *e = open_dir(dir);
    const char *cu[] = {"a", "b", "c", "a"};
    const char *it[] = {"x", "y", "x", "z"};
    int ty[] = {CX_PURCHASE, CX_PURCHASE, CX_VIEW, CX_CLICK};
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 3));
    TU_OK(e, cx_ingest(e, 4, cu, it, ty, NULL, NULL, NULL));
    TU_OK(e, cx_train(e, NULL, NULL));
    snprintf(path, sizeof path, "%s/snapshots/g0000000001/item_factors.npy",
             dir);
    size_t n;
    unsigned char *p = tu_read_file(path, &n);
    assert_non_null(p);
    assert_memory_equal(p, "\x93NUMPY\x01\x00", 8);
    size_t hl = (size_t)p[8] | (size_t)p[9] << 8;
    assert_int_equal((10 + hl) % 64, 0);
    assert_int_equal(p[10 + hl - 1], '\n');
    assert_non_null(strstr((char *)p + 10, "'descr': '<f4'"));
    assert_non_null(strstr((char *)p + 10, "'shape': (3, 3)"));
    assert_int_equal(n, 10 + hl + 3 * 3 * 4);
    const float *Y;
    size_t rows, cols;
    TU_OK(e, cx_factors(e, 1, &Y, &rows, &cols));
    assert_memory_equal(p + 10 + hl, Y, 3 * 3 * 4);
    free(p);
    cx_close(e);
    tu_rmdir(dir);
}

/* Truncate or flip a bit in each file of the newest generation in turn:
 * the open falls back to the previous generation and says so. */
static void test_torn_snapshot(void **state)
{
    (void)state;
    static const char *const names[] = {
        "MANIFEST", "customer_factors.npy", "item_factors.npy",
        "has_vector.npy", "pairs_ptr.npy", "pairs_item.npy",
        "pairs_conf.npy", "pairs_mask.npy", "gram.npy"};
    char dir[256], path[600];
    tu_mkdtemp(dir, sizeof dir, "ddtorn");
    synth_shop s;
    cx_engine *e = open_dir(dir);
    synth_config c;
    synth_config_default(&c, 4000);
    assert_int_equal(synth_generate(&c, &s), 0);
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 8));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 3));
    TU_OK(e, shop_upsert_catalogue(e, &s));
    TU_OK(e, shop_ingest(e, &s, 0, s.n_signals / 2, 4096));
    TU_OK(e, cx_train(e, NULL, NULL));
    recs gen1;
    all_recs(e, &s, 50, &gen1);
    TU_OK(e, shop_ingest(e, &s, s.n_signals / 2, s.n_signals, 4096));
    TU_OK(e, cx_train(e, NULL, NULL));
    TU_OK(e, cx_train(e, NULL, NULL)); /* generation 3; 1 is pruned */
    cx_close(e);
    snprintf(path, sizeof path, "%s/snapshots/g0000000001", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    for (int f = 0; f < 9; f++)
        for (int mode = 0; mode < 2; mode++) {
            snprintf(path, sizeof path, "%s/snapshots/g0000000003/%s", dir,
                     names[f]);
            size_t n;
            unsigned char *orig = tu_read_file(path, &n);
            assert_non_null(orig);
            unsigned char *bad = malloc(n);
            memcpy(bad, orig, n);
            if (mode == 0)
                tu_write_file(path, bad, n / 2);
            else {
                bad[n - 1 - (n / 3)] ^= 0x10;
                tu_write_file(path, bad, n);
            }
            cx_engine *g = NULL;
            int rc = cx_open(&g, dir, 0);
            assert_int_equal(rc, CX_OK);
            assert_non_null(strstr(cx_errmsg(NULL), "generation 3"));
            assert_int_equal(tu_stat(g, CX_STAT_GENERATION), 2);
            cx_close(g);
            tu_write_file(path, orig, n);
            free(orig);
            free(bad);
        }
    /* Intact again: generation 3 serves. */
    e = open_dir(dir);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 3);
    cx_close(e);
    /* Both generations torn: the engine opens untrained, with a message,
     * and keeps every signal. */
    for (int g = 2; g <= 3; g++) {
        snprintf(path, sizeof path, "%s/snapshots/g%010d/MANIFEST", dir, g);
        tu_write_file(path, "x", 1);
    }
    e = open_dir(dir);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 0);
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS), (int64_t)s.n_signals);
    cx_close(e);
    free_recs(&gen1);
    synth_free(&s);
    tu_rmdir(dir);
}

/* The manifest parser rejects every single-byte change. */
static void test_manifest_flips(void **state)
{
    (void)state;
    char dir[256], path[600];
    tu_mkdtemp(dir, sizeof dir, "ddman");
    cx_engine *e = open_dir(dir);
    const char *cu[] = {"a", "b"};
    const char *it[] = {"x", "y"};
    int ty[] = {CX_PURCHASE, CX_PURCHASE};
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, 2));
    TU_OK(e, cx_ingest(e, 2, cu, it, ty, NULL, NULL, NULL));
    TU_OK(e, cx_train(e, NULL, NULL));
    cx_close(e);
    snprintf(path, sizeof path, "%s/snapshots/g0000000001/MANIFEST", dir);
    size_t n;
    char *text = (char *)tu_read_file(path, &n);
    assert_non_null(text);
    void *m = malloc(cx__manifest_size());
    char why[256];
    assert_int_equal(cx__manifest_parse(text, n, m, why, sizeof why), CX_OK);
    for (size_t i = 0; i < n; i++) {
        char saved = text[i];
        text[i] ^= 0x01;
        assert_int_not_equal(cx__manifest_parse(text, n, m, why, sizeof why),
                             CX_OK);
        text[i] = saved;
        assert_int_not_equal(cx__manifest_parse(text, i, m, why, sizeof why),
                             CX_OK);
    }
    free(m);
    free(text);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_busy),
        cmocka_unit_test(test_reopen_same_answers),
        cmocka_unit_test(test_npy_layout),
        cmocka_unit_test(test_torn_snapshot),
        cmocka_unit_test(test_manifest_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
