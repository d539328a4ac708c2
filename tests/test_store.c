/* test_store.c -- cx_save / cx_load round trips, .npy export, and a loader
 * that refuses truncated, bit-flipped and future files without crashing. */
#include "testutil.h"

#include <sys/stat.h>

typedef struct fixture {
    synth_shop shop;
    cx_engine *e;
    int custom;           /* number of the custom signal type */
    char dir[256];
    char path[512];       /* the saved engine */
    unsigned char *file;  /* its bytes */
    size_t size;
} fixture;

/* Non-default options everywhere, so a loader that fell back to the
 * defaults would be caught. */
static const struct {
    int key;
    double v;
} options[] = {
    {CX_OPT_FACTORS, 16},     {CX_OPT_ITERATIONS, 4},
    {CX_OPT_REGULARIZATION, 0.125}, {CX_OPT_ALPHA, 3.5},
    {CX_OPT_SOLVER, CX_SOLVER_CHOLESKY}, {CX_OPT_CG_STEPS, 5},
    {CX_OPT_THREADS, 2},      {CX_OPT_SEED, 12345},
    {CX_OPT_HALF_LIFE, 604800}, {CX_OPT_INIT_SCALE, 0.02},
    {CX_OPT_CANDIDATES, 5},   {CX_OPT_WEIGHT + CX_VIEW, 1.5},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->e = tu_shop_engine(8000, -1, 2, &f->shop);
    for (size_t j = 0; j < NOPTIONS; j++)
        TU_OK(f->e, cx_set_option(f->e, options[j].key, options[j].v));
    TU_OK(f->e, cx_signal_type_define(f->e, "wishlist", 3, &f->custom));
    int other;
    TU_OK(f->e, cx_signal_type_define(f->e, "hide", -7, &other));
    /* Signals of the custom types from a few customers. */
    const char *c[] = {"c0000001", "c0000002", "c0000003"};
    const char *i[] = {f->shop.items[0].id, f->shop.items[1].id,
                       f->shop.items[2].id};
    int t[] = {f->custom, f->custom, other};
    TU_OK(f->e, cx_ingest(f->e, 3, c, i, t, NULL, NULL, NULL));
    TU_OK(f->e, cx_train(f->e, NULL, NULL));
    tu_mkdtemp(f->dir, sizeof f->dir, "store");
    snprintf(f->path, sizeof f->path, "%s/engine.cx", f->dir);
    TU_OK(f->e, cx_save(f->e, f->path));
    f->file = tu_read_file(f->path, &f->size);
    assert_non_null(f->file);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cx_close(f->e);
    synth_free(&f->shop);
    free(f->file);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ===================================================================== */
/* Round trip                                                            */
/* ===================================================================== */

static void assert_same_engine(cx_engine *a, cx_engine *b)
{
    for (int key = CX_STAT_CUSTOMERS; key <= CX_STAT_MODEL_ITEMS; key++)
        assert_int_equal(tu_stat(a, key), tu_stat(b, key));
    /* Options, weights of every type. */
    const int keys[] = {CX_OPT_FACTORS, CX_OPT_ITERATIONS,
                        CX_OPT_REGULARIZATION, CX_OPT_ALPHA, CX_OPT_SOLVER,
                        CX_OPT_CG_STEPS, CX_OPT_THREADS, CX_OPT_SEED,
                        CX_OPT_HALF_LIFE, CX_OPT_INIT_SCALE,
                        CX_OPT_CANDIDATES};
    for (size_t j = 0; j < sizeof keys / sizeof *keys; j++) {
        double va, vb;
        TU_OK(a, cx_get_option(a, keys[j], &va));
        TU_OK(b, cx_get_option(b, keys[j], &vb));
        assert_true(va == vb);
    }
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++) {
        double va, vb;
        TU_OK(a, cx_get_option(a, CX_OPT_WEIGHT + t, &va));
        TU_OK(b, cx_get_option(b, CX_OPT_WEIGHT + t, &vb));
        assert_true(va == vb);
        const char *na = cx_signal_type_name(a, t);
        const char *nb = cx_signal_type_name(b, t);
        assert_true((na == NULL) == (nb == NULL));
        if (na)
            assert_string_equal(na, nb);
    }
    /* Ids in the same order; catalogue facts. */
    size_t nc = (size_t)tu_stat(a, CX_STAT_CUSTOMERS);
    size_t ni = (size_t)tu_stat(a, CX_STAT_ITEMS);
    for (size_t c = 0; c < nc; c++)
        assert_string_equal(cx_customer_id(a, c), cx_customer_id(b, c));
    for (size_t i = 0; i < ni; i++) {
        const char *id = cx_item_id(a, i), *ca, *cb;
        double pa, pb;
        int sa, sb;
        int64_t ta, tb;
        assert_string_equal(id, cx_item_id(b, i));
        int ra = cx_item_get(a, id, &ca, &pa, &sa, &ta);
        int rb = cx_item_get(b, id, &cb, &pb, &sb, &tb);
        assert_int_equal(ra, rb);
        if (ra == CX_OK) {
            assert_string_equal(ca, cb);
            assert_true(pa == pb);
            assert_int_equal(sa, sb);
            assert_int_equal(ta, tb);
        }
    }
    /* Factors bit for bit. */
    if (tu_stat(a, CX_STAT_GENERATION) > 0)
        for (int which = 0; which <= 1; which++) {
            const float *fa, *fb;
            size_t ra, rb, ka, kb;
            TU_OK(a, cx_factors(a, which, &fa, &ra, &ka));
            TU_OK(b, cx_factors(b, which, &fb, &rb, &kb));
            assert_int_equal(ra, rb);
            assert_int_equal(ka, kb);
            assert_memory_equal(fa, fb, ra * ka * sizeof *fa);
        }
    /* Recommendations of every customer and some strangers, both paths,
     * and similar items. */
    for (size_t c = 0; c < nc + 3; c++) {
        char ghost[32];
        snprintf(ghost, sizeof ghost, "ghost-%zu", c);
        const char *id = c < nc ? cx_customer_id(a, c) : ghost;
        for (int exact = 0; exact <= 1; exact++) {
            cx_rec_opts o;
            cx_rec_opts_init(&o);
            o.exact = exact;
            const char *ia[10], *ib[10];
            float sa[10], sb[10];
            int ra[10], rb[10];
            size_t na, nb;
            TU_OK(a, cx_recommend(a, id, 10, &o, ia, sa, ra, &na));
            TU_OK(b, cx_recommend(b, id, 10, &o, ib, sb, rb, &nb));
            assert_int_equal(na, nb);
            for (size_t j = 0; j < na; j++) {
                assert_string_equal(ia[j], ib[j]);
                assert_true(sa[j] == sb[j]);
                assert_int_equal(ra[j], rb[j]);
            }
        }
    }
    if (tu_stat(a, CX_STAT_GENERATION) > 0)
        for (size_t i = 0; i < ni; i += 7) {
            const char *ia[5], *ib[5];
            float sa[5], sb[5];
            size_t na, nb;
            int ra = cx_similar_items(a, cx_item_id(a, i), 5, NULL, ia, sa,
                                      NULL, &na);
            int rb = cx_similar_items(b, cx_item_id(b, i), 5, NULL, ib, sb,
                                      NULL, &nb);
            assert_int_equal(ra, rb);
            assert_int_equal(na, nb);
            for (size_t j = 0; j < na; j++) {
                assert_string_equal(ia[j], ib[j]);
                assert_true(sa[j] == sb[j]);
            }
        }
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    cx_engine *g = NULL;
    TU_OK(NULL, cx_load(&g, f->path));
    assert_non_null(g);
    assert_same_engine(f->e, g);
    /* Custom types by name, with their numbers. */
    int t;
    TU_OK(g, cx_signal_type_lookup(g, "wishlist", &t));
    assert_int_equal(t, f->custom);
    TU_OK(g, cx_signal_type_lookup(g, "hide", &t));
    double w;
    TU_OK(g, cx_get_option(g, CX_OPT_WEIGHT + t, &w));
    assert_true(w == -7);
    /* Saving the loaded engine writes the same bytes. */
    char again[600];
    snprintf(again, sizeof again, "%s/again.cx", f->dir);
    TU_OK(g, cx_save(g, again));
    size_t n;
    unsigned char *p = tu_read_file(again, &n);
    assert_int_equal(n, f->size);
    assert_memory_equal(p, f->file, n);
    free(p);
    unlink(again);
    /* The loaded engine goes on: new signals, new customers, training. */
    const char *c[] = {"brand-new", "c0000004"};
    const char *i[] = {f->shop.items[3].id, "brand-new-item"};
    int ty[] = {CX_PURCHASE, CX_VIEW};
    TU_OK(g, cx_ingest(g, 2, c, i, ty, NULL, NULL, NULL));
    TU_OK(g, cx_train(g, NULL, NULL));
    assert_int_equal(tu_stat(g, CX_STAT_GENERATION),
                     tu_stat(f->e, CX_STAT_GENERATION) + 1);
    const char *items[5];
    size_t cnt;
    TU_OK(g, cx_recommend(g, "brand-new", 5, NULL, items, NULL, NULL, &cnt));
    assert_int_equal(cnt, 5);
    cx_close(g);
}

