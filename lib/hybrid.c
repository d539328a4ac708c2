/* hybrid.c -- the blend: a customer's ALS score plus a popularity prior,
 * a re-buy propensity and co-occurrence with their baskets. */
#include "quality.h"

#include <math.h>
#include <string.h>

#define CO_TOP 20      /* co-bought items kept per item */
#define CO_USERS 100   /* buyers read per item to count co-buys */
#define CO_ITEMS 200   /* basket items read per buyer */
#define CO_SEEDS 32    /* the customer's newest basket items used */

void cx__blend_from(const cx__options *o, cx__blend *b)
{
    b->als = (float)o->blend_als;
    b->pop = (float)o->blend_pop;
    b->rep = (float)o->blend_rep;
    b->co = (float)o->blend_co;
    b->consumable = (float)o->consumable;
}

/* ===================================================================== */
/* Item statistics                                                       */
/* ===================================================================== */

void cx__hstats_free(cx__hstats *h)
{
    if (!h)
        return;
    free(h->pop), free(h->pop_order), free(h->rebuy), free(h->buys);
    free(h->co_ptr), free(h->co_idx), free(h->co_val);
    free(h);
}

/* Position of item i in row u of ui, or UINT64_MAX. */
static uint64_t pair_at(const cx__csr *ui, uint32_t u, uint32_t i)
{
    uint64_t lo = ui->ptr[u], hi = ui->ptr[u + 1];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ui->idx[mid] < i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ui->ptr[u + 1] && ui->idx[lo] == i ? lo : UINT64_MAX;
}

static int is_basket(const cx__csr *ui, uint64_t p)
{
    return (ui->mask[p] & CX__BASKET) && ui->conf[p] > 0;
}

/* Per item, its CO_TOP most co-bought items by the cosine of the buyer
 * sets, counted over at most CO_USERS buyers and CO_ITEMS of each one's
 * basket items: bounded work per item, whatever the heavy buyers do. */
static int build_cooc(cx__hstats *h, const cx__csr *ui)
{
    uint32_t nu = h->n_users, ni = h->n_items;
    uint32_t *cnt = calloc((size_t)ni + 1, sizeof *cnt);
    uint64_t *iptr = calloc((size_t)ni + 2, sizeof *iptr);
    float *acc = calloc((size_t)ni + 1, sizeof *acc);
    uint32_t *touched = malloc(((size_t)CO_USERS * CO_ITEMS + 1) *
                               sizeof *touched);
    cx__hit *heap = malloc(CO_TOP * sizeof *heap);
    h->co_ptr = calloc((size_t)ni + 1, sizeof *h->co_ptr);
    h->co_idx = malloc(((size_t)ni * CO_TOP + 1) * sizeof *h->co_idx);
    h->co_val = malloc(((size_t)ni * CO_TOP + 1) * sizeof *h->co_val);
    uint32_t *iusr = NULL;
    int rc = CX_ENOMEM;
    if (!cnt || !iptr || !acc || !touched || !heap || !h->co_ptr ||
        !h->co_idx || !h->co_val)
        goto done;
    for (uint32_t u = 0; u < nu; u++)
        for (uint64_t p = ui->ptr[u]; p < ui->ptr[u + 1]; p++)
            if (is_basket(ui, p))
                cnt[ui->idx[p]]++;
    for (uint32_t i = 0; i < ni; i++)
        iptr[i + 1] = iptr[i] + cnt[i];
    if (!(iusr = malloc((iptr[ni] + 1) * sizeof *iusr)))
        goto done;
    for (uint32_t u = 0; u < nu; u++) /* buyers in customer order */
        for (uint64_t p = ui->ptr[u]; p < ui->ptr[u + 1]; p++)
            if (is_basket(ui, p))
                iusr[iptr[ui->idx[p]]++] = u;
    for (uint32_t i = ni; i > 0; i--)
        iptr[i] = iptr[i - 1];
    iptr[0] = 0;
    uint64_t out = 0;
    for (uint32_t j = 0; j < ni; j++) {
        size_t nt = 0;
        uint64_t end = iptr[j] + CO_USERS < iptr[j + 1] ? iptr[j] + CO_USERS
                                                        : iptr[j + 1];
        for (uint64_t a = iptr[j]; a < end; a++) {
            uint32_t v = iusr[a];
            size_t seen = 0;
            for (uint64_t p = ui->ptr[v]; p < ui->ptr[v + 1] &&
                                          seen < CO_ITEMS; p++) {
                uint32_t i = ui->idx[p];
                if (i == j || !is_basket(ui, p))
                    continue;
                seen++;
                if (acc[i] == 0)
                    touched[nt++] = i;
                acc[i] += 1;
            }
        }
        cx__topk t = {heap, 0, CO_TOP};
        for (size_t a = 0; a < nt; a++) {
            uint32_t i = touched[a];
            cx__topk_push(&t, acc[i] / sqrtf((float)cnt[j] * (float)cnt[i]),
                          i);
            acc[i] = 0;
        }
        cx__topk_sort(&t);
        for (size_t a = 0; a < t.n; a++) {
            h->co_idx[out] = t.h[a].item;
            h->co_val[out++] = t.h[a].score;
        }
        h->co_ptr[j + 1] = out;
    }
    rc = CX_OK;
done:
    free(cnt), free(iptr), free(acc), free(touched), free(heap), free(iusr);
    return rc;
}

