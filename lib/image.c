/* image.c -- the engine image: what cx_open otherwise rebuilds by replaying
 * the database, written beside each snapshot generation and mapped back.
 *
 *   snapshots/g0000000007/IMAGE                 counts, revisions, checksums
 *                         image_events.npy ...  one array per file
 *
 * The image holds the customer and item id maps (the strings, their
 * hashes and the open-addressing table), the catalogue columns, the
 * events with their per-customer and per-item chains and their seq, the
 * newest event of each customer and item, and live popularity.  It
 * records the signal seq, catalogue revision and forget revision it
 * covers; an engine that maps it reads only what the database gained
 * since (db.c follows it the way a reader follows the writer).  Options,
 * signal types, experiments and the small name tables (categories,
 * channels, tag sets) are always read from the database.
 *
 * Each file is a .npy file whose header is padded to 4096 bytes, so the
 * data starts on a page and is mapped straight from the page cache
 * (MAP_PRIVATE: processes share the pages until one writes to one).  All
 * of an image's files are mapped into one reserved address range with
 * room after each array, so the arrays that grow (events, ids, items)
 * append in place; an array that outgrows its room moves to the heap,
 * and cx__free_array never frees memory inside a mapped image.
 *
 * The writer writes the image from a copy of its memory taken under the
 * writer mutex, so the image is one consistent state. */
#include "internal.h"
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_FORMAT 1
#define HDR 4096 /* header bytes of each file: the data is page-aligned */

enum {
    I_CUST_IDS, I_CUST_HASH, I_CUST_SLOT, I_ITEM_IDS, I_ITEM_HASH,
    I_ITEM_SLOT, I_CAT, I_PRICE, I_FLAGS, I_CREATED, I_TAGS, I_POP,
    I_TREND, I_ILAST, I_CLAST, I_EV, I_PREV, I_IPREV, I_SEQ, I_COUNT
};

#define EV_DESCR                                                           \
    "[('customer', '<u4'), ('item', '<u4'), ('ts', '<i8'), "               \
    "('value', '<f4'), ('type', '|u1'), ('channel', '|u1'), "              \
    "('pad', '<u2')]"

/* What the length of each file counts: b = bytes of id strings,
 * c = customers, i = items, e = events, s / t = customer / item slots. */
static const struct {
    const char *name, *descr;
    size_t size;
    char per;
} ifiles[I_COUNT] = {
    {"image_customer_ids.npy", "'|u1'", 1, 'b'},
    {"image_customer_hash.npy", "'<u4'", 4, 'c'},
    {"image_customer_slots.npy", "'<u4'", 4, 's'},
    {"image_item_ids.npy", "'|u1'", 1, 'b'},
    {"image_item_hash.npy", "'<u4'", 4, 'i'},
    {"image_item_slots.npy", "'<u4'", 4, 't'},
    {"image_item_category.npy", "'<u4'", 4, 'i'},
    {"image_item_price.npy", "'<f8'", 8, 'i'},
    {"image_item_flags.npy", "'|u1'", 1, 'i'},
    {"image_item_created.npy", "'<i8'", 8, 'i'},
    {"image_item_tags.npy", "'<u4'", 4, 'i'},
    {"image_item_popular.npy", "'<f8'", 8, 'i'},
    {"image_item_trending.npy", "'<f8'", 8, 'i'},
    {"image_item_last.npy", "'<u4'", 4, 'i'},
    {"image_customer_last.npy", "'<u4'", 4, 'c'},
    {"image_events.npy", EV_DESCR, sizeof(cx__event), 'e'},
    {"image_event_prev.npy", "'<u4'", 4, 'e'},
    {"image_event_item_prev.npy", "'<u4'", 4, 'e'},
    {"image_event_seq.npy", "'<i8'", 8, 'e'},
};

typedef struct image_manifest {
    int64_t generation, last_seq, catalog_rev, forget_rev;
    int64_t ts_max, created_max, pop_t0, trend_t0;
    uint64_t n_events;
    uint32_t n_customers, n_items;
    /* The options popularity was counted with. */
    double pop_half_life, trend_half_life, weight[CX_MAX_SIGNAL_TYPES];
    uint64_t count[I_COUNT], sum[I_COUNT];
} image_manifest;

size_t cx__image_manifest_size(void)
{
    return sizeof(image_manifest);
}

const char *cx__image_file(int i)
{
    return i == 0 ? "IMAGE" : i <= I_COUNT ? ifiles[i - 1].name : NULL;
}