/* Without a model, and with nothing at all. */
static void test_round_trip_untrained_and_empty(void **state)
{
    fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/small.cx", f->dir);
    for (int v = 0; v < 3; v++) {
        cx_engine *e;
        TU_OK(NULL, cx_open(&e, NULL, 0));
        tu_plain(e);
        if (v >= 1)
            TU_OK(e, tu_upsert_catalogue(e, &f->shop));
        if (v >= 2)
            TU_OK(e, tu_ingest_signals(e, &f->shop, 0, 500, 100));
        TU_OK(e, cx_save(e, path));
        cx_engine *g;
        TU_OK(NULL, cx_load(&g, path));
        assert_same_engine(e, g);
        assert_int_equal(tu_stat(g, CX_STAT_GENERATION), 0);
        const float *data;
        size_t r, k;
        assert_int_equal(cx_factors(g, 0, &data, &r, &k), CX_ENOTTRAINED);
        /* Loaded engines accept new data like fresh ones. */
        const char *c[] = {"x", "x"}, *i[] = {"y", "z"};
        int ty[] = {CX_VIEW, CX_PURCHASE};
        TU_OK(g, cx_ingest(g, 2, c, i, ty, NULL, NULL, NULL));
        TU_OK(g, cx_set_option(g, CX_OPT_FACTORS, 4));
        TU_OK(g, cx_train(g, NULL, NULL));
        cx_close(e);
        cx_close(g);
    }
    unlink(path);
}

