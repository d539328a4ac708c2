/* bench_datadir.c -- the data directory: durable ingest under each sync
 * policy, single-signal calls, snapshot write and reopen at scale.
 *
 *   ingest    200,000 signals (50,000 customers, 20,000 items) in batches
 *             of 1,000 into a fresh directory per policy (full, normal,
 *             off), against an in-memory engine in the same run.
 *   single    2,000 one-signal cx_ingest calls under full and normal:
 *             rate and latency percentiles (full is fsync-bound).
 *   shared    a reader opened with CX_OPEN_SIGNALS makes one-signal calls
 *             (sync normal) while a writer process commits batches of
 *             1,000 back to back: the reader's latency percentiles and
 *             worst call, and the writer's rate meanwhile (does SQLite's
 *             lock starve the reader?).
 *   scale     C customers x I items x 64 factors (default 1,000,000 x
 *             100,000; --quick: 100,000 x 20,000): bulk load with sync off
 *             then cx_sync, one ALS iteration, then the snapshot write
 *             alone (median of 3, the engine image included), cx_close +
 *             cx_open (the writer on its engine image), and a read-only
 *             open in a second process with its Rss and Pss.
 * The directory lives under $CX_BENCH_DIR (default /tmp).  Figures only:
 * nothing here passes or fails.  Writes build/bench/bench_datadir.json.
 * Usage: bench_datadir [--quick]   (or CX_BENCH_QUICK=1)
 *        bench_datadir --build DIR [--quick]   the scale shop, kept in DIR
 *        bench_datadir --open DIR [--verify]   one read-only open of DIR */
#include "benchutil.h"
#include "cxengine.h"
#include "internal.h"
#include "db.h"

#include <sys/wait.h>

#include <ftw.h>
#include <unistd.h>
#include <inttypes.h>
#include <sys/stat.h>

#define TARGET_NORMAL_RATE 200000.0
#define TARGET_RO_OPEN_MS 50.0

static bjson J;
static const char *BASE = "/tmp";

static void die_on(cx_engine *e, int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench_datadir: %s: %s (%s)\n", what,
                cx_strerror(rc), cx_errmsg(e));
        exit(1);
    }
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void fresh_dir(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "%s/cxbench_%s_%d", BASE, tag, (int)getpid());
    nftw(buf, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Rss and Pss of this process in MB (/proc/self/smaps_rollup). */
static void smaps_rollup(double *rss, double *pss)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    double kb;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "Rss: %lf", &kb) == 1)
            *rss = kb / 1024;
        else if (sscanf(line, "Pss: %lf", &kb) == 1)
            *pss = kb / 1024;
    }
    if (f)
        fclose(f);
}

static int64_t du_total;

static int add(const char *p, const struct stat *st, int flag,
               struct FTW *f)
{
    (void)p, (void)f;
    if (flag == FTW_F)
        du_total += st->st_size;
    return 0;
}

static int64_t dir_bytes(const char *dir)
{
    du_total = 0;
    nftw(dir, add, 16, FTW_PHYS);
    return du_total;
}

/* Signal i of a deterministic stream over nc customers and ni items. */
typedef struct stream {
    char (*cust)[16], (*item)[16];
    const char **c, **it;
    int *ty;
    size_t n;
} stream;

