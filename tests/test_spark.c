/* test_spark.c -- the reader of Spark MLlib ALS factors (lib/spark.c):
 * Spark's own JSON-lines and CSV output, every rejection with its line,
 * truncated files, and appending part files. */
#include "testutil.h"

#include <float.h>

#include "spark.h"

/* The fixtures: tests/data/spark, relative to the repo root where make
 * runs the tests; CX_TEST_DATA points elsewhere. */
static const char *data_dir(void)
{
    const char *d = getenv("CX_TEST_DATA");
    return d ? d : "tests/data";
}

/* What every fixture holds: userFactors of an ALS model with rank 4, as
 * Spark wrote them (Float.toString formatting). */
static const struct {
    const char *id;
    float v[4];
} want[] = {
    {"12", {0.10516414f, -0.3725337f, 1.0E-4f, 0.8834023f}},
    {"37", {-0.04127311f, 0.52218f, 0.0f, -1.2345678E-5f}},
    {"104", {0.7071068f, -0.7071068f, 1.5E-7f, -0.0f}},
    {"2051", {0.33333334f, 0.25f, -0.5f, 12.375f}},
    {"9", {-0.9999999f, 0.12345679f, 0.6931472f, -2.7182817f}},
};
#define NWANT (sizeof want / sizeof want[0])

/* Parse a copy of exactly len bytes, so that ASan sees any read past the
 * end of the buffer (the reader must not need a NUL). */
static int parse_n(const char *text, size_t len, int format,
                   cx__factors_in *f, char *err, size_t errlen, int more)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    int rc = more ? cx__spark_parse_more(copy, len, format, f, err, errlen)
                  : cx__spark_parse(copy, len, format, f, err, errlen);
    free(copy);
    return rc;
}

static int parse_str(const char *text, int format, cx__factors_in *f)
{
    char err[256];
    int rc = parse_n(text, strlen(text), format, f, err, sizeof err, 0);
    if (rc != CX_OK)
        print_error("parse of \"%s\" -> %d: %s\n", text, rc, err);
    return rc;
}

static void assert_fixture_rows(const cx__factors_in *f)
{
    assert_int_equal(f->n, NWANT);
    assert_int_equal(f->k, 4);
    for (size_t i = 0; i < NWANT; i++) {
        assert_string_equal(f->ids[i], want[i].id);
        for (size_t d = 0; d < 4; d++) {
            float got = f->v[i * 4 + d];
            /* Bit for bit: strtof rounds as the compiler does. */
            assert_memory_equal(&got, &want[i].v[d], sizeof got);
        }
    }
}

static char *read_fixture(const char *rel, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/spark/%s", data_dir(), rel);
    char *p = (char *)tu_read_file(path, n);
    if (!p)
        print_error("cannot read %s (run from the repo root or set "
                    "CX_TEST_DATA)\n", path);
    assert_non_null(p);
    return p;
}

#define NAME_LEN 1024

/* The part-* files of a Spark output directory, sorted, as a caller would
 * list them (_SUCCESS and friends left out). */
static size_t part_files(const char *rel, char names[][NAME_LEN], size_t cap)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/spark/%s", data_dir(), rel);
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "part-", 5) == 0) {
            assert_true(n < cap);
            snprintf(names[n++], NAME_LEN, "%s/%s", rel, de->d_name);
        }
    closedir(d);
    qsort(names, n, sizeof names[0],
          (int (*)(const void *, const void *))strcmp);
    return n;
}