static void test_save_is_atomic(void **state)
{
    fixture *f = *state;
    char path[600], tmp[610];
    snprintf(path, sizeof path, "%s/atomic.cx", f->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    TU_OK(f->e, cx_save(f->e, path));
    assert_true(exists(path));
    assert_false(exists(tmp));
    /* A stale .tmp from a crashed save is replaced, not left behind; an
     * existing file is replaced whole. */
    tu_write_file(tmp, "junk", 4);
    tu_write_file(path, "older and longer content than junk", 34);
    TU_OK(f->e, cx_save(f->e, path));
    assert_false(exists(tmp));
    size_t n;
    unsigned char *p = tu_read_file(path, &n);
    assert_int_equal(n, f->size);
    assert_memory_equal(p, f->file, n);
    free(p);
    unlink(path);
    /* A failed save leaves nothing. */
    snprintf(path, sizeof path, "%s/missing/atomic.cx", f->dir);
    assert_int_equal(cx_save(f->e, path), CX_EIO);
    snprintf(tmp, sizeof tmp, "%s/missing", f->dir);
    assert_false(exists(tmp));
}

/* ===================================================================== */
/* .npy export                                                           */
/* ===================================================================== */

static void check_npy(const char *path, const float *data, size_t rows,
                      size_t cols)
{
    size_t n;
    unsigned char *p = tu_read_file(path, &n);
    assert_non_null(p);
    assert_true(n >= 10);
    assert_memory_equal(p, "\x93NUMPY", 6);
    assert_int_equal(p[6], 1); /* format version 1.0 */
    assert_int_equal(p[7], 0);
    size_t hl = (size_t)p[8] | (size_t)p[9] << 8;
    assert_int_equal((10 + hl) % 64, 0);
    assert_true(10 + hl <= n);
    char *h = malloc(hl + 1);
    memcpy(h, p + 10, hl);
    h[hl] = 0;
    assert_int_equal(h[0], '{');
    assert_int_equal(h[hl - 1], '\n');
    assert_non_null(strstr(h, "'descr': '<f4'"));
    assert_non_null(strstr(h, "'fortran_order': False"));
    char shape[64];
    snprintf(shape, sizeof shape, "'shape': (%zu, %zu)", rows, cols);
    assert_non_null(strstr(h, shape));
    /* Only spaces between the closing brace and the newline. */
    char *close = strrchr(h, '}');
    assert_non_null(close);
    for (char *q = close + 1; q < h + hl - 1; q++)
        assert_int_equal(*q, ' ');
    assert_int_equal(n, 10 + hl + rows * cols * sizeof(float));
    assert_memory_equal(p + 10 + hl, data, rows * cols * sizeof(float));
    free(h);
    free(p);
}

static void check_ids(const char *path, cx_engine *e, int which, size_t rows)
{
    size_t n;
    char *p = (char *)tu_read_file(path, &n);
    assert_non_null(p);
    p[n] = 0;
    size_t line = 0;
    for (char *s = p, *nl; (nl = strchr(s, '\n')); s = nl + 1, line++) {
        *nl = 0;
        assert_true(line < rows);
        assert_string_equal(s, which ? cx_item_id(e, line)
                                     : cx_customer_id(e, line));
    }
    assert_int_equal(line, rows);
    assert_int_equal(p[n - 1], 0); /* the last line ended with \n */
    free(p);
}

static void test_export_npy(void **state)
{
    fixture *f = *state;
    char dir[256], path[512];
    tu_mkdtemp(dir, sizeof dir, "npy");
    TU_OK(f->e, cx_export_npy(f->e, dir));
    const char *npy[] = {"customer_factors.npy", "item_factors.npy"};
    const char *txt[] = {"customer_ids.txt", "item_ids.txt"};
    for (int which = 0; which <= 1; which++) {
        const float *data;
        size_t rows, cols;
        TU_OK(f->e, cx_factors(f->e, which, &data, &rows, &cols));
        assert_true(rows > 0);
        snprintf(path, sizeof path, "%s/%s", dir, npy[which]);
        check_npy(path, data, rows, cols);
        snprintf(path, sizeof path, "%s/%s", dir, txt[which]);
        check_ids(path, f->e, which, rows);
    }
    tu_rmdir(dir);
}

/* ===================================================================== */
/* Damaged files                                                         */
/* ===================================================================== */

/* Load bytes p[0..n) from a file; the status, with *out NULL on failure. */
static int load_bytes(fixture *f, const unsigned char *p, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/damaged.cx", f->dir);
    tu_write_file(path, p, n);
    cx_engine *g = (cx_engine *)f;
    int rc = cx_load(&g, path);
    if (rc == CX_OK) {
        assert_non_null(g);
        cx_close(g);
    } else {
        assert_null(g);
        assert_true(strlen(cx_errmsg(NULL)) > 0);
    }
    unlink(path);
    return rc;
}

/* Offsets of the section headers, from the file's own layout: a 32-byte
 * header, then per section a 24-byte header (u32 tag, u32 reserved, u64
 * length, u64 checksum) and the payload padded to 8 bytes. */
static size_t sections(const fixture *f, size_t *at, size_t max)
{
    size_t n = 0, pos = 32;
    while (pos + 24 <= f->size && n < max) {
        uint64_t len;
        memcpy(&len, f->file + pos + 8, 8);
        at[n++] = pos;
        pos += 24 + len + (8 - len % 8) % 8;
    }
    assert_int_equal(pos, f->size);
    return n;
}

static void test_truncated(void **state)
{
    fixture *f = *state;
    size_t sec[16], ns = sections(f, sec, 16);
    assert_int_equal(ns, 10); /* with a model */
    size_t cut[64], nc = 0;
    const size_t fixed[] = {0, 1, 7, 8, 12, 16, 24, 31, 32, 33, 40, 55};
    for (size_t j = 0; j < sizeof fixed / sizeof *fixed; j++)
        cut[nc++] = fixed[j];
    for (size_t s = 0; s < ns; s++) { /* around each section start */
        cut[nc++] = sec[s] - 1;
        cut[nc++] = sec[s] + 12;
        cut[nc++] = sec[s] + 24;
    }
    uint64_t st = 99;
    while (nc < 60) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        cut[nc++] = (size_t)((st >> 33) % f->size);
    }
    cut[nc++] = f->size - 8;
    cut[nc++] = f->size - 1;
    for (size_t j = 0; j < nc; j++) {
        int rc = load_bytes(f, f->file, cut[j]);
        if (rc != CX_ECORRUPT)
            print_error("truncated to %zu of %zu -> %d\n", cut[j], f->size,
                        rc);
        assert_int_equal(rc, CX_ECORRUPT);
    }
    /* Bytes appended are as bad as bytes missing. */
    unsigned char *p = malloc(f->size + 8);
    memcpy(p, f->file, f->size);
    memset(p + f->size, 0, 8);
    assert_int_equal(load_bytes(f, p, f->size + 8), CX_ECORRUPT);
    free(p);
    /* The intact bytes load. */
    assert_int_equal(load_bytes(f, f->file, f->size), CX_OK);
}