/* Best score first, ties by item. */
static int hit_order(const void *a, const void *b)
{
    const cx__hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->item > y->item) - (x->item < y->item);
}

/* h->pop_order: the items with pop > 0, most popular first (ties by
 * item), where the blend finds its popularity candidates. */
static int pop_sort(cx__hstats *h)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->n_items; i++)
        n += h->pop[i] > 0;
    cx__hit *t = malloc(((size_t)n + 1) * sizeof *t);
    h->pop_order = malloc(((size_t)n + 1) * sizeof *h->pop_order);
    if (!t || !h->pop_order) {
        free(t);
        return CX_ENOMEM;
    }
    n = 0;
    for (uint32_t i = 0; i < h->n_items; i++)
        if (h->pop[i] > 0)
            t[n++] = (cx__hit){h->pop[i], i};
    qsort(t, n, sizeof *t, hit_order);
    for (uint32_t j = 0; j < n; j++)
        h->pop_order[j] = t[j].item;
    h->n_pop_order = n;
    free(t);
    return CX_OK;
}

int cx__hstats_build(const cx__event *ev, size_t n_ev, const uint8_t *keep,
                     const cx__csr *ui, uint32_t n_users, uint32_t n_items,
                     cx__hstats **out)
{
    *out = NULL;
    cx__hstats *h = calloc(1, sizeof *h);
    if (!h)
        return CX_ENOMEM;
    h->n_users = n_users;
    h->n_items = n_items;
    uint64_t nnz = ui->ptr[n_users];
    uint32_t *buyers = calloc((size_t)n_items + 1, sizeof *buyers);
    uint32_t *again = calloc((size_t)n_items + 1, sizeof *again);
    /* zeros to a whole block of 8: the 4-bit kernel reads blocks */
    h->pop = calloc(((size_t)n_items + 7) / 8 * 8 + 1, sizeof *h->pop);
    h->rebuy = calloc((size_t)n_items + 1, sizeof *h->rebuy);
    h->buys = calloc(nnz + 1, sizeof *h->buys);
    if (!buyers || !again || !h->pop || !h->rebuy || !h->buys ||
        build_cooc(h, ui)) {
        free(buyers), free(again);
        cx__hstats_free(h);
        return CX_ENOMEM;
    }
    /* Popularity: distinct customers with r > 0, as eval's baseline. */
    float most = 0;
    for (uint64_t p = 0; p < nnz; p++)
        if (ui->conf[p] > 0)
            h->pop[ui->idx[p]] += 1;
    for (uint32_t i = 0; i < n_items; i++)
        most = h->pop[i] > most ? h->pop[i] : most;
    for (uint32_t i = 0; most > 0 && i < n_items; i++)
        h->pop[i] /= most;
    if (pop_sort(h)) {
        free(buyers), free(again);
        cx__hstats_free(h);
        return CX_ENOMEM;
    }
    /* Purchase signals per pair: occasions, not quantities. */
    for (size_t x = 0; x < n_ev; x++) {
        if ((keep && !keep[x]) || ev[x].type != CX_PURCHASE ||
            ev[x].cust >= n_users)
            continue;
        uint64_t p = pair_at(ui, ev[x].cust, ev[x].item);
        if (p != UINT64_MAX && h->buys[p] < UINT16_MAX)
            h->buys[p]++;
    }
    /* Re-buy share per item, shrunk towards the shop's own share so that
     * an item with two buyers does not swing between 0 and 1. */
    double all_b = 0, all_a = 0;
    for (uint64_t p = 0; p < nnz; p++) {
        buyers[ui->idx[p]] += h->buys[p] >= 1;
        again[ui->idx[p]] += h->buys[p] >= 2;
    }
    for (uint32_t i = 0; i < n_items; i++)
        all_b += buyers[i], all_a += again[i];
    double g = all_b > 0 ? all_a / all_b : 0;
    for (uint32_t i = 0; i < n_items; i++)
        h->rebuy[i] = (float)((again[i] + 5 * g) / (buyers[i] + 5.0));
    free(buyers), free(again);
    *out = h;
    return CX_OK;
}

