/* internal.h -- private types shared by the library's source files.
 * Nothing here is part of the API; names are cx__* and never exported. */
#ifndef CX_INTERNAL_H
#define CX_INTERNAL_H

#include "cxengine.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define CX_UNUSED(x) ((void)(x))
#define CX_NONE UINT32_MAX

/* ===================================================================== */
/* error.c                                                               */
/* ===================================================================== */

/* Record a formatted message for the calling thread on engine e and
 * return status, so failures read `return cx__fail(e, CX_EINVAL, ...)`. */
int cx__fail(const cx_engine *e, int status, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void cx__forget_errors(const cx_engine *e);

/* ===================================================================== */
/* ids.c: string id <-> dense index                                      */
/* ===================================================================== */

/* Strings live in an arena of chunks that never move, so pointers to ids
 * stay valid until the map is freed. */
typedef struct cx__chunk {
    struct cx__chunk *next;
    size_t used, cap;
    char data[];
} cx__chunk;

typedef struct cx__idmap {
    const char **str;   /* index -> id */
    uint32_t *hash;     /* index -> hash, kept for cheap rehashing */
    uint32_t n, cap;
    uint32_t *slot;     /* open addressing: index + 1, 0 = empty */
    uint32_t nslot;     /* power of two */
    cx__chunk *chunks;
} cx__idmap;

void cx__idmap_free(cx__idmap *m);
/* Index of s, or CX_NONE. */
uint32_t cx__idmap_find(const cx__idmap *m, const char *s);
/* Make room for `ids` more ids totalling `bytes` bytes, so that the next
 * cx__idmap_add calls within that budget cannot fail. */
int cx__idmap_reserve(cx__idmap *m, size_t ids, size_t bytes);
/* The same as a plan (see cx__plan), for a map readers are using. */
struct cx__plan;
int cx__idmap_plan(cx__idmap *m, size_t ids, size_t bytes,
                   struct cx__plan *p);
/* Index of s, inserting it if new (*added = 1).  Must be preceded by a
 * sufficient reserve; never fails then. */
uint32_t cx__idmap_add(cx__idmap *m, const char *s, int *added);
/* Index of s in m, or the index it will get once added: ids new to m are
 * numbered from m->n in the order they are first seen here (as
 * cx__idmap_add numbers them), and collected in `fresh` (reserved). */
uint32_t cx__idmap_will_be(const cx__idmap *m, cx__idmap *fresh,
                           const char *s);
/* Forgotten ids (cx_forget): index i keeps its place with the id "",
 * which no lookup matches; kill zeroes the old bytes (the write lock
 * held), add_dead appends such an index (after a reserve). */
void cx__idmap_kill(cx__idmap *m, uint32_t i);
uint32_t cx__idmap_add_dead(cx__idmap *m);
uint32_t cx__hash_str(const char *s);
/* Validate an id: non-NULL, 1..CX_MAX_ID_LEN bytes.  Returns its length
 * or 0 when invalid. */
size_t cx__id_len(const char *s);

/* ===================================================================== */
/* Engine state                                                          */
/* ===================================================================== */

typedef struct cx__options {
    int factors, iterations, solver, cg_steps, threads, candidates, fold_in;
    int loyal_purchases;
    int sync, sync_interval;     /* data directory: policy, ms */
    int refresh_interval;        /* read-only engines: ms, 0 = off */
    double lapsed_after;
    double regularization, alpha, half_life, init_scale;
    double trend_half_life, pop_half_life;
    uint64_t seed;
    double weight[CX_MAX_SIGNAL_TYPES];
    /* The blend (hybrid.c): component weights and the re-buy share
     * from which an item counts as consumable. */
    double blend_als, blend_pop, blend_rep, blend_co, consumable;
} cx__options;

/* One ingested signal.  Dense indexes, 24 bytes. */
typedef struct cx__event {
    uint32_t cust, item;
    int64_t ts;
    float value;
    uint8_t type, channel;
    uint16_t pad;
} cx__event;

enum { CX__ITEM_IN_STOCK = 1, CX__ITEM_REMOVED = 2, CX__ITEM_CATALOGUED = 4 };

/* The customer-free lists.  Each ranks the items with a positive key:
 * popular and trending by their decayed popularity, new arrivals by the
 * created_at of catalogued items. */
enum { CX__LIST_POPULAR = 0, CX__LIST_TRENDING = 1, CX__LIST_NEW = 2,
       CX__LISTS = 3 };
#define CX__TOP_M 512

/* Item-side CSR, the transpose of the customer side. */
typedef struct cx__csr {
    uint32_t rows;
    uint64_t *ptr;      /* rows + 1 */
    uint32_t *idx;      /* column */
    float *conf;        /* signed confidence: > 0 means p = 1 */
    uint32_t *mask;     /* CX_TYPE_BIT of every signal type seen */
} cx__csr;

/* A trained model.  Immutable once published. */
typedef struct cx__model {
    int k;
    uint32_t n_users, n_items;
    float *X, *Y;          /* n_users x k, n_items x k */
    uint8_t *has_vec;      /* per user: trained from >= 1 positive pair */
    float *inv_norm;       /* per item: 1 / |y|, 0 for a zero vector */
    /* 4-bit copy of Y for the fast scan (cx__q4_at): item i's code c in
     * -CX__YMAX..CX__YMAX for y[d] ~ c * q_scale[i], stored as the
     * nibble c + 8.  kq = k rounded up to 8; n_items rounded up to 8;
     * padding holds code 0. */
    int kq;
    uint8_t *Yq;
    float *q_scale;        /* per item: max|y| / CX__YMAX */
    float *q_cos_scale;    /* q_scale * inv_norm, for cosine */
    cx__csr ui;            /* customer x item pairs the model saw */
    uint64_t n_events;     /* events [0, n_events) were trained on */
    int64_t seq_end;       /* data directory: signals with seq < seq_end */
    double loss;
    /* Fold-in: the Gram matrices Y'Y + lambda I and X'X + lambda I (k x k,
     * double), and the options and time reference the model was trained
     * with, so a fold-in solves the same problem as training did. */
    double *Gy, *Gx;
    cx__options opt;
    int64_t ts_ref;
    /* Loaded from a snapshot: X, Y, has_vec, ui and Gy point into these
     * read-only shared mappings of its files (unmapped, not freed). */
    int mapped;
    void *map[8];
    size_t map_len[8];
    /* The blend's item statistics of this model's training signals,
     * built by the first blended request (hybrid.c); freed with it. */
    _Atomic(struct cx__hstats *) hstats;
    /* Seed items' neighbour lists for this model (rank.c), made by the
     * first request that wants one; freed with it. */
    _Atomic(struct cx__nbrs *) nbrs;
} cx__model;

/* A customer's fold-in vector.  Immutable once published in the fold
 * table; replaced ones go to the retired list until no reader can hold
 * them (the next time a writer holds the engine lock). */
typedef struct cx__fold {
    struct cx__fold *next;   /* retired list */
    uint32_t last_ev;        /* the customer's newest event it includes */
    uint32_t has_vec;        /* 0: no positive signal, x is unused */
    float x[];
} cx__fold;

#define CX__FOLD_PAGE 1024   /* customers per fold-table page */

/* Writers grow reader-visible arrays outside the engine lock: the copy is
 * made while holding only the writer mutex (so the contents cannot
 * change), the new pointers are published under the write lock, and the
 * old arrays freed after it is released. */
typedef struct cx__plan {
    int n, failed;
    struct {
        void **where;
        void *fresh, *old;
        int keep_old;        /* the old value is not to be freed */
    } g[40];
    int ncap;
    struct {
        void *where;
        int size;            /* 4 or 8 bytes */
        uint64_t value;
    } cap[16];
} cx__plan;

/* Allocate `new_bytes` for *where, copy its first `used_bytes`, zero the
 * rest; published by cx__plan_commit.  Returns the new array or NULL. */
void *cx__plan_array(cx__plan *p, void **where, size_t used_bytes,
                     size_t new_bytes);
/* Publish `fresh` into *where at commit without freeing the old value. */
void cx__plan_link(cx__plan *p, void **where, void *fresh);
/* Set a 4- or 8-byte capacity at commit. */
void cx__plan_cap(cx__plan *p, void *where, int size, uint64_t value);
/* Under the write lock: swap everything in. */
void cx__plan_commit(cx__plan *p);
/* After the lock: free the old arrays (committed) or the new ones (not). */
void cx__plan_release(cx__plan *p, int committed);
/* The same, for a writer of engine e (keeps a pinned event array). */
void cx__plan_release_e(cx_engine *e, cx__plan *p, int committed);

struct cx_engine {
    /* The engine lock (see cx__rdlock): readers count themselves in;
     * a writer raises `writer` and waits for the count to drain. */
    atomic_int readers, writer;
    pthread_mutex_t wmu;     /* serialises writers */
    pthread_mutex_t train_mu;/* one training at a time */
    cx__options opt;
    char *type_name[CX_MAX_SIGNAL_TYPES]; /* custom names, owned */

    cx__idmap customers, items, categories, channels, tagsets;

    /* Catalogue, one column per item field, indexed by item. */
    size_t item_cap;
    uint32_t *item_cat;
    double *item_price;
    uint8_t *item_flags;
    int64_t *item_created;
    uint32_t *item_tags;     /* index into tagsets, CX_NONE = no tags */
    /* Live popularity: sum of positive strengths * 2^((ts - t0) / h),
     * for the popular and the trending half-life (no decay: h = 0). */
    double *item_pop, *item_trend;
    int64_t pop_t0, trend_t0;
    uint32_t *item_last;     /* newest event of each item */
    uint32_t *item_xslot;    /* fold-in slot of the item, or CX_NONE */
    int64_t created_max;     /* the newest created_at in the catalogue */
    /* The best items of the customer-free lists (live.c), kept by
     * writers so a list call reads CX__TOP_M items, not the catalogue. */
    struct cx__top {
        uint32_t n;          /* members */
        int valid;           /* 0: rebuild before use */
        double lo;           /* (lo, lo_item) ranks at or below every */
        uint32_t lo_item;    /* member; lo = -inf when unknown */
        uint32_t member[CX__TOP_M];
        uint32_t slot[2 * CX__TOP_M]; /* item -> member, linear probing */
    } top[CX__LISTS];
    struct cx__catidx *catidx; /* items by category (catalog.c), or NULL */
    /* The event index (evidx.c), made by the first reader that needs
     * it; replaced ones wait on evidx_retired (under retire_mu) for the
     * next write lock. */
    _Atomic(struct cx__evidx *) evidx;
    struct cx__evidx *evidx_retired;
    pthread_mutex_t evidx_mu;

    /* Signals, in arrival order, with a newest-first chain per customer
     * and per item. */
    cx__event *ev;
    uint32_t *ev_prev;       /* previous event of the same customer */
    uint32_t *ev_iprev;      /* previous event of the same item */
    size_t n_ev, ev_cap;
    /* A training reads ev[0, n) without a copy: the array it started on
     * is kept alive through growth (writers skip freeing it and set
     * ev_orphan; the training frees it at the end). */
    cx__event *ev_pinned;
    int ev_orphan;
    uint32_t *cust_last;     /* newest event of each customer */
    size_t cust_cap;
    int64_t ts_max;

    cx__model *model;        /* NULL until trained */
    int64_t generation;

    /* Customer fold-ins for the current model: a table of pages of
     * atomic pointers (pages never move, so readers can publish into
     * them), and the list of replaced entries. */
    void **fold_pages;       /* _Atomic(cx__fold *) [CX__FOLD_PAGE] each */
    size_t fold_npages, fold_cap;
    pthread_mutex_t retire_mu;
    cx__fold *retired;
    atomic_long n_folded;

    /* Item fold-ins for the current model, by slot. */
    float *xv;               /* xv_cap x k */
    float *xv_inv_norm;
    uint32_t *xv_item;
    uint32_t xv_n;
    size_t xv_cap;

    /* Experiments (experiment.c): an immutable table replaced as a
     * whole by cx_experiment_define / cx_variant_set under the write
     * lock; exposure counters are atomics inside it. */
    struct cx__experiments *exps;

    /* The data directory (db.c), or NULL for an in-memory engine. */
    struct cx__db *db;
    /* The engine image mapped at open (image.c), or NULL: some of the
     * arrays above may point into it until they grow. */
    struct cx__image *image;

    /* Background training. */
    pthread_t bg;
    pthread_mutex_t bg_mu;   /* guards the bg_* fields */
    int bg_started, bg_status;
    atomic_int cancel;
    cx_progress_fn bg_progress;
    void *bg_user;
    char bg_msg[512];
    atomic_int training;
};

/* catalog.c: the items of each category, so a ranking confined to one
 * category reads only its items.  Built by writers (under the writer
 * mutex) and swapped in under the write lock; readers use it under the
 * read lock.  Items created since the build (the tail) and items whose
 * category changed since (the moved list, filled under the write lock)
 * are found without a rebuild; a rebuild happens when either outgrows a
 * bound, so a catalogue change costs amortised O(1). */
#define CX__CATIDX_MOVED 256
typedef struct cx__catidx {
    uint32_t n_items;        /* items [0, n_items) are in the buckets */
    uint32_t n_cats;         /* categories [0, n_cats) have a bucket */
    uint32_t *start;         /* bucket c is item[start[c], start[c + 1]) */
    uint32_t *item;          /* ascending within a bucket */
    uint32_t *cat;           /* each indexed item's category at the build */
    uint32_t n_moved;        /* moved items, at most CX__CATIDX_MOVED */
    int stale;               /* the moved list overflowed: do not use */
    uint32_t moved[CX__CATIDX_MOVED];
} cx__catidx;
/* Writer: rebuild the index if it is missing, stale or its tail or moved
 * list is long; keeps the old one on failure (it stays correct). */
void cx__catidx_refresh(cx_engine *e);
void cx__catidx_free(cx__catidx *x);
/* Writer, under the write lock: item i's category becomes c. */
void cx__catidx_set(cx_engine *e, uint32_t i, uint32_t c);
/* Reader: the items of category c (in no particular order) into *out
 * (malloc'ed), *n of them; 0 on success, -1 if the index cannot answer
 * or the category holds more than `limit` items (scan everything then),
 * CX_ENOMEM. */
int cx__catidx_items(const cx_engine *e, uint32_t c, size_t limit,
                     uint32_t **out, size_t *n);
/* Reader: at most how many items category c holds (SIZE_MAX without an
 * index).  A ranking confined to a category scores only its items when
 * this is at most items / CX__CATEGORY_SCAN_SHARE: an exact gathered dot
 * costs several fast scan steps (bench_rank). */
size_t cx__catidx_size(const cx_engine *e, uint32_t c);
#define CX__CATEGORY_SCAN_SHARE 8

/* engine.c */
void cx__options_default(cx__options *o);
/* Options by key (CX_OPT_*, weights included): the bounds check with its
 * message, the store into an options struct (a checked key and value),
 * and whether a key names an option at all. */
int cx__option_check(const cx_engine *e, int key, double v);
void cx__option_put(cx__options *o, int key, double v);
int cx__option_key_valid(int key);
/* Every option key (weights included) into keys[], and the value of one
 * in an options struct. */
#define CX__MAX_OPTION_KEYS (64 + CX_MAX_SIGNAL_TYPES)
int cx__option_keys(int *keys);
double cx__option_get(const cx__options *o, int key);
void cx__model_free(cx__model *m);
/* A zeroed array of `bytes` for a large array that requests scan (the
 * 4-bit item factors), on 2 MiB pages where the kernel grants them (THP
 * "always" or "madvise"); small pages otherwise.  Freed with free(). */
void *cx__alloc_big(size_t bytes);
/* Grow *p (malloc'ed or inside a mapped image) to hold `need` elements. */
int cx__grow(void **p, size_t *cap, size_t need, size_t elem);
/* free() for an engine array, which may instead point into a mapped
 * engine image (image.c): those are left alone (unmapped at close). */
void cx__free_array(void *p);
int cx__image_holds(const void *p);
/* Plan room for n more items / customers / events in the per-index
 * columns (see cx__plan).  CX_ENOMEM when an allocation fails. */
int cx__plan_items(cx_engine *e, size_t n, cx__plan *p);
int cx__plan_customers(cx_engine *e, size_t n, cx__plan *p);
int cx__plan_events(cx_engine *e, size_t n, cx__plan *p);
/* Plan and publish at once, for an engine no other thread can see. */
int cx__reserve_items(cx_engine *e, size_t n);
int cx__reserve_customers(cx_engine *e, size_t n);
/* Initialise a new item's catalogue columns to the defaults. */
void cx__item_init(cx_engine *e, uint32_t i);
/* Take the write lock, free what readers may still have held (retired
 * fold-ins), and release it. */
void cx__wrlock(cx_engine *e);
void cx__wrunlock(cx_engine *e);
/* Readers: share the engine with other readers. */
void cx__rdlock(const cx_engine *e);
void cx__rdunlock(const cx_engine *e);

/* forget.c: drop the events of the customers in gone[] from memory
 * (compacting the event arrays, and ev_seq alongside when not NULL),
 * kill their ids and rebuild popularity; *n_trained receives how many of
 * the model's training events remain.  Writer mutex held, no training
 * running. */
int cx__forget_memory(cx_engine *e, const uint8_t *gone, int64_t *ev_seq,
                      size_t *n_trained);

/* profile.c: the profile of customer u (CX_NONE: a new visitor), with
 * the read lock held by the caller; price_level is left 0. */
int cx__profile(const cx_engine *e, uint32_t u, int64_t now,
                cx_profile *out);

/* experiment.c */
void cx__experiments_free(struct cx__experiments *x);
/* Apply the CX_OPT_* overrides (signal weights included) that a variant
 * carries to *o; CX_ENOTFOUND for an unknown experiment or variant,
 * CX_EINVAL/CX_ERANGE for an override out of bounds.  The caller holds
 * the writer mutex or the read lock. */
int cx__variant_options(cx_engine *e, const char *experiment,
                        const char *variant_name, cx__options *o);

/* ===================================================================== */
/* live.c: fold-in, live popularity, item fold-in                        */
/* ===================================================================== */

/* Add a signal's positive strength s at time ts to the live popularity
 * of item i (under the write lock; the arrays were planned). */
void cx__pop_add(cx_engine *e, uint32_t i, double s, int64_t ts);
/* Plan rescaled popularity arrays if signals up to ts_max would push the
 * scale factor out of range. */
int cx__pop_plan(cx_engine *e, int64_t ts_max, cx__plan *p,
                 int64_t *t0_pop, int64_t *t0_trend);
/* Under the write lock, with the planned arrays committed: the new
 * reference times cx__pop_plan chose (popular, trending). */
void cx__pop_set_t0(cx_engine *e, const int64_t t0[2]);
/* Recompute the popularity arrays from the events (half-life change,
 * load); publishes under the write lock. */
int cx__pop_rebuild(cx_engine *e);
/* Top sets (writers, under the write lock unless the engine is not yet
 * shared): item i's key for `list` rose, or may have fallen (the set is
 * rebuilt before the next use), or every key was rescaled. */
void cx__top_bump(cx_engine *e, int list, uint32_t i);
void cx__top_drop(cx_engine *e, int list, uint32_t i);
void cx__top_rescaled(cx_engine *e, int list);
/* Writer: rebuild the sets that need it from the item columns (the
 * writer mutex held, not the engine lock). */
void cx__top_refresh(cx_engine *e);
/* Reader: the members of list's top set, or NULL when it cannot answer;
 * every item outside it ranks below every member. */
const uint32_t *cx__top_items(const cx_engine *e, int list, size_t *n);
/* Live score of item i now (at the newest signal time). */
double cx__pop_score(const cx_engine *e, uint32_t i, int trending);

/* The Gram matrices and fold-in state of a freshly trained model. */
int cx__model_prepare_fold(cx__model *m, const cx__options *o,
                           int64_t ts_ref);
/* A reader's customer vector: the model row, a fresh fold-in from the
 * table, or one computed now (and published).  NULL if the customer has
 * no vector.  *tmp receives an unpublished fold-in the caller frees (or
 * NULL).  Needs the read lock. */
const float *cx__customer_vec(cx_engine *e, uint32_t u, int *folded,
                              cx__fold **tmp);
/* A reader's item vector: model row or fold-in slot; NULL if none. */
const float *cx__item_vec(const cx_engine *e, uint32_t i, float *inv_norm);
/* Fold-in from explicit (item, strength) pairs: the anonymous session.
 * Returns CX_OK with *has_vec = 0 when no pair is usable. */
int cx__fold_pairs(const cx_engine *e, const cx__model *m,
                   const uint32_t *items, const double *r, size_t n,
                   float *x, int *has_vec);
/* Writer side, after a batch is published (writer mutex held, engine
 * lock not held): fold in the batch's items without trained vectors and,
 * in eager mode, its customers. */
int cx__fold_after_ingest(cx_engine *e, size_t ev_from);
/* Plan an empty item fold-in state for a new model (the caller swaps in
 * a new customer fold-in table and re-folds what the model has not seen
 * with cx__fold_after_ingest). */
int cx__fold_plan_reset(cx_engine *e, cx__plan *p);
void cx__fold_free_table(void **pages, size_t npages);
void cx__retire(cx_engine *e, cx__fold *f);
/* The event index (evidx.c): its lists, newest first, cover events
 * [0, n_cov).  cx__evidx_get makes it when there is none or it is stale
 * (with the read lock held; NULL only without memory for a first one);
 * cx__evidx_drop retires it (cx_forget renumbered the events, write lock
 * held); cx__evidx_free frees a list of them. */
struct cx__evidx {
    struct cx__evidx *next;  /* the retired list */
    uint32_t n_cov, n_items, n_cust;
    uint32_t *start, *cust;  /* item i's basket customers: cust[start[i],
                                start[i + 1]) */
    uint32_t *cstart, *item; /* customer u's basket items, the same way */
    uint32_t *wstart, *wev;  /* customer u's events, if u has at least
                                CX__WALK_MIN of them (else none) */
};
#define CX__WALK_MIN 32
const struct cx__evidx *cx__evidx_get(const cx_engine *e);
void cx__evidx_drop(cx_engine *e);
void cx__evidx_free(struct cx__evidx *x);

/* A customer's events, newest first, as their chain gives them, read
 * from the event index where it lists them (no step waits for the one
 * before; the events are asked for CX__WALK_AHEAD ahead).  Needs the read
 * lock.  for (cx__walk_init(&w, e, u); (ev = cx__walk_next(&w)) !=
 * CX_NONE;) ... */
typedef struct cx__walk {
    const cx_engine *e;
    uint32_t ev, cov;          /* the chain, while ev >= cov */
    const uint32_t *at, *end;  /* then the index's list */
} cx__walk;
#define CX__WALK_AHEAD 16
void cx__walk_init(cx__walk *w, const cx_engine *e, uint32_t u);
static inline uint32_t cx__walk_next(cx__walk *w)
{
    uint32_t ev = w->ev;
    if (ev != CX_NONE) {
        if (ev >= w->cov || w->at == w->end) {
            w->ev = w->e->ev_prev[ev];
            return ev;
        }
        w->ev = CX_NONE; /* the rest is the list's */
    }
    if (w->at == w->end)
        return CX_NONE;
    if (w->end - w->at > CX__WALK_AHEAD)
        __builtin_prefetch(&w->e->ev[w->at[CX__WALK_AHEAD]]);
    return *w->at++;
}
/* Purchases and add-to-carts: the basket signals (bought-together rows,
 * the blend's co-bought term, the event index). */
#define CX__BASKET (CX_TYPE_BIT(CX_PURCHASE) | CX_TYPE_BIT(CX_ADD_TO_CART))
static inline int cx__basket(int type)
{
    return (CX__BASKET >> type) & 1;
}
/* Contribution of one signal to r, before decay. */
double cx__signal_strength(const cx__options *o, const cx__event *ev);
/* Types whose signal means "never show this again": return, dislike and
 * any type with a negative weight.  A pair with one of them, or with a
 * net negative r, is never recommended back to the customer. */
unsigned cx__negative_types(const cx__options *o);

/* ===================================================================== */
/* als.c                                                                 */
/* ===================================================================== */

/* What training reads: a set of events over dense indexes. */
typedef struct cx__train_input {
    const cx__event *ev;
    size_t n_ev;
    const uint8_t *keep;    /* NULL = all events; else keep[i] != 0 */
    uint32_t n_users, n_items;
    int64_t ts_ref;         /* "now" for time decay */
    atomic_int *cancel;     /* NULL, or stop when it becomes non-zero */
} cx__train_input;

/* Signed confidence of a pair with net strength r (see cxengine.h). */
float cx__confidence(double r, double alpha);
/* Time-decay factor of a signal at ts seen from ref. */
double cx__decay(const cx__options *o, int64_t ref, int64_t ts);

/* Build the customer x item CSR (signed confidences, type masks). */
int cx__build_pairs(const cx__train_input *in, const cx__options *o,
                    cx__csr *ui);
void cx__csr_free(cx__csr *c);
int cx__csr_transpose(const cx__csr *a, uint32_t cols, cx__csr *t);

/* Train a model.  *out is NULL on failure; `e` only receives the error. */
int cx__train_model(const cx_engine *e, const cx__train_input *in,
                    const cx__options *o, cx_progress_fn progress,
                    void *user, cx__model **out);
/* Publish model m, trained on events [0, n), as the engine's model: the
 * caller holds train_mu and no other lock; m is taken in every case.
 * gen 0: a new generation (saved as a snapshot in a data directory);
 * otherwise snapshot generation gen that a read-only engine loaded. */
int cx__model_publish(cx_engine *e, cx__model *m, size_t n, int64_t gen);
/* Derived serving data (norms, 4-bit copy) from X and Y. */
int cx__model_finish(cx__model *m);
void cx__nbrs_free(struct cx__nbrs *t);

/* Solvers, exposed for the tests' reference comparisons.  Solve one row:
 * x = argmin over the pairs (idx, conf) against factors F (n x k) with the
 * Gram matrix G = F'F + lambda I (k x k, full). */
void cx__solve_cg(const float *G, const float *F, int k, const uint32_t *idx,
                  const float *conf, size_t n, int steps, float *x,
                  float *scratch /* 3k + 2n */);
int cx__solve_cholesky(const float *G, const float *F, int k,
                       const uint32_t *idx, const float *conf, size_t n,
                       float *x, float *scratch /* k*k + k + 128*(k+1) + n */);
/* Uniform [0, scale) initial factors that depend only on (seed, side,
 * row): side 0 = customers, 1 = items. */
void cx__init_factors(float *F, uint32_t rows, int k, uint64_t seed,
                      uint64_t side, double scale);
/* The implicit-library loss of (X, Y) on ui, normalised. */
double cx__loss(const cx__csr *ui, const float *X, const float *Y,
                uint32_t n_users, uint32_t n_items, int k, double lambda);

/* ===================================================================== */
/* kernels.c: SIMD inner loops with run-time dispatch                    */
/* ===================================================================== */

#define CX__QN 4     /* queries of one scores_qn call */
#define CX__QMAX 127 /* |a query's int8 values| (scores_qn) */
#define CX__YMAX 7   /* |an item's 4-bit codes| (cx__model.Yq) */

/* The byte of the 4-bit item copy that holds item i, dimension d, and
 * the shift of its nibble: blocks of 8 items, in them runs of 32 bytes
 * for 8 dimensions, in which item j's bytes are 4j..4j+3 and byte 4j+e
 * holds dimension 8c+e in its low nibble and 8c+4+e in its high one
 * (c: the run).  A 32-bit lane of a run is one item: the kernel's
 * lanes are the block's items. */
static inline uint8_t *cx__q4_at(uint8_t *Yq, int kq, size_t i, int d,
                                 int *shift)
{
    *shift = d % 8 < 4 ? 0 : 4;
    return Yq + (i / 8) * (size_t)kq * 4 + (size_t)(d / 8) * 32 +
           (i % 8) * 4 + (size_t)(d % 4);
}

/* Item i's code for dimension d. */
static inline int cx__q4_get(const uint8_t *Yq, int kq, size_t i, int d)
{
    int sh;
    const uint8_t *p = cx__q4_at((uint8_t *)Yq, kq, i, d, &sh);
    return (*p >> sh & 15) - 8;
}

/* Set item i's code for dimension d to c (|c| <= CX__YMAX). */
static inline void cx__q4_put(uint8_t *Yq, int kq, size_t i, int d, int c)
{
    int sh;
    uint8_t *p = cx__q4_at(Yq, kq, i, d, &sh);
    *p = (uint8_t)((*p & (0xf0 >> sh)) | (c + 8) << sh);
}

/* One query of the 4-bit kernel (scores_qn). */
typedef struct cx__qn {
    const int8_t *xq;
    float qs;
    const float *scale;
    const float *bias; /* NULL: none */
    float bias_w;
    float *out;
} cx__qn;

typedef struct cx__kernels {
    float (*dot)(const float *a, const float *b, int k);
    void (*axpy)(float a, const float *x, float *y, int k);
    /* out = G x for a full symmetric k x k G */
    void (*symv)(const float *G, const float *x, float *out, int k);
    /* out[j] = dot(rows[j], x) * (scale ? scale[j] : 1) for j < n */
    void (*scores)(const float *rows, const float *x, int k, size_t n,
                   const float *scale, float *out);
    /* out[j] = dot(F[idx[j]], x) for j < n: rows gathered by index */
    void (*gdots)(const float *F, const uint32_t *idx, size_t n, int k,
                  const float *x, float *out);
    /* out += sum_j coef[j] F[idx[j]] */
    void (*gaxpys)(const float *F, const uint32_t *idx, const float *coef,
                   size_t n, int k, float *out);
    /* Approximate scores from the 4-bit block layout (cx__q4_at) for
     * blocks [b0, b0 + nb), nq <= CX__QN queries at once: query q's
     * out[j] = idot(j) * qs * scale[i] (+ bias_w * bias[i] with a bias),
     * item i = 8 b0 + j, where the item codes span -CX__YMAX..CX__YMAX
     * and the query's -CX__QMAX..CX__QMAX (cx__quantize); scale and bias
     * are read for whole blocks.  Each load of factors serves every query, so a
     * pass over factors in memory does their arithmetic while it waits
     * for the next lines. */
    void (*scores_qn)(const uint8_t *Yq, int kq, size_t b0, size_t nb,
                      size_t nq, const struct cx__qn *q);
    /* Indexes of the v[j] > lim, j < n, into out; returns their count. */
    size_t (*above)(const float *v, size_t n, float lim, uint32_t *out);
    /* The same, of those with cat[j] == c only. */
    size_t (*above_in)(const float *v, const uint32_t *cat, size_t n,
                       float lim, uint32_t c, uint32_t *out);
    /* Fold-in: A += sum_j (|c_j| - 1) y_j y_j' (upper triangle of the
     * row-major k x k double A) and b += sum_{c_j > 0} c_j y_j. */
    void (*fold_update)(double *A, double *b, int k, const float *const *y,
                        const float *c, size_t n);
    /* Solve A x = b in place (x into b) by Cholesky on the upper triangle
     * (A is destroyed).  Non-zero if A is not positive definite. */
    int (*chol_solve)(double *A, double *b, int k);
    const char *name;
} cx__kernels;

extern cx__kernels cx__k;
void cx__kernels_init(void);

/* ===================================================================== */
/* rank.c                                                                */
/* ===================================================================== */

typedef struct cx__hit {
    float score;
    uint32_t item;
} cx__hit;

/* A min-heap of the best n hits seen. */
typedef struct cx__topk {
    cx__hit *h;
    size_t n, cap;
} cx__topk;

void cx__topk_push(cx__topk *t, float score, uint32_t item);
/* Sort the heap's hits best first (destroys the heap order). */
void cx__topk_sort(cx__topk *t);
/* Keep the best `keep` (< n) of h[0..n) in h[0..keep), in no order, as
 * the heap ranks them (higher score, then lower item); returns the
 * smallest kept score. */
float cx__select_best(cx__hit *h, size_t n, size_t keep);

/* Top-k of x' Y over model items, best first, for evaluation: excludes
 * the sorted list `skip`.  Returns the count. */
size_t cx__rank_exact(const cx__model *m, const float *x, size_t k,
                      const uint32_t *skip, size_t n_skip, cx__hit *out);

/* A customer's exclusions made once for the ranking calls of one request
 * (a layout's rows each made them again: for a customer with 2,000 items
 * a sort each time).  cx__skip_make: customer u's under opts' exclude
 * (*out NULL for u CX_NONE); the calls below take it as `lent` (or NULL)
 * and use it when it is u's under their own exclusions. */
typedef struct cx__skip cx__skip;
int cx__skip_make(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                  cx__skip **out);
void cx__skip_free(cx__skip *s);

/* Which of items[0..n) opts' rules (allow and deny lists, stock,
 * category) and customer u's exclusions under `exclude` let through,
 * never `self`: pass[j] = 0 or 1.  The read lock is held by the caller. */
int cx__rank_filter(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                    const cx__skip *lent, unsigned exclude, uint32_t self,
                    const uint32_t *items, size_t n, uint8_t *pass);
/* Several vectors ranked in one pass over the factors: query j ranks by
 * q[j].x (cosine: a unit item vector, items scored by cosine) with opts'
 * rules and customer u's exclusions, in category q[j].cat (CX_NONE: any),
 * never q[j].self, into q[j].out[0..q[j].k), setting q[j].n: the same hits
 * as cx__rank_hits with pool set, one query at a time (a layout row is a
 * pool: it shows a third of them), except that a category is ranked as
 * the fast scan ranks (4-bit candidates re-ranked exactly) where
 * cx__rank_hits reads a small category's items exactly.  Queries with the
 * same x and cosine share their 4-bit scores.  The read lock is held by
 * the caller. */
typedef struct cx__rank_q {
    const float *x;
    int cosine;
    uint32_t self, cat;
    size_t k, n;
    cx__hit *out;
} cx__rank_q;
int cx__rank_multi(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                   const cx__skip *lent, cx__rank_q *q, size_t nq);
/* rank.c, for layouts and the blend: the best k items, best first, into
 * out (*n of them), under opts' rules, for the customer u (their
 * exclusions; CX_NONE for none) scored by x (cosine: x is a unit item
 * vector), or with x NULL the list `list` (0 popular, 1 trending, 2 new
 * arrivals); cat restricts to one category (CX_NONE: opts' own), self is
 * excluded.  pool: a pool of candidates that the caller chooses from or
 * scores again, so the 4-bit scan keeps 1.5 k + 32 candidates for the
 * exact re-rank instead of CX_OPT_CANDIDATES * k, and the pool's members
 * are the best k up to the 4-bit scores' error at its edge.  The read lock is
 * held by the caller. */
int cx__rank_hits(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                  const cx__skip *lent, const float *x, int cosine,
                  int list, uint32_t cat, uint32_t self, size_t k, int pool,
                  cx__hit *out, size_t *n);
/* The pool of the best k by x . y_i + w * bias[i] (bias[i] = 0 for
 * i >= n_bias), for the blend: one pass finds the items best by their ALS
 * score and popularity prior together.  n_bias is at least the model's
 * item count rounded up to 8 (the 4-bit kernel reads whole blocks). */
int cx__rank_biased(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                    const cx__skip *lent, const float *x, const float *bias,
                    size_t n_bias, float w, size_t k, cx__hit *out,
                    size_t *n);

/* For layouts: several customer-free lists in one pass over the items.
 * Each request asks for the best k of list (0 popular, 1 trending, 2 new
 * arrivals, scored as age in days) in category cat (CX_NONE: any) into
 * out[], and receives n; opts' rules and customer u's exclusions apply
 * (opts' category does not).  The read lock is held by the caller. */
typedef struct cx__list_req {
    int list;
    uint32_t cat;
    size_t k, n;
    cx__hit *out;
} cx__list_req;
int cx__rank_lists(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                   const cx__skip *lent, cx__list_req *req, size_t nreq);

/* Diversify hits sorted best first, in place, keeping at most `keep`:
 * a cap per category (item_cat[], ncat categories) and MMR with trade-off
 * lambda over the item vectors of e (current, fold-ins included) or, with
 * e NULL, of model m.  Returns the count kept. */
size_t cx__diversify(const cx_engine *e, const cx__model *m,
                     const uint32_t *item_cat, size_t ncat, cx__hit *h,
                     size_t n, size_t keep, size_t cat_cap, double lambda);

/* Quantize a query to int8 for the fast scan (|values| <= CX__QMAX, kq
 * values, zeros past k); returns its scale. */
float cx__quantize(const float *x, int k, int kq, int8_t *xq);

/* ===================================================================== */
/* misc                                                                  */
/* ===================================================================== */

/* store.c: the file format's 64-bit checksum. */
uint64_t cx__checksum(const void *p, size_t n);

/* splitmix64: seeds, and reproducible initialisation. */
static inline uint64_t cx__mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int cx__ncpu(void);
int cx__cmp_u32(const void *a, const void *b);

#endif /* CX_INTERNAL_H */