/* A failure: status, "line N: " at the start of the message, *out zeroed. */
static void rejects_n(const char *text, size_t len, int format, int status,
                      size_t line)
{
    cx__factors_in f;
    char err[256], prefix[32];
    memset(&f, 0x5a, sizeof f);     /* garbage: must come back zeroed */
    int rc = parse_n(text, len, format, &f, err, sizeof err, 0);
    snprintf(prefix, sizeof prefix, "line %zu: ", line);
    if (rc != status || strncmp(err, prefix, strlen(prefix)) != 0)
        print_error("\"%.*s\" -> %d \"%s\", want %d \"%s...\"\n", (int)len,
                    text, rc, err, status, prefix);
    assert_int_equal(rc, status);
    assert_true(strncmp(err, prefix, strlen(prefix)) == 0);
    assert_true(strlen(err) > strlen(prefix));
    assert_null(strchr(err, '\n'));
    assert_int_equal(f.n, 0);
    assert_int_equal(f.k, 0);
    assert_null(f.ids);
    assert_null(f.v);
}

static void rejects(const char *text, int format, size_t line)
{
    rejects_n(text, strlen(text), format, CX_EFORMAT, line);
}

/* ===================================================================== */
/* Spark's own output                                                    */
/* ===================================================================== */

static void test_json_part_files(void **state)
{
    (void)state;
    char names[8][NAME_LEN];
    size_t nparts = part_files("userFactors", names, 8);
    assert_int_equal(nparts, 2);
    cx__factors_in f;
    char err[256];
    for (size_t i = 0; i < nparts; i++) {
        size_t len;
        char *text = read_fixture(names[i], &len);
        int rc = parse_n(text, len, CX__SPARK_AUTO, &f, err, sizeof err, i > 0);
        if (rc)
            print_error("%s: %s\n", names[i], err);
        assert_int_equal(rc, CX_OK);
        assert_string_equal(err, "");
        free(text);
    }
    assert_fixture_rows(&f);
    cx__factors_in_free(&f);
    assert_int_equal(f.n, 0);
    assert_null(f.ids);
}

static void test_csv_with_header(void **state)
{
    (void)state;
    size_t len;
    char *text = read_fixture("userFactors.csv", &len);
    cx__factors_in f;
    char err[256];
    assert_int_equal(parse_n(text, len, CX__SPARK_AUTO, &f, err, sizeof err, 0),
                     CX_OK);
    assert_fixture_rows(&f);
    cx__factors_in_free(&f);
    /* The same with the format named. */
    assert_int_equal(parse_n(text, len, CX__SPARK_CSV, &f, err, sizeof err, 0),
                     CX_OK);
    assert_fixture_rows(&f);
    cx__factors_in_free(&f);
    free(text);
}

/* df.selectExpr("id", "cast(features as string)").write.csv(dir) */
static void test_csv_cast_form(void **state)
{
    (void)state;
    char names[8][NAME_LEN];
    assert_int_equal(part_files("userFactors-cast", names, 8), 1);
    size_t len;
    char *text = read_fixture(names[0], &len);
    cx__factors_in f;
    char err[256];
    assert_int_equal(parse_n(text, len, CX__SPARK_AUTO, &f, err, sizeof err, 0),
                     CX_OK);
    assert_fixture_rows(&f);
    cx__factors_in_free(&f);
    free(text);
}

/* ===================================================================== */
/* JSON lines                                                            */
/* ===================================================================== */

static void test_json_key_order_and_spacing(void **state)
{
    (void)state;
    cx__factors_in f;
    assert_int_equal(parse_str("{\"features\":[1.5,-2],\"id\":7}\n"
                               "{\"id\":8,\"features\":[0.25,4E2]}\n"
                               " \t{ \"features\" : [ 3 , 1.0e-3 ] ,\t\"id\" : "
                               "-9 } \t\r\n",
                               CX__SPARK_JSONL, &f),
                     CX_OK);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.k, 2);
    assert_string_equal(f.ids[0], "7");
    assert_string_equal(f.ids[1], "8");
    assert_string_equal(f.ids[2], "-9");
    const float v[] = {1.5f, -2.0f, 0.25f, 400.0f, 3.0f, 1.0e-3f};
    assert_memory_equal(f.v, v, sizeof v);
    cx__factors_in_free(&f);
}