/* ===================================================================== */
/* Evaluation: every item scored                                         */
/* ===================================================================== */

size_t cx__blend_rank_model(const cx__model *m, const cx__hstats *h,
                            const cx__blend *b, uint32_t u, const float *als,
                            size_t k, float *scratch, cx__hit *out)
{
    uint32_t ni = m->n_items;
    float *s = scratch, *co = scratch + ni;
    const cx__csr *ui = &m->ui;
    if (als && b->als != 0) {
        for (uint32_t i = 0; i < ni; i++)
            s[i] = b->als * als[i] + b->pop * h->pop[i];
    } else {
        for (uint32_t i = 0; i < ni; i++)
            s[i] = b->pop * h->pop[i];
    }
    uint64_t p0 = u < m->n_users ? ui->ptr[u] : 0;
    uint64_t p1 = u < m->n_users ? ui->ptr[u + 1] : 0;
    if (b->rep != 0)
        for (uint64_t p = p0; p < p1; p++)
            s[ui->idx[p]] += b->rep * cx__repeat_score(h, ui->idx[p],
                                                        h->buys[p]);
    if (b->co != 0) {
        memset(co, 0, ni * sizeof *co);
        for (uint64_t p = p0; p < p1; p++) {
            if (!is_basket(ui, p))
                continue;
            uint32_t j = ui->idx[p];
            for (uint64_t q = h->co_ptr[j]; q < h->co_ptr[j + 1]; q++)
                co[h->co_idx[q]] += h->co_val[q];
        }
        for (uint32_t i = 0; i < ni; i++)
            if (co[i] > 0)
                s[i] += b->co * (co[i] < 1 ? co[i] : 1);
    }
    /* What the customer has is excluded, unless it is consumable. */
    for (uint64_t p = p0; p < p1; p++) {
        uint32_t i = ui->idx[p];
        if (ui->conf[p] < 0 || h->rebuy[i] < b->consumable)
            s[i] = -INFINITY;
    }
    cx__topk t = {out, 0, k};
    for (uint32_t i = 0; i < ni; i++)
        if (s[i] > -INFINITY)
            cx__topk_push(&t, s[i], i);
    cx__topk_sort(&t);
    return t.n;
}

/* ===================================================================== */
/* Serving                                                               */
/* ===================================================================== */

/* One build at a time, so that a model never gets two. */
static pthread_mutex_t build_mu = PTHREAD_MUTEX_INITIALIZER;

void cx__hstats_attach(const cx__options *o, cx__model *m,
                       const cx__event *ev, size_t n_ev)
{
    cx__blend b;
    cx__blend_from(o, &b);
    if (cx__blend_plain(&b) || atomic_load(&m->hstats))
        return;
    pthread_mutex_lock(&build_mu);
    cx__hstats *h = NULL;
    if (!atomic_load(&m->hstats) &&
        cx__hstats_build(ev, n_ev, NULL, &m->ui, m->n_users, m->n_items,
                         &h) == CX_OK)
        atomic_store(&m->hstats, h);
    pthread_mutex_unlock(&build_mu);
}

