/* snapshot.c -- model generations in the data directory.
 *
 *   snapshots/g0000000007/MANIFEST
 *                         customer_factors.npy  item_factors.npy  ...
 *
 * A generation is written into gNNN.tmp/ (every file fsync'ed, MANIFEST
 * last), renamed to gNNN/ (the commit point) and the directory synced;
 * older generations beyond the previous one are then removed.  The
 * MANIFEST is text: the model's facts, then one line per file with its
 * dtype, shape and the checksum of its data, then a checksum of all the
 * lines before.  Each .npy file is exactly the header numpy writes for
 * that dtype and shape, followed by the data, so numpy.load(..., mmap_mode
 * ="r") reads it; the loader rebuilds the expected header and compares it
 * byte for byte, so nothing in a header is trusted either. */
#include "internal.h"
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Format 2 added the item factors' serving form (int8 copy, scales,
 * norms), which format 1 readers rebuilt at every open; format 3 has a
 * 4-bit copy in its place.  Formats 1 and 2 are still read: their
 * generations open with the serving form computed (format 2's files of
 * it are listed but not read). */
#define SNAP_FORMAT 3
#define KEEP_GENERATIONS 2

static int model_ok(const cx__model *mo, uint64_t nnz);

/* The files of a generation, in manifest order; format 1 has the first
 * F_COUNT_1. */
enum {
    F_X, F_Y, F_HAS, F_PTR, F_IDX, F_CONF, F_MASK, F_GRAM, F_COUNT_1,
    F_YQ = F_COUNT_1, F_QSCALE, F_NORM, F_QCOS, F_COUNT
};
static const struct {
    const char *name, *descr;
    size_t size;
} files[F_COUNT] = {
    {"customer_factors.npy", "<f4", 4}, {"item_factors.npy", "<f4", 4},
    {"has_vector.npy", "|u1", 1},       {"pairs_ptr.npy", "<u8", 8},
    {"pairs_item.npy", "<u4", 4},       {"pairs_conf.npy", "<f4", 4},
    {"pairs_mask.npy", "<u4", 4},       {"gram.npy", "<f8", 8},
    /* The 4-bit copy of item_factors in the blocks of cx__q4_at, and per
     * item (padded to 8, plus one) max|y| / CX__YMAX, 1 / |y| and their
     * product: see cx__model_finish. */
    {"item_factors_int4.npy", "|u1", 1}, {"item_scale.npy", "<f4", 4},
    {"item_inv_norm.npy", "<f4", 4},     {"item_cos_scale.npy", "<f4", 4},
};

_Static_assert(F_COUNT <= sizeof ((cx__snapshot_info *)0)->map /
                              sizeof(void *) &&
                   F_COUNT_1 <= sizeof ((cx__model *)0)->map / sizeof(void *),
               "room for every file's mapping");

/* ===================================================================== */
/* The manifest                                                          */
/* ===================================================================== */

typedef struct manifest {
    int format;
    int64_t generation, seq_end, ts_ref;
    uint64_t n_events;
    uint32_t k, n_users, n_items;
    double loss;
    cx__options opt;
    struct {
        int ndim;
        uint64_t shape[3];
        uint64_t sum;
    } f[F_COUNT];
} manifest;

/* Build the numpy 1.0 header for a file: magic, version, length, dict,
 * padded with spaces to a multiple of 64 bytes and ending in '\n'. */
static size_t npy_header(char *h, size_t cap, const char *descr, int ndim,
                         const uint64_t *shape)
{
    char dict[256];
    int n = snprintf(dict, sizeof dict,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
    for (int d = 0; d < ndim; d++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRIu64,
                      d ? ", " : "", shape[d]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }",
                  ndim == 1 ? "," : "");
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    if (total + pad > cap)
        return 0;
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = (uint16_t)((size_t)n + 1 + pad);
    h[8] = (char)(hl & 0xff);
    h[9] = (char)(hl >> 8);
    memcpy(h + 10, dict, (size_t)n);
    memset(h + 10 + n, ' ', pad);
    h[total + pad - 1] = '\n';
    return total + pad;
}

static uint64_t elems(const manifest *m, int f)
{
    uint64_t n = 1;
    for (int d = 0; d < m->f[f].ndim; d++)
        n *= m->f[f].shape[d];
    return n;
}

/* The files of a manifest's format, and those of them this library
 * reads (the serving form only in the format that has it as it is). */
static int n_files(const manifest *m)
{
    return m->format == 1 ? F_COUNT_1 : F_COUNT;
}

static int n_read(const manifest *m)
{
    return m->format == SNAP_FORMAT ? F_COUNT : F_COUNT_1;
}

/* File f's name and numpy type in format `format`: format 2's copy of
 * the item factors was int8. */
static const char *file_name(int format, int f)
{
    return format == 2 && f == F_YQ ? "item_factors_int8.npy"
                                    : files[f].name;
}