static void test_json_string_ids(void **state)
{
    (void)state;
    cx__factors_in f;
    assert_int_equal(
        parse_str("{\"id\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\te\","
                  "\"features\":[1]}\n"
                  "{\"id\":\"\\u0041\\u00e9\\u20AC\",\"features\":[2]}\n"
                  "{\"id\":\"\\ud83d\\ude00!\",\"features\":[3]}\n"
                  "{\"id\":\"caf\xc3\xa9 raw\",\"features\":[4]}\n"
                  "{\"id\":\"0012\",\"features\":[5]}\n",
                  CX__SPARK_AUTO, &f),
        CX_OK);
    assert_int_equal(f.n, 5);
    assert_string_equal(f.ids[0], "a\"b\\c/d\b\f\n\r\te");
    assert_string_equal(f.ids[1], "A\xc3\xa9\xe2\x82\xac");
    assert_string_equal(f.ids[2], "\xf0\x9f\x98\x80!");
    assert_string_equal(f.ids[3], "caf\xc3\xa9 raw");
    assert_string_equal(f.ids[4], "0012");
    cx__factors_in_free(&f);
}

static void test_json_unknown_keys_blank_lines_crlf(void **state)
{
    (void)state;
    cx__factors_in f;
    assert_int_equal(
        parse_str("\r\n\n   \n"
                  "{\"rank\":3,\"id\":1,\"note\":\"x\\\"}\",\"ok\":true,"
                  "\"bad\":false,\"none\":null,\"w\":-1.5e3,"
                  "\"features\":[1,2]}\r\n"
                  "\r\n"
                  "{\"\\u0069d\":2,\"features\":[3,4],\"idx\":0}\r\n",
                  CX__SPARK_JSONL, &f),
        CX_OK);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.ids[0], "1");
    assert_string_equal(f.ids[1], "2");
    const float v[] = {1, 2, 3, 4};
    assert_memory_equal(f.v, v, sizeof v);
    cx__factors_in_free(&f);
}

static void test_json_rejects(void **state)
{
    (void)state;
    const int J = CX__SPARK_JSONL;
    /* A good row and a blank line first, so the bad one is line 3. */
#define ROW "{\"id\":1,\"features\":[1,2]}\n\n"
    rejects(ROW "{\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":2}\n", J, 3);
    rejects(ROW "{}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":3}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":\"[1,2]\"}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[\"1\",2]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,null]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":null}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[NaN,2]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,Infinity]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,-Infinity]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,\"NaN\"]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,1e39]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,-3.4028236E38]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,0x10]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,1.2.3]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2,]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1 2]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[[1],[2]]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2],\"m\":{\"a\":1}}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2],\"m\":[1]}\n", J, 3);
    rejects(ROW "{\"id\":{\"a\":1},\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":[2],\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2]} x\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2]}}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2]}{\"id\":3,\"features\":[1]}\n",
            J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2],}\n", J, 3);
    rejects(ROW "{\"id\":2 \"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2]\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2,3]}\n", J, 3);     /* k 3 != 2 */
    rejects(ROW "{\"id\":2,\"features\":[1]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[]}\n", J, 3);          /* k = 0 */
    rejects("{\"id\":2,\"features\":[ ]}\n", J, 1);
    rejects(ROW "{\"id\":2,\"id\":3,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2],\"features\":[1,2]}\n", J, 3);
    /* Ids: empty, fractional, exponent, leading zero, bare words. */
    rejects(ROW "{\"id\":\"\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":2.5,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":2e3,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":02,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":-,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":true,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":null,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"a\\u0000b\",\"features\":[1,2]}\n", J, 3);
    /* Strings: bad escapes, lone surrogates, raw control bytes. */
    rejects(ROW "{\"id\":\"a\\x\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"\\u12G4\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"\\ud800\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"\\ud800\\u0041\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"\\udc00\\ud800\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"a\tb\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"ab,\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":\"ab\n\",\"features\":[1,2]}\n", J, 3);
    rejects(ROW "{\"id\":2,features:[1,2]}\n", J, 3);
    rejects(ROW "[1,2]\n", J, 3);
    rejects(ROW "{\"id\":2,\"features\":[1,2],\"x\":tru}\n", J, 3);
    /* A NUL byte outside a string. */
    static const char nul[] = ROW "{\"id\":2,\0\"features\":[1,2]}\n";
    rejects_n(nul, sizeof nul - 1, J, CX_EFORMAT, 3);