/* The statistics of the engine's model: attached before it is published
 * when the blend is on; otherwise (the blend turned on later, or no
 * memory then) built by the first request that needs them, from the
 * events the model was trained on, which never change, and kept with
 * the model. */
static const cx__hstats *model_hstats(const cx_engine *e, cx__model *m)
{
    cx__hstats *h = atomic_load(&m->hstats);
    if (h)
        return h;
    pthread_mutex_lock(&build_mu);
    h = atomic_load(&m->hstats);
    if (!h && cx__hstats_build(e->ev, m->n_events, NULL, &m->ui, m->n_users,
                               m->n_items, &h) == CX_OK)
        atomic_store(&m->hstats, h);
    pthread_mutex_unlock(&build_mu);
    return h;
}

/* One of the customer's items, from their signals. */
typedef struct hitem {
    uint32_t item;
    uint32_t newest;   /* newest event on it (recency of baskets) */
    uint16_t buys;
    uint8_t basket, excl, neg;
    double r;
} hitem;

static int by_newest(const void *a, const void *b)
{
    const hitem *x = a, *y = b;
    return (x->newest < y->newest) - (x->newest > y->newest);
}

/* Items to positions in an array beside the map: open addressing on the
 * high bits of a multiplicative hash, grown at half full.  A request's
 * few hundred items are found without sorting them. */
typedef struct imap {
    uint32_t *key, *val; /* key CX_NONE: empty */
    size_t cap, n;
    int shift;
} imap;

static size_t imap_home(const imap *m, uint32_t item)
{
    return (uint32_t)(item * 0x9E3779B1u) >> m->shift;
}

static uint32_t imap_get(const imap *m, uint32_t item)
{
    if (!m->cap)
        return CX_NONE;
    for (size_t h = imap_home(m, item);; h = (h + 1) & (m->cap - 1)) {
        if (m->key[h] == item)
            return m->val[h];
        if (m->key[h] == CX_NONE)
            return CX_NONE;
    }
}

static int imap_put(imap *m, uint32_t item, uint32_t val)
{
    if (2 * (m->n + 1) > m->cap) {
        imap g = {NULL, NULL, m->cap ? 2 * m->cap : 64, 0, 32 - 6};
        if (m->cap)
            g.shift = m->shift - 1;
        g.key = malloc(g.cap * sizeof *g.key);
        g.val = malloc(g.cap * sizeof *g.val);
        if (!g.key || !g.val) {
            free(g.key), free(g.val);
            return CX_ENOMEM;
        }
        memset(g.key, 0xff, g.cap * sizeof *g.key);
        for (size_t h = 0; h < m->cap; h++)
            if (m->key[h] != CX_NONE)
                imap_put(&g, m->key[h], m->val[h]);
        free(m->key), free(m->val);
        *m = g;
    }
    size_t h = imap_home(m, item);
    while (m->key[h] != CX_NONE && m->key[h] != item)
        h = (h + 1) & (m->cap - 1);
    m->n += m->key[h] == CX_NONE;
    m->key[h] = item;
    m->val[h] = val;
    return CX_OK;
}

static void imap_free(imap *m)
{
    free(m->key), free(m->val);
}

/* The customer's items, merged from their signals, newest first; *map
 * finds an item's position. */
static int history(const cx_engine *e, uint32_t u, unsigned exclude,
                   hitem **out, size_t *n, imap *map)
{
    size_t cap = 64, len = 0;
    hitem *h = malloc(cap * sizeof *h);
    unsigned neg = cx__negative_types(&e->opt);
    if (!h)
        return CX_ENOMEM;
    cx__walk w;
    uint32_t ev;
    for (cx__walk_init(&w, e, u); (ev = cx__walk_next(&w)) != CX_NONE;) {
        const cx__event *x = &e->ev[ev];
        unsigned bit = CX_TYPE_BIT(x->type);
        hitem v = {x->item, ev, x->type == CX_PURCHASE,
                   (bit & CX__BASKET) != 0, (bit & exclude) != 0,
                   (bit & neg) != 0,
                   cx__signal_strength(&e->opt, x)};
        uint32_t at = imap_get(map, x->item);
        if (at != CX_NONE) { /* an older signal on the same item */
            hitem *a = &h[at];
            a->newest = a->newest > v.newest ? a->newest : v.newest;
            a->buys = (uint16_t)(a->buys + v.buys < UINT16_MAX
                                     ? a->buys + v.buys : UINT16_MAX);
            a->basket |= v.basket, a->excl |= v.excl;
            a->neg |= v.neg, a->r += v.r;
            continue;
        }
        if (len == cap) {
            hitem *g = realloc(h, 2 * cap * sizeof *h);
            if (!g) {
                free(h);
                return CX_ENOMEM;
            }
            h = g, cap *= 2;
        }
        if (imap_put(map, x->item, (uint32_t)len)) {
            free(h);
            return CX_ENOMEM;
        }
        h[len++] = v;
    }
    for (size_t j = 0; j < len; j++)
        h[j].neg |= h[j].r < 0;
    *out = h;
    *n = len;
    return CX_OK;
}

