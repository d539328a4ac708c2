/* cxengine.c -- the command-line program: gen, import, train, recommend,
 * similar, eval, export, info, demo.  Engines live in one file (cx_save). */
#include "cxengine.h"
#include "csvread.h"
#include "synth.h"
#include "shopload.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define EXIT_USAGE 2
#define EXIT_PARTIAL 3 /* import finished but rejected some rows */

static const char *prog = "cxengine";

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void check(cx_engine *e, int rc, const char *what)
{
    if (rc != CX_OK)
        die("%s: %s (%s)", what, cx_errmsg(e), cx_strerror(rc));
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Strict number parsing: the whole string, finite. */
static int parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return s[0] && !*end && !errno && isfinite(*v);
}

static int parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    *v = x;
    return s[0] && !*end && !errno;
}

static double num_arg(const char *opt, const char *s)
{
    double v;
    if (!parse_double(s, &v))
        die("%s: '%s' is not a number", opt, s);
    return v;
}

/* ===================================================================== */
/* Engine files                                                          */
/* ===================================================================== */

/* ENGINE is an engine file (cx_save) or a data directory: a directory
 * that exists, or a path ending in '/' (import creates it). */
static int is_data_dir(const char *path)
{
    struct stat st;
    size_t n = strlen(path);
    return (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ||
           (n && path[n - 1] == '/');
}

/* A data directory is opened by the commands that change it (import,
 * train) as its writer, and read-only by the others, so that they run
 * beside a writer or beside nginx workers. */
static cx_engine *open_engine(const char *path, int must_exist, int write)
{
    cx_engine *e = NULL;
    struct stat st;
    if (is_data_dir(path)) {
        int rc = cx_open(&e, path, write ? 0 : CX_OPEN_READONLY);
        if (rc)
            die("%s (%s)", cx_errmsg(NULL), cx_strerror(rc));
    } else if (stat(path, &st) == 0) {
        int rc = cx_load(&e, path);
        if (rc)
            die("%s (%s)", cx_errmsg(NULL), cx_strerror(rc));
    } else if (must_exist) {
        die("%s: no such engine file (create one with `%s import`)", path,
            prog);
    } else if (cx_open(&e, NULL, 0)) {
        die("cannot create engine: %s", cx_errmsg(NULL));
    }
    return e;
}

/* An engine file is written whole; a data directory has everything
 * already (made durable now). */
static void save_engine(cx_engine *e, const char *path)
{
    if (is_data_dir(path))
        check(e, cx_sync(e), "sync");
    else
        check(e, cx_save(e, path), "save");
}

/* ===================================================================== */
/* Training options, shared by train, eval and demo                      */
/* ===================================================================== */

enum { O_FACTORS = 1000, O_ITER, O_LAMBDA, O_ALPHA, O_SOLVER, O_THREADS,
       O_HALF, O_SEED, O_CG, O_K, O_CAT, O_ALLSTOCK, O_EXACT, O_ITEMS,
       O_SIGNALS, O_OUT, O_TASTE, O_REPEAT, O_SKEW, O_FRAC, O_DIR,
       O_CUSTOMERS, O_QUIET, O_STRICT, O_B_ALS, O_B_POP, O_B_REP, O_B_CO,
       O_CONSUMABLE, O_SPLIT, O_BOOT, O_SECONDS, O_TRIALS, O_REGIME };

#define TRAIN_LONGOPTS                                                     \
    {"factors", 1, 0, O_FACTORS}, {"iterations", 1, 0, O_ITER},            \
        {"lambda", 1, 0, O_LAMBDA}, {"alpha", 1, 0, O_ALPHA},              \
        {"solver", 1, 0, O_SOLVER}, {"threads", 1, 0, O_THREADS},          \
        {"half-life", 1, 0, O_HALF}, {"seed", 1, 0, O_SEED},               \
        {"cg-steps", 1, 0, O_CG}, {"blend-als", 1, 0, O_B_ALS},           \
        {"blend-popular", 1, 0, O_B_POP}, {"blend-repeat", 1, 0, O_B_REP}, \
        {"blend-cobought", 1, 0, O_B_CO},                                  \
        {"consumable", 1, 0, O_CONSUMABLE}

/* Apply a training option; 0 if `c` is not one. */
static int train_option(cx_engine *e, int c, const char *arg)
{
    int key;
    double v;
    switch (c) {
    case O_FACTORS: key = CX_OPT_FACTORS; break;
    case O_ITER: key = CX_OPT_ITERATIONS; break;
    case O_LAMBDA: key = CX_OPT_REGULARIZATION; break;
    case O_ALPHA: key = CX_OPT_ALPHA; break;
    case O_THREADS: key = CX_OPT_THREADS; break;
    case O_HALF: key = CX_OPT_HALF_LIFE; break;
    case O_SEED: key = CX_OPT_SEED; break;
    case O_CG: key = CX_OPT_CG_STEPS; break;
    case O_B_ALS: key = CX_OPT_BLEND_ALS; break;
    case O_B_POP: key = CX_OPT_BLEND_POPULAR; break;
    case O_B_REP: key = CX_OPT_BLEND_REPEAT; break;
    case O_B_CO: key = CX_OPT_BLEND_COBOUGHT; break;
    case O_CONSUMABLE: key = CX_OPT_CONSUMABLE; break;
    case O_SOLVER:
        if (strcmp(arg, "cg") && strcmp(arg, "cholesky"))
            die("--solver must be cg or cholesky");
        check(e, cx_set_option(e, CX_OPT_SOLVER,
                               strcmp(arg, "cg") ? CX_SOLVER_CHOLESKY
                                                 : CX_SOLVER_CG),
              "--solver");
        return 1;
    default: return 0;
    }
    v = num_arg("option", arg);
    int rc = cx_set_option(e, key, v);
    if (rc)
        die("%s", cx_errmsg(e));
    return 1;
}

/* Options are parsed before the engine exists: remember them. */
typedef struct pending {
    int c[32];
    const char *arg[32];
    int n;
} pending;

static void pend(pending *p, int c, const char *arg)
{
    if (p->n < 32) {
        p->c[p->n] = c;
        p->arg[p->n++] = arg;
    }
}

static void apply(cx_engine *e, const pending *p)
{
    for (int i = 0; i < p->n; i++)
        train_option(e, p->c[i], p->arg[i]);
}

static int progress(void *user, int it, int n, double loss)
{
    double *t0 = user;
    fprintf(stderr, "  iteration %2d/%d  loss %.6f  %.2fs\n", it, n, loss,
            now_s() - *t0);
    return 0;
}

/* ===================================================================== */
/* gen                                                                   */
/* ===================================================================== */

static void synth_options(int c, const char *arg, synth_config *sc)
{
    switch (c) {
    case O_SEED: sc->seed = (uint64_t)num_arg("--seed", arg); break;
    case O_TASTE: sc->taste_strength = num_arg("--taste", arg); break;
    case O_REPEAT: sc->repeat_rate = num_arg("--repeat", arg); break;
    case O_SKEW: sc->bestseller_skew = num_arg("--skew", arg); break;
    }
}

static int cmd_gen(int argc, char **argv)
{
    static const struct option lo[] = {
        {"signals", 1, 0, O_SIGNALS}, {"seed", 1, 0, O_SEED},
        {"taste", 1, 0, O_TASTE},     {"repeat", 1, 0, O_REPEAT},
        {"skew", 1, 0, O_SKEW},       {0, 0, 0, 0}};
    size_t n = 200000;
    int c, cs[8], k = 0;
    const char *as[8];
    while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
        if (c == 'n' || c == O_SIGNALS)
            n = (size_t)num_arg("--signals", optarg);
        else if (c == '?')
            return EXIT_USAGE;
        else if (k < 8)
            cs[k] = c, as[k++] = optarg;
    }
    if (optind != argc - 1)
        die("usage: %s gen [--signals N] [--seed S] [--taste F] [--repeat F]"
            " [--skew F] DIR", prog);
    const char *dir = argv[optind];
    synth_config sc;
    synth_config_default(&sc, n);
    for (int i = 0; i < k; i++)
        synth_options(cs[i], as[i], &sc);
    synth_shop shop;
    if (synth_generate(&sc, &shop))
        die("gen: bad configuration or out of memory");
    if (mkdir(dir, 0755) && errno != EEXIST)
        die("gen: cannot create %s: %s", dir, strerror(errno));
    char ip[4096], sp[4096];
    snprintf(ip, sizeof ip, "%s/items.csv", dir);
    snprintf(sp, sizeof sp, "%s/signals.csv", dir);
    if (synth_write_csv(&shop, ip, sp))
        die("gen: writing %s: %s", dir, strerror(errno));
    printf("wrote %s (%zu items, %zu categories) and %s (%zu signals, "
           "%zu customers)\n", ip, shop.n_items, shop.n_categories, sp,
           shop.n_signals, shop.n_customers);
    synth_free(&shop);
    return 0;
}