static void test_bit_flips(void **state)
{
    fixture *f = *state;
    size_t sec[16], ns = sections(f, sec, 16);
    size_t pos[400], np = 0;
    for (size_t j = 0; j < 32; j++) /* every header byte */
        pos[np++] = j;
    for (size_t s = 0; s < ns; s++) {
        /* tag, the reserved word, length and checksum */
        const size_t off[] = {0, 3, 4, 5, 7, 8, 11, 15, 16, 23};
        for (size_t j = 0; j < sizeof off / sizeof *off; j++)
            pos[np++] = sec[s] + off[j];
        /* the zero padding after the payload, if any */
        size_t end = s + 1 < ns ? sec[s + 1] : f->size;
        uint64_t len;
        memcpy(&len, f->file + sec[s] + 8, 8);
        for (size_t q = sec[s] + 24 + len; q < end; q++)
            pos[np++] = q;
        pos[np++] = sec[s] + 24; /* the payload's first byte */
    }
    uint64_t st = 7;
    while (np < 260) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        pos[np++] = (size_t)((st >> 33) % f->size);
    }
    unsigned char *p = malloc(f->size);
    for (size_t j = 0; j < np; j++) {
        memcpy(p, f->file, f->size);
        p[pos[j]] ^= (unsigned char)(1u << (j % 8));
        int rc = load_bytes(f, p, f->size);
        int version = pos[j] >= 8 && pos[j] < 12;
        if (!(rc == CX_ECORRUPT || (version && rc == CX_EVERSION)))
            print_error("bit %zu of byte %zu -> %d\n", j % 8, pos[j], rc);
        assert_true(rc == CX_ECORRUPT || (version && rc == CX_EVERSION));
    }
    free(p);
}