/* The candidates: items once each, in the order they came. */
typedef struct cands {
    cx__hit *h;
    size_t n, cap;
    imap at;
} cands;

static int cands_add(cands *c, uint32_t item)
{
    if (imap_get(&c->at, item) != CX_NONE)
        return CX_OK;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        cx__hit *g = realloc(c->h, cap * sizeof *g);
        if (!g)
            return CX_ENOMEM;
        c->h = g, c->cap = cap;
    }
    if (imap_put(&c->at, item, (uint32_t)c->n))
        return CX_ENOMEM;
    c->h[c->n++] = (cx__hit){0, item};
    return CX_OK;
}

/* Candidates from the ranking code: the best `want` for x under the
 * rules (pure relevance: the diversity applies to the blended list), by
 * the ALS score alone or, with pop, by the ALS and popularity terms of
 * the blend (weights als and w_pop). */
static int ranked(cx_engine *e, const cx_rec_opts *o, uint32_t u,
                  const cx__skip *lent, const float *x, const cx__hstats *pop,
                  float als, float w_pop, size_t want, cands *cand)
{
    cx__hit *buf = malloc(want * sizeof *buf);
    size_t n = 0;
    if (!buf)
        return cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
    int rc = pop ? cx__rank_biased(e, o, u, lent, x, pop->pop,
                                   ((size_t)pop->n_items + 7) / 8 * 8,
                                   w_pop / als, want, buf, &n)
                 : cx__rank_hits(e, o, u, lent, x, 0, 0, CX_NONE, CX_NONE,
                                 want, 1, buf, &n);
    for (size_t j = 0; rc == CX_OK && j < n; j++)
        if (cands_add(cand, buf[j].item))
            rc = cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
    free(buf);
    return rc;
}

/* The `want` items of the highest popularity prior (the blend's, from
 * training) that pass o's rules, into cand: down hs's order, a few
 * hundred at a time through the filter. */
static int popular(cx_engine *e, const cx_rec_opts *o, uint32_t u,
                   const cx__skip *lent, const cx__hstats *hs, size_t want,
                   cands *cand)
{
    uint8_t pass[256];
    size_t got = 0;
    int rc = CX_OK;
    for (size_t at = 0; rc == CX_OK && got < want && at < hs->n_pop_order;
         at += 256) {
        size_t n = hs->n_pop_order - at < 256 ? hs->n_pop_order - at : 256;
        const uint32_t *ids = hs->pop_order + at;
        rc = cx__rank_filter(e, o, u, lent, o->exclude, CX_NONE, ids, n,
                             pass);
        for (size_t j = 0; rc == CX_OK && j < n && got < want; j++)
            if (pass[j] && ids[j] < e->items.n) {
                if (cands_add(cand, ids[j]))
                    rc = CX_ENOMEM;
                got++;
            }
    }
    return rc == CX_ENOMEM ? cx__fail(e, rc, "cx_recommend: out of memory")
                           : rc;
}

