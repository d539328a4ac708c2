/* layout.c -- the personalised home page: candidate rows of every kind,
 * each scored by how well it fits the customer, placed best first, with
 * every item at most once on the page. */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const kind_name[CX_ROW_KINDS] = {
    "for_you", "because", "continue", "bought_together", "trending", "new",
    "category"};

CX_API const char *cx_row_kind_name(int kind)
{
    return kind >= 0 && kind < CX_ROW_KINDS ? kind_name[kind] : NULL;
}

CX_API void cx_layout_spec_init(cx_layout_spec *s)
{
    if (!s)
        return;
    memset(s, 0, sizeof *s);
    s->size = sizeof *s;
    s->kinds = (1u << CX_ROW_KINDS) - 1;
    s->max_rows = 8;
    s->items_per_row = 12;
    s->min_row = 4;
    for (int k = 0; k < CX_ROW_KINDS; k++)
        s->per_kind[k] = 1;
    s->per_kind[CX_ROW_BECAUSE] = 2;
    s->per_kind[CX_ROW_TRENDING] = 2;
    s->per_kind[CX_ROW_NEW] = 2;
    s->per_kind[CX_ROW_CATEGORY] = 3;
    cx_rec_opts_init(&s->rules);
}

/* How much each kind of row suits each journey stage (README). */
static const float stage_weight[6][CX_ROW_KINDS] = {
    /*          for_you because continue together trending new category */
    /* new */         {0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.9f, 0.8f},
    /* browsing */    {1.0f, 0.9f, 0.7f, 0.5f, 0.6f, 0.6f, 0.8f},
    /* considering */ {1.0f, 0.9f, 1.2f, 0.6f, 0.5f, 0.5f, 0.7f},
    /* purchased */   {1.0f, 0.9f, 0.6f, 1.1f, 0.6f, 0.7f, 0.8f},
    /* loyal */       {1.1f, 0.9f, 0.6f, 1.0f, 0.6f, 0.9f, 0.8f},
    /* lapsed */      {0.8f, 0.7f, 0.5f, 0.6f, 1.2f, 1.1f, 0.7f},
};

#define MAX_CANDS 64
#define TOP_CATS CX_PROFILE_TOP

typedef struct cand {
    int kind, reason;
    uint32_t seed_item, seed_cat; /* CX_NONE when none */
    float fit;
    size_t n;
    cx__hit *h;
} cand;

typedef struct page {
    cx_engine *e;
    const cx_layout_spec *spec;
    uint32_t u;
    const float *x;              /* the customer's vector, or NULL */
    float best;                  /* their best personal score */
    cx__skip *skip;              /* their exclusions, for every row */
    cx_profile prof;
    uint32_t cat[TOP_CATS];      /* favoured (or popular) categories */
    double cat_share[TOP_CATS];
    size_t n_cat;
    size_t pool;                 /* candidates per row */
    cand c[MAX_CANDS];
    size_t n_c;
} page;

/* A new candidate row with room for pg->pool hits (h: that room, already
 * allocated, owned by the row from here on, freed on failure). */
static cand *new_cand(page *pg, int kind, int reason, uint32_t seed_item,
                      uint32_t seed_cat, cx__hit *h)
{
    if (pg->n_c == MAX_CANDS) {
        free(h);
        return NULL;
    }
    cand *c = &pg->c[pg->n_c];
    c->h = h ? h : malloc(pg->pool * sizeof *c->h);
    if (!c->h)
        return NULL;
    c->kind = kind;
    c->reason = reason;
    c->seed_item = seed_item;
    c->seed_cat = seed_cat;
    c->n = 0;
    c->fit = 0;
    pg->n_c++;
    return c;
}

/* A ranked row from the ranking machinery (rules, exclusions). */
static int ranked_row(page *pg, int kind, int reason, uint32_t seed_item,
                      uint32_t seed_cat, const float *x, int cosine,
                      int list)
{
    cand *c = new_cand(pg, kind, reason, seed_item, seed_cat, NULL);
    if (!c)
        return CX_ENOMEM;
    return cx__rank_hits(pg->e, &pg->spec->rules, pg->u, pg->skip, x,
                         cosine, list, seed_cat, seed_item, pg->pool, 1,
                         c->h, &c->n);
}

