/* store.c -- the engine in one file (cx_save/cx_load) and .npy export.
 * Sections with lengths and 64-bit checksums; the loader trusts nothing:
 * every count, index and float is checked before use. */
#include "internal.h"
#include "quality.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * File layout (little-endian):
 *   header  "CXENGINE" | u32 version | u32 sections | u64 file size |
 *           u64 checksum of the preceding 24 bytes
 *   section u32 tag | u32 0 | u64 length | u64 checksum | payload,
 *           padded with zeros to a multiple of 8
 */
#define MAGIC "CXENGINE"
#define FORMAT_VERSION 1
#define HEADER 32
#define SECTION 24

enum { S_OPTIONS = 1, S_TYPES, S_CUSTOMERS, S_ITEMS, S_CATEGORIES,
       S_CHANNELS, S_TAGSETS, S_CATALOG, S_EVENTS, S_MODEL, S_COUNT };

/* Each 8-byte word passes through an invertible step, so any change to a
 * single word always changes the result. */
uint64_t cx__checksum(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x243F6A8885A308D3ull ^ n;
    while (n) {
        uint64_t w = 0;
        size_t take = n < 8 ? n : 8;
        memcpy(&w, s, take);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
        s += take;
        n -= take;
    }
    return h;
}

/* ===================================================================== */
/* Writing                                                               */
/* ===================================================================== */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_f64(buf *b, double v) { put(b, &v, 8); }

static void put_ids(buf *b, const cx__idmap *m)
{
    put_u32(b, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        uint32_t len = (uint32_t)strlen(m->str[i]);
        put_u32(b, len);
        put(b, m->str[i], len);
    }
}

static void put_options(buf *b, const cx__options *o)
{
    int32_t ints[6] = {o->factors, o->iterations, o->solver, o->cg_steps,
                       o->threads, o->candidates};
    put(b, ints, sizeof ints);
    put_f64(b, o->regularization);
    put_f64(b, o->alpha);
    put_f64(b, o->half_life);
    put_f64(b, o->init_scale);
    put_u64(b, o->seed);
    put(b, o->weight, sizeof o->weight);
    /* The blend, added later (older files get the defaults). */
    put_f64(b, o->blend_als);
    put_f64(b, o->blend_pop);
    put_f64(b, o->blend_rep);
    put_f64(b, o->blend_co);
    put_f64(b, o->consumable);
}

static void put_section(buf *out, int tag, buf *s)
{
    static const unsigned char zero[8];
    put_u32(out, (uint32_t)tag);
    put_u32(out, 0);
    put_u64(out, s->n);
    put_u64(out, cx__checksum(s->p, s->n));
    put(out, s->p, s->n);
    put(out, zero, (8 - s->n % 8) % 8);
    out->oom |= s->oom;
    free(s->p);
    memset(s, 0, sizeof *s);
}