int cx__hybrid_recommend(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                         const float *x, size_t k, const char **items,
                         float *scores, int *reasons, size_t *n)
{
    cx__model *m = e->model;
    const cx__hstats *hs = model_hstats(e, m);
    if (!hs)
        return cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
    cx__blend b;
    cx__blend_from(&e->opt, &b);
    cx_rec_opts o;
    cx_rec_opts_init(&o);
    if (opts)
        memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
    o.size = sizeof o;
    cx_rec_opts plain = o; /* candidates by relevance alone */
    plain.max_per_category = 0;
    plain.diversity = 0;
    size_t nitems = e->items.n;
    size_t want = 4 * k > k + 50 ? 4 * k : k + 50;
    if (o.exact) /* no shortcut: every item is a candidate */
        want = nitems;
    want = want < nitems ? want : nitems;
    hitem *hist = NULL;
    size_t nh = 0;
    imap hmap = {0}, cmap = {0};
    cands cand = {0};
    /* co-bought sums: co_item[j], co_sum[j], found through cmap */
    uint32_t *co_item = NULL, *ids = NULL;
    float *co_sum = NULL;
    size_t n_co = 0;
    uint8_t *pass = NULL, *why = NULL;
    cx__skip *lent = NULL; /* the customer's exclusions, made once */
    int rc = history(e, u, o.exclude, &hist, &nh, &hmap);
    if (rc)
        rc = cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
    if (rc == CX_OK)
        rc = cx__skip_make(e, &plain, u, &lent);
    /* A customer with a vector: one pass ranks every item by its ALS and
     * popularity terms together.  An item outside the extra candidates
     * below (co-bought, bought) scores those two terms only, so the best
     * k of that pass and the extras hold the blend's best k; a diverse
     * list picks from `want`. */
    int fused = x && b.als > 0 && b.pop != 0;
    if (fused && !o.exact && !o.max_per_category && !(o.diversity > 0))
        want = k < nitems ? k : nitems;
    if (rc == CX_OK && x && b.als != 0)
        rc = ranked(e, &plain, u, lent, x, fused ? hs : NULL, b.als, b.pop,
                    want, &cand);
    if (rc == CX_OK && b.pop != 0 && !fused)
        rc = popular(e, &plain, u, lent, hs, want, &cand);
    /* Co-bought with the newest basket items, summed per item in the
     * order of the seeds (newest first) and of their lists. */
    if (rc == CX_OK && b.co != 0 && nh) {
        hitem *seeds = malloc(nh * sizeof *seeds);
        size_t ns = 0, room = 0;
        if (!seeds)
            rc = CX_ENOMEM;
        for (size_t j = 0; seeds && j < nh; j++)
            if (hist[j].basket && !hist[j].neg && hist[j].item < hs->n_items)
                seeds[ns++] = hist[j];
        if (seeds)
            qsort(seeds, ns, sizeof *seeds, by_newest);
        ns = ns < CO_SEEDS ? ns : CO_SEEDS;
        for (size_t j = 0; seeds && j < ns; j++)
            room += hs->co_ptr[seeds[j].item + 1] - hs->co_ptr[seeds[j].item];
        co_item = malloc((room + 1) * sizeof *co_item);
        co_sum = malloc((room + 1) * sizeof *co_sum);
        if (!co_item || !co_sum)
            rc = CX_ENOMEM;
        for (size_t j = 0; rc == CX_OK && j < ns; j++) {
            uint32_t s = seeds[j].item;
            for (uint64_t q = hs->co_ptr[s]; rc == CX_OK &&
                                             q < hs->co_ptr[s + 1]; q++) {
                uint32_t at = imap_get(&cmap, hs->co_idx[q]);
                if (at != CX_NONE) {
                    co_sum[at] += hs->co_val[q];
                } else {
                    co_item[n_co] = hs->co_idx[q];
                    co_sum[n_co] = hs->co_val[q];
                    rc = imap_put(&cmap, hs->co_idx[q], (uint32_t)n_co++);
                }
            }
        }
        free(seeds);
        if (rc)
            rc = cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
    }
    /* The extra candidates: co-bought items and bought ones (a repeat
     * term), consumables or not.  They pass the rules (stock, category,
     * lists, negatives); of the customer's own items only consumables
     * stay. */
    size_t n_ex = 0;
    if (rc == CX_OK && (ids = malloc((n_co + nh + 1) * sizeof *ids)) == NULL)
        rc = cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
    for (size_t j = 0; rc == CX_OK && j < n_co; j++)
        ids[n_ex++] = co_item[j];
    for (size_t j = 0; rc == CX_OK && j < nh; j++)
        if (!hist[j].neg && hist[j].item < hs->n_items &&
            (hs->rebuy[hist[j].item] >= b.consumable || hist[j].buys) &&
            imap_get(&cmap, hist[j].item) == CX_NONE)
            ids[n_ex++] = hist[j].item;
    if (rc == CX_OK && n_ex) {
        if (!(pass = malloc(n_ex)))
            rc = cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
        else
            rc = cx__rank_filter(e, &plain, u, NULL, 0, CX_NONE, ids, n_ex,
                                 pass);
        for (size_t j = 0; rc == CX_OK && j < n_ex; j++) {
            uint32_t i = ids[j], at = imap_get(&hmap, i);
            int durable = i >= hs->n_items || hs->rebuy[i] < b.consumable;
            if (pass[j] && !(at != CX_NONE && hist[at].excl && durable) &&
                cands_add(&cand, i))
                rc = cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
        }
    }
    if (rc == CX_OK && cand.n && !(why = malloc(cand.n)))
        rc = cx__fail(e, CX_ENOMEM, "cx_recommend: out of memory");
    /* Score every candidate by the blend; the reason is its largest
     * contribution. */
    for (size_t j = 0; rc == CX_OK && j < cand.n; j++) {
        uint32_t i = cand.h[j].item, at = imap_get(&hmap, i);
        uint32_t ca = imap_get(&cmap, i);
        const float *y = x ? cx__item_vec(e, i, NULL) : NULL;
        float c[4] = {y ? b.als * cx__k.dot(x, y, m->k) : 0,
                      i < hs->n_items ? b.pop * hs->pop[i] : 0,
                      at != CX_NONE ? b.rep * cx__repeat_score(
                                                  hs, i, hist[at].buys)
                                    : 0,
                      0};
        float cv = ca != CX_NONE ? co_sum[ca] : 0;
        c[3] = b.co * (cv < 1 ? cv : 1);
        static const uint8_t reason[4] = {CX_REASON_PERSONAL,
                                          CX_REASON_BESTSELLER,
                                          CX_REASON_REPEAT,
                                          CX_REASON_ALSO_BOUGHT};
        int best = 0;
        for (int a = 1; a < 4; a++)
            if (c[a] > c[best])
                best = a;
        cand.h[j].score = c[0] + c[1] + c[2] + c[3];
        why[j] = reason[best];
    }
    if (rc == CX_OK) {
        /* The best k in order; a diversified list picks from all of them
         * in order.  why[] follows the candidates' first order (cand.at). */
        size_t cnt = cand.n < k ? cand.n : k;
        if (o.max_per_category || o.diversity > 0) {
            if (cand.n)
                qsort(cand.h, cand.n, sizeof *cand.h, hit_order);
            cnt = cx__diversify(e, m, e->item_cat, e->categories.n, cand.h,
                                cand.n, k, o.max_per_category, o.diversity);
        } else if (cnt) {
            if (cand.n > cnt)
                cx__select_best(cand.h, cand.n, cnt);
            qsort(cand.h, cnt, sizeof *cand.h, hit_order);
        }
        for (size_t j = 0; j < cnt; j++) {
            uint32_t i = cand.h[j].item;
            if (items)
                items[j] = e->items.str[i];
            if (scores)
                scores[j] = cand.h[j].score;
            if (reasons)
                reasons[j] = why[imap_get(&cand.at, i)];
        }
        *n = cnt;
    }
    cx__skip_free(lent);
    free(hist), free(cand.h), free(co_item), free(co_sum), free(ids);
    free(pass), free(why);
    imap_free(&hmap), imap_free(&cmap), imap_free(&cand.at);
    return rc;
}

int cx__hybrid_batch(cx_engine *e, size_t m, const char *const *customers,
                     size_t k, const cx_rec_opts *opts, const char **items,
                     float *scores, int *reasons, size_t *counts)
{
    for (size_t j = 0; j < m; j++) {
        int rc = cx_recommend(e, customers[j], k, opts, items + j * k,
                              scores ? scores + j * k : NULL,
                              reasons ? reasons + j * k : NULL, &counts[j]);
        if (rc)
            return rc;
    }
    return CX_OK;
}