static const char *file_descr(int format, int f)
{
    return format == 2 && f == F_YQ ? "|i1" : files[f].descr;
}

/* The shapes a model implies, and whether the manifest's agree. */
static void shapes(manifest *m, uint64_t nnz)
{
    static const int nd[F_COUNT] = {2, 2, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1};
    for (int f = 0; f < F_COUNT; f++)
        m->f[f].ndim = nd[f];
    m->f[F_X].shape[0] = m->n_users, m->f[F_X].shape[1] = m->k;
    m->f[F_Y].shape[0] = m->n_items, m->f[F_Y].shape[1] = m->k;
    m->f[F_HAS].shape[0] = m->n_users;
    m->f[F_PTR].shape[0] = (uint64_t)m->n_users + 1;
    m->f[F_IDX].shape[0] = m->f[F_CONF].shape[0] = m->f[F_MASK].shape[0] =
        nnz;
    m->f[F_GRAM].shape[0] = 2;
    m->f[F_GRAM].shape[1] = m->f[F_GRAM].shape[2] = m->k;
    uint64_t padded = ((uint64_t)m->n_items + 7) / 8 * 8;
    /* format 2: 1 byte a value, k rounded up to 4; then half a byte, k
     * rounded up to 8 */
    m->f[F_YQ].shape[0] = m->format == 2 ? padded * ((m->k + 3) & ~3u) + 32
                                         : padded * ((m->k + 7) & ~7u) / 2 + 32;
    m->f[F_QSCALE].shape[0] = m->f[F_NORM].shape[0] =
        m->f[F_QCOS].shape[0] = padded + 1;
}

int cx__put_line(char **buf, size_t *n, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(*buf ? *buf + *n : NULL, *buf ? *cap - *n : 0, fmt,
                          ap);
        va_end(ap);
        if (w < 0)
            return -1;
        if (*buf && (size_t)w < *cap - *n) {
            *n += (size_t)w;
            return 0;
        }
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < *n + (size_t)w + 1)
            c *= 2;
        char *q = realloc(*buf, c);
        if (!q)
            return -1;
        *buf = q;
        *cap = c;
    }
}

/* End a manifest's text b (n bytes of cap) with its checksum line; NULL
 * (b freed) if bad or out of memory, else b with *len its length. */
char *cx__manifest_seal(char *b, size_t n, size_t cap, int bad, size_t *len)
{
    if (!bad)
        bad |= cx__put_line(&b, &n, &cap, "checksum %016" PRIx64 "\n",
                            cx__checksum(b, n));
    if (bad) {
        free(b);
        return NULL;
    }
    *len = n;
    return b;
}

static char *manifest_text(const manifest *m, size_t *len)
{
    char *b = NULL;
    size_t n = 0, cap = 0;
    int bad = cx__put_line(&b, &n, &cap, "cxengine-snapshot %d\n",
                           m->format);
    bad |= cx__put_line(&b, &n, &cap, "generation %" PRId64 "\n", m->generation);
    bad |= cx__put_line(&b, &n, &cap, "factors %" PRIu32 "\n", m->k);
    bad |= cx__put_line(&b, &n, &cap, "customers %" PRIu32 "\n", m->n_users);
    bad |= cx__put_line(&b, &n, &cap, "items %" PRIu32 "\n", m->n_items);
    bad |= cx__put_line(&b, &n, &cap, "events %" PRIu64 "\n", m->n_events);
    bad |= cx__put_line(&b, &n, &cap, "seq_end %" PRId64 "\n", m->seq_end);
    bad |= cx__put_line(&b, &n, &cap, "ts_ref %" PRId64 "\n", m->ts_ref);
    bad |= cx__put_line(&b, &n, &cap, "loss %a\n", m->loss);
    int keys[CX__MAX_OPTION_KEYS];
    int nk = cx__option_keys(keys);
    for (int i = 0; i < nk; i++)
        bad |= cx__put_line(&b, &n, &cap, "option %d %a\n", keys[i],
                        cx__option_get(&m->opt, keys[i]));
    for (int f = 0; f < n_files(m); f++) {
        bad |= cx__put_line(&b, &n, &cap, "file %s %s",
                            file_name(m->format, f),
                            file_descr(m->format, f));
        for (int d = 0; d < m->f[f].ndim; d++)
            bad |= cx__put_line(&b, &n, &cap, " %" PRIu64, m->f[f].shape[d]);
        bad |= cx__put_line(&b, &n, &cap, " %016" PRIx64 "\n", m->f[f].sum);
    }
    return cx__manifest_seal(b, n, cap, bad, len);
}

#define BAD(...) (snprintf(why, whylen, __VA_ARGS__), CX_ECORRUPT)
/* The framing and checksum line of a manifest-style text (what: its
 * name in messages): the checksum line is last and covers every byte
 * before it, at *body.  CX_OK, or CX_ECORRUPT with a reason in why. */