/* ===================================================================== */
/* Mapped images and the arrays inside them                              */
/* ===================================================================== */

/* Every image mapped in this process: a free() of an engine array must
 * skip the ones that point into an image. */
struct cx__image {
    char *base;
    size_t len;
    struct cx__image *next;
};

static pthread_mutex_t images_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cx__image *images;

int cx__image_holds(const void *p)
{
    const char *c = p;
    int in = 0;
    if (!p)
        return 0;
    pthread_mutex_lock(&images_mu);
    for (const struct cx__image *m = images; m && !in; m = m->next)
        in = c >= m->base && c < m->base + m->len;
    pthread_mutex_unlock(&images_mu);
    return in;
}

void cx__free_array(void *p)
{
    if (p && !cx__image_holds(p))
        free(p);
}

void cx__image_free(struct cx__image *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&images_mu);
    struct cx__image **at = &images;
    while (*at && *at != m)
        at = &(*at)->next;
    if (*at)
        *at = m->next;
    pthread_mutex_unlock(&images_mu);
    munmap(m->base, m->len);
    free(m);
}

/* ===================================================================== */
/* The IMAGE file                                                        */
/* ===================================================================== */

static const char *const scalar_names[] = {
    "generation", "last_seq", "catalog_rev", "forget_rev", "ts_max",
    "created_max", "pop_t0", "trend_t0", "events", "customers", "items",
    "popular_half_life", "trending_half_life"};
enum { N_SCALARS = 13 };

static char *image_text(const image_manifest *m, size_t *len)
{
    char *b = NULL;
    size_t n = 0, cap = 0;
    int bad = cx__put_line(&b, &n, &cap, "cxengine-image %d\n",
                           IMAGE_FORMAT);
    const int64_t v[8] = {m->generation, m->last_seq, m->catalog_rev,
                          m->forget_rev, m->ts_max, m->created_max,
                          m->pop_t0, m->trend_t0};
    for (int i = 0; i < 8; i++)
        bad |= cx__put_line(&b, &n, &cap, "%s %" PRId64 "\n",
                            scalar_names[i], v[i]);
    bad |= cx__put_line(&b, &n, &cap, "events %" PRIu64 "\n", m->n_events);
    bad |= cx__put_line(&b, &n, &cap, "customers %" PRIu32 "\n",
                        m->n_customers);
    bad |= cx__put_line(&b, &n, &cap, "items %" PRIu32 "\n", m->n_items);
    bad |= cx__put_line(&b, &n, &cap, "popular_half_life %a\n",
                        m->pop_half_life);
    bad |= cx__put_line(&b, &n, &cap, "trending_half_life %a\n",
                        m->trend_half_life);
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        bad |= cx__put_line(&b, &n, &cap, "weight %d %a\n", t, m->weight[t]);
    for (int f = 0; f < I_COUNT; f++)
        bad |= cx__put_line(&b, &n, &cap, "file %s %" PRIu64 " %016" PRIx64
                            "\n", ifiles[f].name, m->count[f], m->sum[f]);
    return cx__manifest_seal(b, n, cap, bad, len);
}

static uint64_t slots_for(uint64_t n)
{
    uint64_t s = 128;
    while (s < 2 * (n + n / 8 + 64))
        s *= 2;
    return s;
}