/* A row of given items in a given order: the rules filter them, the
 * order stays.  score[j] scores items[j]. */
static int listed_row(page *pg, int kind, int reason, uint32_t seed_item,
                      const uint32_t *items, const float *score, size_t n,
                      unsigned exclude)
{
    if (!n)
        return CX_OK;
    cand *c = new_cand(pg, kind, reason, seed_item, CX_NONE, NULL);
    uint8_t *pass = malloc(n);
    if (!c || !pass) {
        free(pass);
        return CX_ENOMEM;
    }
    int rc = cx__rank_filter(pg->e, &pg->spec->rules, pg->u, pg->skip,
                             exclude, seed_item, items, n, pass);
    for (size_t j = 0; rc == CX_OK && j < n && c->n < pg->pool; j++)
        if (pass[j])
            c->h[c->n++] = (cx__hit){score[j], items[j]};
    free(pass);
    return rc;
}

/* ------------------------------------------------------------------ */
/* What the customer did                                               */
/* ------------------------------------------------------------------ */

#define WALK_MAX 2000   /* a customer's newest signals looked at */

static int seen_in(const uint32_t *v, size_t n, uint32_t x)
{
    for (size_t j = 0; j < n; j++)
        if (v[j] == x)
            return 1;
    return 0;
}

/* Recent positive items (seeds, channel first), continue-shopping items,
 * and the last purchase (or cart) of customer u. */
static void recent(const page *pg, uint32_t *seeds, size_t *n_seeds,
                   size_t max_seeds, uint32_t *cont, float *cont_score,
                   size_t *n_cont, size_t max_cont, uint32_t *last_buy)
{
    const cx_engine *e = pg->e;
    const cx_layout_spec *s = pg->spec;
    uint32_t chan = s->channel ? cx__idmap_find(&e->channels, s->channel)
                               : CX_NONE;
    uint32_t bought[256], n_bought = 0;
    uint32_t other[64];
    size_t n_other = 0, walked = 0;
    unsigned neg = cx__negative_types(&e->opt);
    *n_seeds = *n_cont = 0;
    *last_buy = CX_NONE;
    uint32_t cart = CX_NONE;
    if (pg->u == CX_NONE)
        return;
    /* Pass 1: what was bought or rejected (never "continue" those). */
    cx__walk w;
    uint32_t ev;
    for (cx__walk_init(&w, e, pg->u);
         walked < WALK_MAX && (ev = cx__walk_next(&w)) != CX_NONE;
         walked++) {
        const cx__event *v = &e->ev[ev];
        if ((v->type == CX_PURCHASE || (CX_TYPE_BIT(v->type) & neg)) &&
            n_bought < 256 && !seen_in(bought, n_bought, v->item))
            bought[n_bought++] = v->item;
        if (v->type == CX_PURCHASE && *last_buy == CX_NONE)
            *last_buy = v->item;
        if (v->type == CX_ADD_TO_CART && cart == CX_NONE)
            cart = v->item;
    }
    if (*last_buy == CX_NONE)
        *last_buy = cart;
    /* Pass 2, newest first: seeds and continue-shopping items. */
    walked = 0;
    for (cx__walk_init(&w, e, pg->u);
         walked < WALK_MAX && (ev = cx__walk_next(&w)) != CX_NONE;
         walked++) {
        const cx__event *v = &e->ev[ev];
        if (cx__signal_strength(&e->opt, v) <= 0)
            continue;
        int pos = !(CX_TYPE_BIT(v->type) & neg);
        if (pos && *n_seeds < max_seeds &&
            !seen_in(seeds, *n_seeds, v->item) &&
            cx__item_vec(e, v->item, NULL)) {
            /* The context channel's items first, however recent their
             * events on other channels; the rest wait in `other`. */
            if (chan == CX_NONE || v->channel == chan)
                seeds[(*n_seeds)++] = v->item;
            else if (n_other < 64 && !seen_in(other, n_other, v->item))
                other[n_other++] = v->item;
        }
        if ((v->type == CX_VIEW || v->type == CX_CLICK ||
             v->type == CX_ADD_TO_CART) && *n_cont < max_cont &&
            !seen_in(bought, n_bought, v->item) &&
            !seen_in(cont, *n_cont, v->item)) {
            cont_score[*n_cont] = (float)(max_cont - *n_cont);
            cont[(*n_cont)++] = v->item;
        }
        if (*n_seeds == max_seeds && *n_cont == max_cont)
            break; /* nothing older can change them */
    }
    /* Seeds from other channels after the context's own. */
    for (size_t j = 0; j < n_other && *n_seeds < max_seeds; j++)
        if (!seen_in(seeds, *n_seeds, other[j]))
            seeds[(*n_seeds)++] = other[j];
}