int cx__manifest_verify(const char *text, size_t len, const char *what,
                        size_t *body, char *why, size_t whylen)
{
    if (len < 30 || len > (1 << 20) || text[len - 1] != '\n')
        return BAD("%s is empty, too long or not ended by a newline", what);
    size_t last = len - 1;
    while (last > 0 && text[last - 1] != '\n')
        last--;
    char line[512];
    if (len - last >= sizeof line)
        return BAD("%s's last line is too long", what);
    memcpy(line, text + last, len - last);
    line[len - last] = 0;
    uint64_t sum;
    char tail;
    if (sscanf(line, "checksum %16" SCNx64 "%c", &sum, &tail) != 2 ||
        tail != '\n')
        return BAD("%s has no checksum line", what);
    if (sum != cx__checksum(text, last))
        return BAD("%s checksum mismatch", what);
    *body = last;
    return CX_OK;
}

int cx__manifest_line(const char *text, size_t body, size_t *at,
                      const char *what, cx__mline *l, char *why,
                      size_t whylen)
{
    const char *nl = memchr(text + *at, '\n', body - *at);
    size_t n = (size_t)(nl - (text + *at));
    if (n >= sizeof l->line || memchr(text + *at, 0, n))
        return BAD("%s line too long or with a NUL byte", what);
    memcpy(l->line, text + *at, n);
    l->line[n] = 0;
    *at += n + 1;
    int used = 0;
    if (sscanf(l->line, "%31s %n", l->word, &used) != 1)
        return BAD("blank %s line", what);
    l->rest = l->line + used;
    return CX_OK;
}

#undef BAD

/* Parse and verify a manifest's text (len bytes, not NUL-terminated).
 * Returns CX_OK, or CX_ECORRUPT / CX_EVERSION with a reason in why. */
int cx__manifest_parse(const char *text, size_t len, void *out, char *why,
                       size_t whylen)
{
    manifest *m = out;
    memset(m, 0, sizeof *m);
    cx__options_default(&m->opt);
#define BAD(...) (snprintf(why, whylen, __VA_ARGS__), CX_ECORRUPT)
    size_t last;
    int rc = cx__manifest_verify(text, len, "manifest", &last, why, whylen);
    if (rc)
        return rc;
    cx__mline ml;
    int seen = 0, nfile = 0, fmt = 0;
    for (size_t at = 0; at < last;) {
        if ((rc = cx__manifest_line(text, last, &at, "manifest", &ml, why,
                                    whylen)))
            return rc;
        const char *word = ml.word, *rest = ml.rest;
        int end = 0;
#define NUM(fmtc, dst, bit)                                                \
        do {                                                               \
            if (sscanf(rest, fmtc "%n", dst, &end) != 1 || rest[end])      \
                return BAD("bad manifest line '%.40s'", ml.line);             \
            seen |= bit;                                                   \
        } while (0)
        if (strcmp(word, "cxengine-snapshot") == 0) {
            NUM("%d", &fmt, 1);
            m->format = fmt;
            if (fmt < 1 || fmt > SNAP_FORMAT) {
                snprintf(why, whylen, "snapshot format %d; this library "
                         "reads formats 1 to %d", fmt, SNAP_FORMAT);
                return CX_EVERSION;
            }
        } else if (strcmp(word, "generation") == 0) {
            NUM("%" SCNd64, &m->generation, 2);
        } else if (strcmp(word, "factors") == 0) {
            NUM("%" SCNu32, &m->k, 4);
        } else if (strcmp(word, "customers") == 0) {
            NUM("%" SCNu32, &m->n_users, 8);
        } else if (strcmp(word, "items") == 0) {
            NUM("%" SCNu32, &m->n_items, 16);
        } else if (strcmp(word, "events") == 0) {
            NUM("%" SCNu64, &m->n_events, 32);
        } else if (strcmp(word, "seq_end") == 0) {
            NUM("%" SCNd64, &m->seq_end, 64);
        } else if (strcmp(word, "ts_ref") == 0) {
            NUM("%" SCNd64, &m->ts_ref, 128);
        } else if (strcmp(word, "loss") == 0) {
            NUM("%la", &m->loss, 256);
        } else if (strcmp(word, "option") == 0) {
            int key;
            double v;
            if (sscanf(rest, "%d %la%n", &key, &v, &end) != 2 || rest[end] ||
                !cx__option_key_valid(key) || cx__option_check(NULL, key, v))
                return BAD("bad option line '%.40s'", ml.line);
            cx__option_put(&m->opt, key, v);
        } else if (strcmp(word, "file") == 0) {
            if (nfile == F_COUNT)
                return BAD("too many file lines");
            /* name descr dim [dim [dim]] checksum, single spaces. */
            char tok[6][64];
            int nt = 0;
            const char *q = rest;
            while (*q && nt < 6) {
                size_t w = strcspn(q, " ");
                if (w == 0 || w >= sizeof tok[0])
                    return BAD("bad file line '%.40s'", ml.line);
                memcpy(tok[nt], q, w);
                tok[nt++][w] = 0;
                q += w;
                if (*q == ' ' && *++q == 0)
                    return BAD("bad file line '%.40s'", ml.line);
            }
            int nd = nt - 3;
            if (*q || nd < 1 || nd > 3 ||
                strcmp(tok[0], file_name(m->format, nfile)) ||
                strcmp(tok[1], file_descr(m->format, nfile)))
                return BAD("bad file line '%.40s'", ml.line);
            uint64_t s[3], hx;
            for (int d = 0; d <= nd; d++) {
                const char *t = tok[2 + d];
                int e2 = 0;
                int ok = d < nd
                    ? t[0] >= '0' && t[0] <= '9' &&
                          sscanf(t, "%" SCNu64 "%n", &s[d], &e2) == 1
                    : strlen(t) == 16 &&
                          sscanf(t, "%16" SCNx64 "%n", &hx, &e2) == 1;
                if (!ok || t[e2])
                    return BAD("bad file line '%.40s'", ml.line);
            }
            m->f[nfile].ndim = nd;
            for (int d = 0; d < nd; d++)
                m->f[nfile].shape[d] = s[d];
            m->f[nfile].sum = hx;
            nfile++;
        } else {
            return BAD("unknown manifest line '%.40s'", ml.line);
        }
#undef NUM
    }
    if (seen != 511 || nfile != n_files(m))
        return BAD("manifest lacks lines");
    if (m->generation < 1 || m->k < 1 || m->k > 1024 || m->seq_end < 0 ||
        m->n_users >= CX_NONE / 2 || m->n_items >= CX_NONE / 2 ||
        !isfinite(m->loss))
        return BAD("manifest values out of range");
    /* Every shape but the pairs' length follows from the counts. */
    manifest want = *m;
    uint64_t nnz = m->f[F_IDX].ndim == 1 ? m->f[F_IDX].shape[0] : 0;
    if (nnz > ((uint64_t)1 << 40))
        return BAD("manifest pair count out of range");
    shapes(&want, nnz);
    for (int f = 0; f < n_files(m); f++) {
        if (want.f[f].ndim != m->f[f].ndim)
            return BAD("file %s has the wrong rank",
                       file_name(m->format, f));
        for (int d = 0; d < m->f[f].ndim; d++)
            if (want.f[f].shape[d] != m->f[f].shape[d])
                return BAD("file %s has the wrong shape",
                           file_name(m->format, f));
    }
    return CX_OK;
#undef BAD
}