/* Parse and verify an IMAGE's text (len bytes, not NUL-terminated). */
int cx__image_manifest_parse(const char *text, size_t len, void *out,
                             char *why, size_t whylen)
{
    image_manifest *m = out;
    memset(m, 0, sizeof *m);
#define BAD(...) (snprintf(why, whylen, __VA_ARGS__), CX_ECORRUPT)
    size_t last;
    int rc = cx__manifest_verify(text, len, "IMAGE", &last, why, whylen);
    if (rc)
        return rc;
    cx__mline ml;
    uint32_t seen = 0, weights = 0;
    int nfile = 0, first = 1;
    for (size_t at = 0; at < last;) {
        if ((rc = cx__manifest_line(text, last, &at, "IMAGE", &ml, why,
                                    whylen)))
            return rc;
        const char *word = ml.word, *rest = ml.rest;
        int end = 0;
        if (first) {
            int fmt;
            if (strcmp(word, "cxengine-image") ||
                sscanf(rest, "%d%n", &fmt, &end) != 1 || rest[end])
                return BAD("not an IMAGE file");
            if (fmt != IMAGE_FORMAT) {
                snprintf(why, whylen, "image format %d; this library reads "
                         "format %d", fmt, IMAGE_FORMAT);
                return CX_EVERSION;
            }
            first = 0;
            continue;
        }
        int s = 0;
        while (s < N_SCALARS && strcmp(word, scalar_names[s]))
            s++;
        if (s < N_SCALARS) {
            int ok;
            if (s < 8) {
                int64_t *dst[8] = {&m->generation, &m->last_seq,
                                   &m->catalog_rev, &m->forget_rev,
                                   &m->ts_max, &m->created_max, &m->pop_t0,
                                   &m->trend_t0};
                ok = sscanf(rest, "%" SCNd64 "%n", dst[s], &end) == 1;
            } else if (s == 8) {
                ok = sscanf(rest, "%" SCNu64 "%n", &m->n_events, &end) == 1;
            } else if (s < 11) {
                ok = sscanf(rest, "%" SCNu32 "%n", s == 9 ? &m->n_customers
                                                          : &m->n_items,
                            &end) == 1;
            } else {
                ok = sscanf(rest, "%la%n", s == 11 ? &m->pop_half_life
                                                   : &m->trend_half_life,
                            &end) == 1;
            }
            if (!ok || rest[end] || rest[0] == '-' || (seen >> s & 1))
                return BAD("bad IMAGE line '%.40s'", ml.line);
            seen |= 1u << s;
        } else if (strcmp(word, "weight") == 0) {
            int t;
            double w;
            if (sscanf(rest, "%d %la%n", &t, &w, &end) != 2 || rest[end] ||
                t < 0 || t >= CX_MAX_SIGNAL_TYPES || (weights >> t & 1) ||
                cx__option_check(NULL, CX_OPT_WEIGHT + t, w))
                return BAD("bad IMAGE line '%.40s'", ml.line);
            m->weight[t] = w;
            weights |= 1u << t;
        } else if (strcmp(word, "file") == 0) {
            char name[64];
            uint64_t c, h;
            int hb = 0, he = 0;
            if (nfile == I_COUNT ||
                sscanf(rest, "%63s %" SCNu64 " %n%16" SCNx64 "%n", name, &c,
                       &hb, &h, &he) != 3 ||
                rest[he] || he - hb != 16 || strcmp(name, ifiles[nfile].name) ||
                !(rest[strlen(name) + 1] >= '0' &&
                  rest[strlen(name) + 1] <= '9'))
                return BAD("bad IMAGE file line '%.40s'", ml.line);
            m->count[nfile] = c;
            m->sum[nfile] = h;
            nfile++;
        } else {
            return BAD("unknown IMAGE line '%.40s'", ml.line);
        }
    }
    uint32_t all_w = CX_MAX_SIGNAL_TYPES >= 32
                         ? 0xffffffffu
                         : (1u << CX_MAX_SIGNAL_TYPES) - 1;
    if (seen != (1u << N_SCALARS) - 1 || weights != all_w ||
        nfile != I_COUNT)
        return BAD("IMAGE lacks lines");
    if (m->generation < 1 || m->last_seq < 0 || m->catalog_rev < 0 ||
        m->forget_rev < 0 || m->ts_max < 0 || m->created_max < 0 ||
        m->n_events >= CX_NONE || m->n_customers >= CX_NONE / 2 ||
        m->n_items >= CX_NONE / 2 ||
        cx__option_check(NULL, CX_OPT_POPULAR_HALF_LIFE, m->pop_half_life) ||
        cx__option_check(NULL, CX_OPT_TRENDING_HALF_LIFE,
                         m->trend_half_life))
        return BAD("IMAGE values out of range");
    for (int f = 0; f < I_COUNT; f++) {
        uint64_t c = m->count[f], want;
        switch (ifiles[f].per) {
        case 'c': want = m->n_customers; break;
        case 'i': want = m->n_items; break;
        case 'e': want = m->n_events; break;
        case 's': want = slots_for(m->n_customers); break;
        case 't': want = slots_for(m->n_items); break;
        default: /* id bytes: each id and its NUL */
            want = f == I_CUST_IDS ? m->n_customers : m->n_items;
            if (c < want || c > want * (CX_MAX_ID_LEN + 1))
                return BAD("file %s has the wrong length", ifiles[f].name);
            want = c;
        }
        if (c != want)
            return BAD("file %s has the wrong length", ifiles[f].name);
    }
    return CX_OK;
#undef BAD
}