static void serialize(const cx_engine *e, buf *out)
{
    buf s = {0};
    uint32_t sections = S_COUNT - 1 - (e->model == NULL);
    put(out, MAGIC, 8);
    put_u32(out, FORMAT_VERSION);
    put_u32(out, sections);
    put_u64(out, 0); /* file size, patched below */
    put_u64(out, 0); /* header checksum, patched below */

    put_options(&s, &e->opt);
    put_section(out, S_OPTIONS, &s);
    for (int t = CX_SIGNAL_CUSTOM; t < CX_MAX_SIGNAL_TYPES; t++) {
        uint32_t len = e->type_name[t] ? (uint32_t)strlen(e->type_name[t]) : 0;
        put_u32(&s, len);
        put(&s, e->type_name[t], len);
    }
    put_section(out, S_TYPES, &s);
    put_ids(&s, &e->customers);
    put_section(out, S_CUSTOMERS, &s);
    put_ids(&s, &e->items);
    put_section(out, S_ITEMS, &s);
    put_ids(&s, &e->categories);
    put_section(out, S_CATEGORIES, &s);
    put_ids(&s, &e->channels);
    put_section(out, S_CHANNELS, &s);
    put_ids(&s, &e->tagsets);
    put_section(out, S_TAGSETS, &s);
    size_t ni = e->items.n;
    put(&s, e->item_cat, ni * sizeof *e->item_cat);
    put(&s, e->item_price, ni * sizeof *e->item_price);
    put(&s, e->item_flags, ni * sizeof *e->item_flags);
    put(&s, e->item_created, ni * sizeof *e->item_created);
    put(&s, e->item_tags, ni * sizeof *e->item_tags);
    for (size_t i = 0; i < ni; i++) {
        float v = (float)cx__pop_score(e, (uint32_t)i, 0);
        put(&s, &v, sizeof v);
    }
    put_section(out, S_CATALOG, &s);
    put_u64(&s, e->n_ev);
    put(&s, e->ev, e->n_ev * sizeof *e->ev);
    put_section(out, S_EVENTS, &s);
    const cx__model *m = e->model;
    if (m) {
        put_u32(&s, (uint32_t)m->k);
        put_u32(&s, m->n_users);
        put_u32(&s, m->n_items);
        put_u32(&s, 0);
        put_u64(&s, m->n_events);
        put_u64(&s, (uint64_t)e->generation);
        put_f64(&s, m->loss);
        put(&s, m->X, (size_t)m->n_users * m->k * sizeof *m->X);
        put(&s, m->Y, (size_t)m->n_items * m->k * sizeof *m->Y);
        put(&s, m->has_vec, m->n_users);
        uint64_t nnz = m->ui.ptr[m->n_users];
        put(&s, m->ui.ptr, ((size_t)m->n_users + 1) * sizeof *m->ui.ptr);
        put(&s, m->ui.idx, nnz * sizeof *m->ui.idx);
        put(&s, m->ui.conf, nnz * sizeof *m->ui.conf);
        put(&s, m->ui.mask, nnz * sizeof *m->ui.mask);
        put_section(out, S_MODEL, &s);
    }
    if (!out->oom) {
        uint64_t size = out->n, h;
        memcpy(out->p + 16, &size, 8);
        h = cx__checksum(out->p, 24);
        memcpy(out->p + 24, &h, 8);
    }
}

/* Write all of p to path atomically: tmp file, fsync, rename, fsync dir. */
static int write_atomic(const cx_engine *e, const char *path, const void *p,
                        size_t n)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5), *dir = strdup(path);
    if (!tmp || !dir) {
        free(tmp), free(dir);
        return cx__fail(e, CX_ENOMEM, "cx_save: out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = CX_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = cx__fail(e, CX_EIO, "cx_save: cannot create %s: %s", tmp,
                      strerror(errno));
        goto out;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = cx__fail(e, CX_EIO, "cx_save: writing %s: %s", tmp,
                          strerror(errno));
            break;
        }
        done += (size_t)w;
    }
    if (rc == CX_OK && fsync(fd))
        rc = cx__fail(e, CX_EIO, "cx_save: fsync %s: %s", tmp,
                      strerror(errno));
    close(fd);
    if (rc == CX_OK && rename(tmp, path))
        rc = cx__fail(e, CX_EIO, "cx_save: rename to %s: %s", path,
                      strerror(errno));
    if (rc) {
        unlink(tmp);
    } else {
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
out:
    free(tmp);
    free(dir);
    return rc;
}

CX_API int cx_save(cx_engine *e, const char *path)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_save: engine is NULL");
    if (!path || !*path)
        return cx__fail(e, CX_EINVAL, "cx_save: path is NULL or empty");
    buf out = {0};
    pthread_mutex_lock(&e->wmu); /* writes wait; reads go on */
    serialize(e, &out);
    pthread_mutex_unlock(&e->wmu);
    int rc = out.oom ? cx__fail(e, CX_ENOMEM, "cx_save: out of memory")
                     : write_atomic(e, path, out.p, out.n);
    free(out.p);
    return rc;
}

/* ===================================================================== */
/* Reading                                                               */
/* ===================================================================== */