#define checksum cx__checksum

static void test_unknown_version(void **state)
{
    fixture *f = *state;
    unsigned char *p = malloc(f->size);
    memcpy(p, f->file, f->size);
    uint64_t h;
    memcpy(&h, p + 24, 8);
    assert_true(h == checksum(p, 24)); /* the reproduction is faithful */
    const uint32_t versions[] = {0, 2, 3, 1000, UINT32_MAX};
    for (size_t j = 0; j < sizeof versions / sizeof *versions; j++) {
        memcpy(p + 8, &versions[j], 4);
        h = checksum(p, 24);
        memcpy(p + 24, &h, 8);
        assert_int_equal(load_bytes(f, p, f->size), CX_EVERSION);
        assert_non_null(strstr(cx_errmsg(NULL), "version"));
    }
    /* Not a cxengine file at all. */
    memcpy(p, f->file, f->size);
    memcpy(p, "CXENGINF", 8);
    assert_int_equal(load_bytes(f, p, f->size), CX_ECORRUPT);
    free(p);
}

/* Damage that the checksums cannot see: change payload bytes and fix the
 * section's checksum, as a buggy writer or a hostile file would.  The
 * loader must check every count, index and float itself: it refuses the
 * file or loads an engine that serves without touching memory it does not
 * own (ASan watches). */