/* ===================================================================== */
/* Writing                                                               */
/* ===================================================================== */

static int write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = write(fd, s, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

/* Write name in dir: header and data, synced.  0 or -1 (errno). */
int cx__write_file(const char *dir, const char *name, const char *hdr,
                   size_t hl, const void *data, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int r = write_all(fd, hdr, hl) || write_all(fd, data, bytes) ||
            fsync(fd);
    int saved = errno;
    if (close(fd))
        r = -1;
    errno = saved;
    return r ? -1 : 0;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        char p[4096];
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", path, de->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(path);
}

/* Generation numbers in dir/snapshots, newest first (malloc'ed). */
static int list_generations(const char *snaps, int64_t **out, size_t *n,
                            int tmp)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(snaps);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t g;
        int end = 0;
        if (de->d_name[0] != 'g' ||
            sscanf(de->d_name + 1, "%" SCNd64 "%n", &g, &end) != 1 || g < 1)
            continue;
        int is_tmp = strcmp(de->d_name + 1 + end, ".tmp") == 0;
        if (de->d_name[1 + end] && !is_tmp)
            continue;
        if (is_tmp != tmp)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            int64_t *q = realloc(*out, cap * sizeof *q);
            if (!q) {
                closedir(d);
                return -1;
            }
            *out = q;
        }
        (*out)[(*n)++] = g;
    }
    closedir(d);
    /* Newest first. */
    for (size_t i = 1; i < *n; i++)
        for (size_t j = i; j > 0 && (*out)[j - 1] < (*out)[j]; j--) {
            int64_t t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    return 0;
}

