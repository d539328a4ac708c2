/* test_stress.c -- the real-time API under load: 8 readers rank
 * (cx_recommend, cx_similar_items, cx_recommend_session, cx_trending and
 * friends) while one writer ingests and upserts and two threads retrain
 * (cx_train, cx_train_start/cx_train_wait), once per fold-in mode.
 *
 * Bounded twice: by time (CX_STRESS_SECONDS, default 3) and by loop
 * counts, so that it also ends under ThreadSanitizer on two cores.  After
 * the deadline the readers go on, paced, until the writer and the
 * trainers are done: background training runs at idle priority, and
 * saturating readers would starve it.
 * cmocka's asserts are not thread-safe: the threads count failures in
 * atomic counters (and keep the first few messages) and the main thread
 * asserts that the counts are zero. */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define READERS 8
#define FACTORS 16
#define TOPK 10
#define SHOP_SIGNALS 4000
#define MIN_ROUNDS 20       /* every reader does at least this much */
#define MAX_ROUNDS 200000   /* and never more */
#define HARD_EXTRA_S 60.0   /* readers stop this long after the deadline
                               even if a writer or trainer hangs */
#define DRAIN_PAUSE_NS 5000000L /* after the deadline readers pause this
                               long per round, leaving CPU to trainings,
                               which run at idle priority (SCHED_IDLE) */
#define BATCH 32            /* signals per writer batch */
#define NEW_PER_BATCH 4     /* new customers per batch, 3 signals each */
#define MAX_BATCHES 1500
#define WRITE_PAUSE_NS 2000000L
#define MAX_NEW_ITEMS 4096
#define MAX_SESSION 6
#define MAX_MSGS 12

/* ================================================================= */
/* Failure accounting                                                */
/* ================================================================= */

enum fail_kind {
    F_STATUS,      /* a call returned something other than CX_OK */
    F_COUNT,       /* n > k */
    F_ID,          /* NULL or malformed item id */
    F_UNKNOWN,     /* cx_item_get fails for a returned id */
    F_SCORE,       /* a score is not finite */
    F_REASON,      /* a reason outside the call's documented set */
    F_DUP,         /* the same item twice in one result */
    F_ORDER,       /* scores out of the documented order */
    F_EXCLUDED,    /* an item the call must leave out (itself, session) */
    F_CATEGORY,    /* opts.category not respected */
    F_STAT,        /* a statistic went backwards or out of bounds */
    F_INGEST,      /* the writer's ingest or upsert misbehaved */
    F_VECTOR,      /* a customer with positive signals has no vector */
    F_TRAIN,       /* a training failed */
    F_COUNT_KINDS
};

static const char *const fail_name[F_COUNT_KINDS] = {
    "status", "count", "id", "unknown item", "score", "reason", "duplicate",
    "order", "excluded item", "category", "stat", "ingest", "vector",
    "train",
};

typedef struct fails {
    atomic_size_t n[F_COUNT_KINDS];
    pthread_mutex_t mu;         /* guards msg[] only */
    char msg[MAX_MSGS][256];
    size_t n_msg;
} fails;