/* ===================================================================== */
/* import                                                                */
/* ===================================================================== */

/* Column of `name` (or an alias) in the header, or -1. */
static int column(char **hdr, int n, const char *const *names)
{
    for (int i = 0; i < n; i++)
        for (const char *const *a = names; *a; a++)
            if (strcasecmp(hdr[i], *a) == 0)
                return i;
    return -1;
}

typedef struct import_stats {
    size_t ok, bad;
    const char *file;
} import_stats;

static void reject(import_stats *st, long line, const char *msg)
{
    st->bad++;
    if (st->bad <= 20)
        fprintf(stderr, "%s:%ld: %s\n", st->file, line, msg);
    else if (st->bad == 21)
        fprintf(stderr, "%s: more bad rows follow; only a count is kept\n",
                st->file);
}

/* A batch of parsed signal rows; strings are copied into `text`. */
enum { BATCH = 4096 };
typedef struct sig_batch {
    const char *cust[BATCH], *item[BATCH], *chan[BATCH];
    int type[BATCH];
    float value[BATCH];
    int64_t ts[BATCH];
    long line[BATCH];
    char *text;
    size_t used, cap;
    size_t n;
} sig_batch;

static const char *keep_str(sig_batch *b, const char *s)
{
    size_t len = strlen(s) + 1;
    if (b->used + len > b->cap) {
        /* Rows point into text: grow by moving to a new, larger block
         * only between batches (cap is sized for a full batch). */
        die("import: row text exceeds the batch buffer");
    }
    char *d = b->text + b->used;
    memcpy(d, s, len);
    b->used += len;
    return d;
}

/* Ingest a batch; if the library refuses it, retry row by row so the bad
 * rows are named and the good ones still land. */
static void flush(cx_engine *e, sig_batch *b, import_stats *st)
{
    if (!b->n)
        return;
    if (cx_ingest(e, b->n, b->cust, b->item, b->type, b->value, b->ts,
                  b->chan) == CX_OK) {
        st->ok += b->n;
    } else {
        for (size_t i = 0; i < b->n; i++) {
            if (cx_ingest(e, 1, &b->cust[i], &b->item[i], &b->type[i],
                          &b->value[i], &b->ts[i], &b->chan[i]) == CX_OK)
                st->ok++;
            else
                reject(st, b->line[i], cx_errmsg(e));
        }
    }
    b->n = 0;
    b->used = 0;
}

static import_stats import_signals(cx_engine *e, const char *path)
{
    import_stats st = {0, 0, path};
    csv_reader *r;
    if (csv_open(&r, path))
        die("import: cannot open %s: %s", path, strerror(errno));
    char **f;
    int nf = csv_next(r, &f);
    if (nf <= 0)
        die("%s: no header line (%s)", path, nf < 0 ? csv_error(r) : "empty");
    static const char *const c_n[] = {"customer", "customer_id", "user",
                                      "user_id", NULL};
    static const char *const i_n[] = {"item", "item_id", "product",
                                      "product_id", NULL};
    static const char *const t_n[] = {"type", "event", "signal", NULL};
    static const char *const v_n[] = {"value", "quantity", "rating", NULL};
    static const char *const s_n[] = {"timestamp", "ts", "time", NULL};
    static const char *const h_n[] = {"channel", NULL};
    int cc = column(f, nf, c_n), ci = column(f, nf, i_n),
        ct = column(f, nf, t_n), cv = column(f, nf, v_n),
        cs = column(f, nf, s_n), ch = column(f, nf, h_n);
    if (cc < 0 || ci < 0 || ct < 0)
        die("%s:1: the header must name customer, item and type columns "
            "(optional: value, timestamp, channel)", path);
    sig_batch *b = calloc(1, sizeof *b);
    if (!b || !(b->text = malloc(b->cap = (size_t)BATCH * 4 * 520)))
        die("out of memory");
    int64_t now = (int64_t)time(NULL);
    char msg[256];
    for (;;) {
        nf = csv_next(r, &f);
        if (nf == 0)
            break;
        long line = csv_line(r);
        if (nf < 0) {
            reject(&st, line, csv_error(r));
            continue;
        }
        int need = cc > ci ? cc : ci;
        need = ct > need ? ct : need;
        need = cv > need ? cv : need;
        need = cs > need ? cs : need;
        need = ch > need ? ch : need;
        if (nf <= need) {
            snprintf(msg, sizeof msg, "%d fields, the header has more", nf);
            reject(&st, line, msg);
            continue;
        }
        int type;
        double v = 1;
        int64_t ts = now;
        if (cx_signal_type_lookup(e, f[ct], &type)) {
            snprintf(msg, sizeof msg, "unknown signal type '%.64s'", f[ct]);
            reject(&st, line, msg);
            continue;
        }
        if (cv >= 0 && f[cv][0] && !parse_double(f[cv], &v)) {
            snprintf(msg, sizeof msg, "value '%.64s' is not a number", f[cv]);
            reject(&st, line, msg);
            continue;
        }
        if (cs >= 0 && f[cs][0] && !parse_i64(f[cs], &ts)) {
            snprintf(msg, sizeof msg, "timestamp '%.64s' is not an integer "
                     "(unix seconds)", f[cs]);
            reject(&st, line, msg);
            continue;
        }
        if (strlen(f[cc]) > CX_MAX_ID_LEN || strlen(f[ci]) > CX_MAX_ID_LEN ||
            (ch >= 0 && strlen(f[ch]) > 64)) {
            reject(&st, line, "id longer than the library accepts");
            continue;
        }
        size_t i = b->n;
        b->cust[i] = keep_str(b, f[cc]);
        b->item[i] = keep_str(b, f[ci]);
        b->chan[i] = keep_str(b, ch >= 0 && f[ch][0] ? f[ch] : "web");
        b->type[i] = type;
        b->value[i] = (float)v;
        b->ts[i] = ts;
        b->line[i] = line;
        if (++b->n == BATCH)
            flush(e, b, &st);
    }
    flush(e, b, &st);
    free(b->text);
    free(b);
    csv_close(r);
    return st;
}