/* The .npy header of file f with `count` elements, padded to HDR bytes. */
static void image_header(char *h, int f, uint64_t count)
{
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': %s, 'fortran_order': "
                     "False, 'shape': (%" PRIu64 ",), }", ifiles[f].descr,
                     count);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = HDR - 10;
    h[8] = (char)(hl & 0xff);
    h[9] = (char)(hl >> 8);
    memcpy(h + 10, dict, (size_t)n);
    memset(h + 10 + n, ' ', HDR - 10 - (size_t)n);
    h[HDR - 1] = '\n';
}

/* ===================================================================== */
/* Writing                                                               */
/* ===================================================================== */

static void *dup_array(const void *p, size_t bytes)
{
    void *q = malloc(bytes ? bytes : 1);
    if (q && bytes)
        memcpy(q, p, bytes);
    return q;
}

/* The id strings of map m (n ids, pointers copied) as one run of
 * NUL-terminated strings, forgotten ids as ""; hashes of forgotten ids
 * are zeroed, and the open-addressing table is built anew. */
static int pack_ids(const char *const *str, uint32_t *hash, uint32_t n,
                    void **blob, uint64_t *bytes, uint32_t **slot,
                    uint64_t *nslot)
{
    uint64_t b = 0;
    for (uint32_t i = 0; i < n; i++)
        b += strlen(str[i]) + 1;
    char *p = malloc(b ? b : 1);
    uint64_t ns = slots_for(n);
    uint32_t *s = calloc(ns, sizeof *s);
    if (!p || !s) {
        free(p);
        free(s);
        return CX_ENOMEM;
    }
    char *w = p;
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(str[i]);
        memcpy(w, str[i], l + 1);
        w += l + 1;
        if (l == 0) {
            hash[i] = 0;
            continue;
        }
        uint64_t q = hash[i] & (ns - 1);
        while (s[q])
            q = (q + 1) & (ns - 1);
        s[q] = i + 1;
    }
    *blob = p;
    *bytes = b;
    *slot = s;
    *nslot = ns;
    return CX_OK;
}

static int slots_ok(const uint32_t *slot, uint64_t nslot, uint32_t n);
static uint32_t signal_types(const cx_engine *e);
static int ranges_ok(const image_manifest *m, char **a, uint32_t types,
                     uint32_t n_cats, uint32_t n_chans, uint32_t n_tags);

