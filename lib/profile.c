/* profile.c -- a customer's profile and journey stage, computed on demand
 * from their event chain and the catalogue (nothing is stored). */
#include "internal.h"

#include <string.h>

static const char *const stage_name[] = {
    "new", "browsing", "considering", "purchased", "loyal", "lapsed"};

CX_API const char *cx_stage_name(int stage)
{
    if (stage < 0 || stage >= (int)(sizeof stage_name / sizeof stage_name[0]))
        return NULL;
    return stage_name[stage];
}

/* ===================================================================== */
/* Helpers                                                               */
/* ===================================================================== */

/* A positive signal seen from its category and its item. */
typedef struct pos_sig {
    uint32_t cat, item;
    double s;
} pos_sig;

static int by_item(const void *a, const void *b)
{
    const pos_sig *x = a, *y = b;
    return (x->item > y->item) - (x->item < y->item);
}

/* A ranked (index, weight) pair: categories and channels. */
typedef struct ranked {
    uint32_t idx;
    double w;
} ranked;

/* Largest weight first, ties by the smaller index: a stable order that
 * does not depend on the order signals arrived in. */
static int by_weight(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->w != y->w)
        return x->w < y->w ? 1 : -1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Mean price of the catalogued, not removed items with a price. */
static double catalogue_mean_price(const cx_engine *e)
{
    double sum = 0;
    size_t n = 0;
    for (uint32_t i = 0; i < e->items.n; i++) {
        uint8_t f = e->item_flags[i];
        if ((f & CX__ITEM_CATALOGUED) && !(f & CX__ITEM_REMOVED) &&
            e->item_price[i] > 0) {
            sum += e->item_price[i];
            n++;
        }
    }
    return n ? sum / (double)n : 0;
}

/* Top categories, and with `price` avg_price and price_level, from the
 * customer's positive signals sig[0..n) (reordered here).  A category's
 * weight is summed in the signals' order through a small hash table
 * (sorting 3,000 signals by category was a fifth of a heavy customer's
 * page). */
static int rank_categories(const cx_engine *e, pos_sig *sig, size_t n,
                           cx_profile *out, int price)
{
    if (!n)
        return CX_OK;
    if (price) {
        /* Distinct items with a positive signal, and their mean price. */
        qsort(sig, n, sizeof *sig, by_item);
        double price_sum = 0;
        size_t priced = 0;
        for (size_t j = 0; j < n; j++) {
            if (j && sig[j].item == sig[j - 1].item)
                continue;
            double p = e->item_price[sig[j].item];
            if (p > 0) {
                price_sum += p;
                priced++;
            }
        }
        if (priced) {
            out->avg_price = price_sum / (double)priced;
            double mean = catalogue_mean_price(e);
            out->price_level = mean > 0 ? out->avg_price / mean : 0;
        }
    }
    /* Summed strength per category: open addressing, at most half full. */
    size_t cap = 16;
    while (cap < 2 * n && cap < 2 * (size_t)e->categories.n + 2)
        cap *= 2;
    ranked *slot = malloc(cap * sizeof *slot);
    ranked *cat = malloc(n * sizeof *cat);
    if (!slot || !cat) {
        free(slot), free(cat);
        return CX_ENOMEM;
    }
    for (size_t h = 0; h < cap; h++)
        slot[h].idx = CX_NONE;
    size_t nc = 0;
    double total = 0;
    for (size_t j = 0; j < n; j++) {
        size_t h = (sig[j].cat * 0x9E3779B1u) & (cap - 1);
        while (slot[h].idx != CX_NONE && slot[h].idx != sig[j].cat)
            h = (h + 1) & (cap - 1);
        if (slot[h].idx == CX_NONE) {
            slot[h] = (ranked){sig[j].cat, 0};
            nc++;
        }
        slot[h].w += sig[j].s;
        total += sig[j].s;
    }
    nc = 0;
    for (size_t h = 0; h < cap; h++)
        if (slot[h].idx != CX_NONE)
            cat[nc++] = slot[h];
    qsort(cat, nc, sizeof *cat, by_weight);
    for (size_t j = 0; j < nc && j < CX_PROFILE_TOP; j++) {
        out->category[j] = e->categories.str[cat[j].idx];
        out->category_share[j] = cat[j].w / total;
    }
    out->n_categories = nc < CX_PROFILE_TOP ? nc : CX_PROFILE_TOP;
    free(slot), free(cat);
    return CX_OK;
}