static import_stats import_items(cx_engine *e, const char *path)
{
    import_stats st = {0, 0, path};
    csv_reader *r;
    if (csv_open(&r, path))
        die("import: cannot open %s: %s", path, strerror(errno));
    char **f;
    int nf = csv_next(r, &f);
    if (nf <= 0)
        die("%s: no header line", path);
    static const char *const i_n[] = {"item", "item_id", "product",
                                      "product_id", "id", NULL};
    static const char *const c_n[] = {"category", NULL};
    static const char *const p_n[] = {"price", NULL};
    static const char *const s_n[] = {"in_stock", "stock", NULL};
    static const char *const t_n[] = {"created_at", "created", NULL};
    static const char *const g_n[] = {"tags", NULL};
    int ci = column(f, nf, i_n), cc = column(f, nf, c_n),
        cp = column(f, nf, p_n), cs = column(f, nf, s_n),
        ct = column(f, nf, t_n), cg = column(f, nf, g_n);
    if (ci < 0)
        die("%s:1: the header must name an item column (optional: "
            "category, price, in_stock, created_at, tags)", path);
    char msg[256];
    while ((nf = csv_next(r, &f)) != 0) {
        long line = csv_line(r);
        if (nf < 0) {
            reject(&st, line, csv_error(r));
            continue;
        }
        double price = 0;
        int64_t created = 0, stock = 1;
        if ((cc >= 0 && cc >= nf) || (cp >= 0 && cp >= nf) ||
            (cs >= 0 && cs >= nf) || (ct >= 0 && ct >= nf) ||
            (cg >= 0 && cg >= nf) || ci >= nf) {
            reject(&st, line, "too few fields");
            continue;
        }
        if (cp >= 0 && f[cp][0] && !parse_double(f[cp], &price)) {
            snprintf(msg, sizeof msg, "price '%.64s' is not a number", f[cp]);
            reject(&st, line, msg);
            continue;
        }
        if ((cs >= 0 && f[cs][0] && !parse_i64(f[cs], &stock)) ||
            (ct >= 0 && f[ct][0] && !parse_i64(f[ct], &created))) {
            reject(&st, line, "in_stock and created_at must be integers");
            continue;
        }
        const char *id = f[ci], *cat = cc >= 0 ? f[cc] : "";
        const char *tags = cg >= 0 ? f[cg] : NULL;
        int in_stock = stock != 0;
        if (cx_items_upsert(e, 1, &id, &cat, cp >= 0 ? &price : NULL,
                            cs >= 0 ? &in_stock : NULL,
                            ct >= 0 ? &created : NULL,
                            cg >= 0 ? &tags : NULL))
            reject(&st, line, cx_errmsg(e));
        else
            st.ok++;
    }
    csv_close(r);
    return st;
}

static int cmd_import(int argc, char **argv)
{
    static const struct option lo[] = {
        {"items", 1, 0, O_ITEMS}, {"signals", 1, 0, O_SIGNALS},
        {"strict", 0, 0, O_STRICT}, {0, 0, 0, 0}};
    const char *items = NULL, *signals = NULL;
    int c, strict = 0;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == O_ITEMS)
            items = optarg;
        else if (c == O_SIGNALS)
            signals = optarg;
        else if (c == O_STRICT)
            strict = 1;
        else
            return EXIT_USAGE;
    }
    if (optind != argc - 1 || (!items && !signals))
        die("usage: %s import [--items items.csv] [--signals signals.csv] "
            "[--strict] ENGINE", prog);
    const char *path = argv[optind];
    cx_engine *e = open_engine(path, 0, 1);
    /* A directory commits each call: batch the syncs while loading. */
    double sync = -1;
    if (is_data_dir(path)) {
        check(e, cx_get_option(e, CX_OPT_SYNC, &sync), "sync option");
        check(e, cx_set_option(e, CX_OPT_SYNC, CX_SYNC_NORMAL),
              "sync option");
    }
    size_t bad = 0;
    double t = now_s();
    if (items) {
        import_stats st = import_items(e, items);
        printf("%s: %zu items imported, %zu rows rejected\n", items, st.ok,
               st.bad);
        bad += st.bad;
    }
    if (signals) {
        import_stats st = import_signals(e, signals);
        printf("%s: %zu signals imported, %zu rows rejected (%.2fs)\n",
               signals, st.ok, st.bad, now_s() - t);
        bad += st.bad;
    }
    if (sync >= 0)
        check(e, cx_set_option(e, CX_OPT_SYNC, sync), "sync option");
    if (bad && strict) {
        fprintf(stderr, "%s: --strict: %zu rejected rows, %s\n", prog, bad,
                sync >= 0 ? "the accepted rows are in the directory"
                          : "not written");
        if (sync >= 0)
            cx_sync(e);
        cx_close(e);
        return 1;
    }
    save_engine(e, path);
    cx_close(e);
    return bad ? EXIT_PARTIAL : 0;
}

/* ===================================================================== */
/* train                                                                 */
/* ===================================================================== */

static int cmd_train(int argc, char **argv)
{
    static const struct option lo[] = {TRAIN_LONGOPTS,
                                       {"quiet", 0, 0, O_QUIET},
                                       {0, 0, 0, 0}};
    pending p = {0};
    int c, quiet = 0;
    while ((c = getopt_long(argc, argv, "q", lo, NULL)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'q' || c == O_QUIET)
            quiet = 1;
        else
            pend(&p, c, optarg);
    }
    if (optind != argc - 1)
        die("usage: %s train [--factors K] [--iterations N] [--lambda L] "
            "[--alpha A] [--solver cg|cholesky] [--threads T] "
            "[--half-life SECONDS] [--seed S] ENGINE", prog);
    const char *path = argv[optind];
    cx_engine *e = open_engine(path, 1, 1);
    apply(e, &p);
    double t0 = now_s();
    check(e, cx_train(e, quiet ? NULL : progress, &t0), "train");
    int64_t nc, ni, ns;
    cx_stat(e, CX_STAT_MODEL_CUSTOMERS, &nc);
    cx_stat(e, CX_STAT_MODEL_ITEMS, &ni);
    cx_stat(e, CX_STAT_SIGNALS, &ns);
    printf("trained on %lld signals: %lld customers x %lld items in %.2fs\n",
           (long long)ns, (long long)nc, (long long)ni, now_s() - t0);
    save_engine(e, path);
    cx_close(e);
    return 0;
}

