/* test_interop.c -- the Spark round trip: signals exported as CSV, factors
 * imported from Spark-shaped part files give the same answers as the
 * engine that computed them; a bad file changes nothing. */
#include "testutil.h"


/* Write factor rows as Spark does: part files of JSON lines (ids by
 * index) or one CSV file (ids by name), plus Spark's _SUCCESS marker. */
static void write_factors(cx_engine *e, int which, const char *dir, int csv)
{
    const float *F;
    size_t rows, k;
    TU_OK(e, cx_factors(e, which, &F, &rows, &k));
    char path[512];
    mkdir(dir, 0755);
    FILE *f = NULL;
    for (size_t r = 0; r < rows; r++) {
        if (which == 0 && !e->model->has_vec[r])
            continue;
        if (!f || (!csv && r == rows / 2)) {
            if (f)
                fclose(f);
            snprintf(path, sizeof path, "%s/part-0000%d-c000.%s", dir,
                     f ? 1 : 0, csv ? "csv" : "json");
            f = fopen(path, "w");
            assert_non_null(f);
            if (csv)
                fputs("id,features\n", f);
        }
        if (csv)
            fprintf(f, "%s,\"[", which ? cx_item_id(e, r)
                                       : cx_customer_id(e, r));
        else
            fprintf(f, "{\"id\":%zu,\"features\":[", r);
        for (size_t d = 0; d < k; d++)
            fprintf(f, "%s%.9g", d ? "," : "", (double)F[r * k + d]);
        fputs(csv ? "]\"\n" : "]}\n", f);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/_SUCCESS", dir);
    tu_write_file(path, "", 0);
}

static void same_answers(cx_engine *a, cx_engine *b, const synth_shop *s)
{
    for (uint32_t u = 0; u < 300 && u < s->n_customers; u++) {
        char id[24];
        synth_customer_id(u, id);
        result x, y;
        TU_OK(a, rec(a, id, 10, NULL, &x));
        TU_OK(b, rec(b, id, 10, NULL, &y));
        assert_int_equal(x.n, y.n);
        for (size_t j = 0; j < x.n; j++) {
            assert_string_equal(x.items[j], y.items[j]);
            assert_true(x.scores[j] == y.scores[j]);
        }
    }
}

static void test_spark_round_trip(void **state)
{
    (void)state;
    char tmp[256], path[512], upath[512], ipath[512], dd[512];
    tu_mkdtemp(tmp, sizeof tmp, "spark");
    synth_shop s;
    synth_config c;
    synth_config_default(&c, 20000);
    assert_int_equal(synth_generate(&c, &s), 0);
    cx_engine *a = NULL;
    assert_int_equal(cx_open(&a, NULL, 0), CX_OK);
    TU_OK(a, cx_set_option(a, CX_OPT_FACTORS, 12));
    TU_OK(a, cx_set_option(a, CX_OPT_ITERATIONS, 4));
    TU_OK(a, cx_set_option(a, CX_OPT_THREADS, 1));
    TU_OK(a, shop_upsert_catalogue(a, &s));
    TU_OK(a, shop_ingest(a, &s, 0, s.n_signals, 4096));
    TU_OK(a, cx_train(a, NULL, NULL));

    /* The export: a header, then one row per signal. */
    snprintf(path, sizeof path, "%s/signals.csv", tmp);
    TU_OK(a, cx_export_signals(a, path));
    size_t n = 0;
    char *text = (char *)tu_read_file(path, &n);
    assert_non_null(text);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, s.n_signals + 1);
    static const char hdr[] = "customer_idx,item_idx,strength,customer,"
                              "item,type,value,ts,channel\n";
    assert_true(strncmp(text, hdr, strlen(hdr)) == 0);
    const cx__event *ev = &a->ev[0];
    char want[256];
    snprintf(want, sizeof want, "%u,%u,%.9g,%s,%s,%s,", ev->cust, ev->item,
             cx__signal_strength(&a->opt, ev), a->customers.str[ev->cust],
             a->items.str[ev->item], cx_signal_type_name(a, ev->type));
    assert_true(strncmp(text + strlen(hdr), want, strlen(want)) == 0);
    free(text);

    /* By index from JSON part files, into a data directory. */
    snprintf(upath, sizeof upath, "%s/userFactors", tmp);
    snprintf(ipath, sizeof ipath, "%s/itemFactors", tmp);
    write_factors(a, 0, upath, 0);
    write_factors(a, 1, ipath, 0);
    snprintf(dd, sizeof dd, "%s/dd", tmp);
    cx_engine *b = NULL;
    assert_int_equal(cx_open(&b, dd, 0), CX_OK);
    TU_OK(b, cx_set_option(b, CX_OPT_SYNC, CX_SYNC_OFF));
    TU_OK(b, shop_upsert_catalogue(b, &s));
    TU_OK(b, shop_ingest(b, &s, 0, s.n_signals, 4096));
    /* Failures first: nothing changes. */
    FAILS(b, cx_import_factors(b, upath, ipath, 0), CX_ENOTFOUND);
    FAILS(b, cx_import_factors(b, upath, "/nonexistent", 1), CX_EIO);
    FAILS(b, cx_import_factors(b, upath, ipath, 6), CX_EINVAL);
    assert_int_equal(tu_stat(b, CX_STAT_GENERATION), 0);
    TU_OK(b, cx_import_factors(b, upath, ipath, CX_IMPORT_BY_INDEX));
    assert_int_equal(tu_stat(b, CX_STAT_GENERATION), 1);
    assert_int_equal(tu_stat(b, CX_STAT_FACTORS), 12);
    same_answers(a, b, &s);
    cx_close(b);
    b = NULL;
    assert_int_equal(cx_open(&b, dd, 0), CX_OK); /* the snapshot */
    assert_int_equal(tu_stat(b, CX_STAT_GENERATION), 1);
    same_answers(a, b, &s);
    cx_close(b);

    /* By id from CSV in the bracket form, into memory. */
    char ucsv[512], icsv[512];
    snprintf(ucsv, sizeof ucsv, "%s/ucsv", tmp);
    snprintf(icsv, sizeof icsv, "%s/icsv", tmp);
    write_factors(a, 0, ucsv, 1);
    write_factors(a, 1, icsv, 1);
    assert_int_equal(cx_open(&b, NULL, 0), CX_OK);
    TU_OK(b, shop_upsert_catalogue(b, &s));
    TU_OK(b, shop_ingest(b, &s, 0, s.n_signals, 4096));
    TU_OK(b, cx_import_factors(b, ucsv, icsv, 0));
    same_answers(a, b, &s);
    /* Features of different lengths are refused. */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/short.json", tmp);
    tu_write_file(bad, "{\"id\":0,\"features\":[1,2]}\n", 27);
    FAILS(b, cx_import_factors(b, bad, ipath, CX_IMPORT_BY_INDEX),
          CX_EFORMAT);
    assert_int_equal(tu_stat(b, CX_STAT_GENERATION), 1);
    cx_close(b);
    cx_close(a);
    synth_free(&s);
    tu_rmdir(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spark_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