#undef ROW
    /* The first row's line counts blank lines and CRLF too. */
    rejects("\r\n\n{\"id\":1}\r\n", J, 3);
    /* AUTO: a '{' after blank lines means JSON. */
    rejects("\n  \n{\"id\":1,\"features\":[1]}\n{\"id\":2}\n",
            CX__SPARK_AUTO, 4);
}

/* Ids of 512 bytes pass, 513 fail, in both formats; so do 1024 features
 * and 1025. */
static void test_limits(void **state)
{
    (void)state;
    size_t cap = 64 * 1024, n;
    char *t = malloc(cap);
    assert_non_null(t);
    cx__factors_in f;
    for (size_t len = 511; len <= 513; len++) {
        char id[600];
        memset(id, 'x', len);
        id[len] = '\0';
        n = (size_t)snprintf(t, cap, "{\"id\":\"%s\",\"features\":[1]}\n", id);
        if (len <= CX_MAX_ID_LEN) {
            assert_int_equal(parse_n(t, n, 0, &f, NULL, 0, 0), CX_OK);
            assert_int_equal(strlen(f.ids[0]), len);
            cx__factors_in_free(&f);
        } else {
            rejects_n(t, n, CX__SPARK_AUTO, CX_EFORMAT, 1);
        }
        n = (size_t)snprintf(t, cap, "1,2\n%s,1\n", id);
        if (len <= CX_MAX_ID_LEN) {
            assert_int_equal(parse_n(t, n, 0, &f, NULL, 0, 0), CX_OK);
            assert_int_equal(strlen(f.ids[1]), len);
            cx__factors_in_free(&f);
        } else {
            rejects_n(t, n, CX__SPARK_AUTO, CX_EFORMAT, 2);
        }
    }
    /* A numeric id is limited the same way. */
    n = (size_t)snprintf(t, cap, "{\"id\":1");
    for (size_t i = 0; i < CX_MAX_ID_LEN; i++)
        t[n++] = '0';
    n += (size_t)snprintf(t + n, cap - n, ",\"features\":[1]}");
    rejects_n(t, n, CX__SPARK_AUTO, CX_EFORMAT, 1);
    /* Escapes count by the bytes they decode to: 171 three-byte UTF-8
     * characters are 513 bytes. */
    n = (size_t)snprintf(t, cap, "{\"id\":\"");
    for (size_t i = 0; i < 171; i++)
        n += (size_t)snprintf(t + n, cap - n, "\\u20ac");
    n += (size_t)snprintf(t + n, cap - n, "\",\"features\":[1]}");
    rejects_n(t, n, CX__SPARK_AUTO, CX_EFORMAT, 1);
    for (size_t k = 1023; k <= 1025; k++) {
        n = (size_t)snprintf(t, cap, "{\"id\":1,\"features\":[");
        for (size_t d = 0; d < k; d++)
            n += (size_t)snprintf(t + n, cap - n, "%s%zu", d ? "," : "", d);
        n += (size_t)snprintf(t + n, cap - n, "]}\n");
        size_t jn = n;
        n += (size_t)snprintf(t + n, cap - n, "x");
        for (size_t d = 0; d < k; d++)
            n += (size_t)snprintf(t + n, cap - n, ",%zu", d);
        if (k <= CX__SPARK_MAX_K) {
            assert_int_equal(parse_n(t, jn, 0, &f, NULL, 0, 0), CX_OK);
            assert_int_equal(f.k, k);
            assert_true(f.v[k - 1] == (float)(k - 1));
            cx__factors_in_free(&f);
            assert_int_equal(parse_n(t + jn, n - jn, 0, &f, NULL, 0, 0), CX_OK);
            assert_int_equal(f.k, k);
            cx__factors_in_free(&f);
        } else {
            rejects_n(t, jn, CX__SPARK_AUTO, CX_EFORMAT, 1);
            rejects_n(t + jn, n - jn, CX__SPARK_AUTO, CX_EFORMAT, 1);
        }
    }
    /* A long but valid number is refused rather than cut (63 bytes is the
     * most): better an error than a silently different value. */
    n = (size_t)snprintf(t, cap, "1,0.%061d1\n", 0);
    assert_int_equal(n, 2 + 64 + 1);
    rejects_n(t, n, CX__SPARK_CSV, CX_EFORMAT, 1);
    n = (size_t)snprintf(t, cap, "1,0.%060d1\n", 0);
    assert_int_equal(parse_n(t, n, 0, &f, NULL, 0, 0), CX_OK);
    cx__factors_in_free(&f);
    free(t);
}