int cx__image_write(cx_engine *e, const char *dir, int64_t generation,
                    cx__stamp *stamp)
{
    image_manifest m;
    memset(&m, 0, sizeof m);
    void *data[I_COUNT] = {0};
    const char **cid = NULL, **iid = NULL;
    int rc = CX_OK;
    /* One consistent state: copies taken under the writer mutex (the id
     * strings themselves never move, and no forget runs: the caller
     * holds train_mu). */
    pthread_mutex_lock(&e->wmu);
    uint32_t nc = e->customers.n, ni = e->items.n;
    size_t n = e->n_ev;
    m.generation = generation;
    m.n_customers = nc;
    m.n_items = ni;
    m.n_events = n;
    cx__db_image_revs(e, &m.last_seq, &m.catalog_rev, &m.forget_rev);
    m.ts_max = e->ts_max;
    m.created_max = e->created_max;
    m.pop_t0 = e->pop_t0;
    m.trend_t0 = e->trend_t0;
    m.pop_half_life = e->opt.pop_half_life;
    m.trend_half_life = e->opt.trend_half_life;
    memcpy(m.weight, e->opt.weight, sizeof m.weight);
    uint32_t n_cats = e->categories.n, n_chans = e->channels.n,
             n_tags = e->tagsets.n, types = signal_types(e);
    cid = dup_array(e->customers.str, nc * sizeof *cid);
    iid = dup_array(e->items.str, ni * sizeof *iid);
    data[I_CUST_HASH] = dup_array(e->customers.hash, nc * 4);
    data[I_ITEM_HASH] = dup_array(e->items.hash, ni * 4);
    data[I_CAT] = dup_array(e->item_cat, ni * 4);
    data[I_PRICE] = dup_array(e->item_price, ni * 8);
    data[I_FLAGS] = dup_array(e->item_flags, ni);
    data[I_CREATED] = dup_array(e->item_created, ni * 8);
    data[I_TAGS] = dup_array(e->item_tags, ni * 4);
    data[I_POP] = dup_array(e->item_pop, ni * 8);
    data[I_TREND] = dup_array(e->item_trend, ni * 8);
    data[I_ILAST] = dup_array(e->item_last, ni * 4);
    data[I_CLAST] = dup_array(e->cust_last, nc * 4);
    data[I_EV] = dup_array(e->ev, n * sizeof(cx__event));
    data[I_PREV] = dup_array(e->ev_prev, n * 4);
    data[I_IPREV] = dup_array(e->ev_iprev, n * 4);
    pthread_mutex_unlock(&e->wmu);
    data[I_SEQ] = malloc(n * 8 + 8);
    for (int f = 0; f < I_COUNT; f++)
        if (!data[f] && f != I_CUST_IDS && f != I_ITEM_IDS &&
            f != I_CUST_SLOT && f != I_ITEM_SLOT)
            rc = CX_ENOMEM;
    if (!cid || !iid)
        rc = CX_ENOMEM;
    if (rc == CX_OK)
        rc = pack_ids(cid, data[I_CUST_HASH], nc, &data[I_CUST_IDS],
                      &m.count[I_CUST_IDS], (uint32_t **)&data[I_CUST_SLOT],
                      &m.count[I_CUST_SLOT]);
    if (rc == CX_OK)
        rc = pack_ids(iid, data[I_ITEM_HASH], ni, &data[I_ITEM_IDS],
                      &m.count[I_ITEM_IDS], (uint32_t **)&data[I_ITEM_SLOT],
                      &m.count[I_ITEM_SLOT]);
    if (rc)
        rc = cx__fail(e, CX_ENOMEM, "out of memory");
    /* Each event's seq: the database's signals up to last_seq are the n
     * events in memory, in order (signals are appended in seq order, and
     * no forget runs meanwhile). */
    if (rc == CX_OK)
        rc = cx__db_event_seqs(e, m.last_seq, n, data[I_SEQ]);
    for (int f = 0; f < I_COUNT && rc == CX_OK; f++) {
        if (ifiles[f].per == 'c' || ifiles[f].per == 'i' ||
            ifiles[f].per == 'e')
            m.count[f] = ifiles[f].per == 'c'   ? nc
                         : ifiles[f].per == 'i' ? ni
                                                : n;
        char hdr[HDR];
        image_header(hdr, f, m.count[f]);
        size_t bytes = (size_t)m.count[f] * ifiles[f].size;
        m.sum[f] = cx__checksum(data[f], bytes);
        if (cx__write_file(dir, ifiles[f].name, hdr, HDR, data[f], bytes))
            rc = cx__fail(e, CX_EIO, "writing %s/%s: %s", dir,
                          ifiles[f].name, strerror(errno));
    }
    size_t tl = 0;
    char *text = rc ? NULL : image_text(&m, &tl);
    if (rc == CX_OK && !text)
        rc = cx__fail(e, CX_ENOMEM, "out of memory");
    if (rc == CX_OK && cx__write_file(dir, "IMAGE", text, tl, "", 0))
        rc = cx__fail(e, CX_EIO, "writing %s/IMAGE: %s", dir,
                      strerror(errno));
    free(text);
    /* What the generation's stamp may say of the image: that it passed
     * the checks an open would make, against the names it had when its
     * copy was taken. */
    if (rc == CX_OK &&
        slots_ok(data[I_CUST_SLOT], m.count[I_CUST_SLOT], nc) &&
        slots_ok(data[I_ITEM_SLOT], m.count[I_ITEM_SLOT], ni) &&
        ranges_ok(&m, (char **)data, types, n_cats, n_chans, n_tags)) {
        stamp->ranges = 1;
        stamp->n_cats = n_cats, stamp->n_chans = n_chans;
        stamp->n_tags = n_tags, stamp->types = types;
    }
    free(cid);
    free(iid);
    for (int f = 0; f < I_COUNT; f++)
        free(data[f]);
    if (rc) { /* the generation goes without an image */
        char p[4096];
        for (int f = 0; f < I_COUNT; f++) {
            snprintf(p, sizeof p, "%s/%s", dir, ifiles[f].name);
            unlink(p);
        }
        snprintf(p, sizeof p, "%s/IMAGE", dir);
        unlink(p);
    }
    return rc;
}

/* ===================================================================== */
/* Mapping                                                               */
/* ===================================================================== */