/* Items bought or carted by the customers who bought or carted `seed`,
 * by the number of such customers, into items/score (at most max).  The
 * work is bounded, whatever the seed's popularity: the seed's newest
 * buyers (TOGETHER_BUYERS, found within its newest TOGETHER_WALK signals)
 * and the items of each one's newest TOGETHER_MINE signals.  Both walks
 * count every signal after the event index (walked along the chains)
 * and, from the index on, purchases and carts only (read from it).
 * TOGETHER_MINE: a buyer's newest baskets are those nearest to buying
 * the seed; page quality was the same from 8 to 50 (bench_layout: NDCG
 * 0.2748-0.2751), 16 counts a third of what 50 did. */
#define TOGETHER_BUYERS 64
#define TOGETHER_WALK 1000
#define TOGETHER_MINE 16
static int together(const page *pg, uint32_t seed, uint32_t *items,
                    float *score, size_t max, size_t *n)
{
    const cx_engine *e = pg->e;
    *n = 0;
    /* Counts by item, open addressing; by[h]: the buyer counted last. */
    size_t cap = 4096;
    uint32_t *key = malloc(cap * sizeof *key);
    uint32_t *by = malloc(cap * sizeof *by);
    float *cnt = malloc(cap * sizeof *cnt);
    uint32_t buyers[TOGETHER_BUYERS];
    if (!key || !by || !cnt) {
        free(key), free(by), free(cnt);
        return CX_ENOMEM;
    }
    memset(key, 0xff, cap * sizeof *key);
    size_t nb = 0, walked = 0, used = 0;
    const struct cx__evidx *x = cx__evidx_get(pg->e);
    uint32_t cov = x ? x->n_cov : 0;
    for (uint32_t ev = e->item_last[seed];
         ev != CX_NONE && ev >= cov && walked < TOGETHER_WALK &&
         nb < TOGETHER_BUYERS;
         ev = e->ev_iprev[ev], walked++) {
        const cx__event *v = &e->ev[ev];
        if (cx__basket(v->type) && v->cust != pg->u &&
            !seen_in(buyers, nb, v->cust))
            buyers[nb++] = v->cust;
    }
    if (x && seed < x->n_items)
        for (uint32_t j = x->start[seed]; j < x->start[seed + 1] &&
                                          walked < TOGETHER_WALK &&
                                          nb < TOGETHER_BUYERS;
             j++, walked++)
            if (x->cust[j] != pg->u && !seen_in(buyers, nb, x->cust[j]))
                buyers[nb++] = x->cust[j];
    /* Each read below is a cache miss: ask for them all first, so that
     * they overlap instead of waiting one by one. */
    for (size_t b = 0; b < nb; b++) {
        __builtin_prefetch(&e->cust_last[buyers[b]]);
        if (x && buyers[b] < x->n_cust)
            __builtin_prefetch(&x->cstart[buyers[b]]);
    }
    for (size_t b = 0; b < nb; b++)
        if (x && buyers[b] < x->n_cust)
            __builtin_prefetch(&x->item[x->cstart[buyers[b]]]);
    for (size_t b = 0; b < nb; b++) {
        uint32_t c = buyers[b], it[TOGETHER_MINE];
        size_t seen = 0, n_it = 0;
        for (uint32_t ev = e->cust_last[c];
             ev != CX_NONE && ev >= cov && seen < TOGETHER_MINE;
             ev = e->ev_prev[ev], seen++)
            if (cx__basket(e->ev[ev].type))
                it[n_it++] = e->ev[ev].item;
        if (x && c < x->n_cust)
            for (uint32_t j = x->cstart[c]; j < x->cstart[c + 1] &&
                                            seen < TOGETHER_MINE;
                 j++, seen++)
                it[n_it++] = x->item[j];
        for (size_t w = 0; w < n_it; w++) {
            if (it[w] == seed)
                continue;
            size_t h = (it[w] * 0x9E3779B1u) & (cap - 1);
            while (key[h] != CX_NONE && key[h] != it[w])
                h = (h + 1) & (cap - 1);
            if (key[h] == CX_NONE) {
                if (used * 2 >= cap)
                    continue; /* full enough: rare items are dropped */
                key[h] = it[w];
                cnt[h] = 0;
                by[h] = CX_NONE;
                used++;
            }
            if (by[h] != b) { /* once a buyer */
                by[h] = (uint32_t)b;
                cnt[h] += 1;
            }
        }
    }
    /* The best `max` by count (ties: the lower index), in a heap: most
     * counts are 1, in no order, and sorting them in would move items
     * along the list at nearly every insertion. */
    cx__topk t = {malloc(max * sizeof *t.h), 0, max};
    if (!t.h) {
        free(key), free(by), free(cnt);
        return CX_ENOMEM;
    }
    for (size_t h = 0; h < cap; h++)
        if (key[h] != CX_NONE)
            cx__topk_push(&t, cnt[h], key[h]);
    cx__topk_sort(&t);
    for (size_t j = 0; j < t.n; j++) {
        items[j] = t.h[j].item;
        score[j] = t.h[j].score;
    }
    *n = t.n;
    free(t.h);
    free(key), free(by), free(cnt);
    return CX_OK;
}