int cx__snapshot_write(cx_engine *e, const cx__model *mo)
{
    const char *root = cx__db_dir(e);
    char snaps[3600], tmp[3700], fin[3700];
    snprintf(snaps, sizeof snaps, "%s/snapshots", root);
    if (mkdir(snaps, 0755) && errno != EEXIST)
        return cx__fail(e, CX_EIO, "snapshot: cannot create %s: %s", snaps,
                        strerror(errno));
    /* Leftovers of a write that did not finish. */
    int64_t *gen = NULL;
    size_t ng = 0;
    list_generations(snaps, &gen, &ng, 1);
    for (size_t i = 0; i < ng; i++) {
        snprintf(tmp, sizeof tmp, "%s/g%010" PRId64 ".tmp", snaps, gen[i]);
        remove_tree(tmp);
    }
    free(gen);

    manifest m;
    memset(&m, 0, sizeof m);
    m.format = SNAP_FORMAT;
    m.generation = e->generation;
    m.k = (uint32_t)mo->k;
    m.n_users = mo->n_users;
    m.n_items = mo->n_items;
    m.n_events = mo->n_events;
    m.seq_end = mo->seq_end;
    m.ts_ref = mo->ts_ref;
    m.loss = mo->loss;
    m.opt = mo->opt;
    uint64_t nnz = mo->ui.ptr[mo->n_users];
    shapes(&m, nnz);
    /* Gy and Gx side by side for the one gram file. */
    size_t kk = (size_t)mo->k * mo->k;
    double *gram = malloc(2 * kk * sizeof *gram);
    if (!gram)
        return cx__fail(e, CX_ENOMEM, "snapshot: out of memory");
    memcpy(gram, mo->Gy, kk * sizeof *gram);
    memcpy(gram + kk, mo->Gx, kk * sizeof *gram);
    const void *data[F_COUNT] = {mo->X, mo->Y, mo->has_vec, mo->ui.ptr,
                                 mo->ui.idx, mo->ui.conf, mo->ui.mask,
                                 gram, mo->Yq, mo->q_scale, mo->inv_norm,
                                 mo->q_cos_scale};
    snprintf(tmp, sizeof tmp, "%s/g%010" PRId64 ".tmp", snaps,
             m.generation);
    snprintf(fin, sizeof fin, "%s/g%010" PRId64, snaps, m.generation);
    remove_tree(fin); /* a generation number is never reused live */
    int rc = CX_OK;
    if (mkdir(tmp, 0755))
        rc = cx__fail(e, CX_EIO, "snapshot: cannot create %s: %s", tmp,
                      strerror(errno));
    for (int f = 0; f < F_COUNT && rc == CX_OK; f++) {
        char hdr[256];
        size_t hl = npy_header(hdr, sizeof hdr, files[f].descr,
                               m.f[f].ndim, m.f[f].shape);
        size_t bytes = (size_t)elems(&m, f) * files[f].size;
        m.f[f].sum = cx__checksum(data[f], bytes);
        if (!hl || cx__write_file(tmp, files[f].name, hdr, hl, data[f], bytes))
            rc = cx__fail(e, CX_EIO, "snapshot: writing %s/%s: %s", tmp,
                          files[f].name, strerror(errno));
    }
    free(gram);
    /* The engine image beside the model; a generation without one is
     * still whole (opening it replays the database), so a failure here
     * is reported and the model committed. */
    cx__stamp stamp;
    memset(&stamp, 0, sizeof stamp);
    stamp.generation = m.generation;
    if (rc == CX_OK && cx__image_write(e, tmp, m.generation, &stamp))
        fprintf(stderr, "cxengine: %s: generation %" PRId64 " is saved "
                "without an engine image (%s); opening it replays the "
                "database\n", root, m.generation, cx_errmsg(e));
    size_t tl = 0;
    char *text = rc ? NULL : manifest_text(&m, &tl);
    if (rc == CX_OK && !text)
        rc = cx__fail(e, CX_ENOMEM, "snapshot: out of memory");
    if (rc == CX_OK && cx__write_file(tmp, "MANIFEST", text, tl, "", 0))
        rc = cx__fail(e, CX_EIO, "snapshot: committing %s: %s", fin,
                      strerror(errno));
    /* This process wrote the files from the memory it checksummed: it
     * stamps them verified once the model passes the checks an open
     * would make (and the image, if it passed its own), after waiting
     * out the file clock's margin (see stamp.c).  No stamp is no error:
     * the first open verifies in full. */
    if (rc == CX_OK && model_ok(mo, nnz)) {
        cx__stamp_wait();
        stamp.t0 = cx__stamp_now();
        int ok = cx__stamp_add_path(&stamp, tmp, "MANIFEST") == 0;
        for (int f = 0; f < F_COUNT && ok; f++)
            ok = cx__stamp_add_path(&stamp, tmp, files[f].name) == 0;
        for (int i = 0; stamp.ranges && ok && cx__image_file(i); i++)
            ok = cx__stamp_add_path(&stamp, tmp, cx__image_file(i)) == 0;
        if (ok)
            cx__stamp_write(tmp, &stamp);
    }
    if (rc == CX_OK && (sync_dir(tmp) || rename(tmp, fin) || sync_dir(snaps)))
        rc = cx__fail(e, CX_EIO, "snapshot: committing %s: %s", fin,
                      strerror(errno));
    free(text);
    if (rc) {
        remove_tree(tmp);
        return rc;
    }
    /* Keep this generation and the one before it. */
    return cx__snapshot_prune(e, KEEP_GENERATIONS);
}