static void stream_fill(stream *s, size_t n, size_t nc, size_t ni,
                        unsigned long long seed)
{
    s->n = n;
    s->cust = malloc(n * sizeof *s->cust);
    s->item = malloc(n * sizeof *s->item);
    s->c = malloc(n * sizeof *s->c);
    s->it = malloc(n * sizeof *s->it);
    s->ty = malloc(n * sizeof *s->ty);
    if (!s->cust || !s->item || !s->c || !s->it || !s->ty) {
        fprintf(stderr, "bench_datadir: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(s->cust[i], 16, "c%zu", (size_t)(bench_rand(&seed) % nc));
        snprintf(s->item[i], 16, "i%zu", (size_t)(bench_rand(&seed) % ni));
        s->c[i] = s->cust[i];
        s->it[i] = s->item[i];
        s->ty[i] = i % 10 == 0 ? CX_PURCHASE : CX_VIEW;
    }
}

static void stream_free(stream *s)
{
    free(s->cust), free(s->item), free(s->c), free(s->it), free(s->ty);
}

static double ingest_rate(const char *dir, int policy, const stream *s,
                          size_t batch)
{
    cx_engine *e;
    die_on(NULL, cx_open(&e, dir, 0), "cx_open");
    if (dir)
        die_on(e, cx_set_option(e, CX_OPT_SYNC, policy), "sync");
    double t0 = now_s();
    for (size_t i = 0; i < s->n; i += batch) {
        size_t m = s->n - i < batch ? s->n - i : batch;
        die_on(e, cx_ingest(e, m, s->c + i, s->it + i, s->ty + i, NULL,
                            NULL, NULL), "cx_ingest");
    }
    double t = now_s() - t0;
    cx_close(e);
    return (double)s->n / t;
}

static void single_calls(const char *tag, int policy, const stream *s,
                         size_t n)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, tag);
    cx_engine *e;
    die_on(NULL, cx_open(&e, dir, 0), "cx_open");
    die_on(e, cx_set_option(e, CX_OPT_SYNC, policy), "sync");
    double *lat = malloc(n * sizeof *lat);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        double a = now_s();
        die_on(e, cx_ingest(e, 1, s->c + i, s->it + i, s->ty + i, NULL,
                            NULL, NULL), "cx_ingest");
        lat[i] = (now_s() - a) * 1e6;
    }
    double rate = (double)n / (now_s() - t0);
    double p50 = percentile(lat, n, 50), p99 = percentile(lat, n, 99);
    printf("  single signal, %-6s  %9.0f calls/s   p50 %7.1f us   p99 "
           "%7.1f us\n", tag, rate, p50, p99);
    char key[64];
    snprintf(key, sizeof key, "single_%s_per_s", tag);
    bjson_num(&J, key, rate);
    snprintf(key, sizeof key, "single_%s_p50_us", tag);
    bjson_num(&J, key, p50);
    snprintf(key, sizeof key, "single_%s_p99_us", tag);
    bjson_num(&J, key, p99);
    free(lat);
    cx_close(e);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void shared(const stream *s, size_t n, double seconds)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "shared");
    cx_engine *e;
    die_on(NULL, cx_open(&e, dir, 0), "cx_open");
    die_on(e, cx_set_option(e, CX_OPT_SYNC, CX_SYNC_NORMAL), "sync");
    die_on(e, cx_ingest(e, 1000, s->c, s->it, s->ty, NULL, NULL, NULL),
           "cx_ingest");
    cx_close(e); /* no engine across fork */
    int up[2];
    if (pipe(up))
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        /* The writer: batches of 1,000, back to back, for `seconds`. */
        close(up[0]);
        if (cx_open(&e, dir, 0))
            _exit(3);
        double t0 = now_s();
        size_t done = 0;
        while (now_s() - t0 < seconds) {
            size_t i = done % (s->n - 1000);
            if (cx_ingest(e, 1000, s->c + i, s->it + i, s->ty + i, NULL,
                          NULL, NULL))
                _exit(4);
            done += 1000;
        }
        double rate = (double)done / (now_s() - t0);
        cx_close(e);
        if (write(up[1], &rate, sizeof rate) != sizeof rate)
            _exit(5);
        _exit(0);
    }
    close(up[1]);
    usleep(100000); /* the writer is under way */
    die_on(NULL, cx_open(&e, dir, CX_OPEN_READONLY | CX_OPEN_SIGNALS),
           "cx_open");
    double *lat = malloc(n * sizeof *lat), worst = 0;
    size_t k = 0, busy = 0;
    double t0 = now_s();
    for (; k < n && now_s() - t0 < seconds - 0.2; k++) {
        double a = now_s();
        size_t i = k % s->n;
        int rc = cx_ingest(e, 1, s->c + i, s->it + i, s->ty + i, NULL, NULL,
                           NULL);
        busy += rc == CX_EBUSY;
        if (rc && rc != CX_EBUSY)
            die_on(e, rc, "cx_ingest (reader)");
        lat[k] = (now_s() - a) * 1e6;
        worst = lat[k] > worst ? lat[k] : worst;
    }
    double rate = 0;
    if (read(up[0], &rate, sizeof rate) != sizeof rate)
        rate = -1;
    waitpid(pid, NULL, 0);
    double p50 = percentile(lat, k, 50), p99 = percentile(lat, k, 99);
    printf("  shared: a reader's one-signal calls beside a writer's batches "
           "of 1,000 (sync normal)\n    reader %zu calls: p50 %.0f us, p99 "
           "%.0f us, worst %.1f ms, %zu CX_EBUSY; writer meanwhile %.0f "
           "signals/s\n", k, p50, p99, worst / 1000, busy, rate);
    bjson_num(&J, "shared_reader_p50_us", p50);
    bjson_num(&J, "shared_reader_p99_us", p99);
    bjson_num(&J, "shared_reader_worst_ms", worst / 1000);
    bjson_num(&J, "shared_reader_busy", (double)busy);
    bjson_num(&J, "shared_writer_per_s", rate);
    free(lat);
    cx_close(e);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Build the scale shop in dir: bulk load, then one ALS iteration (which
 * writes a generation); the engine is left open in *out. */