static void test_damage_behind_valid_checksums(void **state)
{
    fixture *f = *state;
    size_t sec[16], ns = sections(f, sec, 16);
    unsigned char *p = malloc(f->size);
    uint64_t st = 2024;
    int loaded = 0, refused = 0;
    for (int trial = 0; trial < 400; trial++) {
        memcpy(p, f->file, f->size);
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        size_t s = (size_t)(st >> 33) % ns;
        uint64_t len;
        memcpy(&len, p + sec[s] + 8, 8);
        if (len == 0)
            continue;
        /* Small payloads (options, types, counts at the start of each
         * section) matter most: half the trials hit the first 64 bytes. */
        size_t span = trial % 2 && len > 64 ? 64 : (size_t)len;
        size_t at = sec[s] + 24 + (size_t)((st >> 20) % span);
        if (trial % 3 == 0)
            p[at] = (unsigned char)(st >> 8); /* a whole new byte */
        else
            p[at] ^= (unsigned char)(1u << ((st >> 12) % 8));
        uint64_t sum = checksum(p + sec[s] + 24, (size_t)len);
        memcpy(p + sec[s] + 16, &sum, 8);
        char path[600];
        snprintf(path, sizeof path, "%s/damaged.cx", f->dir);
        tu_write_file(path, p, f->size);
        cx_engine *g = NULL;
        int rc = cx_load(&g, path);
        unlink(path);
        if (rc != CX_OK && rc != CX_ECORRUPT)
            print_error("section %zu byte %zu -> %d\n", s, at, rc);
        assert_true(rc == CX_OK || rc == CX_ECORRUPT);
        if (rc != CX_OK) {
            assert_null(g);
            refused++;
            continue;
        }
        loaded++;
        /* Serve a little from whatever was accepted. */
        const char *items[5];
        float scores[5];
        int reasons[5];
        size_t n;
        const char *who[] = {"c0000000", "c0000001", "nobody"};
        for (int w = 0; w < 3; w++) {
            cx_rec_opts o;
            cx_rec_opts_init(&o);
            o.exact = w == 1;
            rc = cx_recommend(g, who[w], 5, &o, items, scores, reasons, &n);
            assert_true(rc == CX_OK || rc == CX_ENOTFOUND);
            assert_true(n <= 5);
        }
        const char *first = cx_item_id(g, 0);
        if (first && first[0]) {
            rc = cx_similar_items(g, first, 5, NULL, items, scores, reasons,
                                  &n);
            assert_true(rc == CX_OK || rc == CX_ENOTTRAINED ||
                        rc == CX_ENOTFOUND);
        }
        int64_t v;
        for (int key = CX_STAT_CUSTOMERS; key <= CX_STAT_MEMORY; key++)
            assert_int_equal(cx_stat(g, key, &v), CX_OK);
        cx_close(g);
    }
    print_message("damaged payloads: %d loaded, %d refused\n", loaded,
                  refused);
    assert_true(refused > 0);
    free(p);
}

static void test_missing_file(void **state)
{
    fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.cx", f->dir);
    cx_engine *g = (cx_engine *)f;
    assert_int_equal(cx_load(&g, path), CX_EIO);
    assert_null(g);
    assert_non_null(strstr(cx_errmsg(NULL), "does-not-exist.cx"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_untrained_and_empty),
        cmocka_unit_test(test_save_is_atomic),
        cmocka_unit_test(test_export_npy),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_unknown_version),
        cmocka_unit_test(test_damage_behind_valid_checksums),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