typedef struct cursor {
    const unsigned char *p;
    size_t n, at;
    int bad;
} cursor;

static const void *take(cursor *c, size_t n)
{
    if (c->bad || n > c->n - c->at) {
        c->bad = 1;
        return NULL;
    }
    const void *r = c->p + c->at;
    c->at += n;
    return r;
}

static uint32_t get_u32(cursor *c)
{
    uint32_t v = 0;
    const void *s = take(c, 4);
    if (s)
        memcpy(&v, s, 4);
    return v;
}

static uint64_t get_u64(cursor *c)
{
    uint64_t v = 0;
    const void *s = take(c, 8);
    if (s)
        memcpy(&v, s, 8);
    return v;
}

static double get_f64(cursor *c)
{
    double v = 0;
    const void *s = take(c, 8);
    if (s)
        memcpy(&v, s, 8);
    return v;
}

/* Copy n elements of size sz into a fresh allocation (n may be 0). */
static void *get_array(cursor *c, size_t n, size_t sz)
{
    if (n && sz > (SIZE_MAX / n))
        c->bad = 1;
    const void *s = take(c, n * sz);
    if (!s)
        return NULL;
    void *d = malloc(n * sz + 1);
    if (d)
        memcpy(d, s, n * sz);
    else
        c->bad = 2;
    return d;
}

static int get_ids(cursor *c, cx__idmap *m)
{
    uint32_t n = get_u32(c);
    if (c->bad || n > c->n / 4)
        return CX_ECORRUPT;
    /* Sum the lengths first so the reserve covers every add. */
    size_t save = c->at, bytes = 0;
    for (uint32_t i = 0; i < n && !c->bad; i++) {
        uint32_t len = get_u32(c);
        if (len > CX_MAX_ID_LEN * 4 || !take(c, len))
            return CX_ECORRUPT;
        bytes += len + 1;
    }
    c->at = save;
    if (cx__idmap_reserve(m, n, bytes))
        return CX_ENOMEM;
    char tmp[CX_MAX_ID_LEN * 4 + 1];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = get_u32(c);
        memcpy(tmp, take(c, len), len);
        tmp[len] = 0;
        int added;
        if (strlen(tmp) != len)
            return CX_ECORRUPT;
        cx__idmap_add(m, tmp, &added);
        if (!added)
            return CX_ECORRUPT; /* duplicate id */
    }
    return CX_OK;
}

static int get_options(cursor *c, cx__options *o)
{
    const int32_t *ints = take(c, 6 * sizeof(int32_t));
    if (!ints)
        return CX_ECORRUPT;
    int32_t v[6];
    memcpy(v, ints, sizeof v);
    o->factors = v[0];
    o->iterations = v[1];
    o->solver = v[2];
    o->cg_steps = v[3];
    o->threads = v[4];
    o->candidates = v[5];
    o->regularization = get_f64(c);
    o->alpha = get_f64(c);
    o->half_life = get_f64(c);
    o->init_scale = get_f64(c);
    o->seed = get_u64(c);
    const void *w = take(c, sizeof o->weight);
    if (!w)
        return CX_ECORRUPT;
    memcpy(o->weight, w, sizeof o->weight);
    if (c->n - c->at >= 5 * sizeof(double)) {
        o->blend_als = get_f64(c);
        o->blend_pop = get_f64(c);
        o->blend_rep = get_f64(c);
        o->blend_co = get_f64(c);
        o->consumable = get_f64(c);
    }
    int ok = o->factors >= 1 && o->factors <= 1024 && o->iterations >= 1 &&
             o->iterations <= 1000 && (o->solver == 0 || o->solver == 1) &&
             o->cg_steps >= 1 && o->cg_steps <= 64 && o->threads >= 0 &&
             o->threads <= 256 && o->candidates >= 1 &&
             o->candidates <= 1000 && o->regularization >= 0 &&
             o->alpha > 0 && o->half_life >= 0 && o->init_scale > 0 &&
             isfinite(o->regularization + o->alpha + o->half_life +
                      o->init_scale);
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        ok = ok && isfinite(o->weight[t]);
    static const int blend[] = {CX_OPT_BLEND_ALS, CX_OPT_BLEND_POPULAR,
                                CX_OPT_BLEND_REPEAT, CX_OPT_BLEND_COBOUGHT,
                                CX_OPT_CONSUMABLE};
    for (int j = 0; j < 5; j++)
        ok = ok && cx__option_check(NULL, blend[j],
                                    cx__option_get(o, blend[j])) == CX_OK;
    return ok ? CX_OK : CX_ECORRUPT;
}

