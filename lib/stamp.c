/* stamp.c -- the VERIFIED stamp of a snapshot generation: which of its
 * files this machine has verified in full, so that later opens need not.
 *
 *   snapshots/g0000000007/VERIFIED
 *
 *   cxengine-verified 1
 *   generation 7
 *   ranges 3 5 2 7f           the image's range checks passed against 3
 *                             categories, 5 channels, 2 tag sets and
 *                             these signal types (absent: image unchecked)
 *   file MANIFEST <dev> <ino> <size> <mtime ns> <ctime ns>
 *   file customer_factors.npy ...
 *   checksum ...
 *
 * A process that verified a generation's files (checksums and range
 * checks) lists each file with what stat(2) said of it.  A later open
 * whose file stats the same skips that file's checksum, and the range
 * checks of a part (the model, the image) whose files all match.  Any
 * write to a file moves its ctime, which no process can set back, and a
 * copy has another device and inode: such a file is verified again.  Bit
 * rot on the medium without a write is not detected for stamped files
 * (the trust SQLite and LMDB place in the disk); CX_OPEN_VERIFY ignores
 * the stamp.  A missing, stale or damaged stamp only means a full
 * verification, never a failure.
 *
 * File times come from the kernel's coarse clock, one tick (1 to 10 ms)
 * at a time: a write within the tick of the last one would leave ctime
 * as it was (git's "racy clean" problem).  So a file is listed only if
 * its ctime is older, by MARGIN_NS, than the moment its verification
 * began (t0, taken before the stat): every later write then gets a later
 * ctime.  The writer, which stamps what it has just written, waits out
 * the margin first.  A file system that keeps whole seconds (a ctime
 * with no nanoseconds: ext3, FAT keeps two) needs a margin of seconds:
 * such files are stamped only by an open at least COARSE_NS later. */
#include "internal.h"
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAMP_FORMAT 1
#define MARGIN_NS 50000000 /* 50 ms: five ticks at the slowest, HZ = 100 */
#define COARSE_NS 3000000000 /* 3 s: above FAT's 2 s */

cx__verify_counts cx__verified;

static void fill(struct cx__stamp_file *f, const struct stat *st)
{
    f->dev = (uint64_t)st->st_dev;
    f->ino = (uint64_t)st->st_ino;
    f->size = (uint64_t)st->st_size;
    f->mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    f->ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

int cx__stamp_holds(const cx__stamp *s, const char *name,
                    const struct stat *st)
{
    struct cx__stamp_file now;
    fill(&now, st);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->f[i].name, name) == 0)
            return s->f[i].dev == now.dev && s->f[i].ino == now.ino &&
                   s->f[i].size == now.size && s->f[i].mtime == now.mtime &&
                   s->f[i].ctime == now.ctime;
    return 0;
}

int64_t cx__stamp_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void cx__stamp_wait(void)
{
    struct timespec t = {0, MARGIN_NS + 1000000};
    while (nanosleep(&t, &t) && errno == EINTR)
        ;
}

int cx__stamp_add(cx__stamp *s, const char *name, const struct stat *st)
{
    struct cx__stamp_file f;
    memset(&f, 0, sizeof f);
    fill(&f, st);
    int64_t margin = f.ctime % 1000000000 ? MARGIN_NS : COARSE_NS;
    if (s->n == CX__STAMP_FILES || strlen(name) >= sizeof f.name ||
        f.ctime >= s->t0 - margin || f.mtime >= s->t0 - margin)
        return -1;
    strcpy(f.name, name);
    s->f[s->n++] = f;
    return 0;
}

int cx__stamp_add_path(cx__stamp *s, const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) ? -1 : cx__stamp_add(s, name, &st);
}

/* ===================================================================== */
/* Text                                                                  */
/* ===================================================================== */