int cx__snapshot_prune(cx_engine *e, size_t keep)
{
    char snaps[3600], old[3700];
    snprintf(snaps, sizeof snaps, "%s/snapshots", cx__db_dir(e));
    int64_t *gen;
    size_t ng;
    if (list_generations(snaps, &gen, &ng, 0))
        return cx__fail(e, CX_EIO, "snapshot: cannot list %s: %s", snaps,
                        strerror(errno));
    for (size_t i = keep; i < ng; i++) {
        snprintf(old, sizeof old, "%s/g%010" PRId64, snaps, gen[i]);
        remove_tree(old);
    }
    free(gen);
    return sync_dir(snaps) ? cx__fail(e, CX_EIO, "snapshot: syncing %s: %s",
                                      snaps, strerror(errno))
                           : CX_OK;
}

/* ===================================================================== */
/* Reading                                                               */
/* ===================================================================== */

char *cx__read_file(const char *path, size_t *len, size_t limit,
                    struct stat *stp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat own, *st = stp ? stp : &own;
    char *p = NULL;
    if (fstat(fd, st) == 0 && S_ISREG(st->st_mode) &&
        (uint64_t)st->st_size <= limit &&
        (p = malloc((size_t)st->st_size + 1))) {
        size_t got = 0;
        while (got < (size_t)st->st_size) {
            ssize_t r = read(fd, p + got, (size_t)st->st_size - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                break;
            }
            got += (size_t)r;
        }
        if (got != (size_t)st->st_size) {
            free(p);
            p = NULL;
        } else {
            p[got] = 0;
            *len = got;
        }
    }
    close(fd);
    return p;
}

/* Map one data file of generation dir read-only and shared (processes
 * that map the same generation share its pages), verifying its header,
 * size and checksum (not the checksum if s's stamp vouches for the file;
 * else s->stamped = 0); *out points at the data, *base and *len the
 * mapping, and the file as verified is added to s->seen. */
static int map_data(const char *dir, const manifest *m, int f,
                    cx__snapshot_info *s, char *why, size_t whylen)
{
    void **out = &s->data[f], **base = &s->map[f];
    size_t *len = &s->map_len[f];
    char path[4096], hdr[256];
    snprintf(path, sizeof path, "%s/%s", dir, files[f].name);
    size_t hl = npy_header(hdr, sizeof hdr, files[f].descr, m->f[f].ndim,
                           m->f[f].shape);
    uint64_t n = elems(m, f);
    *out = *base = NULL;
    *len = 0;
    if (n > ((uint64_t)1 << 40) / files[f].size) {
        snprintf(why, whylen, "%s is too large", files[f].name);
        return CX_ECORRUPT;
    }
    size_t bytes = (size_t)n * files[f].size;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", files[f].name,
                 strerror(errno));
        return CX_ECORRUPT;
    }
    struct stat st;
    void *p = MAP_FAILED;
    int rc = CX_OK;
    if (fstat(fd, &st) || (uint64_t)st.st_size != hl + bytes) {
        snprintf(why, whylen, "%s has the wrong size (truncated?)",
                 files[f].name);
        rc = CX_ECORRUPT;
    } else if ((p = mmap(NULL, hl + bytes, PROT_READ, MAP_SHARED, fd, 0)) ==
               MAP_FAILED) {
        snprintf(why, whylen, "cannot map %s: %s", files[f].name,
                 strerror(errno));
        rc = errno == ENOMEM ? CX_ENOMEM : CX_EIO;
    } else if (memcmp(p, hdr, hl)) {
        snprintf(why, whylen, "%s has an unexpected header", files[f].name);
        rc = CX_ECORRUPT;
    } else if (!cx__stamp_holds(&s->stamp, files[f].name, &st)) {
        /* (a file the stamp vouches for was verified on this machine
         * and not written since) */
        s->stamped = 0;
        cx__verified.checksums++;
        if (cx__checksum((char *)p + hl, bytes) != m->f[f].sum) {
            snprintf(why, whylen, "%s fails its checksum", files[f].name);
            rc = CX_ECORRUPT;
        }
    }
    if (rc == CX_OK)
        cx__stamp_add(&s->seen, files[f].name, &st);
    close(fd);
    if (rc) {
        if (p != MAP_FAILED)
            munmap(p, hl + bytes);
        return rc;
    }
    *base = p;
    *len = hl + bytes;
    *out = (char *)p + hl;
    return CX_OK;
}