/* Favoured categories, or for a new visitor the most popular ones. */
static void categories(page *pg)
{
    cx_engine *e = pg->e;
    pg->n_cat = 0;
    for (size_t j = 0; j < pg->prof.n_categories && pg->n_cat < TOP_CATS;
         j++) {
        uint32_t c = cx__idmap_find(&e->categories, pg->prof.category[j]);
        if (c == CX_NONE || c == 0) /* "" is no category to show */
            continue;
        pg->cat[pg->n_cat] = c;
        pg->cat_share[pg->n_cat++] = pg->prof.category_share[j];
    }
    if (pg->n_cat)
        return;
    double best[TOP_CATS];
    size_t nc = e->categories.n;
    double *sum = calloc(nc ? nc : 1, sizeof *sum);
    if (!sum)
        return;
    for (uint32_t i = 0; i < e->items.n; i++)
        if (!(e->item_flags[i] & CX__ITEM_REMOVED))
            sum[e->item_cat[i]] += e->item_pop[i];
    for (uint32_t c = 1; c < nc; c++) {
        if (!(sum[c] > 0))
            continue;
        size_t at = pg->n_cat;
        if (at == TOP_CATS) {
            if (sum[c] <= best[TOP_CATS - 1])
                continue;
            at = TOP_CATS - 1;
        } else {
            pg->n_cat++;
        }
        while (at > 0 && best[at - 1] < sum[c]) {
            best[at] = best[at - 1];
            pg->cat[at] = pg->cat[at - 1];
            at--;
        }
        best[at] = sum[c];
        pg->cat[at] = c;
    }
    for (size_t j = 0; j < pg->n_cat; j++)
        pg->cat_share[j] = 0;
    free(sum);
}