static int decide_stage(const cx_engine *e, const cx_profile *p,
                        int64_t now)
{
    if (!p->signals)
        return CX_STAGE_NEW;
    if ((double)(now - p->last_seen) > e->opt.lapsed_after)
        return CX_STAGE_LAPSED;
    if (p->by_type[CX_PURCHASE] >= (uint64_t)e->opt.loyal_purchases)
        return CX_STAGE_LOYAL;
    if (p->by_type[CX_PURCHASE])
        return CX_STAGE_PURCHASED;
    if (p->by_type[CX_ADD_TO_CART])
        return CX_STAGE_CONSIDERING;
    return CX_STAGE_BROWSING;
}

/* The profile of customer u; needs the read lock.  One walk of their
 * chain (each step a cache miss waiting for the one before: a customer
 * with 3,000 signals paid two walks before). */
static int build(const cx_engine *e, uint32_t u, int64_t now,
                 cx_profile *out, int price)
{
    pos_sig stack[256], *sig = stack;
    size_t cap = 256, np = 0;
    uint64_t chan[256] = {0};
    int rc = CX_OK;
    out->first_seen = INT64_MAX;
    cx__walk w;
    uint32_t ev;
    for (cx__walk_init(&w, e, u); (ev = cx__walk_next(&w)) != CX_NONE;) {
        const cx__event *v = &e->ev[ev];
        out->signals++;
        out->by_type[v->type]++;
        chan[v->channel]++;
        if (v->ts < out->first_seen)
            out->first_seen = v->ts;
        if (v->ts > out->last_seen)
            out->last_seen = v->ts;
        double s = cx__signal_strength(&e->opt, v);
        if (!(s > 0))
            continue;
        if (np == cap) {
            pos_sig *bigger = malloc(2 * cap * sizeof *bigger);
            if (!bigger) {
                rc = CX_ENOMEM;
                break;
            }
            memcpy(bigger, sig, np * sizeof *sig);
            if (sig != stack)
                free(sig);
            sig = bigger;
            cap *= 2;
        }
        sig[np++] = (pos_sig){e->item_cat[v->item], v->item, s};
    }
    if (rc || !out->signals) {
        if (sig != stack)
            free(sig);
        if (!out->signals)
            out->first_seen = 0;
        return rc;
    }
    /* Channels by count: at most 255 of them, ranked in place. */
    ranked ch[256];
    size_t nch = 0;
    for (uint32_t c = 0; c < 256; c++)
        if (chan[c])
            ch[nch++] = (ranked){c, (double)chan[c]};
    qsort(ch, nch, sizeof *ch, by_weight);
    for (size_t j = 0; j < nch && j < CX_PROFILE_TOP; j++) {
        out->channel[j] = e->channels.str[ch[j].idx];
        out->by_channel[j] = (uint64_t)ch[j].w;
    }
    out->n_channels = nch < CX_PROFILE_TOP ? nch : CX_PROFILE_TOP;
    rc = rank_categories(e, sig, np, out, price);
    if (sig != stack)
        free(sig);
    out->stage = decide_stage(e, out, now);
    return rc;
}

/* ===================================================================== */
/* API                                                                   */
/* ===================================================================== */

int cx__profile(const cx_engine *e, uint32_t u, int64_t now,
                cx_profile *out)
{
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    out->stage = CX_STAGE_NEW;
    /* Layouts do not need the price level, which costs a catalogue
     * scan. */
    return u == CX_NONE ? CX_OK
                        : build(e, u, now ? now : e->ts_max, out, 0);
}

CX_API int cx_profile_get(cx_engine *e, const char *customer, int64_t now,
                          cx_profile *out)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_profile_get: engine is NULL");
    if (!out)
        return cx__fail(e, CX_EINVAL, "cx_profile_get: out is NULL");
    if (out->size < sizeof *out)
        return cx__fail(e, CX_EINVAL, "cx_profile_get: out->size is %zu, "
                        "set it to sizeof(cx_profile) = %zu", out->size,
                        sizeof *out);
    if (!cx__id_len(customer))
        return cx__fail(e, CX_EINVAL, "cx_profile_get: customer id is "
                        "NULL, empty or longer than %d bytes",
                        CX_MAX_ID_LEN);
    if (now < 0)
        return cx__fail(e, CX_EINVAL, "cx_profile_get: now %lld is "
                        "negative", (long long)now);
    /* Only our part of a (future, larger) struct is written. */
    memset((char *)out + sizeof out->size, 0,
           sizeof *out - sizeof out->size);
    out->stage = CX_STAGE_NEW;
    cx__rdlock(e);
    uint32_t u = cx__idmap_find(&e->customers, customer);
    int rc = u == CX_NONE ? CX_OK
                          : build(e, u, now ? now : e->ts_max, out, 1);
    cx__rdunlock(e);
    if (rc) {
        size_t size = out->size;
        memset(out, 0, sizeof *out);
        out->size = size;
        return cx__fail(e, rc, "cx_profile_get: out of memory");
    }
    return CX_OK;
}