/* ===================================================================== */
/* tune                                                                  */
/* ===================================================================== */

static int split_arg(const char *s);

static void print_trials(const cx_tune_trial *t, size_t n, size_t shown)
{
    printf("%5s %5s %7s %8s %7s %6s %6s %6s %6s  %5s %5s %5s %5s %4s  "
           "%7s %7s\n", "trial", "model", "factors", "lambda", "alpha",
           "view", "cart", "buy", "half-d", "als", "pop", "rep", "co",
           "cons", "ndcg", "seconds");
    for (size_t j = 0; j < n; j++) {
        if (j >= shown && !t[j].best) {
            if (j == shown)
                printf("  ... (%zu trials in all)\n", n);
            continue;
        }
        printf("%5zu %5d %7d %8.4g %7.4g %6.3g %6.3g %6.3g %6.1f  %5.3g "
               "%5.3g %5.3g %5.3g %4.2g  %7.4f %7.2f%s\n", j, t[j].model,
               t[j].factors, t[j].regularization, t[j].alpha,
               t[j].weight[CX_VIEW], t[j].weight[CX_ADD_TO_CART],
               t[j].weight[CX_PURCHASE], t[j].half_life / 86400,
               t[j].blend_als, t[j].blend_popular, t[j].blend_repeat,
               t[j].blend_cobought, t[j].consumable, t[j].ndcg,
               t[j].seconds, t[j].best ? "  <- best" : "");
    }
}

static int cmd_tune(int argc, char **argv)
{
    static const struct option lo[] = {
        {"seconds", 1, 0, O_SECONDS}, {"trials", 1, 0, O_TRIALS},
        {"seed", 1, 0, O_SEED}, {"split", 1, 0, O_SPLIT},
        {"test-fraction", 1, 0, O_FRAC}, {"iterations", 1, 0, O_ITER},
        {"threads", 1, 0, O_THREADS}, {0, 0, 0, 0}};
    cx_tune_opts to;
    cx_tune_opts_init(&to);
    pending p = {0};
    int c;
    while ((c = getopt_long(argc, argv, "k:", lo, NULL)) != -1) {
        if (c == 'k')
            to.k = (size_t)num_arg("-k", optarg);
        else if (c == O_SECONDS)
            to.seconds = num_arg("--seconds", optarg);
        else if (c == O_TRIALS)
            to.trials = (size_t)num_arg("--trials", optarg);
        else if (c == O_SEED)
            to.seed = (uint64_t)num_arg("--seed", optarg);
        else if (c == O_SPLIT)
            to.split = split_arg(optarg);
        else if (c == O_FRAC)
            to.test_fraction = num_arg("--test-fraction", optarg);
        else if (c == '?')
            return EXIT_USAGE;
        else
            pend(&p, c, optarg);
    }
    if (optind != argc - 1)
        die("usage: %s tune [--seconds S] [--trials N] [--seed S] [--split "
            "events|items] [--test-fraction F] [-k K] [--iterations N] "
            "[--threads T] ENGINE", prog);
    const char *path = argv[optind];
    cx_engine *e = open_engine(path, 1, 1);
    apply(e, &p);
    enum { MAX = 4096 };
    cx_tune_trial *t = calloc(MAX, sizeof *t);
    size_t n;
    if (!t)
        die("tune: out of memory");
    double t0 = now_s();
    check(e, cx_tune(e, &to, t, MAX, &n), "tune");
    printf("tuned: %zu trials in %.1fs on a validation part carved from "
           "the training data (the newest %.0f%% of each customer's %s "
           "left for eval)\n", n, now_s() - t0, to.test_fraction * 100,
           to.split == CX_SPLIT_EVENTS ? "signals" : "items");
    print_trials(t, n < MAX ? n : MAX, MAX);
    free(t);
    save_engine(e, path);
    printf("saved %s, trained with the best settings\n", path);
    cx_close(e);
    return 0;
}

/* ===================================================================== */
/* recommend, similar                                                    */
/* ===================================================================== */

static const char *reason_name(int r)
{
    switch (r) {
    case CX_REASON_PERSONAL: return "personal";
    case CX_REASON_POPULAR: return "popular";
    case CX_REASON_SIMILAR: return "similar";
    case CX_REASON_CATEGORY: return "category";
    case CX_REASON_TRENDING: return "trending";
    case CX_REASON_NEW: return "new";
    case CX_REASON_CONTINUE: return "continue";
    case CX_REASON_BOUGHT_TOGETHER: return "bought_together";
    case CX_REASON_REPEAT: return "repeat";
    case CX_REASON_ALSO_BOUGHT: return "also_bought";
    case CX_REASON_BESTSELLER: return "bestseller";
    }
    return "?";
}

static void print_list(cx_engine *e, const char *who, const char **items,
                       const float *scores, const int *reasons, size_t n)
{
    printf("%s:\n", who);
    for (size_t j = 0; j < n; j++) {
        const char *cat = "";
        double price = 0;
        cx_item_get(e, items[j], &cat, &price, NULL, NULL);
        printf("  %2zu. %-14s %-10s %9.2f  score %8.4f  %s\n", j + 1,
               items[j], cat, price, scores[j], reason_name(reasons[j]));
    }
    if (!n)
        printf("  (nothing passes the rules)\n");
}

enum { R_RECOMMEND, R_SIMILAR, R_TRENDING, R_POPULAR, R_NEW, R_SESSION };
static const char *const rank_cmd[] = {"recommend", "similar", "trending",
                                       "popular", "new-arrivals", "session"};
static const char *const rank_args[] = {" CUSTOMER...", " ITEM...", "", "",
                                        "", " ITEM[:TYPE]..."};

/* One session from ITEM[:TYPE] arguments (type by name, default view). */
static int rank_session(cx_engine *e, int n, char **args, size_t k,
                        const cx_rec_opts *o, const char **items,
                        float *scores, int *reasons, size_t *count)
{
    const char **it = malloc((size_t)n * sizeof *it);
    int *ty = malloc((size_t)n * sizeof *ty);
    if (!it || !ty)
        die("out of memory");
    for (int i = 0; i < n; i++) {
        char *colon = strrchr(args[i], ':');
        ty[i] = CX_VIEW;
        if (colon) {
            *colon = 0;
            if (cx_signal_type_lookup(e, colon + 1, &ty[i]))
                die("session: unknown signal type '%s'", colon + 1);
        }
        it[i] = args[i];
    }
    int rc = cx_recommend_session(e, (size_t)n, it, ty, NULL, k, o, items,
                                  scores, reasons, count);
    free(it), free(ty);
    return rc;
}