static size_t page_up(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

/* Room for growth after each array, in elements. */
static uint64_t room(const image_manifest *m, int f)
{
    switch (ifiles[f].per) {
    case 'c': return m->n_customers + m->n_customers / 8 + 4096;
    case 'i': return m->n_items + m->n_items / 4 + 1024;
    case 'e': return m->n_events + m->n_events / 2 + 65536;
    default: return m->count[f];
    }
}

/* Map file f of dir at `at` (inside the reserved range), check its size,
 * header and checksum (not the checksum if the stamp vouches for the
 * file; else *stamped = 0); the file as verified is added to seen. */
static int map_file(const char *dir, const image_manifest *m, int f,
                    char *at, const cx__stamp *stamp, int *stamped,
                    cx__stamp *seen, char *why, size_t whylen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, ifiles[f].name);
    size_t bytes = (size_t)m->count[f] * ifiles[f].size;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", ifiles[f].name,
                 strerror(errno));
        return CX_ECORRUPT;
    }
    struct stat st;
    int rc = CX_OK;
    char hdr[HDR];
    if (fstat(fd, &st) || (uint64_t)st.st_size != HDR + (uint64_t)bytes) {
        snprintf(why, whylen, "%s has the wrong size (truncated?)",
                 ifiles[f].name);
        rc = CX_ECORRUPT;
    } else if (mmap(at, HDR + bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
        snprintf(why, whylen, "cannot map %s: %s", ifiles[f].name,
                 strerror(errno));
        rc = errno == ENOMEM ? CX_ENOMEM : CX_EIO;
    } else if ((image_header(hdr, f, m->count[f]), memcmp(at, hdr, HDR))) {
        snprintf(why, whylen, "%s has an unexpected header", ifiles[f].name);
        rc = CX_ECORRUPT;
    } else if (!cx__stamp_holds(stamp, ifiles[f].name, &st)) {
        *stamped = 0;
        cx__verified.checksums++;
        if (cx__checksum(at + HDR, bytes) != m->sum[f]) {
            snprintf(why, whylen, "%s fails its checksum", ifiles[f].name);
            rc = CX_ECORRUPT;
        }
    }
    if (rc == CX_OK)
        cx__stamp_add(seen, ifiles[f].name, &st);
    close(fd);
    return rc;
}

/* The n strings of a run of ids into str[] (which has room for them);
 * each 0..CX_MAX_ID_LEN bytes, and exactly `bytes` bytes in all. */
static int unpack_ids(const char *blob, uint64_t bytes, uint32_t n,
                      const char **str)
{
    const char *p = blob, *end = blob + bytes;
    for (uint32_t i = 0; i < n; i++) {
        const char *z = memchr(p, 0, (size_t)(end - p));
        if (!z || z - p > CX_MAX_ID_LEN)
            return -1;
        str[i] = p;
        p = z + 1;
    }
    return p == end ? 0 : -1;
}

static int slots_ok(const uint32_t *slot, uint64_t nslot, uint32_t n)
{
    for (uint64_t q = 0; q < nslot; q++)
        if (slot[q] > n)
            return 0;
    return 1;
}

/* The signal types the database defines, as a bit mask. */
static uint32_t signal_types(const cx_engine *e)
{
    uint32_t types = 0;
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        if (cx_signal_type_name(e, t))
            types |= 1u << t;
    return types;
}

/* Everything that indexes something is in range, so a bad image cannot
 * send the engine out of its arrays (the checksums catch what is merely
 * damaged): categories, channels and tag sets below n_*, signal types
 * among `types`. */
