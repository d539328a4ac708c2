/* quality.h -- private: the blend's item statistics and scoring
 * (hybrid.c), evaluation splits and scoring (eval.c), shared by cx_tune
 * (tune.c).  Names are cx__*; nothing here is part of the API. */
#ifndef CX_QUALITY_H
#define CX_QUALITY_H

#include "internal.h"

/* ===================================================================== */
/* hybrid.c                                                              */
/* ===================================================================== */

/* Blend weights, from the options. */
typedef struct cx__blend {
    float als, pop, rep, co;
    float consumable;       /* re-buy share that makes an item consumable */
} cx__blend;

void cx__blend_from(const cx__options *o, cx__blend *b);
/* Nothing but the ALS score: serving and evaluation take the plain path
 * (bit-identical to an engine without a blend). */
static inline int cx__blend_plain(const cx__blend *b)
{
    return b->pop == 0 && b->rep == 0 && b->co == 0;
}

/* Item statistics of a set of training signals. */
typedef struct cx__hstats {
    uint32_t n_users, n_items;
    float *pop;             /* customers with r > 0, over the most: 0..1;
                               zeros after n_items to a multiple of 8 */
    uint32_t *pop_order;    /* the items with pop > 0, most popular first */
    uint32_t n_pop_order;
    float *rebuy;           /* smoothed share of buyers who bought again */
    uint16_t *buys;         /* per pair of ui: purchase signals (capped) */
    /* The most co-bought items of each item: co_idx/co_val[co_ptr[i] ..
     * co_ptr[i + 1]), cosine of the two items' buyer sets (purchase or
     * cart), best first. */
    uint64_t *co_ptr;
    uint32_t *co_idx;
    float *co_val;
} cx__hstats;

/* Statistics of events [0, n_ev) with keep[ev] != 0 (keep NULL: all)
 * over the customer x item pairs ui (the model's CSR of those events). */
int cx__hstats_build(const cx__event *ev, size_t n_ev, const uint8_t *keep,
                     const cx__csr *ui, uint32_t n_users, uint32_t n_items,
                     cx__hstats **out);
void cx__hstats_free(cx__hstats *h);
/* Build and attach m's statistics from its training events ev[0, n_ev)
 * when options o blend (and m has none yet), so that no request pays
 * for them; on failure the first blended request tries again. */
void cx__hstats_attach(const cx__options *o, cx__model *m,
                       const cx__event *ev, size_t n_ev);

/* Re-buy propensity of a customer who bought an item `buys` times. */
static inline float cx__repeat_score(const cx__hstats *h, uint32_t i,
                                     unsigned buys)
{
    if (!buys || i >= h->n_items)
        return 0;
    float q = 1 - h->rebuy[i], p = q;
    for (unsigned b = 1; b < buys && b < 8; b++)
        p *= q;
    return 1 - p;
}

/* Blended top-k of model customer u from its training pairs (row u of
 * m->ui with h->buys), over every model item, for evaluation.  als[] holds
 * the customer's n_items ALS scores, or is NULL (no vector).  The
 * customer's pairs are excluded unless the item is consumable (and not
 * negative).  scratch: 2 * n_items floats.  Returns the count. */
size_t cx__blend_rank_model(const cx__model *m, const cx__hstats *h,
                            const cx__blend *b, uint32_t u, const float *als,
                            size_t k, float *scratch, cx__hit *out);

/* cx_recommend's blended list for customer u (vector x, may be NULL);
 * opts already validated.  The read lock is held by the caller. */
int cx__hybrid_recommend(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                         const float *x, size_t k, const char **items,
                         float *scores, int *reasons, size_t *n);

/* cx_recommend_batch under a blend: cx_recommend for each customer. */
int cx__hybrid_batch(cx_engine *e, size_t m, const char *const *customers,
                     size_t k, const cx_rec_opts *opts, const char **items,
                     float *scores, int *reasons, size_t *counts);

/* ===================================================================== */
/* eval.c                                                                */
/* ===================================================================== */

/* A per-customer time split: keep[ev] = 0 for held-out (or unused)
 * events; per customer, the sorted relevant held-out items. */
typedef struct cx__split {
    uint8_t *keep;
    uint64_t *test_ptr;
    uint32_t *test_items;
} cx__split;

/* Split the events e holds (the writer mutex held) that use[] admits
 * (NULL: all): per customer, CX_SPLIT_ITEMS holds out the newest
 * `fraction` of the distinct items (by first signal), CX_SPLIT_EVENTS
 * the newest `fraction` of the signals; customers with fewer than
 * min_items items (signals) are kept whole. */
int cx__split_make(const cx_engine *e, const uint8_t *use, int mode,
                   double fraction, size_t min_items, unsigned relevant,
                   const cx__options *opt, cx__split *s);
void cx__split_free(cx__split *s);

/* Mean NDCG@k over the customers of split s (with a vector or not;
 * include[] NULL or per customer) of model m under blends b[0..nb), into
 * ndcg[0..nb); at most max_users customers, a fixed sample by seed.
 * hs: statistics of m's training events. */
int cx__eval_blends(const cx__model *m, const cx__hstats *hs,
                    const cx__split *s, size_t k,
                    const cx__blend *b, size_t nb, size_t max_users,
                    uint64_t seed, double *ndcg);

/* The options cx_tune sets, at the library's defaults, into o. */
void cx__untuned(cx__options *o);

#endif /* CX_QUALITY_H */
