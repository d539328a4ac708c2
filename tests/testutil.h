/* testutil.h -- shared helpers for the cmocka tests.
 * Every test file includes this first; it pulls in cmocka, the public
 * header, the library's internals (for the cx__* reference checks) and the
 * synthetic shop. */
#ifndef CX_TESTUTIL_H
#define CX_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cxengine.h"
#include "internal.h"
#include "synth.h"
#include "shopload.h"

/* TU_FILTER=pattern runs only the tests whose names match (cmocka's
 * wildcards), e.g. TU_FILTER='test_reopen*' build/tests/test_datadir. */
__attribute__((constructor)) static void tu_filter(void)
{
    const char *f = getenv("TU_FILTER");
    if (f && *f)
        cmocka_set_test_filter(f);
}

#define TU_UNUSED __attribute__((unused))

/* Assert a status, printing the engine's message when it is not the one
 * expected. */
#define TU_OK(e, call)                                                      \
    do {                                                                    \
        int tu_rc_ = (call);                                                \
        if (tu_rc_ != CX_OK)                                                \
            print_error("%s -> %d (%s): %s\n", #call, tu_rc_,               \
                        cx_strerror(tu_rc_), cx_errmsg(e));                 \
        assert_int_equal(tu_rc_, CX_OK);                                    \
    } while (0)

/* One ranked list, and cx_recommend into it. */
#define KMAX 1024
typedef struct result {
    const char *items[KMAX];
    float scores[KMAX];
    int reasons[KMAX];
    size_t n;
} result;

static TU_UNUSED int rec(cx_engine *e, const char *cust, size_t k,
                         const cx_rec_opts *o, result *r)
{
    assert_true(k <= KMAX);
    memset(r, 0, sizeof *r);
    return cx_recommend(e, cust, k, o, r->items, r->scores, r->reasons,
                        &r->n);
}

/* A call that must fail with status `want` and leave a message. */
#define FAILS(e, call, want)                                                \
    do {                                                                    \
        int rc_ = (call);                                                   \
        if (rc_ != (want))                                                  \
            print_error("%s -> %d, want %d (%s)\n", #call, rc_, (want),     \
                        cx_errmsg(e));                                      \
        assert_int_equal(rc_, (want));                                      \
        assert_true(strlen(cx_errmsg(e)) > 0);                              \
    } while (0)

/* The ALS score alone (blend 1, 0, 0, 0): the tests of the model's
 * arithmetic compare cx_recommend with it; test_quality tests the blend. */
static TU_UNUSED void tu_plain(cx_engine *e)
{
    assert_int_equal(cx_set_option(e, CX_OPT_BLEND_POPULAR, 0), CX_OK);
    assert_int_equal(cx_set_option(e, CX_OPT_BLEND_REPEAT, 0), CX_OK);
    assert_int_equal(cx_set_option(e, CX_OPT_BLEND_COBOUGHT, 0), CX_OK);
}

/* Open an engine and ingest n signals from parallel arrays (values,
 * timestamps may be NULL).  Threads are pinned to 1 unless changed; the
 * blend is the plain ALS score (tu_plain). */
static TU_UNUSED cx_engine *tu_engine(size_t n, const char *const *cust,
                                      const char *const *items,
                                      const int *types, const float *values,
                                      const int64_t *ts)
{
    cx_engine *e = NULL;
    assert_int_equal(cx_open(&e, NULL, 0), CX_OK);
    assert_non_null(e);
    assert_int_equal(cx_set_option(e, CX_OPT_THREADS, 1), CX_OK);
    tu_plain(e);
    if (n)
        TU_OK(e, cx_ingest(e, n, cust, items, types, values, ts, NULL));
    return e;
}

#define tu_upsert_catalogue shop_upsert_catalogue
#define tu_ingest_signals shop_ingest

/* Generate the shop of config c and load it into a new engine: catalogue
 * first (engine item i = shop item i), then every signal; the plain ALS
 * blend (tu_plain).  The caller frees both. */
static TU_UNUSED cx_engine *tu_shop_engine_cfg(const synth_config *c,
                                               synth_shop *shop)
{
    assert_int_equal(synth_generate(c, shop), 0);
    cx_engine *e = NULL;
    assert_int_equal(cx_open(&e, NULL, 0), CX_OK);
    tu_plain(e);
    TU_OK(e, tu_upsert_catalogue(e, shop));
    TU_OK(e, tu_ingest_signals(e, shop, 0, shop->n_signals, 4096));
    return e;
}

/* The default shop of about n_signals signals (taste_strength < 0 keeps
 * the default 0.8). */
static TU_UNUSED cx_engine *tu_shop_engine(size_t n_signals, double taste,
                                           uint64_t seed, synth_shop *shop)
{
    synth_config c;
    synth_config_default(&c, n_signals);
    c.seed = seed;
    if (taste >= 0)
        c.taste_strength = taste;
    return tu_shop_engine_cfg(&c, shop);
}

/* Dense index of an id by scanning cx_customer_id / cx_item_id. */
static TU_UNUSED size_t tu_customer_index(cx_engine *e, const char *id)
{
    const char *s;
    for (size_t i = 0; (s = cx_customer_id(e, i)); i++)
        if (strcmp(s, id) == 0)
            return i;
    return SIZE_MAX;
}

static TU_UNUSED size_t tu_item_index(cx_engine *e, const char *id)
{
    const char *s;
    for (size_t i = 0; (s = cx_item_id(e, i)); i++)
        if (strcmp(s, id) == 0)
            return i;
    return SIZE_MAX;
}

static TU_UNUSED int64_t tu_stat(cx_engine *e, int key)
{
    int64_t v = -1;
    assert_int_equal(cx_stat(e, key, &v), CX_OK);
    return v;
}

/* Dot product in double. */
static TU_UNUSED double tu_dot(const float *a, const float *b, size_t k)
{
    double s = 0;
    for (size_t d = 0; d < k; d++)
        s += (double)a[d] * b[d];
    return s;
}

/* A fresh scratch directory under /tmp; tu_rmdir removes it and
 * everything in it. */
static TU_UNUSED void tu_mkdtemp(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/cxtest_%s_XXXXXX", tag);
    assert_non_null(mkdtemp(buf));
}

static TU_UNUSED int tu_rm_one(const char *p, const struct stat *st,
                               int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* Remove dir and everything below it. */
static TU_UNUSED void tu_rmdir(const char *dir)
{
    assert_int_equal(nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Read a whole file; *n receives its size. */
static TU_UNUSED unsigned char *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

static TU_UNUSED void tu_write_file(const char *path, const void *p,
                                    size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

#endif /* CX_TESTUTIL_H */