static void unmap_all(void **base, size_t *len)
{
    for (int f = 0; f < F_COUNT; f++) {
        if (base[f])
            munmap(base[f], len[f]);
        base[f] = NULL;
        len[f] = 0;
    }
}

void cx__snapshot_info_free(cx__snapshot_info *s)
{
    unmap_all(s->map, s->map_len);
    free(s->dir);
    free(s->manifest);
    memset(s, 0, sizeof *s);
}

/* Verify generation g (its stamp ignored if verify); on success fill s. */
static int try_generation(const char *snaps, int64_t g, int verify,
                          cx__snapshot_info *s, char *why, size_t whylen)
{
    char dir[3700], path[3800];
    snprintf(dir, sizeof dir, "%s/g%010" PRId64, snaps, g);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    if (verify)
        memset(&s->stamp, 0, sizeof s->stamp);
    else
        cx__stamp_read(dir, g, &s->stamp);
    memset(&s->seen, 0, sizeof s->seen);
    s->seen.generation = g;
    s->seen.t0 = cx__stamp_now();
    size_t len = 0;
    struct stat st;
    char *text = cx__read_file(path, &len, 1 << 20, &st);
    if (!text) {
        snprintf(why, whylen, "cannot read MANIFEST");
        return CX_ECORRUPT;
    }
    /* The MANIFEST is always checked (it is small); the stamp holds for
     * the data files only as long as it holds for the sums they match. */
    s->stamped = cx__stamp_holds(&s->stamp, "MANIFEST", &st);
    cx__stamp_add(&s->seen, "MANIFEST", &st);
    manifest m;
    int rc = cx__manifest_parse(text, len, &m, why, whylen);
    if (rc == CX_OK && m.generation != g) {
        snprintf(why, whylen, "MANIFEST names generation %" PRId64,
                 m.generation);
        rc = CX_ECORRUPT;
    }
    for (int f = 0; f < n_read(&m) && rc == CX_OK; f++)
        rc = map_data(dir, &m, f, s, why, whylen);
    if (rc == CX_OK) {
        s->found = 1;
        s->generation = g;
        s->seq_end = m.seq_end;
        s->manifest = text;
        if (!(s->dir = strdup(dir)))
            rc = CX_ENOMEM;
    } else {
        free(text);
        unmap_all(s->map, s->map_len);
        memset(s->data, 0, sizeof s->data);
    }
    return rc;
}