static int ranges_ok(const image_manifest *m, char **a, uint32_t types,
                     uint32_t n_cats, uint32_t n_chans, uint32_t n_tags)
{
    uint32_t nc = m->n_customers, ni = m->n_items;
    const uint32_t *cat = (const uint32_t *)a[I_CAT];
    const double *price = (const double *)a[I_PRICE];
    const uint8_t *flags = (const uint8_t *)a[I_FLAGS];
    const int64_t *created = (const int64_t *)a[I_CREATED];
    const uint32_t *tags = (const uint32_t *)a[I_TAGS];
    const double *pop = (const double *)a[I_POP];
    const double *trend = (const double *)a[I_TREND];
    const uint32_t *ilast = (const uint32_t *)a[I_ILAST];
    const uint32_t *clast = (const uint32_t *)a[I_CLAST];
    const cx__event *ev = (const cx__event *)a[I_EV];
    const uint32_t *prev = (const uint32_t *)a[I_PREV];
    const uint32_t *iprev = (const uint32_t *)a[I_IPREV];
    const int64_t *seq = (const int64_t *)a[I_SEQ];
    for (uint32_t i = 0; i < ni; i++)
        if (cat[i] >= n_cats || !isfinite(price[i]) || price[i] < 0 ||
            flags[i] > 7 || created[i] < 0 ||
            (tags[i] != CX_NONE && tags[i] >= n_tags) ||
            !(pop[i] >= 0 && pop[i] < INFINITY) ||
            !(trend[i] >= 0 && trend[i] < INFINITY) ||
            (ilast[i] != CX_NONE && ilast[i] >= m->n_events))
            return 0;
    for (uint32_t u = 0; u < nc; u++)
        if (clast[u] != CX_NONE && clast[u] >= m->n_events)
            return 0;
    for (uint64_t j = 0; j < m->n_events; j++) {
        const cx__event *x = &ev[j];
        if (x->cust >= nc || x->item >= ni || x->type >= CX_MAX_SIGNAL_TYPES ||
            !(types >> x->type & 1) ||
            !isfinite(x->value) || x->ts < 0 || x->channel >= n_chans ||
            (prev[j] != CX_NONE && prev[j] >= j) ||
            (iprev[j] != CX_NONE && iprev[j] >= j) ||
            seq[j] < 1 || (j && seq[j] <= seq[j - 1]))
            return 0;
    }
    return m->n_events == 0 || seq[m->n_events - 1] <= m->last_seq;
}

