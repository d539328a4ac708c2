/* bench_layout.c -- home-page layouts: page quality against a fixed
 * non-personalised page, and layout latency.
 *
 * 1. Quality: the tools/synth shop split per customer by time as
 *    cx_evaluate does (each customer's newest 20% of distinct items, by
 *    first signal time, held out with all their signals; customers with
 *    fewer than 3 items keep everything).  The engine ingests only the
 *    training part and trains (64 factors, 15 iterations).  For every
 *    customer with relevant held-out items (net positive strength), the
 *    personalised page (default spec: 8 rows x 12) and a fixed page
 *    (trending, new arrivals, popular: 12 each, de-duplicated, in that
 *    order) are flattened in row order and scored over their whole length:
 *    NDCG@len and recall@len.  A length-matched line scores the
 *    personalised page cut to the fixed page's length.
 * 2. Latency: random catalogues of 100,000 and 20,000 items (100
 *    categories, created over a year), 20,000 customers x 50 signals
 *    (80% views, 10% carts, 10% purchases over 60 days), 64 factors,
 *    3 ALS iterations; cx_layout 8 x 12 for 2,000 customers, one thread.
 * OpenBLAS runs one thread, as in a serving process (an nginx worker):
 * its idle threads would otherwise spin after each training and take the
 * cores the measured thread runs on.
 * Targets: the personalised page wins clearly; p99 <= 1.5 ms at 100k.
 * CX_BENCH_QUICK=1 shrinks every size (a smoke test); --latency
 * [ITEMS [CALLS]] runs part 2 only, for a profiler. */
#include "benchutil.h"
#include "cxengine.h"
#include "synth.h"
#include "shopload.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>

#define TARGET_P99_MS 1.5

static bjson J;
static int QUICK;

static void die_on(cx_engine *e, int rc, const char *what)
{
    if (rc != CX_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, cx_strerror(rc),
                cx_errmsg(e));
        exit(1);
    }
}

/* ===================================================================== */
/* 1. Page quality                                                       */
/* ===================================================================== */

static double strength(const synth_signal *g)
{
    switch (g->type) {
    case SYNTH_VIEW: return g->value;
    case SYNTH_CLICK: return 2 * g->value;
    case SYNTH_ADD_TO_CART: return 5 * g->value;
    case SYNTH_PURCHASE: return 10 * g->value;
    case SYNTH_RATING: return 5 * (g->value - 3) / 2;
    case SYNTH_RETURN: return -15 * g->value;
    case SYNTH_DISLIKE: return -10 * g->value;
    }
    return 0;
}

typedef struct fs {
    uint32_t item;
    int64_t ts;
    size_t at; /* first signal index: ties by arrival */
} fs;

static int by_first(const void *a, const void *b)
{
    const fs *x = a, *y = b;
    if (x->ts != y->ts)
        return (x->ts > y->ts) - (x->ts < y->ts);
    return (x->at > y->at) - (x->at < y->at);
}

/* Metrics of one flattened page against the relevant set (a bitmap). */
static void score(const char *const *page, size_t len, const uint8_t *rel,
                  size_t n_rel, double *ndcg, double *recall)
{
    double dcg = 0, idcg = 0;
    size_t hits = 0;
    for (size_t j = 0; j < len; j++) {
        size_t it = (size_t)strtoul(page[j] + 1, NULL, 10);
        if (rel[it]) {
            dcg += 1 / log2((double)j + 2);
            hits++;
        }
    }
    for (size_t j = 0; j < len && j < n_rel; j++)
        idcg += 1 / log2((double)j + 2);
    *ndcg = idcg > 0 ? dcg / idcg : 0;
    *recall = n_rel ? (double)hits / (double)n_rel : 0;
}