static int finite_all(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static int get_model(cursor *c, cx_engine *e)
{
    cx__model *m = calloc(1, sizeof *m);
    if (!m)
        return CX_ENOMEM;
    e->model = m;
    m->k = (int)get_u32(c);
    m->n_users = get_u32(c);
    m->n_items = get_u32(c);
    get_u32(c);
    m->n_events = get_u64(c);
    e->generation = (int64_t)get_u64(c);
    m->loss = get_f64(c);
    if (c->bad || m->k < 1 || m->k > 1024 || m->n_users > e->customers.n ||
        m->n_items > e->items.n || m->n_events > e->n_ev ||
        e->generation < 1)
        return CX_ECORRUPT;
    size_t k = (size_t)m->k;
    m->X = get_array(c, (size_t)m->n_users * k, sizeof *m->X);
    m->Y = get_array(c, (size_t)m->n_items * k, sizeof *m->Y);
    m->has_vec = get_array(c, m->n_users, 1);
    m->ui.rows = m->n_users;
    m->ui.ptr = get_array(c, (size_t)m->n_users + 1, sizeof *m->ui.ptr);
    if (c->bad)
        return c->bad == 2 ? CX_ENOMEM : CX_ECORRUPT;
    if (!finite_all(m->X, m->n_users * k) || !finite_all(m->Y, m->n_items * k))
        return CX_ECORRUPT;
    if (m->ui.ptr[0] != 0)
        return CX_ECORRUPT;
    for (uint32_t u = 0; u < m->n_users; u++)
        if (m->ui.ptr[u + 1] < m->ui.ptr[u] || m->has_vec[u] > 1)
            return CX_ECORRUPT;
    uint64_t nnz = m->ui.ptr[m->n_users];
    if (nnz > m->n_events)
        return CX_ECORRUPT;
    m->ui.idx = get_array(c, nnz, sizeof *m->ui.idx);
    m->ui.conf = get_array(c, nnz, sizeof *m->ui.conf);
    m->ui.mask = get_array(c, nnz, sizeof *m->ui.mask);
    if (c->bad)
        return c->bad == 2 ? CX_ENOMEM : CX_ECORRUPT;
    for (uint64_t p = 0; p < nnz; p++)
        if (m->ui.idx[p] >= m->n_items || !isfinite(m->ui.conf[p]))
            return CX_ECORRUPT;
    int64_t ts_ref = 0;
    for (uint64_t i = 0; i < m->n_events; i++)
        ts_ref = e->ev[i].ts > ts_ref ? e->ev[i].ts : ts_ref;
    int rc = cx__model_finish(m);
    return rc ? rc : cx__model_prepare_fold(m, &e->opt, ts_ref);
}

static int get_catalog(cursor *c, cx_engine *e)
{
    size_t ni = e->items.n;
    if (cx__reserve_items(e, 0))
        return CX_ENOMEM;
#define COL(f)                                                             \
    do {                                                                   \
        const void *s = take(c, ni * sizeof *e->f);                        \
        if (!s)                                                            \
            return CX_ECORRUPT;                                            \
        if (ni)                                                            \
            memcpy(e->f, s, ni * sizeof *e->f);                            \
    } while (0)
    COL(item_cat);
    COL(item_price);
    COL(item_flags);
    COL(item_created);
    COL(item_tags);
#undef COL
    /* The popularity column is informative: it is recomputed from the
     * signals after loading. */
    const float *pop = take(c, ni * sizeof(float));
    if (!pop)
        return CX_ECORRUPT;
    for (size_t i = 0; i < ni; i++) {
        float v;
        memcpy(&v, pop + i, sizeof v);
        if (e->item_cat[i] >= e->categories.n || e->item_flags[i] > 7 ||
            (e->item_tags[i] != CX_NONE && e->item_tags[i] >= e->tagsets.n) ||
            !isfinite(e->item_price[i]) || !isfinite(v))
            return CX_ECORRUPT;
        e->item_pop[i] = e->item_trend[i] = 0;
        e->item_last[i] = e->item_xslot[i] = CX_NONE;
    }
    return CX_OK;
}

static int get_events(cursor *c, cx_engine *e)
{
    uint64_t n = get_u64(c);
    if (c->bad || n >= CX_NONE || n > c->n / sizeof(cx__event))
        return CX_ECORRUPT;
    size_t cap = 0;
    if (cx__grow((void **)&e->ev, &cap, n + 1, sizeof *e->ev))
        return CX_ENOMEM;
    cap = 0;
    if (cx__grow((void **)&e->ev_prev, &cap, n + 1, sizeof *e->ev_prev))
        return CX_ENOMEM;
    cap = 0;
    if (cx__grow((void **)&e->ev_iprev, &cap, n + 1, sizeof *e->ev_iprev))
        return CX_ENOMEM;
    e->ev_cap = cap;
    if (cx__reserve_customers(e, 0))
        return CX_ENOMEM;
    const void *s = take(c, n * sizeof *e->ev);
    if (!s)
        return CX_ECORRUPT;
    memcpy(e->ev, s, n * sizeof *e->ev);
    for (size_t i = 0; i < n; i++) {
        const cx__event *ev = &e->ev[i];
        if (ev->cust >= e->customers.n || ev->item >= e->items.n ||
            !cx_signal_type_name(e, ev->type) ||
            ev->channel >= e->channels.n || !isfinite(ev->value))
            return CX_ECORRUPT;
        e->ev_prev[i] = e->cust_last[ev->cust];
        e->cust_last[ev->cust] = (uint32_t)i;
        e->ev_iprev[i] = e->item_last[ev->item];
        e->item_last[ev->item] = (uint32_t)i;
        if (ev->ts > e->ts_max)
            e->ts_max = ev->ts;
    }
    e->n_ev = n;
    return CX_OK;
}

static int get_types(cursor *c, cx_engine *e)
{
    for (int t = CX_SIGNAL_CUSTOM; t < CX_MAX_SIGNAL_TYPES; t++) {
        uint32_t len = get_u32(c);
        if (c->bad || len > 64)
            return CX_ECORRUPT;
        if (!len)
            continue;
        const char *s = take(c, len);
        if (!s || memchr(s, 0, len))
            return CX_ECORRUPT;
        if (!(e->type_name[t] = strndup(s, len)))
            return CX_ENOMEM;
    }
    return CX_OK;
}

/* Parse one verified section into e. */
static int parse_section(cx_engine *e, uint32_t tag, cursor *c)
{
    cx__idmap *maps[] = {&e->customers, &e->items, &e->categories,
                         &e->channels, &e->tagsets};
    int rc;
    switch (tag) {
    case S_OPTIONS: rc = get_options(c, &e->opt); break;
    case S_TYPES: rc = get_types(c, e); break;
    case S_CUSTOMERS: case S_ITEMS: case S_CATEGORIES: case S_CHANNELS:
    case S_TAGSETS:
        rc = get_ids(c, maps[tag - S_CUSTOMERS]);
        break;
    case S_CATALOG: rc = get_catalog(c, e); break;
    case S_EVENTS: rc = get_events(c, e); break;
    case S_MODEL: rc = get_model(c, e); break;
    default: rc = CX_ECORRUPT;
    }
    if (rc == CX_OK && c->at != c->n)
        rc = CX_ECORRUPT; /* trailing bytes: the writer would not do that */
    return rc;
}

static int parse(cx_engine *e, const unsigned char *p, size_t n,
                 const char *path)
{
    if (n < HEADER || memcmp(p, MAGIC, 8) != 0)
        return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s is not a cxengine "
                        "file (bad magic or too short)", path);
    uint32_t version, nsec;
    uint64_t size, h;
    memcpy(&version, p + 8, 4);
    memcpy(&nsec, p + 12, 4);
    memcpy(&size, p + 16, 8);
    memcpy(&h, p + 24, 8);
    if (h != cx__checksum(p, 24))
        return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s: header checksum "
                        "mismatch", path);
    if (version != FORMAT_VERSION)
        return cx__fail(NULL, CX_EVERSION, "cx_load: %s has format version "
                        "%u; this library reads version %d", path, version,
                        FORMAT_VERSION);
    if (size != n)
        return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s is %zu bytes, its "
                        "header says %llu (truncated?)", path, n,
                        (unsigned long long)size);
    size_t at = HEADER;
    uint32_t expect = S_OPTIONS;
    for (uint32_t s = 0; s < nsec; s++, expect++) {
        if (n - at < SECTION)
            return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s: section %u "
                            "header truncated", path, s);
        uint32_t tag, reserved;
        uint64_t len, sum;
        memcpy(&tag, p + at, 4);
        memcpy(&reserved, p + at + 4, 4);
        memcpy(&len, p + at + 8, 8);
        memcpy(&sum, p + at + 16, 8);
        at += SECTION;
        /* Neither the reserved word nor the padding is checksummed:
         * both must be zero, as the writer leaves them. */
        size_t pad = (size_t)((8 - len % 8) % 8);
        if (tag != expect || reserved != 0 || len > n - at ||
            pad > n - at - len)
            return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s: section %u has "
                            "a bad header (tag %u, length %llu)", path, s,
                            tag, (unsigned long long)len);
        if (cx__checksum(p + at, len) != sum)
            return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s: checksum "
                            "mismatch in section %u", path, tag);
        for (size_t q = 0; q < pad; q++)
            if (p[at + len + q])
                return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s: section %u "
                                "has non-zero padding", path, tag);
        cursor c = {p + at, (size_t)len, 0, 0};
        int rc = parse_section(e, tag, &c);
        if (rc)
            return cx__fail(NULL, rc, "cx_load: %s: section %u: %s", path,
                            tag, rc == CX_ENOMEM ? "out of memory"
                                                 : "invalid contents");
        at += len + pad;
    }
    if (expect < S_MODEL || at != n)
        return cx__fail(NULL, CX_ECORRUPT, "cx_load: %s: missing or extra "
                        "sections", path);
    return CX_OK;
}