int cx__image_load(cx_engine *e, const char *dir, int64_t generation,
                   uint32_t n_cats, uint32_t n_chans, uint32_t n_tags,
                   const cx__stamp *stamp, cx__stamp *seen,
                   cx__image_state *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/IMAGE", dir);
    size_t len = 0;
    struct stat st;
    char *text = cx__read_file(path, &len, 1 << 20, &st);
    if (!text) {
        if (errno == ENOENT && access(path, F_OK) != 0)
            return CX_ENOTFOUND; /* a generation without an image */
        snprintf(why, whylen, "cannot read IMAGE");
        return CX_ECORRUPT;
    }
    image_manifest m;
    int rc = cx__image_manifest_parse(text, len, &m, why, whylen);
    free(text);
    if (rc == CX_OK && m.generation != generation) {
        snprintf(why, whylen, "IMAGE names generation %" PRId64,
                 m.generation);
        rc = CX_ECORRUPT;
    }
    if (rc)
        return rc;
    /* The range checks were made against these names (they only grow):
     * the stamp vouches for them while they still hold. */
    uint32_t types = signal_types(e);
    int stamped = cx__stamp_holds(stamp, "IMAGE", &st) && stamp->ranges &&
                  n_cats >= stamp->n_cats && n_chans >= stamp->n_chans &&
                  n_tags >= stamp->n_tags &&
                  (types & stamp->types) == stamp->types;
    int n0 = seen->n;
    cx__stamp_add(seen, "IMAGE", &st);
    /* One reserved range, each file mapped at the start of its part. */
    size_t off[I_COUNT], total = 0;
    for (int f = 0; f < I_COUNT; f++) {
        off[f] = total;
        total += page_up(HDR + (size_t)room(&m, f) * ifiles[f].size);
    }
    struct cx__image *img = calloc(1, sizeof *img);
    char *base = mmap(NULL, total, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!img || base == MAP_FAILED) {
        free(img);
        snprintf(why, whylen, "out of memory");
        return CX_ENOMEM;
    }
    img->base = base;
    img->len = total;
    char *a[I_COUNT];
    for (int f = 0; f < I_COUNT && rc == CX_OK; f++) {
        a[f] = base + off[f] + HDR;
        rc = map_file(dir, &m, f, base + off[f], stamp, &stamped, seen, why,
                      whylen);
    }
    uint32_t nc = m.n_customers, ni = m.n_items;
    size_t cap_c = room(&m, I_CLAST), cap_i = room(&m, I_CAT);
    const char **cstr = NULL, **istr = NULL;
    uint32_t *xslot = NULL;
    if (rc == CX_OK) {
        cstr = malloc(cap_c * sizeof *cstr);
        istr = malloc(cap_i * sizeof *istr);
        xslot = malloc(cap_i * sizeof *xslot);
        if (!cstr || !istr || !xslot) {
            snprintf(why, whylen, "out of memory");
            rc = CX_ENOMEM;
        }
    }
    if (rc == CX_OK && !stamped)
        cx__verified.image_checks++;
    if (rc == CX_OK &&
        (unpack_ids(a[I_CUST_IDS], m.count[I_CUST_IDS], nc, cstr) ||
         unpack_ids(a[I_ITEM_IDS], m.count[I_ITEM_IDS], ni, istr) ||
         (!stamped &&
          (!slots_ok((uint32_t *)a[I_CUST_SLOT], m.count[I_CUST_SLOT], nc) ||
           !slots_ok((uint32_t *)a[I_ITEM_SLOT], m.count[I_ITEM_SLOT], ni) ||
           !ranges_ok(&m, a, types, n_cats, n_chans, n_tags))))) {
        snprintf(why, whylen, "image out of range for the database");
        rc = CX_ECORRUPT;
    }
    if (rc) {
        seen->n = n0;
        free(cstr);
        free(istr);
        free(xslot);
        munmap(base, total);
        free(img);
        return rc;
    }
    /* Install: the engine is not shared yet. */
    pthread_mutex_lock(&images_mu);
    img->next = images;
    images = img;
    pthread_mutex_unlock(&images_mu);
    e->image = img;
    cx__idmap *maps[2] = {&e->customers, &e->items};
    const char **strs[2] = {cstr, istr};
    const int fid[2][3] = {{I_CUST_IDS, I_CUST_HASH, I_CUST_SLOT},
                           {I_ITEM_IDS, I_ITEM_HASH, I_ITEM_SLOT}};
    for (int k = 0; k < 2; k++) {
        cx__idmap_free(maps[k]);
        maps[k]->str = strs[k];
        maps[k]->hash = (uint32_t *)a[fid[k][1]];
        maps[k]->n = k ? ni : nc;
        maps[k]->cap = (uint32_t)(k ? cap_i : cap_c);
        maps[k]->slot = (uint32_t *)a[fid[k][2]];
        maps[k]->nslot = (uint32_t)m.count[fid[k][2]];
    }
    e->item_cat = (uint32_t *)a[I_CAT];
    e->item_price = (double *)a[I_PRICE];
    e->item_flags = (uint8_t *)a[I_FLAGS];
    e->item_created = (int64_t *)a[I_CREATED];
    e->item_tags = (uint32_t *)a[I_TAGS];
    e->item_pop = (double *)a[I_POP];
    e->item_trend = (double *)a[I_TREND];
    e->item_last = (uint32_t *)a[I_ILAST];
    for (size_t i = 0; i < cap_i; i++)
        xslot[i] = CX_NONE;
    e->item_xslot = xslot;
    e->item_cap = cap_i;
    /* New customers' newest event is "none": the room after the mapped
     * part is zero pages. */
    e->cust_last = (uint32_t *)a[I_CLAST];
    memset(e->cust_last + nc, 0xff, (cap_c - nc) * sizeof *e->cust_last);
    e->cust_cap = cap_c;
    e->ev = (cx__event *)a[I_EV];
    e->ev_prev = (uint32_t *)a[I_PREV];
    e->ev_iprev = (uint32_t *)a[I_IPREV];
    e->n_ev = m.n_events;
    e->ev_cap = room(&m, I_EV);
    e->ts_max = m.ts_max;
    e->created_max = m.created_max;
    e->pop_t0 = m.pop_t0;
    e->trend_t0 = m.trend_t0;
    for (int l = 0; l < CX__LISTS; l++)
        e->top[l].valid = 0;
    out->ev_seq = (int64_t *)a[I_SEQ];
    out->ev_seq_cap = room(&m, I_SEQ);
    out->last_seq = m.last_seq;
    out->catalog_rev = m.catalog_rev;
    out->forget_rev = m.forget_rev;
    out->stamped = stamped;
    seen->ranges = 1;
    seen->n_cats = stamped ? stamp->n_cats : n_cats;
    seen->n_chans = stamped ? stamp->n_chans : n_chans;
    seen->n_tags = stamped ? stamp->n_tags : n_tags;
    seen->types = stamped ? stamp->types : types;
    out->pop_current = m.pop_half_life == e->opt.pop_half_life &&
                       m.trend_half_life == e->opt.trend_half_life &&
                       memcmp(m.weight, e->opt.weight, sizeof m.weight) == 0;
    return CX_OK;
}