static void quality(size_t n_signals)
{
    synth_config c;
    synth_config_default(&c, n_signals);
    synth_shop s;
    if (synth_generate(&c, &s)) {
        fprintf(stderr, "synth_generate failed\n");
        exit(1);
    }
    size_t nc = s.n_customers, ni = s.n_items;
    /* Per customer: their signals in order. */
    size_t *cnt = calloc(nc + 1, sizeof *cnt);
    for (size_t j = 0; j < s.n_signals; j++)
        cnt[s.signals[j].customer + 1]++;
    for (size_t u = 0; u < nc; u++)
        cnt[u + 1] += cnt[u];
    size_t *bycust = malloc(s.n_signals * sizeof *bycust);
    size_t *fill = calloc(nc, sizeof *fill);
    for (size_t j = 0; j < s.n_signals; j++) {
        uint32_t u = s.signals[j].customer;
        bycust[cnt[u] + fill[u]++] = j;
    }
    uint8_t *keep = malloc(s.n_signals);
    memset(keep, 1, s.n_signals);
    /* held[u*ni + i]: relevant held-out item (dense bitmap per customer is
     * fine at these sizes: customers x items bytes). */
    uint8_t *rel = calloc(nc * ni, 1);
    size_t *n_rel = calloc(nc, sizeof *n_rel);
    fs *f = malloc(ni * sizeof *f);
    int32_t *pos = malloc(ni * sizeof *pos);
    double *r = malloc(ni * sizeof *r);
    uint8_t *hold = malloc(ni);
    for (size_t i = 0; i < ni; i++)
        pos[i] = -1;
    size_t n_test = 0, n_held = 0;
    for (size_t u = 0; u < nc; u++) {
        size_t n = 0;
        for (size_t q = cnt[u]; q < cnt[u + 1]; q++) {
            const synth_signal *g = &s.signals[bycust[q]];
            if (pos[g->item] < 0) {
                pos[g->item] = (int32_t)n;
                f[n++] = (fs){g->item, g->ts, bycust[q]};
            } else if (g->ts < f[pos[g->item]].ts) {
                f[pos[g->item]].ts = g->ts;
            }
        }
        size_t h = (size_t)floor(0.2 * (double)n + 0.5);
        if (h >= n)
            h = n ? n - 1 : 0;
        if (n >= 3 && h > 0) {
            qsort(f, n, sizeof *f, by_first);
            for (size_t j = 0; j < n; j++) {
                hold[f[j].item] = j >= n - h;
                r[f[j].item] = 0;
            }
            for (size_t q = cnt[u]; q < cnt[u + 1]; q++) {
                const synth_signal *g = &s.signals[bycust[q]];
                if (hold[g->item]) {
                    keep[bycust[q]] = 0;
                    r[g->item] += strength(g);
                }
            }
            for (size_t j = n - h; j < n; j++)
                if (r[f[j].item] > 0) {
                    rel[u * ni + f[j].item] = 1;
                    n_rel[u]++;
                }
            n_held += h;
            n_test += n_rel[u] > 0;
        }
        for (size_t j = 0; j < n; j++)
            pos[f[j].item] = -1, hold[f[j].item] = 0;
    }
    /* The training part into a fresh engine. */
    cx_engine *e = NULL;
    die_on(NULL, cx_open(&e, NULL, 0), "open");
    die_on(e, shop_upsert_catalogue(e, &s), "catalogue");
    synth_shop t = s;
    synth_signal *ts = malloc(s.n_signals * sizeof *ts);
    size_t nt = 0;
    for (size_t j = 0; j < s.n_signals; j++)
        if (keep[j])
            ts[nt++] = s.signals[j];
    t.signals = ts;
    t.n_signals = nt;
    die_on(e, shop_ingest(e, &t, 0, nt, 10000), "ingest");
    double t0 = now_s();
    die_on(e, cx_train(e, NULL, NULL), "train");
    printf("shop: %zu customers, %zu items, %zu categories, %zu signals "
           "(%zu kept for training, trained in %.1f s); %zu customers with "
           "relevant held-out items (%zu items held out)\n", nc, ni,
           s.n_categories, s.n_signals, nt, now_s() - t0, n_test, n_held);

    cx_layout_spec spec;
    cx_layout_spec_init(&spec);
    cx_layout_row rows[8];
    cx_layout_item items[96];
    const char *page[96], *fixed[36], *lst[12];
    double sum[6] = {0}, len_p = 0, len_f = 0;
    size_t users = 0;
    for (size_t u = 0; u < nc; u++) {
        if (!n_rel[u])
            continue;
        char id[24];
        synth_customer_id((uint32_t)u, id);
        size_t nr = 0, lp = 0, lf = 0, n;
        die_on(e, cx_layout(e, id, &spec, rows, 8, items, 96, &nr),
               "layout");
        for (size_t q = 0; q < nr; q++)
            for (size_t j = rows[q].first; j < rows[q].first + rows[q].count;
                 j++)
                page[lp++] = items[j].item;
        for (int l = 0; l < 3; l++) {
            int rc = l == 0 ? cx_trending(e, 12, NULL, lst, NULL, NULL, &n)
                   : l == 1 ? cx_new_arrivals(e, 12, NULL, lst, NULL, NULL,
                                              &n)
                            : cx_popular(e, 12, NULL, lst, NULL, NULL, &n);
            die_on(e, rc, "list");
            for (size_t j = 0; j < n; j++) {
                int dup = 0;
                for (size_t q = 0; q < lf && !dup; q++)
                    dup = fixed[q] == lst[j];
                if (!dup)
                    fixed[lf++] = lst[j];
            }
        }
        double a, b;
        score(page, lp, rel + u * ni, n_rel[u], &a, &b);
        sum[0] += a, sum[1] += b;
        score(fixed, lf, rel + u * ni, n_rel[u], &a, &b);
        sum[2] += a, sum[3] += b;
        score(page, lp < lf ? lp : lf, rel + u * ni, n_rel[u], &a, &b);
        sum[4] += a, sum[5] += b;
        len_p += (double)lp, len_f += (double)lf;
        users++;
    }
    double d = users ? (double)users : 1;
    for (int k = 0; k < 6; k++)
        sum[k] /= d;
    len_p /= d, len_f /= d;
    printf("\n  %-44s %8s %8s %8s\n", "page (whole page, k = its length)",
           "items", "NDCG", "recall");
    printf("  %-44s %8.1f %8.4f %8.4f\n", "personalised (cx_layout 8 x 12)",
           len_p, sum[0], sum[1]);
    printf("  %-44s %8.1f %8.4f %8.4f\n",
           "fixed: trending, new arrivals, popular", len_f, sum[2], sum[3]);
    printf("  %-44s %8s %7.2fx %7.2fx\n", "ratio personalised / fixed", "",
           sum[2] > 0 ? sum[0] / sum[2] : INFINITY,
           sum[3] > 0 ? sum[1] / sum[3] : INFINITY);
    printf("  %-44s %8.1f %8.4f %8.4f\n",
           "personalised cut to the fixed page's length", len_f, sum[4],
           sum[5]);
    printf("  %-44s %8s %7.2fx %7.2fx\n", "ratio, length-matched", "",
           sum[2] > 0 ? sum[4] / sum[2] : INFINITY,
           sum[3] > 0 ? sum[5] / sum[3] : INFINITY);
    int win = sum[0] > 1.2 * sum[2] && sum[1] > 1.2 * sum[3];
    printf("  target: the personalised page must win clearly (> 1.2x on "
           "both): %s\n", win ? "met" : "NOT met");
    bjson_num(&J, "quality_customers", (double)users);
    bjson_num(&J, "personal_ndcg", sum[0]);
    bjson_num(&J, "personal_recall", sum[1]);
    bjson_num(&J, "personal_len", len_p);
    bjson_num(&J, "fixed_ndcg", sum[2]);
    bjson_num(&J, "fixed_recall", sum[3]);
    bjson_num(&J, "fixed_len", len_f);
    bjson_num(&J, "matched_ndcg", sum[4]);
    bjson_num(&J, "matched_recall", sum[5]);
    bjson_num(&J, "quality_target_met", win);
    cx_close(e);
    free(ts), free(cnt), free(bycust), free(fill), free(keep), free(rel);
    free(n_rel), free(f), free(pos), free(r), free(hold);
    synth_free(&s);
}