static void scale_build(const char *dir, size_t nc, size_t ni, cx_engine **out,
                        size_t *n_out, double *load_out, double *train_out)
{
    cx_engine *e;
    die_on(NULL, cx_open(&e, dir, 0), "cx_open");
    die_on(e, cx_set_option(e, CX_OPT_SYNC, CX_SYNC_OFF), "sync");
    die_on(e, cx_set_option(e, CX_OPT_FACTORS, 64), "factors");
    die_on(e, cx_set_option(e, CX_OPT_ITERATIONS, 1), "iterations");
    /* Every customer and item appears: customer u with items u % ni and
     * (7u + 3) % ni. */
    size_t n = 2 * (nc > ni ? nc : ni), B = 10000;
    char (*cb)[16] = malloc(B * sizeof *cb), (*ib)[16] = malloc(B * sizeof *ib);
    const char **c = malloc(B * sizeof *c), **it = malloc(B * sizeof *it);
    int *ty = malloc(B * sizeof *ty);
    double t0 = now_s();
    for (size_t i = 0; i < n; i += B) {
        size_t m = n - i < B ? n - i : B;
        for (size_t j = 0; j < m; j++) {
            size_t q = (i + j) / 2, u = q % nc;
            size_t item = (i + j) % 2 ? (7 * q + 3) % ni : q % ni;
            snprintf(cb[j], 16, "c%zu", u);
            snprintf(ib[j], 16, "i%zu", item);
            c[j] = cb[j], it[j] = ib[j];
            ty[j] = j % 3 == 0 ? CX_PURCHASE : CX_VIEW;
        }
        die_on(e, cx_ingest(e, m, c, it, ty, NULL, NULL, NULL), "ingest");
    }
    die_on(e, cx_sync(e), "cx_sync");
    double load = now_s() - t0;
    t0 = now_s();
    die_on(e, cx_train(e, NULL, NULL), "cx_train");
    *train_out = now_s() - t0;
    *load_out = load;
    *n_out = n;
    *out = e;
    free(cb), free(ib), free(c), free(it), free(ty);
}