static void flag(fails *f, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void flag(fails *f, int kind, const char *fmt, ...)
{
    atomic_fetch_add(&f->n[kind], 1);
    pthread_mutex_lock(&f->mu);
    if (f->n_msg < MAX_MSGS) {
        char *m = f->msg[f->n_msg++];
        int at = snprintf(m, 256, "[%s] ", fail_name[kind]);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m + at, 256 - (size_t)at, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&f->mu);
}

/* ================================================================= */
/* Shared state                                                      */
/* ================================================================= */

typedef struct shared {
    cx_engine *e;
    synth_shop shop;
    int fold_mode;
    double t_start, deadline, hard_deadline, seconds;
    int64_t initial_signals;
    fails f;

    /* Published by the writer (release), read by the readers (acquire). */
    atomic_size_t acked;        /* signals ingested with CX_OK */
    atomic_size_t batches_ok, batches_bad, upserts;
    atomic_size_t new_customers;/* "n%07zu" ids 0..new_customers-1 exist */
    atomic_size_t new_items;    /* "inew%05zu" ids 0..new_items-1 exist */
    atomic_long last_even_customer; /* a shop customer given positives */
    atomic_int writer_done;

    atomic_int trains_ok, trains_done, trainers_running;
    atomic_llong train_us_max, train_us_sum; /* wall time of trainings */
} shared;

typedef struct reader {
    shared *s;
    int id;
    size_t calls, rounds;
    size_t nonempty, personal;
} reader;

static double now_mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_until(double t)
{
    double d;
    while ((d = t - now_mono()) > 0) {
        struct timespec ts = {(time_t)d,
                              (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static uint64_t rnd(uint64_t *st)
{
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t below(uint64_t *st, size_t n) { return n ? rnd(st) % n : 0; }

static void new_customer_id(size_t i, char buf[24])
{
    snprintf(buf, 24, "n%07u", (unsigned)i);
}

static void new_item_id(size_t i, char buf[24])
{
    snprintf(buf, 24, "inew%05u", (unsigned)i);
}

/* ================================================================= */
/* Result checks                                                     */
/* ================================================================= */

#define RB(r) (1u << (r))

enum order { DESCENDING, ASCENDING };

/* One ranked list is well formed: CX_OK, n <= k, ids non-NULL, known to
 * the engine and distinct, scores finite and in order, reasons in the
 * call's set, none of forbid[] present, and every item of `category`
 * when it is not NULL. */
static void check_list(shared *s, const char *call, const char *arg, int rc,
                       const char *const *items, const float *scores,
                       const int *reasons, size_t n, size_t k,
                       unsigned reason_set, int order,
                       const char *const *forbid, size_t n_forbid,
                       const char *category)
{
    fails *f = &s->f;
    if (rc != CX_OK) {
        flag(f, F_STATUS, "%s(%s) -> %d (%s): %s", call, arg, rc,
             cx_strerror(rc), cx_errmsg(s->e));
        return;
    }
    if (n > k) {
        flag(f, F_COUNT, "%s(%s): n = %zu > k = %zu", call, arg, n, k);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        const char *id = items[j];
        if (!id || !id[0] || strnlen(id, CX_MAX_ID_LEN + 1) > CX_MAX_ID_LEN ||
            id[0] != 'i') {
            flag(f, F_ID, "%s(%s): item %zu is %s%s%s", call, arg, j,
                 id ? "\"" : "", id ? id : "NULL", id ? "\"" : "");
            continue;
        }
        const char *cat = NULL;
        int grc = cx_item_get(s->e, id, &cat, NULL, NULL, NULL);
        if (grc != CX_OK)
            flag(f, F_UNKNOWN, "%s(%s): item %zu \"%s\": cx_item_get -> %d",
                 call, arg, j, id, grc);
        else if (category && (!cat || strcmp(cat, category) != 0))
            flag(f, F_CATEGORY, "%s(%s): item \"%s\" of category \"%s\", "
                 "asked for \"%s\"", call, arg, id, cat ? cat : "(null)",
                 category);
        if (!isfinite(scores[j]))
            flag(f, F_SCORE, "%s(%s): score %zu of \"%s\" is %g", call, arg,
                 j, id, (double)scores[j]);
        if (reasons[j] < 0 || reasons[j] > 31 ||
            !(reason_set & RB(reasons[j])))
            flag(f, F_REASON, "%s(%s): reason %d for \"%s\"", call, arg,
                 reasons[j], id);
        if (j && isfinite(scores[j]) && isfinite(scores[j - 1]) &&
            (order == DESCENDING ? scores[j] > scores[j - 1]
                                 : scores[j] < scores[j - 1]))
            flag(f, F_ORDER, "%s(%s): score %zu (%s %.9g, reason %d) after "
                 "%s %.9g (reason %d), expected %s", call, arg, j, id,
                 (double)scores[j], reasons[j], items[j - 1],
                 (double)scores[j - 1], reasons[j - 1],
                 order == DESCENDING ? "non-increasing" : "non-decreasing");
        for (size_t t = 0; t < j; t++)
            if (items[t] && strcmp(items[t], id) == 0)
                flag(f, F_DUP, "%s(%s): \"%s\" at %zu and %zu", call, arg,
                     id, t, j);
        for (size_t t = 0; t < n_forbid; t++)
            if (strcmp(forbid[t], id) == 0)
                flag(f, F_EXCLUDED, "%s(%s): \"%s\" must be left out", call,
                     arg, id);
    }
}

/* ================================================================= */
/* Readers                                                           */
/* ================================================================= */

/* A customer id: from the shop (some of them never seen by the engine),
 * new since training (written during the run), or unknown. */
static void pick_customer(shared *s, uint64_t *st, char buf[24])
{
    size_t r = below(st, 100), nn = atomic_load(&s->new_customers);
    if (r < 60)
        synth_customer_id((uint32_t)below(st, s->shop.n_customers), buf);
    else if (r < 80 && nn)
        new_customer_id(below(st, nn), buf);
    else
        snprintf(buf, 24, "u%07zu", below(st, 1000000));
}

/* An item id: from the shop, or new since training. */
static const char *pick_item(shared *s, uint64_t *st, char buf[24])
{
    size_t ni = atomic_load(&s->new_items);
    if (ni && below(st, 5) == 0) {
        new_item_id(below(st, ni), buf);
        return buf;
    }
    return s->shop.items[below(st, s->shop.n_items)].id;
}

static void read_recommend(reader *r, uint64_t *st)
{
    shared *s = r->s;
    const char *items[TOPK];
    float scores[TOPK];
    int reasons[TOPK];
    size_t n = 0;
    char cust[24];
    pick_customer(s, st, cust);
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = (int)below(st, 2);
    const char *cat = NULL;
    if (below(st, 4) == 0)
        cat = o.category =
            s->shop.items[below(st, s->shop.n_items)].category;
    size_t k = 1 + below(st, TOPK);
    int rc = cx_recommend(s->e, cust, k, &o, items, scores, reasons, &n);
    r->calls++;
    check_list(s, o.exact ? "cx_recommend exact" : "cx_recommend fast", cust,
               rc, items, scores, reasons, n, k,
               RB(CX_REASON_PERSONAL) | RB(CX_REASON_POPULAR), DESCENDING,
               NULL, 0, cat);
    if (rc == CX_OK && n) {
        r->nonempty++;
        r->personal += reasons[0] == CX_REASON_PERSONAL;
    }
}

static void read_similar(reader *r, uint64_t *st)
{
    shared *s = r->s;
    const char *items[TOPK];
    float scores[TOPK];
    int reasons[TOPK];
    size_t n = 0;
    char buf[24];
    const char *item = pick_item(s, st, buf);
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = (int)below(st, 2);
    int rc = cx_similar_items(s->e, item, TOPK, &o, items, scores, reasons,
                              &n);
    r->calls++;
    check_list(s, "cx_similar_items", item, rc, items, scores, reasons, n,
               TOPK, RB(CX_REASON_SIMILAR) | RB(CX_REASON_CATEGORY),
               DESCENDING, &item, 1, NULL);
}

static void read_session(reader *r, uint64_t *st)
{
    shared *s = r->s;
    const char *items[TOPK];
    float scores[TOPK];
    int reasons[TOPK];
    size_t n = 0;
    static const int kinds[] = {CX_VIEW, CX_CLICK, CX_ADD_TO_CART,
                                CX_PURCHASE};
    char bufs[MAX_SESSION][24];
    const char *sig[MAX_SESSION];
    int types[MAX_SESSION];
    float vals[MAX_SESSION];
    size_t ns = below(st, MAX_SESSION + 1);
    for (size_t j = 0; j < ns; j++) {
        if (below(st, 8) == 0) { /* unknown to the engine: ignored */
            snprintf(bufs[j], 24, "izz%06zu", below(st, 1000000));
            sig[j] = bufs[j];
        } else {
            sig[j] = pick_item(s, st, bufs[j]);
        }
        types[j] = kinds[below(st, 4)];
        vals[j] = (float)(1 + below(st, 3));
    }
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    o.exact = (int)below(st, 2);
    int rc = cx_recommend_session(s->e, ns, ns ? sig : NULL,
                                  ns ? types : NULL,
                                  below(st, 2) ? vals : NULL, TOPK, &o, items,
                                  scores, reasons, &n);
    r->calls++;
    char arg[32];
    snprintf(arg, sizeof arg, "%zu signals", ns);
    /* Every session type is in the default exclusion mask. */
    check_list(s, "cx_recommend_session", arg, rc, items, scores, reasons,
               n, TOPK, RB(CX_REASON_PERSONAL) | RB(CX_REASON_POPULAR),
               DESCENDING, sig, ns, NULL);
}

static void read_lists(reader *r, uint64_t *st)
{
    shared *s = r->s;
    const char *items[TOPK];
    float scores[TOPK];
    int reasons[TOPK];
    size_t n = 0;
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    const char *cat = NULL;
    if (below(st, 3) == 0)
        cat = o.category =
            s->shop.items[below(st, s->shop.n_items)].category;
    int rc;
    switch (below(st, 4)) {
    case 0:
    case 1:
        rc = cx_trending(s->e, TOPK, &o, items, scores, reasons, &n);
        r->calls++;
        check_list(s, "cx_trending", cat ? cat : "-", rc, items, scores,
                   reasons, n, TOPK, RB(CX_REASON_TRENDING), DESCENDING,
                   NULL, 0, cat);
        break;
    case 2:
        rc = cx_popular(s->e, TOPK, &o, items, scores, reasons, &n);
        r->calls++;
        check_list(s, "cx_popular", cat ? cat : "-", rc, items, scores,
                   reasons, n, TOPK, RB(CX_REASON_POPULAR), DESCENDING, NULL,
                   0, cat);
        break;
    default:
        /* Newest first: the scores are ages, so they grow. */
        rc = cx_new_arrivals(s->e, TOPK, &o, items, scores, reasons, &n);
        r->calls++;
        check_list(s, "cx_new_arrivals", cat ? cat : "-", rc, items, scores,
                   reasons, n, TOPK, RB(CX_REASON_NEW), ASCENDING, NULL, 0,
                   cat);
        break;
    }
}

/* Statistics only move forwards while signals are added and models
 * published. */
static void read_stats(reader *r, int64_t *sig, int64_t *gen)
{
    shared *s = r->s;
    int64_t v = -1, g = -1, k = -1;
    int rc1 = cx_stat(s->e, CX_STAT_SIGNALS, &v);
    int rc2 = cx_stat(s->e, CX_STAT_GENERATION, &g);
    int rc3 = cx_stat(s->e, CX_STAT_FACTORS, &k);
    r->calls += 3;
    if (rc1 || rc2 || rc3) {
        flag(&s->f, F_STATUS, "cx_stat -> %d %d %d", rc1, rc2, rc3);
        return;
    }
    if (v < *sig || v < s->initial_signals)
        flag(&s->f, F_STAT, "CX_STAT_SIGNALS %lld after %lld (initial %lld)",
             (long long)v, (long long)*sig, (long long)s->initial_signals);
    if (g < *gen || g < 1)
        flag(&s->f, F_STAT, "CX_STAT_GENERATION %lld after %lld",
             (long long)g, (long long)*gen);
    if (k != FACTORS)
        flag(&s->f, F_STAT, "CX_STAT_FACTORS %lld", (long long)k);
    *sig = v;
    *gen = g;
}

static int readers_go_on(shared *s, size_t round)
{
    if (round < MIN_ROUNDS)
        return 1;
    if (round >= MAX_ROUNDS)
        return 0;
    double t = now_mono();
    if (t >= s->hard_deadline)
        return 0;
    if (t < s->deadline)
        return 1;
    /* Keep reading until every writer is done, so reads overlap them, but
     * at a pace that leaves the CPU to them: saturating readers would
     * starve a background training for as long as they run. */
    if (atomic_load(&s->writer_done) && !atomic_load(&s->trainers_running))
        return 0;
    struct timespec p = {0, DRAIN_PAUSE_NS};
    nanosleep(&p, NULL);
    return 1;
}

static void *read_loop(void *arg)
{
    reader *r = arg;
    shared *s = r->s;
    uint64_t st = 0x5EED0000ull + 977u * (uint64_t)r->id + 1;
    int64_t sig = 0, gen = 0;
    size_t round = 0;
    for (; readers_go_on(s, round); round++) {
        switch (round % 6) {
        case 0:
        case 3:
            read_recommend(r, &st);
            break;
        case 1:
            read_similar(r, &st);
            break;
        case 2:
        case 4:
            read_session(r, &st);
            break;
        default:
            read_lists(r, &st);
            read_stats(r, &sig, &gen);
            break;
        }
    }
    r->rounds = round;
    return NULL;
}

/* ================================================================= */
/* Writer                                                            */
/* ================================================================= */

typedef struct batch {
    char cid[BATCH][24], iid[BATCH][24];
    const char *cust[BATCH], *item[BATCH];
    int type[BATCH];
    float val[BATCH];
    int64_t ts[BATCH];
} batch;

/* A batch of BATCH signals: NEW_PER_BATCH new customers with three
 * positive signals each on shop items, the rest from shop customers on
 * shop items and on new items (some of them new in this batch).  Only
 * odd shop customers get negative signals, so even ones keep a positive
 * row.  Returns how many new items the batch introduces. */
static size_t make_batch(shared *s, uint64_t *st, batch *b, size_t b_no,
                         size_t new_c0, size_t new_i0, int64_t t0,
                         long *even)
{
    static const int pos[] = {CX_VIEW, CX_VIEW, CX_VIEW, CX_CLICK,
                              CX_ADD_TO_CART, CX_PURCHASE, CX_RATING};
    size_t j = 0, fresh = 0;
    for (size_t c = 0; c < NEW_PER_BATCH; c++)
        for (int t = 0; t < 3; t++, j++) {
            new_customer_id(new_c0 + c, b->cid[j]);
            b->item[j] = s->shop.items[below(st, s->shop.n_items)].id;
            b->type[j] = pos[below(st, 6)]; /* no rating: always positive */
            b->val[j] = b->type[j] == CX_PURCHASE ? (float)(1 + below(st, 3))
                                                  : 1.0f;
        }
    for (; j < BATCH; j++) {
        uint32_t c = (uint32_t)below(st, s->shop.n_customers);
        synth_customer_id(c, b->cid[j]);
        int shop_item = 1;
        if (below(st, 6) == 0) {
            /* A new item: a brand new one, or one of the last eight. */
            size_t have = new_i0 + fresh, i;
            if ((have == 0 || below(st, 4) == 0) && have < MAX_NEW_ITEMS)
                i = new_i0 + fresh++;
            else
                i = have - 1 - below(st, have < 8 ? have : 8);
            new_item_id(i, b->iid[j]);
            b->item[j] = b->iid[j];
            shop_item = 0;
        } else {
            b->item[j] = s->shop.items[below(st, s->shop.n_items)].id;
        }
        if ((c & 1) && below(st, 12) == 0) {
            b->type[j] = below(st, 2) ? CX_RETURN : CX_DISLIKE;
            b->val[j] = 1;
        } else {
            b->type[j] = pos[below(st, 7)];
            b->val[j] = b->type[j] == CX_RATING ? (float)below(st, 6)
                        : b->type[j] == CX_PURCHASE
                            ? (float)(1 + below(st, 3))
                            : 1.0f;
            if (!(c & 1) && b->type[j] != CX_RATING && shop_item)
                *even = (long)c;
        }
    }
    for (j = 0; j < BATCH; j++) {
        b->cust[j] = b->cid[j];
        /* Live traffic: about now, slightly out of order. */
        b->ts[j] = t0 + (int64_t)(b_no / 8) - (int64_t)below(st, 90);
    }
    return fresh;
}

/* Upsert three shop items (new prices and stock, categories kept) and
 * two brand new catalogued items. */
static void write_upsert(shared *s, uint64_t *st, size_t *n_up)
{
    const char *ids[3];
    double price[3];
    int stock[3];
    for (int j = 0; j < 3; j++) {
        ids[j] = s->shop.items[below(st, s->shop.n_items)].id;
        price[j] = (double)below(st, 10000) / 100.0;
        stock[j] = below(st, 10) != 0;
    }
    int rc = cx_items_upsert(s->e, 3, ids, NULL, price, stock, NULL, NULL);
    if (rc != CX_OK)
        flag(&s->f, F_INGEST, "cx_items_upsert(existing) -> %d: %s", rc,
             cx_errmsg(s->e));
    char nid[2][24];
    const char *nids[2], *cats[2], *tags[2] = {"eco,sale", ""};
    int64_t created[2];
    for (int j = 0; j < 2; j++) {
        snprintf(nid[j], 24, "iup%05zu", (*n_up)++);
        nids[j] = nid[j];
        cats[j] = s->shop.items[below(st, s->shop.n_items)].category;
        created[j] = (int64_t)time(NULL) - (int64_t)below(st, 86400);
    }
    rc = cx_items_upsert(s->e, 2, nids, cats, price, stock, created, tags);
    if (rc != CX_OK)
        flag(&s->f, F_INGEST, "cx_items_upsert(new) -> %d: %s", rc,
             cx_errmsg(s->e));
    atomic_fetch_add(&s->upserts, 1);
}

static void *write_loop(void *arg)
{
    shared *s = arg;
    uint64_t st = 0xC0FFEEull;
    batch *b = calloc(1, sizeof *b);
    int64_t t0 = (int64_t)time(NULL);
    size_t new_c = 0, new_i = 0, n_up = 0;
    long even = -1;
    const char *chan[BATCH];
    for (size_t j = 0; j < BATCH; j++)
        chan[j] = synth_channel_name((int)(j % 4));
    for (size_t no = 0; no < MAX_BATCHES && now_mono() < s->deadline; no++) {
        size_t fresh = make_batch(s, &st, b, no, new_c, new_i, t0, &even);
        if (no % 10 == 9) {
            /* A bad row in the middle: nothing of the batch may land. */
            float keep = b->val[BATCH / 2];
            b->val[BATCH / 2] = NAN;
            int rc = cx_ingest(s->e, BATCH, b->cust, b->item, b->type,
                               b->val, NULL, NULL);
            b->val[BATCH / 2] = keep;
            if (rc != CX_EINVAL)
                flag(&s->f, F_INGEST, "ingest with a NaN value -> %d", rc);
            atomic_fetch_add(&s->batches_bad, 1);
        }
        /* One batch in four is stamped by the library (time of call). */
        int rc = cx_ingest(s->e, BATCH, b->cust, b->item, b->type, b->val,
                           no % 4 == 1 ? NULL : b->ts,
                           no % 3 ? NULL : chan);
        if (rc != CX_OK) {
            flag(&s->f, F_INGEST, "batch %zu -> %d (%s): %s", no, rc,
                 cx_strerror(rc), cx_errmsg(s->e));
        } else {
            new_c += NEW_PER_BATCH;
            new_i += fresh;
            atomic_fetch_add(&s->acked, BATCH);
            atomic_fetch_add(&s->batches_ok, 1);
            atomic_store(&s->new_customers, new_c);
            atomic_store(&s->new_items, new_i);
            if (even >= 0)
                atomic_store(&s->last_even_customer, even);
            /* Freshness: a customer new in this batch already has a
             * vector (folded in now, or at ingest under CX_FOLD_EAGER). */
            char id[24];
            float x[FACTORS];
            int src = -1;
            new_customer_id(new_c - 1, id);
            int vrc = cx_customer_vector(s->e, id, x, FACTORS, &src);
            if (vrc != CX_OK)
                flag(&s->f, F_VECTOR, "new customer %s right after its "
                     "batch: cx_customer_vector -> %d (%s): %s", id, vrc,
                     cx_strerror(vrc), cx_errmsg(s->e));
            else if (src != 0 && src != 1)
                flag(&s->f, F_VECTOR, "new customer %s: source %d", id, src);
            else
                for (int d = 0; d < FACTORS; d++)
                    if (!isfinite(x[d])) {
                        flag(&s->f, F_VECTOR, "new customer %s: x[%d] = %g",
                             id, d, (double)x[d]);
                        break;
                    }
        }
        if (no % 25 == 12)
            write_upsert(s, &st, &n_up);
        struct timespec p = {0, WRITE_PAUSE_NS};
        nanosleep(&p, NULL);
    }
    free(b);
    atomic_store(&s->writer_done, 1);
    return NULL;
}

/* ================================================================= */
/* Trainers                                                          */
/* ================================================================= */

static void trained(shared *s, int rc, const char *how, double t0)
{
    long long us = (long long)((now_mono() - t0) * 1e6);
    atomic_fetch_add(&s->train_us_sum, us);
    long long m = atomic_load(&s->train_us_max);
    while (us > m && !atomic_compare_exchange_weak(&s->train_us_max, &m, us))
        ;
    atomic_fetch_add(&s->trains_done, 1);
    if (rc == CX_OK)
        atomic_fetch_add(&s->trains_ok, 1);
    else
        flag(&s->f, F_TRAIN, "%s -> %d (%s): %s", how, rc, cx_strerror(rc),
             cx_errmsg(s->e));
}

/* cx_train at 20% and 55% of the run; the second with Cholesky, which
 * calls OpenBLAS from the workers. */
static void *train_loop(void *arg)
{
    shared *s = arg;
    sleep_until(s->t_start + 0.20 * s->seconds);
    double t0 = now_mono();
    trained(s, cx_train(s->e, NULL, NULL), "cx_train", t0);
    int rc = cx_set_option(s->e, CX_OPT_SOLVER, CX_SOLVER_CHOLESKY);
    if (rc != CX_OK)
        flag(&s->f, F_STATUS, "cx_set_option(SOLVER) -> %d", rc);
    sleep_until(s->t_start + 0.55 * s->seconds);
    t0 = now_mono();
    trained(s, cx_train(s->e, NULL, NULL), "cx_train", t0);
    atomic_fetch_sub(&s->trainers_running, 1);
    return NULL;
}

/* Background trainings at 10% and 45%, racing the other trainer. */
static void *train_bg_loop(void *arg)
{
    shared *s = arg;
    for (int i = 0; i < 2; i++) {
        sleep_until(s->t_start + (i ? 0.45 : 0.10) * s->seconds);
        double t0 = now_mono();
        int rc = cx_train_start(s->e, NULL, NULL);
        if (rc != CX_OK)
            trained(s, rc, "cx_train_start", t0);
        else
            trained(s, cx_train_wait(s->e), "cx_train_wait", t0);
    }
    atomic_fetch_sub(&s->trainers_running, 1);
    return NULL;
}

/* ================================================================= */
/* The test                                                          */
/* ================================================================= */

static double stress_seconds(void)
{
    const char *v = getenv("CX_STRESS_SECONDS");
    double d = v ? strtod(v, NULL) : 3.0;
    if (!(d >= 0.2))
        d = 0.2;
    if (d > 600)
        d = 600;
    return d;
}

static void run_stress(int fold_mode)
{
    shared *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->f.mu, NULL);
    s->fold_mode = fold_mode;
    synth_config c;
    synth_config_default(&c, SHOP_SIGNALS);
    assert_int_equal(synth_generate(&c, &s->shop), 0);
    assert_int_equal(cx_open(&s->e, NULL, 0), CX_OK);
    tu_plain(s->e);
    cx_engine *e = s->e;
    TU_OK(e, tu_upsert_catalogue(e, &s->shop));
    TU_OK(e, tu_ingest_signals(e, &s->shop, 0, s->shop.n_signals, 1000));
    TU_OK(e, cx_set_option(e, CX_OPT_FACTORS, FACTORS));
    TU_OK(e, cx_set_option(e, CX_OPT_ITERATIONS, 4));
    TU_OK(e, cx_set_option(e, CX_OPT_THREADS, 2));
    TU_OK(e, cx_set_option(e, CX_OPT_FOLD_IN, fold_mode));
    TU_OK(e, cx_train(e, NULL, NULL));
    s->initial_signals = tu_stat(e, CX_STAT_SIGNALS);
    assert_int_equal(s->initial_signals, (int64_t)s->shop.n_signals);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION), 1);
    atomic_store(&s->last_even_customer, -1);

    s->seconds = stress_seconds();
    s->t_start = now_mono();
    s->deadline = s->t_start + s->seconds;
    s->hard_deadline = s->deadline + HARD_EXTRA_S;
    atomic_store(&s->trainers_running, 2);

    pthread_t rt[READERS], wt, tt[2];
    reader rd[READERS];
    for (int j = 0; j < READERS; j++) {
        rd[j] = (reader){.s = s, .id = j};
        assert_int_equal(pthread_create(&rt[j], NULL, read_loop, &rd[j]), 0);
    }
    assert_int_equal(pthread_create(&wt, NULL, write_loop, s), 0);
    assert_int_equal(pthread_create(&tt[0], NULL, train_loop, s), 0);
    assert_int_equal(pthread_create(&tt[1], NULL, train_bg_loop, s), 0);
    for (int j = 0; j < READERS; j++)
        assert_int_equal(pthread_join(rt[j], NULL), 0);
    assert_int_equal(pthread_join(wt, NULL), 0);
    assert_int_equal(pthread_join(tt[0], NULL), 0);
    assert_int_equal(pthread_join(tt[1], NULL), 0);
    double took = now_mono() - s->t_start;

    size_t calls = 0, rounds = 0, nonempty = 0, personal = 0;
    for (int j = 0; j < READERS; j++) {
        calls += rd[j].calls;
        rounds += rd[j].rounds;
        nonempty += rd[j].nonempty;
        personal += rd[j].personal;
    }
    int64_t folded = -1;
    cx_stat(e, CX_STAT_FOLDED_CUSTOMERS, &folded);
    int done = atomic_load(&s->trains_done);
    print_message("%s: %.1f s, %zu reader calls (%zu rounds; %zu/%zu "
                  "recommendations led by a personal item), %zu batches "
                  "(%zu signals) + %zu rejected, %zu upserts, %d/%d "
                  "trainings OK (wall time mean %.2f s, max %.2f s), %lld "
                  "customers folded in since the last model\n",
                  fold_mode == CX_FOLD_EAGER ? "eager" : "lazy", took, calls,
                  rounds, personal, nonempty, atomic_load(&s->batches_ok),
                  atomic_load(&s->acked), atomic_load(&s->batches_bad),
                  atomic_load(&s->upserts), atomic_load(&s->trains_ok),
                  done,
                  (double)atomic_load(&s->train_us_sum) / 1e6 /
                      (done ? done : 1),
                  (double)atomic_load(&s->train_us_max) / 1e6,
                  (long long)folded);

    size_t total_fails = 0;
    for (int k = 0; k < F_COUNT_KINDS; k++) {
        size_t n = atomic_load(&s->f.n[k]);
        if (n)
            print_error("  %zu %s failures\n", n, fail_name[k]);
        total_fails += n;
    }
    for (size_t m = 0; m < s->f.n_msg; m++)
        print_error("  %s\n", s->f.msg[m]);
    assert_int_equal(total_fails, 0);
    for (int j = 0; j < READERS; j++)
        assert_true(rd[j].rounds >= MIN_ROUNDS);
    assert_true(atomic_load(&s->batches_ok) > 0);

    /* Nothing acknowledged was lost, nothing rejected was kept. */
    assert_int_equal(tu_stat(e, CX_STAT_SIGNALS),
                     s->initial_signals + (int64_t)atomic_load(&s->acked));
    /* Every training that said CX_OK published exactly one model. */
    assert_int_equal(atomic_load(&s->trains_done), 4);
    assert_int_equal(tu_stat(e, CX_STAT_GENERATION),
                     1 + atomic_load(&s->trains_ok));
    assert_int_equal(tu_stat(e, CX_STAT_TRAINING), 0);

    /* Customers that got signals during the run have vectors: the last
     * new one, and a shop customer given positive signals. */
    char id[24];
    float x[FACTORS];
    int src = -1;
    new_customer_id(atomic_load(&s->new_customers) - 1, id);
    TU_OK(e, cx_customer_vector(e, id, x, FACTORS, &src));
    assert_true(src == 0 || src == 1);
    const char *items[TOPK];
    float scores[TOPK];
    int reasons[TOPK];
    size_t n = 0;
    TU_OK(e, cx_recommend(e, id, TOPK, NULL, items, scores, reasons, &n));
    assert_true(n > 0);
    assert_int_equal(reasons[0], CX_REASON_PERSONAL);
    long even = atomic_load(&s->last_even_customer);
    assert_true(even >= 0);
    synth_customer_id((uint32_t)even, id);
    TU_OK(e, cx_customer_vector(e, id, x, FACTORS, &src));
    assert_true(src == 0 || src == 1);

    cx_close(e);
    synth_free(&s->shop);
    pthread_mutex_destroy(&s->f.mu);
    free(s);
}

static void test_stress_lazy(void **state)
{
    (void)state;
    run_stress(CX_FOLD_LAZY);
}

static void test_stress_eager(void **state)
{
    (void)state;
    run_stress(CX_FOLD_EAGER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_lazy),
        cmocka_unit_test(test_stress_eager),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