/* Values at the edges of float: Java prints Float.MAX_VALUE as
 * 3.4028235E38, above FLT_MAX in decimal but rounding to it; the smallest
 * subnormal; -0. */
static void test_float_edges(void **state)
{
    (void)state;
    cx__factors_in f;
    assert_int_equal(parse_str("{\"id\":1,\"features\":[3.4028235E38,"
                               "-3.4028235E38,1.4E-45,-0.0,1e-50]}",
                               CX__SPARK_JSONL, &f),
                     CX_OK);
    assert_true(f.v[0] == FLT_MAX);
    assert_true(f.v[1] == -FLT_MAX);
    assert_true(f.v[2] > 0 && f.v[2] < FLT_MIN);
    assert_true(f.v[3] == 0 && signbit(f.v[3]));
    assert_true(f.v[4] == 0);
    cx__factors_in_free(&f);
}

/* ===================================================================== */
/* CSV                                                                   */
/* ===================================================================== */

static void test_csv_forms(void **state)
{
    (void)state;
    cx__factors_in f;
    const int C = CX__SPARK_CSV;
    /* No header, CRLF, a lone CR, blank lines, padded and quoted values. */
    assert_int_equal(parse_str("\r\n1,0.5,-1\r\n\r\n2, 2.5 ,\"3\"\r3,4,5",
                               C, &f), CX_OK);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.k, 2);
    const float v[] = {0.5f, -1, 2.5f, 3, 4, 5};
    assert_memory_equal(f.v, v, sizeof v);
    assert_string_equal(f.ids[2], "3");
    cx__factors_in_free(&f);

    /* Headers in any case, quoted or not; then quoted ids. */
    assert_int_equal(parse_str("ID,features\n"
                               "\"a,b\",\"[1, 2]\"\n"
                               "\"say \"\"hi\"\"\",[3,4]\n"
                               "\"two\nlines\",\"[ 5 ,6 ]\"\n"
                               "plain id,7,8\n",
                               CX__SPARK_AUTO, &f), CX_OK);
    assert_int_equal(f.n, 4);
    assert_string_equal(f.ids[0], "a,b");
    assert_string_equal(f.ids[1], "say \"hi\"");
    assert_string_equal(f.ids[2], "two\nlines");
    assert_string_equal(f.ids[3], "plain id");
    for (size_t i = 0; i < 8; i++)
        assert_true(f.v[i] == (float)(i + 1));
    cx__factors_in_free(&f);
    assert_int_equal(parse_str("\"Id\",\"a\nb\",c\n1,2\n", C, &f), CX_OK);
    assert_int_equal(f.n, 1);
    cx__factors_in_free(&f);
    /* "id" is a header only on the first line. */
    assert_int_equal(parse_str("1,2\nid,3\n", C, &f), CX_OK);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.ids[1], "id");
    cx__factors_in_free(&f);
    /* A header alone, or nothing at all: no rows, no error. */
    assert_int_equal(parse_str("id,features\n", C, &f), CX_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(f.k, 0);
    cx__factors_in_free(&f);
    assert_int_equal(parse_str("", CX__SPARK_AUTO, &f), CX_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(parse_str("\n\r\n \n", CX__SPARK_AUTO, &f), CX_OK);
    assert_int_equal(f.n, 0);
    /* A UTF-8 byte order mark before the header. */
    assert_int_equal(parse_str("\xEF\xBB\xBFid,x\n1,2\n", CX__SPARK_AUTO, &f),
                     CX_OK);
    assert_int_equal(f.n, 1);
    cx__factors_in_free(&f);
}

static void test_csv_rejects(void **state)
{
    (void)state;
    const int C = CX__SPARK_CSV;
#define ROW "1,0.5,0.25\n\n"
    rejects(ROW "2\n", C, 3);
    rejects(ROW "2,\n", C, 3);
    rejects(ROW "2,0.5,\n", C, 3);
    rejects(ROW "2,,0.5\n", C, 3);
    rejects(ROW "2,abc,1\n", C, 3);
    rejects(ROW "2,nan,1\n", C, 3);
    rejects(ROW "2,NaN,1\n", C, 3);
    rejects(ROW "2,inf,1\n", C, 3);
    rejects(ROW "2,-Infinity,1\n", C, 3);
    rejects(ROW "2,1e39,1\n", C, 3);
    rejects(ROW "2,1,2,3\n", C, 3);             /* k 3 != 2 */
    rejects(ROW "2,1\n", C, 3);
    rejects(ROW "2,\"[1,2,3]\"\n", C, 3);
    rejects(ROW "2,\"[]\"\n", C, 3);
    rejects(ROW "2,\"[1,2\"\n", C, 3);
    rejects(ROW "2,\"[1,2]\n", C, 3);
    rejects(ROW "2,\"[1,2]\"x\n", C, 3);
    rejects(ROW "2,\"[1,2]\",3\n", C, 3);
    rejects(ROW "2,\"[1;2]\"\n", C, 3);
    rejects(ROW "2,[1,2]]\n", C, 3);
    rejects(ROW "2,\"1,2\n", C, 3);
    rejects(ROW "2,1 2,3\n", C, 3);
    rejects(ROW "a\"b,1,2\n", C, 3);
    rejects(ROW "\"a\"b,1,2\n", C, 3);
    rejects(ROW "\"\",1,2\n", C, 3);
    rejects(ROW ",1,2\n", C, 3);
    rejects(ROW "\"abc,1,2\n", C, 3);
    /* A multi-line id moves the line count on. */
    rejects(ROW "\"a\nb\nc\",1,2\n3,x,1\n", C, 6);
    rejects("id\n1,2,3\n\"a\nb\",1\n", C, 4);
    static const char nul[] = ROW "a\0b,1,2\n";
    rejects_n(nul, sizeof nul - 1, C, CX_EFORMAT, 3);
    static const char nul2[] = ROW "2,1\0,2\n";
    rejects_n(nul2, sizeof nul2 - 1, C, CX_EFORMAT, 3);
#undef ROW
    /* JSON text read as CSV, and CSV read as JSON. */
    rejects("{\"id\":1,\"features\":[1]}\n", C, 1);
    rejects("1,2\n", CX__SPARK_JSONL, 1);
}

/* ===================================================================== */
/* Appending part files                                                  */
/* ===================================================================== */

static void test_parse_more(void **state)
{
    (void)state;
    cx__factors_in f;
    char err[256];
    assert_int_equal(parse_str("{\"id\":1,\"features\":[1,2]}\n", 0, &f),
                     CX_OK);
    /* An empty part file (an empty partition) adds nothing. */
    assert_int_equal(parse_n("", 0, 0, &f, err, sizeof err, 1), CX_OK);
    assert_int_equal(f.n, 1);
    /* Another format in the next part is fine, the same k is required. */
    assert_int_equal(parse_n("2,3,4\n3,5,6\n", 12, 0, &f, err, sizeof err, 1),
                     CX_OK);
    assert_int_equal(f.n, 3);
    const char *bad = "4,1,2\n\n5,1,2,3\n";
    assert_int_equal(parse_n(bad, strlen(bad), 0, &f, err, sizeof err, 1),
                     CX_EFORMAT);
    assert_true(strncmp(err, "line 3: ", 8) == 0);
    /* The failed call left the rows as they were. */
    assert_int_equal(f.n, 3);
    assert_int_equal(f.k, 2);
    bad = "{\"id\":6,\"features\":[1]}";
    assert_int_equal(parse_n(bad, strlen(bad), 0, &f, err, sizeof err, 1),
                     CX_EFORMAT);
    assert_true(strncmp(err, "line 1: ", 8) == 0);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.ids[0], "1");
    assert_string_equal(f.ids[1], "2");
    assert_string_equal(f.ids[2], "3");
    const float v[] = {1, 2, 3, 4, 5, 6};
    assert_memory_equal(f.v, v, sizeof v);
    /* Many rows through several growths, appended to the three. */
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(t + n, cap - n,
                              "{\"id\":\"r%d\",\"features\":[%d,-%d]}\n", i, i,
                              i);
    assert_int_equal(parse_n(t, n, 0, &f, err, sizeof err, 1), CX_OK);
    assert_int_equal(f.n, 5003);
    assert_string_equal(f.ids[5002], "r4999");
    assert_true(f.v[2 * 5002] == 4999 && f.v[2 * 5002 + 1] == -4999);
    assert_string_equal(f.ids[2], "3");
    free(t);
    /* Duplicates are the caller's business. */
    assert_int_equal(parse_n("1,7,8", 5, 0, &f, err, sizeof err, 1), CX_OK);
    assert_int_equal(f.n, 5004);
    assert_string_equal(f.ids[5003], "1");
    cx__factors_in_free(&f);
    /* parse_more into an empty struct is parse. */
    assert_int_equal(parse_n("1,7,8", 5, 0, &f, err, sizeof err, 1), CX_OK);
    assert_int_equal(f.n, 1);
    cx__factors_in_free(&f);
}