CX_API int cx_load(cx_engine **out, const char *path)
{
    if (!out)
        return cx__fail(NULL, CX_EINVAL, "cx_load: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return cx__fail(NULL, CX_EINVAL, "cx_load: path is NULL or empty");
    FILE *f = fopen(path, "rb");
    if (!f)
        return cx__fail(NULL, CX_EIO, "cx_load: cannot open %s: %s", path,
                        strerror(errno));
    struct stat st;
    unsigned char *p = NULL;
    int rc = CX_OK;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode))
        rc = cx__fail(NULL, CX_EIO, "cx_load: %s is not a regular file",
                      path);
    else if (!(p = malloc((size_t)st.st_size + 1)))
        rc = cx__fail(NULL, CX_ENOMEM, "cx_load: out of memory");
    else if (fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = cx__fail(NULL, CX_EIO, "cx_load: reading %s failed", path);
    fclose(f);
    cx_engine *e = NULL;
    if (rc == CX_OK && (rc = cx_open(&e, NULL, 0)) == CX_OK) {
        /* cx_open seeded "" and "web"; the file carries its own. */
        cx__idmap_free(&e->categories);
        cx__idmap_free(&e->channels);
        rc = parse(e, p, (size_t)st.st_size, path);
        if (rc == CX_OK && (e->categories.n == 0 || e->channels.n == 0))
            rc = cx__fail(NULL, CX_ECORRUPT, "cx_load: %s: no default "
                          "category or channel", path);
        if (rc == CX_OK && cx__pop_rebuild(e))
            rc = cx__fail(NULL, CX_ENOMEM, "cx_load: out of memory");
        if (rc == CX_OK) {
            for (size_t i = 0; i < e->items.n; i++)
                if (e->item_created[i] > e->created_max)
                    e->created_max = e->item_created[i];
            pthread_mutex_lock(&e->wmu);
            e->top[CX__LIST_NEW].valid = 0;
            cx__top_refresh(e);
            cx__catidx_refresh(e);
            if (e->model)
                cx__hstats_attach(&e->opt, e->model, e->ev,
                                  e->model->n_events);
            pthread_mutex_unlock(&e->wmu);
        }
    }
    free(p);
    if (rc) {
        cx_close(e);
        return rc;
    }
    *out = e;
    return CX_OK;
}