static void scale(size_t nc, size_t ni)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "scale");
    cx_engine *e;
    size_t n;
    double load, train, t0;
    scale_build(dir, nc, ni, &e, &n, &load, &train);
    double w[3];
    for (int r = 0; r < 3; r++) {
        t0 = now_s();
        die_on(e, cx__snapshot_write(e, e->model), "snapshot");
        w[r] = now_s() - t0;
    }
    double write_s = percentile(w, 3, 50);
    cx_close(e);
    int64_t bytes = dir_bytes(dir);
    t0 = now_s();
    die_on(NULL, cx_open(&e, dir, 0), "reopen");
    double reopen = now_s() - t0;
    double rss = peak_rss_mb();
    printf("  scale %zu customers x %zu items x 64: %zu signals loaded in "
           "%.1f s (%.0f/s, sync off)\n", nc, ni, n, load,
           (double)n / load);
    printf("    train 1 iteration + snapshot   %8.2f s\n", train);
    printf("    snapshot write (median of 3)   %8.2f s\n", write_s);
    printf("    cx_close + cx_open (image + snapshot)  %8.2f s\n", reopen);
    printf("    directory size                 %8.1f MB   peak RSS %.0f MB\n",
           (double)bytes / 1e6, rss);
    /* A second process opens read-only beside the writer: its open time
     * (the engine image mapped, then what the database gained since),
     * the model's part of it, and its memory (Rss, and Pss: pages shared
     * with the writer and other readers count in part). */
    int pfd[2];
    double ro[4] = {0, 0, 0, 0};
    if (pipe(pfd) == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            cx_engine *r;
            double rss0 = 0, pss0 = 0;
            smaps_rollup(&rss0, &pss0);
            double a = now_s();
            int rc = cx_open(&r, dir, CX_OPEN_READONLY);
            double got[4] = {rc ? -1 : now_s() - a, 0, 0, 0};
            /* What the open added: the child also maps the writer's
             * memory, inherited from the fork. */
            smaps_rollup(&got[2], &got[3]);
            got[2] -= rss0, got[3] -= pss0;
            /* Of which the snapshot: map and verify, build the model. */
            cx__snapshot_info s;
            cx__model *m = NULL;
            a = now_s();
            if (!rc && cx__snapshot_find(r, dir, 0, &s) == CX_OK && s.found &&
                cx__snapshot_model(r, &s, r->model->n_events, &m) == CX_OK)
                got[1] = now_s() - a;
            if (write(pfd[1], got, sizeof got) != sizeof got)
                _exit(1);
            _exit(0);
        }
        if (pid > 0) {
            if (read(pfd[0], ro, sizeof ro) != sizeof ro)
                ro[0] = -1;
            waitpid(pid, NULL, 0);
        }
        close(pfd[0]);
        close(pfd[1]);
    }
    printf("    read-only open, second process %8.3f s (target <= %.0f ms: "
           "%s), of which mapping + verifying the model %.0f ms\n", ro[0],
           TARGET_RO_OPEN_MS, ro[0] >= 0 && ro[0] * 1e3 <= TARGET_RO_OPEN_MS
                                  ? "met" : "NOT met", ro[1] * 1e3);
    printf("    memory the read-only open added: Rss %.0f MB, Pss %.0f MB\n",
           ro[2], ro[3]);
    /* Forgetting one customer: the delete scans the signals, the model
     * is republished without them. */
    const char *who[1] = {"c12345"};
    t0 = now_s();
    die_on(e, cx_forget(e, 1, who, NULL), "cx_forget");
    double forget_s = now_s() - t0;
    printf("    cx_forget of one customer       %8.2f s\n", forget_s);
    bjson_num(&J, "scale_readonly_open_s", ro[0]);
    bjson_num(&J, "scale_readonly_snapshot_s", ro[1]);
    bjson_num(&J, "scale_readonly_rss_mb", ro[2]);
    bjson_num(&J, "scale_readonly_pss_mb", ro[3]);
    bjson_num(&J, "scale_forget_s", forget_s);
    bjson_num(&J, "scale_customers", (double)nc);
    bjson_num(&J, "scale_items", (double)ni);
    bjson_num(&J, "scale_load_per_s", (double)n / load);
    bjson_num(&J, "scale_train_s", train);
    bjson_num(&J, "scale_snapshot_write_s", write_s);
    bjson_num(&J, "scale_reopen_s", reopen);
    bjson_num(&J, "scale_dir_mb", (double)bytes / 1e6);
    cx_close(e);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* --build DIR [--quick]: the scale shop, left in DIR for --open. */