/* ===================================================================== */
/* 2. Latency                                                            */
/* ===================================================================== */

static void latency(size_t ni, size_t nu, size_t per_cust, size_t nq)
{
    cx_engine *e = NULL;
    die_on(NULL, cx_open(&e, NULL, 0), "open");
    die_on(e, cx_set_option(e, CX_OPT_ITERATIONS, 3), "option");
    const int64_t T0 = 1767225600;
    unsigned long long rs = 7;
    enum { B = 10000 };
    static char iid[B][16], cat[B][16], cid[B][16];
    static const char *ip[B], *cp[B], *up[B];
    static int64_t created[B], tsv[B];
    static int ty[B];
    double t = now_s();
    for (size_t done = 0; done < ni; done += B) {
        size_t m = ni - done < B ? ni - done : B;
        for (size_t j = 0; j < m; j++) {
            snprintf(iid[j], 16, "i%zu", done + j);
            snprintf(cat[j], 16, "cat%03llu", bench_rand(&rs) % 100);
            ip[j] = iid[j], cp[j] = cat[j];
            created[j] = T0 - (int64_t)(bench_rand(&rs) % (365 * 86400));
        }
        die_on(e, cx_items_upsert(e, m, ip, cp, NULL, NULL, created, NULL),
               "upsert");
    }
    size_t nnz = nu * per_cust;
    for (size_t done = 0; done < nnz; done += B) {
        size_t m = nnz - done < B ? nnz - done : B;
        for (size_t j = 0; j < m; j++) {
            unsigned long long x = bench_rand(&rs);
            size_t u = (size_t)(x % nu);
            /* items skewed towards the low indexes: a popular head */
            double p = (double)(bench_rand(&rs) >> 11) * 0x1p-53;
            size_t i = (size_t)((double)ni * p * p);
            snprintf(cid[j], 16, "c%zu", u);
            snprintf(iid[j], 16, "i%zu", i < ni ? i : ni - 1);
            up[j] = cid[j], ip[j] = iid[j];
            unsigned k = (unsigned)(bench_rand(&rs) % 10);
            ty[j] = k < 8 ? CX_VIEW : k == 8 ? CX_ADD_TO_CART : CX_PURCHASE;
            tsv[j] = T0 + (int64_t)(bench_rand(&rs) % (60 * 86400));
        }
        die_on(e, cx_ingest(e, m, up, ip, ty, NULL, tsv, NULL), "ingest");
    }
    double t_ing = now_s() - t;
    t = now_s();
    die_on(e, cx_train(e, NULL, NULL), "train");
    printf("\n%zu items, %zu customers, %zu signals: built in %.1f s, "
           "trained (64 factors, 3 iterations) in %.1f s\n", ni, nu, nnz,
           t_ing, now_s() - t);
    cx_layout_row rows[8];
    cx_layout_item items[96];
    size_t nr = 0, warm = nq / 10;
    double *lat = malloc(nq * sizeof *lat), rows_sum = 0, items_sum = 0;
    char id[16];
    for (size_t q = 0; q < warm; q++) {
        snprintf(id, sizeof id, "c%zu", (q * 7919 + 13) % nu);
        die_on(e, cx_layout(e, id, NULL, rows, 8, items, 96, &nr), "layout");
    }
    for (size_t q = 0; q < nq; q++) {
        snprintf(id, sizeof id, "c%zu", (q * 104729) % nu);
        double a = now_s();
        die_on(e, cx_layout(e, id, NULL, rows, 8, items, 96, &nr), "layout");
        lat[q] = (now_s() - a) * 1e3;
        rows_sum += (double)nr;
        for (size_t r = 0; r < nr; r++)
            items_sum += (double)rows[r].count;
    }
    double mean = 0;
    for (size_t q = 0; q < nq; q++)
        mean += lat[q];
    mean /= (double)nq;
    double med = percentile(lat, nq, 50), p99 = percentile(lat, nq, 99);
    printf("  cx_layout 8 x 12, %zu customers, 1 thread: median %.3f ms, "
           "p99 %.3f ms, mean %.3f ms (%.1f rows, %.1f items a page)\n", nq,
           med, p99, mean, rows_sum / (double)nq, items_sum / (double)nq);
    char key[64];
    snprintf(key, sizeof key, "layout_%zu_median_ms", ni);
    bjson_num(&J, key, med);
    snprintf(key, sizeof key, "layout_%zu_p99_ms", ni);
    bjson_num(&J, key, p99);
    if (ni >= 100000 || QUICK)
        printf("  target p99 <= %.1f ms%s: %s\n", TARGET_P99_MS,
               QUICK ? " (for 100,000 items)" : "",
               p99 <= TARGET_P99_MS ? "met" : "NOT met");
    /* Where the time goes: one kind at a time, and cx_recommend top-12. */
    size_t nk = nq / 4;
    printf("  by kind (kinds = that kind only, %zu customers), median / p99 "
           "ms:\n   ", nk);
    for (int k = 0; k <= CX_ROW_KINDS; k++) {
        cx_layout_spec sp;
        cx_layout_spec_init(&sp);
        if (k < CX_ROW_KINDS)
            sp.kinds = CX_ROW_BIT(k);
        for (size_t j = 0; j < nk; j++) {
            snprintf(id, sizeof id, "c%zu", (j * 104729) % nu);
            double a = now_s();
            if (k < CX_ROW_KINDS)
                die_on(e, cx_layout(e, id, &sp, rows, 8, items, 96, &nr),
                       "layout");
            else {
                const char *ids[12];
                die_on(e, cx_recommend(e, id, 12, NULL, ids, NULL, NULL,
                                       &nr), "recommend");
            }
            lat[j] = (now_s() - a) * 1e3;
        }
        double m = percentile(lat, nk, 50), p = percentile(lat, nk, 99);
        printf(" %s %.3f/%.3f", k < CX_ROW_KINDS ? cx_row_kind_name(k)
                                                 : "| cx_recommend", m, p);
    }
    printf("\n");
    free(lat);
    cx_close(e);
}