/* ===================================================================== */
/* .npy export                                                           */
/* ===================================================================== */

static int write_npy(const cx_engine *e, const char *path, const float *data,
                     size_t rows, size_t cols)
{
    char hdr[128];
    int len = snprintf(hdr + 10, sizeof hdr - 10,
                       "{'descr': '<f4', 'fortran_order': False, "
                       "'shape': (%zu, %zu), }", rows, cols);
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = (uint16_t)(len + 1 + pad);
    memcpy(hdr + 8, &hl, 2);
    memset(hdr + 10 + len, ' ', (size_t)pad);
    hdr[10 + len + pad] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f)
        return cx__fail(e, CX_EIO, "cx_export_npy: cannot create %s: %s",
                        path, strerror(errno));
    int ok = fwrite(hdr, 1, (size_t)(total + pad), f) == (size_t)(total + pad) &&
             fwrite(data, sizeof *data, rows * cols, f) == rows * cols;
    ok = (fclose(f) == 0) && ok;
    return ok ? CX_OK
              : cx__fail(e, CX_EIO, "cx_export_npy: writing %s failed", path);
}

static int write_ids(const cx_engine *e, const char *path,
                     const cx__idmap *m, uint32_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return cx__fail(e, CX_EIO, "cx_export_npy: cannot create %s: %s",
                        path, strerror(errno));
    int ok = 1;
    for (uint32_t i = 0; i < n && ok; i++)
        ok = fprintf(f, "%s\n", m->str[i]) > 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? CX_OK
              : cx__fail(e, CX_EIO, "cx_export_npy: writing %s failed", path);
}