/* Mean relevance of a row's items to the customer, in [0, 1]. */
static float affinity(const page *pg, const cand *c, size_t n)
{
    if (!n)
        return 0;
    double a = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t i = c->h[j].item;
        if (pg->x && pg->best > 0) {
            const float *y = cx__item_vec(pg->e, i, NULL);
            float s = y ? cx__k.dot(pg->x, y, pg->e->model->k) / pg->best : 0;
            a += s < 0 ? 0 : s > 1 ? 1 : s;
        } else {
            for (size_t q = 0; q < pg->n_cat; q++)
                if (pg->e->item_cat[i] == pg->cat[q])
                    a += pg->cat_share[q];
        }
    }
    return (float)(a / (double)n);
}

static int allowed_kind(const page *pg, int kind)
{
    return (pg->spec->kinds & CX_ROW_BIT(kind)) && pg->spec->per_kind[kind];
}

/* Every candidate row the spec allows. */
static int fill(page *pg)
{
    const cx_layout_spec *s = pg->spec;
    cx_engine *e = pg->e;
    int rc = CX_OK;
    size_t nk;
    uint32_t seeds[16], cont[64], last_buy;
    float cont_score[64];
    size_t n_seeds, n_cont;
    size_t max_seeds = s->per_kind[CX_ROW_BECAUSE] < 16
                           ? s->per_kind[CX_ROW_BECAUSE] : 16;
    recent(pg, seeds, &n_seeds, max_seeds, cont, cont_score, &n_cont, 64,
           &last_buy);
    if (!allowed_kind(pg, CX_ROW_BECAUSE) || !e->model)
        n_seeds = 0;
    /* One pass over the factors ranks for the customer (the FOR_YOU row
     * and their best score), for each favoured category (the CATEGORY
     * rows: the customer's scores, that category's items only) and for
     * each BECAUSE seed (by cosine). */
    cx__rank_q rq[1 + TOP_CATS + 16];
    size_t row_of[1 + TOP_CATS + 16];
    size_t nq = 0, n_catq = 0;
    cx__hit *cat_h[TOP_CATS];
    float *unit = n_seeds && e->model
                      ? malloc(n_seeds * (size_t)e->model->k * sizeof *unit)
                      : NULL;
    cx__hit *wide = NULL;
    size_t n_wide = 0;
    if (n_seeds && !unit)
        return CX_ENOMEM;
    if (pg->x) {
        if (!(wide = malloc(pg->pool * sizeof *wide)))
            rc = CX_ENOMEM;
        else
            rq[nq++] = (cx__rank_q){pg->x, 0, CX_NONE, CX_NONE, pg->pool, 0,
                                    wide};
        for (size_t j = 0; rc == CX_OK &&
                           allowed_kind(pg, CX_ROW_CATEGORY) &&
                           j < pg->n_cat && j < s->per_kind[CX_ROW_CATEGORY];
             j++) {
            if (!(cat_h[j] = malloc(pg->pool * sizeof *cat_h[j]))) {
                rc = CX_ENOMEM;
                break;
            }
            n_catq++;
            rq[nq++] = (cx__rank_q){pg->x, 0, CX_NONE, pg->cat[j], pg->pool,
                                    0, cat_h[j]};
        }
    }
    size_t first_seed = nq;
    for (size_t j = 0; rc == CX_OK && j < n_seeds; j++) {
        float inv = 0;
        const float *y = cx__item_vec(e, seeds[j], &inv);
        cand *c = NULL;
        if (!y || !(inv > 0))
            continue;
        float *u = unit + j * (size_t)e->model->k;
        for (int d = 0; d < e->model->k; d++)
            u[d] = y[d] * inv;
        if (!(c = new_cand(pg, CX_ROW_BECAUSE, CX_REASON_SIMILAR, seeds[j],
                           CX_NONE, NULL))) {
            rc = CX_ENOMEM;
            break;
        }
        row_of[nq] = pg->n_c - 1;
        rq[nq++] = (cx__rank_q){u, 1, seeds[j], CX_NONE, pg->pool, 0, c->h};
    }
    if (rc == CX_OK && nq)
        rc = cx__rank_multi(e, &s->rules, pg->u, pg->skip, rq, nq);
    for (size_t j = first_seed; rc == CX_OK && j < nq; j++)
        pg->c[row_of[j]].n = rq[j].n;
    free(unit);
    if (rc == CX_OK && pg->x) {
        n_wide = rq[0].n;
        if (n_wide)
            pg->best = wide[0].score;
    }
    if (rc == CX_OK && pg->x && allowed_kind(pg, CX_ROW_FOR_YOU)) {
        cand *c = new_cand(pg, CX_ROW_FOR_YOU, CX_REASON_PERSONAL, CX_NONE,
                           CX_NONE, NULL);
        if (!c)
            rc = CX_ENOMEM;
        for (size_t j = 0; c && j < n_wide && c->n < pg->pool; j++)
            c->h[c->n++] = wide[j];
    }
    if (rc == CX_OK && allowed_kind(pg, CX_ROW_CONTINUE))
        rc = listed_row(pg, CX_ROW_CONTINUE, CX_REASON_CONTINUE, CX_NONE,
                        cont, cont_score, n_cont, 0);
    if (rc == CX_OK && allowed_kind(pg, CX_ROW_BOUGHT_TOGETHER) &&
        last_buy != CX_NONE) {
        uint32_t tog[128];
        float ts[128];
        size_t nt;
        rc = together(pg, last_buy, tog, ts, 128, &nt);
        if (rc == CX_OK)
            rc = listed_row(pg, CX_ROW_BOUGHT_TOGETHER,
                            CX_REASON_BOUGHT_TOGETHER, last_buy, tog, ts, nt,
                            s->rules.exclude);
    }
    /* Trending (overall, then in favoured categories) and new arrivals
     * (in favoured categories; overall for a new visitor): one pass over
     * the catalogue fills them all. */
    cx__list_req req[2 * TOP_CATS + 2 + TOP_CATS];
    cand *req_c[2 * TOP_CATS + 2 + TOP_CATS];
    size_t nreq = 0;
#define LIST_ROW(kind_, reason_, cat_, list_)                               \
    do {                                                                    \
        cand *c_ = new_cand(pg, kind_, reason_, CX_NONE, cat_, NULL);       \
        if (!c_) {                                                          \
            rc = CX_ENOMEM;                                                 \
            break;                                                          \
        }                                                                   \
        req[nreq] = (cx__list_req){list_, cat_, pg->pool, 0, c_->h};        \
        req_c[nreq++] = c_;                                                 \
    } while (0)
    nk = 0;
    if (rc == CX_OK && allowed_kind(pg, CX_ROW_TRENDING)) {
        if (nk++ < s->per_kind[CX_ROW_TRENDING])
            LIST_ROW(CX_ROW_TRENDING, CX_REASON_TRENDING, CX_NONE, 1);
        for (size_t j = 0; rc == CX_OK && j < pg->n_cat &&
                           nk++ < s->per_kind[CX_ROW_TRENDING]; j++)
            LIST_ROW(CX_ROW_TRENDING, CX_REASON_TRENDING, pg->cat[j], 1);
    }
    nk = 0;
    if (rc == CX_OK && allowed_kind(pg, CX_ROW_NEW)) {
        if (pg->u == CX_NONE && nk++ < s->per_kind[CX_ROW_NEW])
            LIST_ROW(CX_ROW_NEW, CX_REASON_NEW, CX_NONE, 2);
        for (size_t j = 0; rc == CX_OK && j < pg->n_cat &&
                           nk++ < s->per_kind[CX_ROW_NEW]; j++)
            LIST_ROW(CX_ROW_NEW, CX_REASON_NEW, pg->cat[j], 2);
    }
    /* Category rows of a customer without a vector: popular in it. */
    if (rc == CX_OK && !pg->x && allowed_kind(pg, CX_ROW_CATEGORY))
        for (size_t j = 0; rc == CX_OK && j < pg->n_cat &&
                           j < s->per_kind[CX_ROW_CATEGORY]; j++)
            LIST_ROW(CX_ROW_CATEGORY, CX_REASON_CATEGORY, pg->cat[j], 0);
#undef LIST_ROW
    if (rc == CX_OK && nreq &&
        (rc = cx__rank_lists(e, &s->rules, pg->u, pg->skip, req, nreq)) ==
            CX_OK)
        for (size_t j = 0; j < nreq; j++)
            req_c[j]->n = req[j].n;
    /* The category rows ranked in the pass above, placed last. */
    for (size_t j = 0; j < n_catq; j++) {
        cand *c = NULL;
        if (rc != CX_OK)
            free(cat_h[j]);
        else if (!(c = new_cand(pg, CX_ROW_CATEGORY, CX_REASON_CATEGORY,
                                CX_NONE, pg->cat[j], cat_h[j])))
            rc = CX_ENOMEM; /* cat_h[j] freed with the row that failed */
        else
            c->n = rq[1 + j].n;
    }
    free(wide);
    return rc;
}