static int cmd_rank(int argc, char **argv, int mode)
{
    static const struct option lo[] = {
        {"category", 1, 0, O_CAT}, {"all-stock", 0, 0, O_ALLSTOCK},
        {"exact", 0, 0, O_EXACT},  {0, 0, 0, 0}};
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    size_t k = 10;
    int c;
    while ((c = getopt_long(argc, argv, "k:", lo, NULL)) != -1) {
        if (c == 'k')
            k = (size_t)num_arg("-k", optarg);
        else if (c == O_CAT)
            o.category = optarg;
        else if (c == O_ALLSTOCK)
            o.in_stock_only = 0;
        else if (c == O_EXACT)
            o.exact = 1;
        else
            return EXIT_USAGE;
    }
    int need_ids = mode == R_RECOMMEND || mode == R_SIMILAR ||
                   mode == R_SESSION;
    if (optind > argc - 1 - need_ids ||
        (!need_ids && optind != argc - 1))
        die("usage: %s %s [-k K] [--category C] [--all-stock] [--exact] "
            "ENGINE%s", prog, rank_cmd[mode], rank_args[mode]);
    if (k == 0 || k > 10000)
        die("-k must be 1..10000");
    cx_engine *e = open_engine(argv[optind], 1, 0);
    const char **items = malloc(k * sizeof *items);
    float *scores = malloc(k * sizeof *scores);
    int *reasons = malloc(k * sizeof *reasons);
    if (!items || !scores || !reasons)
        die("out of memory");
    int status = 0;
    /* One list per id; the lists without ids and the session are one. */
    int first = optind + 1, last = need_ids ? argc : first + 1;
    if (mode == R_SESSION)
        last = first + 1;
    for (int i = first; i < last; i++) {
        size_t n;
        int rc;
        const char *who = i < argc ? argv[i] : rank_cmd[mode];
        switch (mode) {
        case R_RECOMMEND:
            rc = cx_recommend(e, argv[i], k, &o, items, scores, reasons, &n);
            break;
        case R_SIMILAR:
            rc = cx_similar_items(e, argv[i], k, &o, items, scores, reasons,
                                  &n);
            break;
        case R_TRENDING:
            rc = cx_trending(e, k, &o, items, scores, reasons, &n);
            break;
        case R_POPULAR:
            rc = cx_popular(e, k, &o, items, scores, reasons, &n);
            break;
        case R_NEW:
            rc = cx_new_arrivals(e, k, &o, items, scores, reasons, &n);
            break;
        default:
            who = "session";
            rc = rank_session(e, argc - first, argv + first, k, &o, items,
                              scores, reasons, &n);
        }
        if (rc) {
            fprintf(stderr, "%s: %s: %s\n", prog, who, cx_errmsg(e));
            status = 1;
            continue;
        }
        print_list(e, who, items, scores, reasons, n);
    }
    free(items), free(scores), free(reasons);
    cx_close(e);
    return status;
}

/* ===================================================================== */
/* explain, profile                                                      */
/* ===================================================================== */

static int cmd_explain(int argc, char **argv)
{
    if (argc != 4)
        die("usage: %s explain ENGINE CUSTOMER ITEM", prog);
    cx_engine *e = open_engine(argv[1], 1, 0);
    const char *items[10];
    float contrib[10], score;
    size_t n;
    if (cx_explain(e, argv[2], argv[3], 10, items, contrib, &n, &score))
        die("explain: %s", cx_errmsg(e));
    printf("%s -> %s: score %.4f, because of\n", argv[2], argv[3], score);
    for (size_t j = 0; j < n; j++)
        printf("  %2zu. %-14s %8.4f  (%3.0f%%)\n", j + 1, items[j],
               contrib[j], score != 0 ? 100.0 * contrib[j] / score : 0.0);
    cx_close(e);
    return 0;
}

/* A row's title, as a page would show it. */
static void row_title(const cx_layout_row *r, char *buf, size_t n)
{
    const char *seed = r->seed ? r->seed : "";
    switch (r->kind) {
    case CX_ROW_FOR_YOU: snprintf(buf, n, "For you"); break;
    case CX_ROW_BECAUSE: snprintf(buf, n, "Because you liked %s", seed); break;
    case CX_ROW_CONTINUE: snprintf(buf, n, "Continue shopping"); break;
    case CX_ROW_BOUGHT_TOGETHER:
        snprintf(buf, n, "Bought together with %s", seed);
        break;
    case CX_ROW_TRENDING:
        snprintf(buf, n, r->seed ? "Trending in %s" : "Trending now", seed);
        break;
    case CX_ROW_NEW:
        snprintf(buf, n, r->seed ? "New in %s" : "New arrivals", seed);
        break;
    default: snprintf(buf, n, "Top picks in %s", seed);
    }
}

/* Print a customer's home page; shared with the demo. */
static void print_layout(cx_engine *e, const char *who, size_t per_row)
{
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    s.items_per_row = per_row;
    cx_layout_row rows[8];
    cx_layout_item *items = malloc(8 * per_row * sizeof *items);
    size_t n;
    if (!items)
        die("out of memory");
    if (cx_layout(e, who, &s, rows, 8, items, 8 * per_row, &n))
        die("layout: %s", cx_errmsg(e));
    cx_profile p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    if (cx_profile_get(e, who, 0, &p))
        die("profile: %s", cx_errmsg(e));
    printf("home page of %s (%s):\n", who, cx_stage_name(p.stage));
    for (size_t r = 0; r < n; r++) {
        char title[600];
        row_title(&rows[r], title, sizeof title);
        printf("  %-34s fit %.2f:", title, rows[r].fit);
        for (size_t j = 0; j < rows[r].count; j++)
            printf(" %s", items[rows[r].first + j].item);
        printf("\n");
    }
    free(items);
}

static int cmd_layout(int argc, char **argv)
{
    if (argc < 3)
        die("usage: %s layout ENGINE CUSTOMER...", prog);
    cx_engine *e = open_engine(argv[1], 1, 0);
    for (int i = 2; i < argc; i++)
        print_layout(e, argv[i], 6);
    cx_close(e);
    return 0;
}

static int cmd_profile(int argc, char **argv)
{
    if (argc != 3)
        die("usage: %s profile ENGINE CUSTOMER", prog);
    cx_engine *e = open_engine(argv[1], 1, 0);
    cx_profile p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    if (cx_profile_get(e, argv[2], 0, &p))
        die("profile: %s", cx_errmsg(e));
    printf("%s: %s, %llu signals", argv[2], cx_stage_name(p.stage),
           (unsigned long long)p.signals);
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        if (p.by_type[t])
            printf(", %s %llu", cx_signal_type_name(e, t),
                   (unsigned long long)p.by_type[t]);
    printf("\n  first seen %lld, last seen %lld\n  channels:",
           (long long)p.first_seen, (long long)p.last_seen);
    for (size_t j = 0; j < p.n_channels; j++)
        printf(" %s %llu", p.channel[j], (unsigned long long)p.by_channel[j]);
    printf("\n  categories:");
    for (size_t j = 0; j < p.n_categories; j++)
        printf(" %s %.0f%%", p.category[j], 100 * p.category_share[j]);
    printf("\n  average price %.2f (%.2fx the catalogue's)\n", p.avg_price,
           p.price_level);
    cx_close(e);
    return 0;
}

/* ===================================================================== */
/* eval                                                                  */
/* ===================================================================== */

static const char *const metric_name[] = {"precision", "recall", "ndcg",
                                          "map", "hit_rate", "coverage"};