int cx__stamp_parse(const char *text, size_t len, void *out, char *why,
                    size_t whylen)
{
    cx__stamp *s = out;
    memset(s, 0, sizeof *s);
#define BAD(...) (snprintf(why, whylen, __VA_ARGS__), CX_ECORRUPT)
    size_t last;
    int rc = cx__manifest_verify(text, len, "VERIFIED", &last, why, whylen);
    if (rc)
        return rc;
    cx__mline ml;
    int seen = 0;
    for (size_t at = 0; at < last;) {
        if ((rc = cx__manifest_line(text, last, &at, "VERIFIED", &ml, why,
                                    whylen)))
            return rc;
        const char *word = ml.word, *rest = ml.rest;
        int end = 0;
        if (!(seen & 1)) {
            int fmt;
            if (strcmp(word, "cxengine-verified") ||
                sscanf(rest, "%d%n", &fmt, &end) != 1 || rest[end])
                return BAD("not a VERIFIED file");
            if (fmt != STAMP_FORMAT)
                return BAD("stamp format %d; this library reads format %d",
                           fmt, STAMP_FORMAT);
            seen |= 1;
        } else if (strcmp(word, "generation") == 0 && !(seen & 2)) {
            if (sscanf(rest, "%" SCNd64 "%n", &s->generation, &end) != 1 ||
                rest[end] || s->generation < 1)
                return BAD("bad VERIFIED line '%.40s'", ml.line);
            seen |= 2;
        } else if (strcmp(word, "ranges") == 0 && !s->ranges) {
            if (sscanf(rest, "%" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNx32
                       "%n", &s->n_cats, &s->n_chans, &s->n_tags, &s->types,
                       &end) != 4 || rest[end])
                return BAD("bad VERIFIED line '%.40s'", ml.line);
            s->ranges = 1;
        } else if (strcmp(word, "file") == 0) {
            struct cx__stamp_file *f = &s->f[s->n];
            char name[sizeof f->name];
            if (s->n == CX__STAMP_FILES ||
                sscanf(rest, "%47s %" SCNu64 " %" SCNu64 " %" SCNu64
                       " %" SCNd64 " %" SCNd64 "%n", name, &f->dev, &f->ino,
                       &f->size, &f->mtime, &f->ctime, &end) != 6 ||
                rest[end])
                return BAD("bad VERIFIED file line '%.40s'", ml.line);
            strcpy(f->name, name);
            s->n++;
        } else {
            return BAD("unknown VERIFIED line '%.40s'", ml.line);
        }
    }
    if (seen != 3)
        return BAD("VERIFIED lacks lines");
    return CX_OK;
#undef BAD
}

size_t cx__stamp_size(void)
{
    return sizeof(cx__stamp);
}

void cx__stamp_read(const char *dir, int64_t generation, cx__stamp *s)
{
    char path[4096], why[256];
    snprintf(path, sizeof path, "%s/VERIFIED", dir);
    size_t len = 0;
    char *text = cx__read_file(path, &len, 1 << 20, NULL);
    if (!text || cx__stamp_parse(text, len, s, why, sizeof why) ||
        s->generation != generation)
        memset(s, 0, sizeof *s);
    free(text);
}

int cx__stamp_write(const char *dir, const cx__stamp *s)
{
    char *b = NULL;
    size_t n = 0, cap = 0;
    int bad = cx__put_line(&b, &n, &cap, "cxengine-verified %d\n",
                           STAMP_FORMAT);
    bad |= cx__put_line(&b, &n, &cap, "generation %" PRId64 "\n",
                        s->generation);
    if (s->ranges)
        bad |= cx__put_line(&b, &n, &cap, "ranges %" PRIu32 " %" PRIu32
                            " %" PRIu32 " %" PRIx32 "\n", s->n_cats,
                            s->n_chans, s->n_tags, s->types);
    for (int i = 0; i < s->n; i++)
        bad |= cx__put_line(&b, &n, &cap, "file %s %" PRIu64 " %" PRIu64
                            " %" PRIu64 " %" PRId64 " %" PRId64 "\n",
                            s->f[i].name, s->f[i].dev, s->f[i].ino,
                            s->f[i].size, s->f[i].mtime, s->f[i].ctime);
    size_t tl = 0;
    char *text = cx__manifest_seal(b, n, cap, bad, &tl);
    if (!text)
        return -1;
    /* Processes may stamp the same generation at once: each its own
     * temporary file, the rename atomic, any of the results right. */
    char tmp[64], path[4096];
    snprintf(tmp, sizeof tmp, "VERIFIED.%ld.tmp", (long)getpid());
    int r = cx__write_file(dir, tmp, text, tl, "", 0);
    free(text);
    snprintf(path, sizeof path, "%s/%s", dir, tmp);
    char fin[4096];
    snprintf(fin, sizeof fin, "%s/VERIFIED", dir);
    if (r == 0 && rename(path, fin) == 0)
        return 0;
    unlink(path);
    return -1;
}