int main(int argc, char **argv)
{
    /* --latency [ITEMS [CALLS]]: part 2 only, at one catalogue size and
     * with CALLS layouts if given (for a profiler) */
    int lat_only = argc > 1 && strcmp(argv[1], "--latency") == 0;
    size_t lat_items = lat_only && argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    size_t lat_calls = lat_only && argc > 3 ? strtoul(argv[3], NULL, 10) : 0;
    const char *q = getenv("CX_BENCH_QUICK");
    QUICK = q && *q && strcmp(q, "0") != 0;
    double t0 = now_s();
    openblas_set_num_threads(1);
    bjson_open(&J, lat_only ? "build/bench/layout_latency.json"
                             : "build/bench/layout.json");
    printf("== home-page layouts%s\n", QUICK ? " (CX_BENCH_QUICK: smaller)"
                                            : "");
    if (!lat_only) {
        printf("\n== 1. page quality on a time-split synthetic shop\n");
        quality(QUICK ? 40000 : 400000);
    }
    printf("\n== 2. layout latency, 64 factors\n");
    size_t nu = QUICK ? 4000 : 20000, nq = QUICK ? 500 : 2000;
    if (lat_calls)
        nq = lat_calls;
    if (lat_items) {
        latency(lat_items, nu, 50, nq);
    } else {
        latency(QUICK ? 10000 : 100000, nu, 50, nq);
        latency(QUICK ? 4000 : 20000, nu, 50, nq);
    }
    printf("\ntotal bench time %.1f s\n", now_s() - t0);
    bjson_num(&J, "quick", QUICK);
    bjson_num(&J, "seconds", now_s() - t0);
    bjson_close(&J);
    return 0;
}