/* value [lo, hi] of one column, or the value alone without intervals */
static void print_cell(double v, const double *ci, int lo, int hi, int m)
{
    if (ci && m < CX_METRIC_COVERAGE)
        printf("  %6.4f [%6.4f,%6.4f]", v, ci[lo * CX_METRIC_COUNT + m],
               ci[hi * CX_METRIC_COUNT + m]);
    else
        printf("  %6.4f %16s", v, "");
}

/* The engine, popularity and the engine with tuning off, side by side;
 * u and cu (the untuned run) may be NULL.  Intervals: 95% bootstrap over
 * customers; "engine - popularity" is the paired difference. */
static void print_eval(const double *m, const double *b, const double *ci,
                       const double *u, const double *cu, size_t k)
{
    printf("%-13s  %-23s  %-23s", "metric", "engine", "popularity");
    if (u)
        printf("  %-23s", "untuned");
    if (ci)
        printf("  %-23s", "engine - popularity");
    printf("\n");
    for (int i = 0; i < CX_METRIC_USERS; i++) {
        char label[32];
        snprintf(label, sizeof label, "%s@%zu", metric_name[i], k);
        printf("%-13s", label);
        print_cell(m[i], ci, CX_CI_MODEL_LO, CX_CI_MODEL_HI, i);
        print_cell(b[i], ci, CX_CI_BASELINE_LO, CX_CI_BASELINE_HI, i);
        if (u)
            print_cell(u[i], cu, CX_CI_MODEL_LO, CX_CI_MODEL_HI, i);
        if (ci)
            print_cell(m[i] - b[i], ci, CX_CI_DIFF_LO, CX_CI_DIFF_HI, i);
        printf("\n");
    }
    printf("%-13s  %6.0f\n", "customers", m[CX_METRIC_USERS]);
    if (ci)
        printf("[lo,hi]: 95%% bootstrap interval over customers; a "
               "difference interval above 0 is a gain, not noise\n");
}

static int split_arg(const char *s)
{
    if (!strcmp(s, "items"))
        return CX_SPLIT_ITEMS;
    if (!strcmp(s, "events"))
        return CX_SPLIT_EVENTS;
    die("--split must be items or events");
    return 0;
}

static int cmd_eval(int argc, char **argv)
{
    static const struct option lo[] = {TRAIN_LONGOPTS,
                                       {"test-fraction", 1, 0, O_FRAC},
                                       {"split", 1, 0, O_SPLIT},
                                       {"bootstrap", 1, 0, O_BOOT},
                                       {0, 0, 0, 0}};
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    pending p = {0};
    int c;
    while ((c = getopt_long(argc, argv, "k:", lo, NULL)) != -1) {
        if (c == 'k')
            eo.k = (size_t)num_arg("-k", optarg);
        else if (c == O_FRAC)
            eo.test_fraction = num_arg("--test-fraction", optarg);
        else if (c == O_SPLIT)
            eo.split = split_arg(optarg);
        else if (c == O_BOOT)
            eo.bootstrap = (size_t)num_arg("--bootstrap", optarg);
        else if (c == '?')
            return EXIT_USAGE;
        else
            pend(&p, c, optarg);
    }
    if (optind != argc - 1)
        die("usage: %s eval [-k K] [--test-fraction F] [--split items|"
            "events] [--bootstrap N] [training options] ENGINE", prog);
    cx_engine *e = open_engine(argv[optind], 1, 0);
    apply(e, &p);
    double m[CX_METRIC_COUNT], b[CX_METRIC_COUNT], u[CX_METRIC_COUNT];
    double ci[CX_CI_COUNT * CX_METRIC_COUNT], cu[CX_CI_COUNT *
                                                CX_METRIC_COUNT];
    double *cp = eo.bootstrap ? ci : NULL, *cup = eo.bootstrap ? cu : NULL;
    double t = now_s();
    check(e, cx_evaluate_ci(e, &eo, m, b, cp), "eval");
    eo.untuned = 1;
    check(e, cx_evaluate_ci(e, &eo, u, NULL, cup), "eval");
    printf("time split (%s): newest %.0f%% of each customer's %s held out, "
           "k = %zu (%.2fs)\n", eo.split == CX_SPLIT_EVENTS ? "events" :
           "items", eo.test_fraction * 100, eo.split == CX_SPLIT_EVENTS ?
           "signals" : "items", eo.k, now_s() - t);
    print_eval(m, b, cp, u, cup, eo.k);
    cx_close(e);
    return 0;
}

/* replay: an experiment's variants evaluated offline, side by side.
 * Each VARIANT:SHARE[:KEY=VALUE]... defines a variant and the overrides
 * it carries (k, diversity, cap for its lists; factors, iterations,
 * alpha, regularization, weight.TYPE for its training); every variant is
 * scored on its own customers of the same time split. */