/* ===================================================================== */
/* Truncated input                                                       */
/* ===================================================================== */

/* Every prefix of a file parses to fewer rows, all of them right, or fails
 * cleanly (the leak checker and ASan watch the rest).  In CSV the last row
 * of a prefix may be cut inside a number and so differ. */
static void check_prefixes(const char *text, size_t len, int json)
{
    cx__factors_in full, f;
    char err[256];
    assert_int_equal(parse_n(text, len, 0, &full, err, sizeof err, 0), CX_OK);
    size_t ok = 0, failed = 0;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = parse_n(text, cut, 0, &f, err, sizeof err, 0);
        if (rc != CX_OK) {
            assert_int_equal(rc, CX_EFORMAT);
            assert_true(strncmp(err, "line ", 5) == 0);
            assert_int_equal(f.n, 0);
            assert_null(f.ids);
            failed++;
            continue;
        }
        ok++;
        assert_true(f.n <= full.n);
        size_t exact = json || f.n == 0 ? f.n : f.n - 1;
        for (size_t i = 0; i < exact; i++) {
            assert_string_equal(f.ids[i], full.ids[i]);
            assert_memory_equal(f.v + i * f.k, full.v + i * full.k,
                                f.k * sizeof(float));
        }
        cx__factors_in_free(&f);
    }
    assert_true(ok > 0 && failed > 0);
    cx__factors_in_free(&full);
}