static int by_fit(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->fit != y->fit)
        return (x->fit < y->fit) - (x->fit > y->fit);
    return (x->kind > y->kind) - (x->kind < y->kind);
}

/* An open-addressing set of item indexes: the page's items so far. */
typedef struct itemset {
    uint32_t *slot;
    size_t cap;
} itemset;

static int set_has(const itemset *s, uint32_t i)
{
    for (size_t h = (i * 0x9E3779B1u) & (s->cap - 1);; h = (h + 1) & (s->cap - 1)) {
        if (s->slot[h] == CX_NONE)
            return 0;
        if (s->slot[h] == i)
            return 1;
    }
}

static void set_add(itemset *s, uint32_t i)
{
    size_t h = (i * 0x9E3779B1u) & (s->cap - 1);
    while (s->slot[h] != CX_NONE && s->slot[h] != i)
        h = (h + 1) & (s->cap - 1);
    s->slot[h] = i;
}

/* Place rows by fit, each item once; returns the row count. */
static size_t place(page *pg, cx_layout_row *rows, size_t max_rows,
                    cx_layout_item *items, size_t max_items, itemset *used,
                    size_t min_row)
{
    const cx_layout_spec *s = pg->spec;
    cx_engine *e = pg->e;
    size_t nr = 0, ni = 0;
    for (size_t r = 0; r < pg->n_c && nr < max_rows && nr < s->max_rows;
         r++) {
        cand *c = &pg->c[r];
        size_t first = ni, cnt = 0;
        uint32_t in_row[100]; /* items_per_row <= 100 */
        for (size_t j = 0; j < c->n && cnt < s->items_per_row &&
                           ni < max_items; j++) {
            uint32_t i = c->h[j].item;
            /* Not marked used yet: the row may still be dropped. */
            if (set_has(used, i) || seen_in(in_row, cnt, i))
                continue;
            items[ni++] = (cx_layout_item){e->items.str[i], c->h[j].score,
                                           c->reason};
            in_row[cnt++] = i;
        }
        if (cnt < min_row || cnt == 0) {
            ni = first;
            continue;
        }
        for (size_t q = 0; q < cnt; q++)
            set_add(used, in_row[q]);
        rows[nr++] = (cx_layout_row){
            c->kind,
            c->seed_item != CX_NONE ? e->items.str[c->seed_item]
            : c->seed_cat != CX_NONE ? e->categories.str[c->seed_cat]
                                     : NULL,
            c->fit, first, cnt};
    }
    return nr;
}