static int cmd_replay(int argc, char **argv)
{
    static const struct option lo[] = {{"test-fraction", 1, 0, O_FRAC},
                                       {0, 0, 0, 0}};
    cx_eval_opts base;
    cx_eval_opts_init(&base);
    int c;
    while ((c = getopt_long(argc, argv, "k:", lo, NULL)) != -1) {
        if (c == 'k')
            base.k = (size_t)num_arg("-k", optarg);
        else if (c == O_FRAC)
            base.test_fraction = num_arg("--test-fraction", optarg);
        else
            return EXIT_USAGE;
    }
    int nv = argc - optind - 2;
    if (nv < 1 || nv > 64)
        die("usage: %s replay [-k K] [--test-fraction F] ENGINE EXPERIMENT "
            "VARIANT:SHARE[:KEY=VALUE]...", prog);
    cx_engine *e = open_engine(argv[optind], 1, 0);
    const char *exp = argv[optind + 1];
    const char *name[64];
    double share[64];
    char *spec[64];
    for (int v = 0; v < nv; v++) {
        spec[v] = argv[optind + 2 + v];
        char *colon = strchr(spec[v], ':');
        if (!colon)
            die("replay: '%s' needs VARIANT:SHARE", spec[v]);
        *colon = 0;
        name[v] = spec[v];
        char *rest = colon + 1, *next = strchr(rest, ':');
        if (next)
            *next++ = 0;
        share[v] = num_arg("share", rest);
        spec[v] = next; /* the overrides, parsed below */
    }
    check(e, cx_experiment_define(e, exp, (size_t)nv, name, share),
          "replay");
    double m[64][CX_METRIC_COUNT], b[CX_METRIC_COUNT];
    size_t kk[64];
    for (int v = 0; v < nv; v++) {
        for (char *o = spec[v]; o && *o;) {
            char *next = strchr(o, ':');
            if (next)
                *next++ = 0;
            char *eq = strchr(o, '=');
            if (!eq)
                die("replay: override '%s' needs KEY=VALUE", o);
            *eq = 0;
            int key = !strcmp(o, "k")           ? CX_OVERRIDE_K
                      : !strcmp(o, "diversity") ? CX_OVERRIDE_DIVERSITY
                      : !strcmp(o, "cap")       ? CX_OVERRIDE_CATEGORY_CAP
                      : !strcmp(o, "factors")   ? CX_OPT_FACTORS
                      : !strcmp(o, "iterations") ? CX_OPT_ITERATIONS
                      : !strcmp(o, "alpha")     ? CX_OPT_ALPHA
                      : !strcmp(o, "regularization") ? CX_OPT_REGULARIZATION
                                                : 0;
            /* weight.TYPE: a signal type's weight in the variant's
             * training */
            for (int t = 0; !key && !strncmp(o, "weight.", 7) &&
                            t < CX_MAX_SIGNAL_TYPES; t++) {
                const char *tn = cx_signal_type_name(e, t);
                if (tn && !strcmp(tn, o + 7))
                    key = CX_OPT_WEIGHT + t;
            }
            if (!key)
                die("replay: unknown override '%s' (k, diversity, cap, "
                    "factors, iterations, alpha, regularization, "
                    "weight.TYPE)", o);
            check(e, cx_variant_set(e, exp, name[v], key,
                                    num_arg(o, eq + 1)), "replay");
            o = next;
        }
        cx_eval_opts eo = base;
        double val;
        eo.experiment = exp;
        eo.variant = name[v];
        if (cx_variant_get(e, exp, name[v], CX_OVERRIDE_K, &val) == CX_OK)
            eo.k = (size_t)val;
        if (cx_variant_get(e, exp, name[v], CX_OVERRIDE_DIVERSITY, &val) ==
            CX_OK)
            eo.diversity = val;
        if (cx_variant_get(e, exp, name[v], CX_OVERRIDE_CATEGORY_CAP,
                           &val) == CX_OK)
            eo.max_per_category = (size_t)val;
        kk[v] = eo.k;
        check(e, cx_evaluate(e, &eo, m[v], v ? NULL : b), "replay");
    }
    static const char *names[] = {"precision", "recall", "ndcg", "map",
                                  "hit_rate", "coverage", "customers"};
    printf("experiment %s: each variant on its own customers, newest "
           "%.0f%% of each customer's items held out\n%-12s",
           exp, base.test_fraction * 100, "metric");
    for (int v = 0; v < nv; v++)
        printf(" %12s", name[v]);
    printf("\n%-12s", "k");
    for (int v = 0; v < nv; v++)
        printf(" %12zu", kk[v]);
    printf("\n");
    for (int i = 0; i < CX_METRIC_COUNT; i++) {
        printf("%-12s", names[i]);
        for (int v = 0; v < nv; v++)
            printf(i == CX_METRIC_USERS ? " %12.0f" : " %12.4f", m[v][i]);
        printf("\n");
    }
    cx_close(e);
    return 0;
}

/* ===================================================================== */
/* export, info                                                          */
/* ===================================================================== */

static int cmd_export(int argc, char **argv)
{
    if (argc != 3)
        die("usage: %s export ENGINE DIR", prog);
    cx_engine *e = open_engine(argv[1], 1, 0);
    if (mkdir(argv[2], 0755) && errno != EEXIST)
        die("export: cannot create %s: %s", argv[2], strerror(errno));
    check(e, cx_export_npy(e, argv[2]), "export");
    printf("wrote %s/{customer,item}_factors.npy and "
           "{customer,item}_ids.txt\n", argv[2]);
    cx_close(e);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    if (argc != 2)
        die("usage: %s info ENGINE", prog);
    cx_engine *e = open_engine(argv[1], 1, 0);
    static const struct { int key; const char *name; } s[] = {
        {CX_STAT_CUSTOMERS, "customers"}, {CX_STAT_ITEMS, "items"},
        {CX_STAT_SIGNALS, "signals"}, {CX_STAT_GENERATION, "generation"},
        {CX_STAT_FACTORS, "factors"},
        {CX_STAT_MODEL_CUSTOMERS, "model_customers"},
        {CX_STAT_MODEL_ITEMS, "model_items"}, {CX_STAT_MEMORY, "memory_bytes"},
        {CX_STAT_FOLDED_CUSTOMERS, "folded_customers"},
        {CX_STAT_FOLDED_ITEMS, "folded_items"}};
    printf("libcxengine %s\n", cx_version());
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        int64_t v;
        cx_stat(e, s[i].key, &v);
        printf("%-16s %lld\n", s[i].name, (long long)v);
    }
    cx_close(e);
    return 0;
}

/* ===================================================================== */
/* demo                                                                  */
/* ===================================================================== */

/* Feed a synthetic shop straight into an engine. */
static void load_shop(cx_engine *e, const synth_shop *s)
{
    check(e, shop_upsert_catalogue(e, s), "catalogue");
    check(e, shop_ingest(e, s, 0, s->n_signals, 0), "ingest");
}