static int keep_scale(const char *dir, int quick)
{
    cx_engine *e;
    size_t n;
    double load, train;
    scale_build(dir, quick ? 100000 : 1000000, quick ? 20000 : 100000, &e,
                &n, &load, &train);
    printf("%s: %zu signals loaded in %.1f s, trained in %.1f s\n", dir, n,
           load, train);
    cx_close(e);
    return 0;
}

/* --open DIR [--verify]: one read-only open of DIR (with --verify,
 * CX_OPEN_VERIFY: every file verified in full), its seconds printed. */
static int open_once(const char *dir, int verify)
{
    cx_engine *e;
    double t0 = now_s();
    die_on(NULL, cx_open(&e, dir, CX_OPEN_READONLY |
                                      (verify ? CX_OPEN_VERIFY : 0)),
           "cx_open");
    double t = now_s() - t0;
    printf("read-only open %.4f s\n", t);
    cx_close(e);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--build") == 0)
        return keep_scale(argv[2], argc > 3 && !strcmp(argv[3], "--quick"));
    if (argc > 2 && strcmp(argv[1], "--open") == 0)
        return open_once(argv[2], argc > 3 && !strcmp(argv[3], "--verify"));
    int quick = (argc > 1 && strcmp(argv[1], "--quick") == 0) ||
                getenv("CX_BENCH_QUICK");
    if (getenv("CX_BENCH_DIR"))
        BASE = getenv("CX_BENCH_DIR");
    mkdir("build/bench", 0755);
    bjson_open(&J, "build/bench/bench_datadir.json");
    printf("bench_datadir: the data directory under %s%s\n", BASE,
           quick ? " (quick)" : "");
    stream s;
    size_t n = quick ? 50000 : 200000;
    stream_fill(&s, n, 50000, 20000, 7);
    printf("  ingest %zu signals in batches of 1,000:\n", n);
    double mem = ingest_rate(NULL, 0, &s, 1000);
    printf("    in memory               %10.0f signals/s\n", mem);
    bjson_num(&J, "ingest_memory_per_s", mem);
    static const char *names[] = {"off", "normal", "full"};
    for (int p = CX_SYNC_FULL; p >= CX_SYNC_OFF; p--) {
        char dir[512];
        fresh_dir(dir, sizeof dir, names[p]);
        double r = ingest_rate(dir, p, &s, 1000);
        printf("    data directory, %-6s  %10.0f signals/s%s\n", names[p], r,
               p == CX_SYNC_NORMAL
                   ? (r >= TARGET_NORMAL_RATE ? "   (target >= 200,000: met)"
                                              : "   (target >= 200,000: NOT "
                                                "met)")
                   : "");
        char key[64];
        snprintf(key, sizeof key, "ingest_%s_per_s", names[p]);
        bjson_num(&J, key, r);
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    single_calls("full", CX_SYNC_FULL, &s, quick ? 300 : 2000);
    single_calls("normal", CX_SYNC_NORMAL, &s, quick ? 2000 : 20000);
    shared(&s, 2000000, quick ? 3 : 10);
    stream_free(&s);
    if (getenv("CX_BENCH_SCALE") && !atoi(getenv("CX_BENCH_SCALE")))
        printf("  scale: skipped (CX_BENCH_SCALE=0)\n");
    else if (quick)
        scale(100000, 20000);
    else
        scale(1000000, 100000);
    bjson_close(&J);
    return 0;
}