static void test_truncated(void **state)
{
    (void)state;
    char names[8][NAME_LEN];
    size_t len;
    assert_int_equal(part_files("userFactors", names, 8), 2);
    char *text = read_fixture(names[0], &len);
    check_prefixes(text, len, 1);
    free(text);
    text = read_fixture("userFactors.csv", &len);
    check_prefixes(text, len, 0);
    free(text);
    assert_int_equal(part_files("userFactors-cast", names, 8), 1);
    text = read_fixture(names[0], &len);
    check_prefixes(text, len, 0);
    free(text);
    static const char esc[] =
        "{\"x\":\"y\",\"id\":\"\\ud83d\\ude00\\u00e9\\n\","
        "\"features\":[1.0E-4, 2]}\r\n"
        "{\"features\":[-0.5,3.25E2],\"id\":-17}\r\n";
    check_prefixes(esc, sizeof esc - 1, 1);
    static const char quoted[] =
        "ID,f\r\n\"a\"\"b\nc\",\"[1.5, 2]\"\r\n\"d,e\",3,4\r\n";
    check_prefixes(quoted, sizeof quoted - 1, 0);
}

/* ===================================================================== */
/* Misuse                                                                */
/* ===================================================================== */

static void test_misuse(void **state)
{
    (void)state;
    cx__factors_in f;
    char err[64];
    assert_int_equal(cx__spark_parse("1,2", 3, 0, NULL, err, sizeof err),
                     CX_EINVAL);
    assert_true(strlen(err) > 0);
    assert_int_equal(cx__spark_parse(NULL, 3, 0, &f, err, sizeof err),
                     CX_EINVAL);
    assert_int_equal(f.n, 0);
    assert_null(f.ids);
    assert_int_equal(cx__spark_parse("1,2", 3, 3, &f, err, sizeof err),
                     CX_EINVAL);
    assert_int_equal(cx__spark_parse("1,2", 3, -1, &f, err, sizeof err),
                     CX_EINVAL);
    assert_int_equal(cx__spark_parse(NULL, 0, 0, &f, err, sizeof err), CX_OK);
    assert_string_equal(err, "");
    assert_int_equal(f.n, 0);
    /* No message wanted, or a tiny buffer: still NUL-terminated. */
    assert_int_equal(cx__spark_parse("1,x", 3, 0, &f, NULL, 0), CX_EFORMAT);
    assert_int_equal(cx__spark_parse("1,x", 3, 0, &f, NULL, 10), CX_EFORMAT);
    err[0] = 'z';
    assert_int_equal(cx__spark_parse("1,x", 3, 0, &f, err, 1), CX_EFORMAT);
    assert_int_equal(err[0], '\0');
    memset(err, 'z', sizeof err);
    assert_int_equal(cx__spark_parse("1,x", 3, 0, &f, err, 5), CX_EFORMAT);
    assert_string_equal(err, "line");
    memset(err, 'z', sizeof err);
    assert_int_equal(cx__spark_parse("1,x", 3, 0, &f, err, 12), CX_EFORMAT);
    assert_string_equal(err, "line 1: fea");
    /* A struct already at the row limit takes no more (CX_ELIMIT), and is
     * left as it was. */
    memset(&f, 0, sizeof f);
    f.n = CX__SPARK_MAX_ROWS;
    f.k = 1;
    assert_int_equal(cx__spark_parse_more("\n1,2\n", 5, 0, &f, err, sizeof err),
                     CX_ELIMIT);
    assert_true(strncmp(err, "line 2: ", 8) == 0);
    assert_true(f.n == CX__SPARK_MAX_ROWS);
    assert_null(f.ids);
    memset(&f, 0, sizeof f);
    cx__factors_in_free(NULL);
    cx__factors_in_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_part_files),
        cmocka_unit_test(test_csv_with_header),
        cmocka_unit_test(test_csv_cast_form),
        cmocka_unit_test(test_json_key_order_and_spacing),
        cmocka_unit_test(test_json_string_ids),
        cmocka_unit_test(test_json_unknown_keys_blank_lines_crlf),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_float_edges),
        cmocka_unit_test(test_csv_forms),
        cmocka_unit_test(test_csv_rejects),
        cmocka_unit_test(test_parse_more),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