static int cmd_demo(int argc, char **argv)
{
    static const struct option lo[] = {TRAIN_LONGOPTS,
                                       {"signals", 1, 0, O_SIGNALS},
                                       {"customers", 1, 0, O_CUSTOMERS},
                                       {"regime", 1, 0, O_REGIME},
                                       {"tune-seconds", 1, 0, O_SECONDS},
                                       {0, 0, 0, 0}};
    size_t n = 300000, show = 3;
    double tune_s = 15;
    int regime = SYNTH_REGIME_DEFAULT;
    pending p = {0};
    int c;
    while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
        if (c == 'n' || c == O_SIGNALS)
            n = (size_t)num_arg("--signals", optarg);
        else if (c == O_CUSTOMERS)
            show = (size_t)num_arg("--customers", optarg);
        else if (c == O_SECONDS)
            tune_s = num_arg("--tune-seconds", optarg);
        else if (c == O_REGIME) {
            for (regime = 0; regime < SYNTH_REGIMES; regime++)
                if (!strcmp(synth_regime_name(regime), optarg))
                    break;
            if (regime == SYNTH_REGIMES)
                die("--regime: default, grocery, sparse, taste or "
                    "bestseller");
        }
        else if (c == '?')
            return EXIT_USAGE;
        else
            pend(&p, c, optarg);
    }
    printf("libcxengine %s demo\n\n", cx_version());
    synth_config sc;
    synth_config_regime(&sc, regime, n);
    synth_shop shop;
    double t = now_s();
    if (synth_generate(&sc, &shop))
        die("demo: cannot generate the sample shop");
    printf("1. sample shop: %zu customers, %zu items in %zu categories, "
           "%zu signals over %d days (%.2fs)\n", shop.n_customers,
           shop.n_items, shop.n_categories, shop.n_signals, sc.days,
           now_s() - t);
    cx_engine *e;
    check(NULL, cx_open(&e, NULL, 0), "open");
    apply(e, &p);
    t = now_s();
    load_shop(e, &shop);
    printf("2. ingested catalogue and signals (%.2fs)\n", now_s() - t);

    printf("3. offline evaluation: train on the past, predict each "
           "customer's newest signals (events split)\n");
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    eo.split = CX_SPLIT_EVENTS;
    double m[CX_METRIC_COUNT], b[CX_METRIC_COUNT], un[CX_METRIC_COUNT];
    double ci[CX_CI_COUNT * CX_METRIC_COUNT], cu[CX_CI_COUNT *
                                                CX_METRIC_COUNT];
    t = now_s();
    check(e, cx_evaluate_ci(e, &eo, un, b, cu), "eval");
    printf("   (%.2fs)\n", now_s() - t);

    printf("4. tuning for %.0f seconds: settings and blend searched on a "
           "validation part carved from the training part\n", tune_s);
    cx_tune_opts to;
    cx_tune_opts_init(&to);
    to.seconds = tune_s;
    to.apply = 0;
    cx_tune_trial trials[256];
    size_t nt;
    t = now_s();
    check(e, cx_tune(e, &to, trials, 256, &nt), "tune");
    print_trials(trials, nt < 256 ? nt : 256, 8);
    for (size_t j = 0; j < nt && j < 256; j++)
        if (trials[j].best) {
            const cx_tune_trial *w = &trials[j];
            cx_set_option(e, CX_OPT_FACTORS, w->factors);
            cx_set_option(e, CX_OPT_REGULARIZATION, w->regularization);
            cx_set_option(e, CX_OPT_ALPHA, w->alpha);
            cx_set_option(e, CX_OPT_HALF_LIFE, w->half_life);
            for (int ty = 0; ty < CX_SIGNAL_CUSTOM; ty++)
                if (cx_signal_type_name(e, ty))
                    cx_set_option(e, CX_OPT_WEIGHT + ty, w->weight[ty]);
            cx_set_option(e, CX_OPT_BLEND_ALS, w->blend_als);
            cx_set_option(e, CX_OPT_BLEND_POPULAR, w->blend_popular);
            cx_set_option(e, CX_OPT_BLEND_REPEAT, w->blend_repeat);
            cx_set_option(e, CX_OPT_BLEND_COBOUGHT, w->blend_cobought);
            cx_set_option(e, CX_OPT_CONSUMABLE, w->consumable);
        }
    printf("   (%zu trials, %.2fs)\n", nt, now_s() - t);
    printf("   before and after, on the test part tuning never saw:\n");
    check(e, cx_evaluate_ci(e, &eo, m, b, ci), "eval");
    print_eval(m, b, ci, un, cu, eo.k);

    printf("5. training on everything with the tuned settings\n");
    double t0 = now_s();
    check(e, cx_train(e, progress, &t0), "train");

    printf("6. recommendations (planted favourite categories in brackets)\n");
    const char *items[5];
    float scores[5];
    int reasons[5];
    size_t shown = 0;
    for (uint32_t u = 0; u < shop.n_customers && shown < show; u += 97) {
        char id[24], who[96];
        synth_customer_id(u, id);
        size_t k;
        if (cx_recommend(e, id, 5, NULL, items, scores, reasons, &k) ||
            reasons[0] == CX_REASON_POPULAR)
            continue;
        snprintf(who, sizeof who, "%s [cat%02u, cat%02u]", id,
                 shop.fav[2 * u], shop.fav[2 * u + 1]);
        print_list(e, who, items, scores, reasons, k);
        shown++;
    }
    size_t k;
    check(e, cx_recommend(e, "someone-new", 5, NULL, items, scores, reasons,
                          &k), "recommend");
    print_list(e, "someone-new (unknown customer)", items, scores, reasons,
               k);
    check(e, cx_similar_items(e, shop.items[0].id, 5, NULL, items, scores,
                              reasons, &k), "similar");
    char who[64];
    snprintf(who, sizeof who, "similar to %s (%s)", shop.items[0].id,
             shop.items[0].category);
    print_list(e, who, items, scores, reasons, k);
    printf("\n7. a personalised home page (rows by fit; items once)\n");
    char first[24];
    synth_customer_id(0, first);
    print_layout(e, first, 6);
    print_layout(e, "someone-new", 6);
    synth_free(&shop);
    cx_close(e);
    return 0;
}

/* ===================================================================== */
/* main                                                                  */
/* ===================================================================== */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s COMMAND [options] ...\n"
            "  gen [--signals N] [--seed S] DIR     synthetic shop as CSV\n"
            "  import [--items CSV] [--signals CSV] ENGINE\n"
            "  train [training options] ENGINE     (a directory: a new "
            "generation)\n"
            "  recommend [-k K] [--category C] ENGINE CUSTOMER...\n"
            "  similar [-k K] ENGINE ITEM...\n"
            "  trending | popular | new-arrivals [-k K] [--category C] "
            "ENGINE\n"
            "  session [-k K] ENGINE ITEM[:TYPE]...  an anonymous visitor\n"
            "  explain ENGINE CUSTOMER ITEM         why the model likes it\n"
            "  profile ENGINE CUSTOMER              journey stage and "
            "habits\n"
            "  layout ENGINE CUSTOMER...            the home page, row by "
            "row\n"
            "  replay [-k K] ENGINE EXPERIMENT VARIANT:SHARE[:KEY=VALUE]...\n"
            "                                       KEY: k diversity cap "
            "factors iterations alpha\n"
            "                                       regularization "
            "weight.TYPE\n"
            "                                       variants evaluated "
            "offline, side by side\n"
            "  eval [-k K] [--test-fraction F] [--split items|events] "
            "[--bootstrap N]\n"
            "       [training options] ENGINE       engine, popularity and "
            "untuned, with 95%% intervals\n"
            "  tune [--seconds S] [--trials N] [--split events|items] "
            "ENGINE\n"
            "                                       search the settings and "
            "the blend, train\n"
            "  export ENGINE DIR                    factors as .npy\n"
            "  info ENGINE\n"
            "  demo [--signals N] [--regime R] [--tune-seconds S]\n"
            "                                       the whole job on a "
            "sample shop\n"
            "ENGINE: an engine file, or a data directory (one that exists, "
            "or a path\n  ending in '/'); import and train open a directory "
            "as its writer, the\n  other commands read-only\n"
            "training options: --factors K --iterations N --lambda L "
            "--alpha A\n"
            "  --solver cg|cholesky --threads T --half-life SECONDS --seed S "
            "--cg-steps N\n"
            "  --blend-als W --blend-popular W --blend-repeat W "
            "--blend-cobought W --consumable SHARE\n"
            "exit status: 0 ok, 1 error, 2 usage, 3 import rejected rows\n",
            prog);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    argc--, argv++;
    if (!strcmp(cmd, "gen")) return cmd_gen(argc, argv);
    if (!strcmp(cmd, "import")) return cmd_import(argc, argv);
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    for (int m = R_RECOMMEND; m <= R_SESSION; m++)
        if (!strcmp(cmd, rank_cmd[m]))
            return cmd_rank(argc, argv, m);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc, argv);
    if (!strcmp(cmd, "tune")) return cmd_tune(argc, argv);
    if (!strcmp(cmd, "explain")) return cmd_explain(argc, argv);
    if (!strcmp(cmd, "profile")) return cmd_profile(argc, argv);
    if (!strcmp(cmd, "layout")) return cmd_layout(argc, argv);
    if (!strcmp(cmd, "replay")) return cmd_replay(argc, argv);
    if (!strcmp(cmd, "export")) return cmd_export(argc, argv);
    if (!strcmp(cmd, "info")) return cmd_info(argc, argv);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("%s\n", cx_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
    usage(stderr);
    return EXIT_USAGE;
}