CX_API int cx_export_npy(cx_engine *e, const char *dir)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_export_npy: engine is NULL");
    if (!dir || !*dir || strlen(dir) > 4000)
        return cx__fail(e, CX_EINVAL, "cx_export_npy: bad directory");
    char path[4096 + 32];
    pthread_mutex_lock(&e->wmu); /* the model cannot change meanwhile */
    const cx__model *m = e->model;
    int rc = CX_OK;
    if (!m) {
        rc = cx__fail(e, CX_ENOTTRAINED, "cx_export_npy: no trained model");
    } else {
        snprintf(path, sizeof path, "%s/customer_factors.npy", dir);
        rc = write_npy(e, path, m->X, m->n_users, (size_t)m->k);
        snprintf(path, sizeof path, "%s/item_factors.npy", dir);
        if (!rc)
            rc = write_npy(e, path, m->Y, m->n_items, (size_t)m->k);
        snprintf(path, sizeof path, "%s/customer_ids.txt", dir);
        if (!rc)
            rc = write_ids(e, path, &e->customers, m->n_users);
        snprintf(path, sizeof path, "%s/item_ids.txt", dir);
        if (!rc)
            rc = write_ids(e, path, &e->items, m->n_items);
    }
    pthread_mutex_unlock(&e->wmu);
    return rc;
}