CX_API int cx_layout(cx_engine *e, const char *customer,
                     const cx_layout_spec *spec, cx_layout_row *rows,
                     size_t max_rows, cx_layout_item *items,
                     size_t max_items, size_t *n_rows)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_layout: engine is NULL");
    if (!n_rows || !rows || !items)
        return cx__fail(e, CX_EINVAL, "cx_layout: rows, items or n_rows is "
                        "NULL");
    *n_rows = 0;
    if (!cx__id_len(customer))
        return cx__fail(e, CX_EINVAL, "cx_layout: customer id is NULL, empty "
                        "or longer than %d bytes", CX_MAX_ID_LEN);
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    if (spec) {
        if (spec->size != sizeof s)
            return cx__fail(e, CX_EINVAL, "cx_layout: spec not initialised "
                            "with cx_layout_spec_init (size %zu)",
                            spec->size);
        s = *spec;
    }
    if (s.max_rows == 0 || s.max_rows > 64 || s.items_per_row == 0 ||
        s.items_per_row > 100 || s.min_row > s.items_per_row ||
        s.now < 0 || !(s.kinds & ((1u << CX_ROW_KINDS) - 1)))
        return cx__fail(e, CX_EINVAL, "cx_layout: bad spec (max_rows 1..64,"
                        " items_per_row 1..100, min_row <= items_per_row, "
                        "now >= 0, at least one kind)");
    if (s.channel && !cx__id_len(s.channel))
        return cx__fail(e, CX_EINVAL, "cx_layout: invalid channel");
    page *pg = calloc(1, sizeof *pg);
    itemset used = {0};
    if (!pg)
        return cx__fail(e, CX_ENOMEM, "cx_layout: out of memory");
    pg->e = e;
    pg->spec = &s;
    pg->pool = 3 * s.items_per_row;
    cx__fold *tmp = NULL;
    int rc = CX_OK;
    cx__rdlock(e);
    pg->u = cx__idmap_find(&e->customers, customer);
    if ((rc = cx__profile(e, pg->u, s.now, &pg->prof)))
        rc = cx__fail(e, rc, "cx_layout: out of memory");
    if (rc == CX_OK && pg->u != CX_NONE)
        pg->x = cx__customer_vec(e, pg->u, NULL, &tmp);
    if (rc == CX_OK)
        rc = cx__skip_make(e, &s.rules, pg->u, &pg->skip);
    if (rc == CX_OK) {
        categories(pg);
        rc = fill(pg);
    }
    used.cap = 64;
    while (used.cap < 4 * (s.max_rows * s.items_per_row + 1))
        used.cap *= 2;
    used.slot = rc ? NULL : malloc(used.cap * sizeof *used.slot);
    if (rc == CX_OK && !used.slot)
        rc = cx__fail(e, CX_ENOMEM, "cx_layout: out of memory");
    if (rc == CX_OK) {
        memset(used.slot, 0xff, used.cap * sizeof *used.slot);
        int stage = pg->prof.stage;
        for (size_t r = 0; r < pg->n_c; r++) {
            cand *c = &pg->c[r];
            size_t n = c->n < s.items_per_row ? c->n : s.items_per_row;
            c->fit = stage_weight[stage][c->kind] *
                     (1 + affinity(pg, c, n)) / 2;
        }
        qsort(pg->c, pg->n_c, sizeof pg->c[0], by_fit);
        size_t nr = place(pg, rows, max_rows, items, max_items, &used,
                          s.min_row);
        /* Never an empty page: relax the minimum length, then fall back
         * to the popular list. */
        if (nr == 0)
            nr = place(pg, rows, max_rows, items, max_items, &used, 1);
        if (nr == 0 && (s.kinds & CX_ROW_BIT(CX_ROW_TRENDING)) &&
            (rc = ranked_row(pg, CX_ROW_TRENDING, CX_REASON_TRENDING,
                             CX_NONE, CX_NONE, NULL, 0, 1)) == CX_OK) {
            cand only = pg->c[pg->n_c - 1];
            for (size_t r = 0; r + 1 < pg->n_c; r++)
                free(pg->c[r].h);
            pg->c[0] = only;
            pg->n_c = 1;
            nr = place(pg, rows, max_rows, items, max_items, &used, 1);
        }
        *n_rows = nr;
    }
    cx__skip_free(pg->skip);
    cx__rdunlock(e);
    free(tmp);
    free(used.slot);
    for (size_t r = 0; r < pg->n_c; r++)
        free(pg->c[r].h);
    free(pg);
    return rc == CX_ENOMEM ? cx__fail(e, rc, "cx_layout: out of memory")
                           : rc;
}