int cx__snapshot_find(cx_engine *e, const char *root, int verify,
                      cx__snapshot_info *s)
{
    memset(s, 0, sizeof *s);
    char snaps[3600];
    snprintf(snaps, sizeof snaps, "%s/snapshots", root);
    int64_t *gen;
    size_t ng;
    if (list_generations(snaps, &gen, &ng, 0))
        return cx__fail(NULL, CX_EIO, "cx_open: cannot list %s: %s", snaps,
                        strerror(errno));
    int rc = CX_OK;
    for (size_t i = 0; i < ng && !s->found; i++) {
        char why[256] = "";
        rc = try_generation(snaps, gen[i], verify, s, why, sizeof why);
        if (rc == CX_ENOMEM) {
            cx__fail(NULL, rc, "cx_open: out of memory");
            break;
        }
        if (rc) {
            /* Fall back to the generation before, and say so. */
            fprintf(stderr, "cxengine: %s: snapshot generation %" PRId64
                    " is unusable (%s); trying the previous one\n", root,
                    gen[i], why);
            cx__fail(NULL, rc, "snapshot generation %" PRId64 " of %s is "
                     "unusable (%s)", gen[i], root, why);
            rc = CX_OK;
        }
    }
    free(gen);
    CX_UNUSED(e);
    return rc;
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Everything in the model's arrays is in range: finite factors and
 * confidences, pair pointers that ascend from 0 to nnz, items that exist,
 * so that a bad file cannot send the engine outside its arrays (the
 * checksums catch what is merely damaged). */
static int model_ok(const cx__model *mo, uint64_t nnz)
{
    size_t k = (size_t)mo->k;
    if (!all_finite(mo->X, (size_t)mo->n_users * k) ||
        !all_finite(mo->Y, (size_t)mo->n_items * k) ||
        mo->ui.ptr[0] != 0 || mo->ui.ptr[mo->n_users] != nnz)
        return 0;
    for (uint32_t u = 0; u < mo->n_users; u++)
        if (mo->ui.ptr[u + 1] < mo->ui.ptr[u] || mo->has_vec[u] > 1)
            return 0;
    for (uint64_t q = 0; q < nnz; q++)
        if (mo->ui.idx[q] >= mo->n_items || !isfinite(mo->ui.conf[q]))
            return 0;
    size_t nq = ((size_t)mo->n_items + 7) / 8 * 8 + 1;
    return !mo->q_scale || (all_finite(mo->q_scale, nq) &&
                            all_finite(mo->inv_norm, nq) &&
                            all_finite(mo->q_cos_scale, nq));
}

/* The item factors' serving form of a generation in this format, copied
 * out of its mappings into memory the model owns (the 4-bit copy on huge
 * pages, as cx__model_finish makes it, for the scan): a copy of 3.2 MB at
 * 100,000 items x 64, where computing it takes about 30 ms. */
static int serving_form(cx__model *mo, const cx__snapshot_info *s,
                        const manifest *m)
{
    size_t yq = (size_t)m->f[F_YQ].shape[0],
           nq = (size_t)m->f[F_QSCALE].shape[0] * sizeof(float);
    mo->kq = (mo->k + 7) & ~7;
    mo->Yq = cx__alloc_big(yq);
    mo->q_scale = malloc(nq);
    mo->inv_norm = malloc(nq);
    mo->q_cos_scale = malloc(nq);
    if (!mo->Yq || !mo->q_scale || !mo->inv_norm || !mo->q_cos_scale)
        return CX_ENOMEM;
    memcpy(mo->Yq, s->data[F_YQ], yq);
    memcpy(mo->q_scale, s->data[F_QSCALE], nq);
    memcpy(mo->inv_norm, s->data[F_NORM], nq);
    memcpy(mo->q_cos_scale, s->data[F_QCOS], nq);
    return CX_OK;
}

int cx__snapshot_model(cx_engine *e, cx__snapshot_info *s, size_t n_events,
                       cx__model **out)
{
    *out = NULL;
    manifest m;
    char why[256] = "";
    int rc = cx__manifest_parse(s->manifest, strlen(s->manifest), &m, why,
                                sizeof why);
    cx__model *mo = rc ? NULL : calloc(1, sizeof *mo);
    if (rc == CX_OK && !mo)
        rc = CX_ENOMEM;
    if (rc == CX_OK) {
        /* The model owns the arrays from here on. */
        mo->k = (int)m.k;
        mo->n_users = m.n_users;
        mo->n_items = m.n_items;
        mo->X = s->data[F_X];
        mo->Y = s->data[F_Y];
        mo->has_vec = s->data[F_HAS];
        mo->ui.rows = m.n_users;
        mo->ui.ptr = s->data[F_PTR];
        mo->ui.idx = s->data[F_IDX];
        mo->ui.conf = s->data[F_CONF];
        mo->ui.mask = s->data[F_MASK];
        mo->Gy = s->data[F_GRAM];
        mo->mapped = 1;
        for (int f = 0; f < F_COUNT_1; f++) {
            mo->map[f] = s->map[f];
            mo->map_len[f] = s->map_len[f];
            s->map[f] = NULL;
            s->data[f] = NULL;
        }
        mo->n_events = n_events;
        mo->seq_end = m.seq_end;
        mo->loss = m.loss;
        mo->opt = m.opt;
        mo->ts_ref = m.ts_ref;
        uint64_t nnz = m.f[F_IDX].shape[0];
        size_t k = m.k;
        if (m.format == SNAP_FORMAT)
            rc = serving_form(mo, s, &m);
        /* The stamp vouches for the files, not for this database. */
        if (rc == CX_OK &&
            (m.n_users > e->customers.n || m.n_items > e->items.n ||
             mo->ui.ptr[0] != 0 || mo->ui.ptr[m.n_users] != nnz))
            rc = CX_ECORRUPT;
        if (rc == CX_OK && !s->stamped) {
            cx__verified.model_checks++;
            if (!model_ok(mo, nnz))
                rc = CX_ECORRUPT;
        }
        if (rc == CX_ECORRUPT)
            snprintf(why, sizeof why, "model out of range for the "
                     "database");
        /* gram.npy holds Gy then Gx: split it. */
        size_t kk = k * k;
        if (rc == CX_OK && !(mo->Gx = malloc(kk * sizeof *mo->Gx)))
            rc = CX_ENOMEM;
        if (rc == CX_OK)
            memcpy(mo->Gx, mo->Gy + kk, kk * sizeof *mo->Gx);
        if (rc == CX_OK && m.format != SNAP_FORMAT)
            rc = cx__model_finish(mo);
    }
    if (rc) {
        cx__model_free(mo);
        return cx__fail(NULL, rc, "snapshot %s: %s", s->dir,
                        rc == CX_ENOMEM ? "out of memory" : why);
    }
    *out = mo;
    return CX_OK;
}

int64_t cx__snapshot_newest(const char *root)
{
    char snaps[3600];
    snprintf(snaps, sizeof snaps, "%s/snapshots", root);
    int64_t *gen, g = 0;
    size_t ng;
    if (list_generations(snaps, &gen, &ng, 0) == 0 && ng)
        g = gen[0];
    free(gen);
    return g;
}

size_t cx__manifest_size(void)
{
    return sizeof(manifest);
}
