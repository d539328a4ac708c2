/* rank.c -- scoring and top-k selection with business rules.
 * One pass fuses scoring and selection: a block of scores is computed,
 * and only scores above the current k-th best are checked against the
 * rules and pushed into a small heap. */
#include "internal.h"
#include "quality.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define BLOCK 256     /* items scored per kernel call; a multiple of 8 */
#define STACK_IDS 1024
#define MULTI_MAX 32  /* queries of one fused pass */

/* ===================================================================== */
/* Model serving data                                                    */
/* ===================================================================== */

/* The step of a vector's 4-bit codes: of the steps that put the largest
 * |y| at CX__YMAX, 0.96 of it, ... down to 0.6 of it (the values beyond
 * clipped), the one with the least squared error.  Against the largest
 * |y| alone (0.103 -> 0.095 relative error on the synthetic shop's
 * items), similar_items' fast top-20 on that shop agreed with the exact
 * one for 99.7% of 300 items instead of 94.7% (numpy).  About 35 ms at
 * 20,000 items x 64, paid where a model is trained or a generation of an
 * older snapshot format opens. */
static float q4_scale(const float *y, int k, float mx)
{
    float best = mx / (float)CX__YMAX, best_err = INFINITY;
    for (int t = 0; mx > 0 && t <= 10; t++) {
        float s = mx * (1.0f - 0.04f * (float)t) / (float)CX__YMAX,
              inv = 1.0f / s, err = 0;
        for (int d = 0; d < k; d++) {
            float v = y[d] * inv;
            v = v > CX__YMAX ? CX__YMAX : v < -CX__YMAX ? -CX__YMAX : v;
            /* roundf, inline (|v| <= 7) */
            float e = (float)(int)(v + (v < 0 ? -0.5f : 0.5f)) * s - y[d];
            err += e * e;
        }
        if (err < best_err)
            best_err = err, best = s;
    }
    return best;
}

int cx__model_finish(cx__model *m)
{
    int k = m->k, kq = (k + 7) & ~7;
    size_t nb = ((size_t)m->n_items + 7) / 8, padded = nb * 8;
    m->kq = kq;
    m->inv_norm = calloc(padded + 1, sizeof *m->inv_norm);
    m->q_scale = calloc(padded + 1, sizeof *m->q_scale);
    m->q_cos_scale = calloc(padded + 1, sizeof *m->q_cos_scale);
    size_t yq = padded * (size_t)kq / 2 + 32;
    m->Yq = cx__alloc_big(yq);
    if (!m->inv_norm || !m->q_scale || !m->q_cos_scale || !m->Yq)
        return CX_ENOMEM;
    memset(m->Yq, 0x88, yq); /* codes 0 */
    for (uint32_t i = 0; i < m->n_items; i++) {
        const float *y = m->Y + (size_t)i * k;
        double n2 = 0;
        float mx = 0;
        for (int d = 0; d < k; d++) {
            n2 += (double)y[d] * y[d];
            mx = fabsf(y[d]) > mx ? fabsf(y[d]) : mx;
        }
        m->inv_norm[i] = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        m->q_scale[i] = q4_scale(y, k, mx);
        m->q_cos_scale[i] = m->q_scale[i] * m->inv_norm[i];
        for (int d = 0; d < k; d++) {
            float q = mx > 0 ? roundf(y[d] / m->q_scale[i]) : 0;
            q = q > CX__YMAX ? CX__YMAX : q < -CX__YMAX ? -CX__YMAX : q;
            cx__q4_put(m->Yq, kq, i, d, (int)q);
        }
    }
    return CX_OK;
}

float cx__quantize(const float *x, int k, int kq, int8_t *xq)
{
    float mx = 0;
    for (int d = 0; d < k; d++)
        mx = fabsf(x[d]) > mx ? fabsf(x[d]) : mx;
    float s = mx / (float)CX__QMAX;
    for (int d = 0; d < kq; d++) {
        float q = d < k && mx > 0 ? roundf(x[d] / s) : 0;
        xq[d] = (int8_t)(q > CX__QMAX ? CX__QMAX : q < -CX__QMAX ? -CX__QMAX
                                                                 : q);
    }
    return s;
}

/* ===================================================================== */
/* Top-k heap: the root is the worst kept hit                            */
/* ===================================================================== */

/* a ranks below b: lower score, or equal score and higher index, so ties
 * resolve the same way in every path. */
static inline int worse(const cx__hit *a, const cx__hit *b)
{
    return a->score < b->score || (a->score == b->score && a->item > b->item);
}

static void sift_down(cx__hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (r < n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        cx__hit t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

void cx__topk_push(cx__topk *t, float score, uint32_t item)
{
    cx__hit x = {score, item};
    if (t->n < t->cap) {
        size_t i = t->n++;
        t->h[i] = x;
        while (i && worse(&t->h[i], &t->h[(i - 1) / 2])) {
            cx__hit tmp = t->h[i];
            t->h[i] = t->h[(i - 1) / 2];
            t->h[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
    } else if (t->cap && worse(&t->h[0], &x)) {
        t->h[0] = x;
        sift_down(t->h, t->n, 0);
    }
}

/* The score a new hit must beat to enter. */
static inline float bar(const cx__topk *t)
{
    return t->n < t->cap ? -INFINITY : t->h[0].score;
}

void cx__topk_sort(cx__topk *t)
{
    /* Heap sort: pop the worst to the end, leaving best first. */
    for (size_t n = t->n; n > 1; n--) {
        cx__hit tmp = t->h[0];
        t->h[0] = t->h[n - 1];
        t->h[n - 1] = tmp;
        sift_down(t->h, n - 1, 0);
    }
}

/* ===================================================================== */
/* Rules                                                                 */
/* ===================================================================== */

typedef struct rules {
    const cx_engine *e;    /* NULL: no catalogue rules (evaluation) */
    uint32_t cat;          /* CX_NONE = any */
    int in_stock_only;
    uint32_t self;         /* excluded item (similar_items), or CX_NONE */
    const uint32_t *deny;  /* sorted */
    size_t n_deny;
    const uint32_t *skip;  /* sorted: the customer's excluded items */
    size_t n_skip;
    int no_x;              /* drop items with a fold-in slot: the model
                              scans see them as zero vectors */
    const uint64_t *skip_bits; /* NULL, or a filter of skip: an item whose
                                  bit is clear is not in it */
    const uint64_t *skip_set;  /* NULL, or skip as a bit per item (a long
                                  one: no binary search) */
    /* Not a rule but a term of the score, which every scan adds where it
     * scores: bias_w * bias[i] for items i < n_bias (the blend's
     * popularity prior), or nothing with bias NULL.  The 4-bit kernel
     * reads it for whole blocks of 8 model items: rank_hits checks. */
    const float *bias;
    size_t n_bias;
    float bias_w;
} rules;

static inline float bias_of(const rules *r, uint32_t i)
{
    return r->bias && i < r->n_bias ? r->bias_w * r->bias[i] : 0.0f;
}

/* buf[j] += the bias of item b + j, j < n. */
static void add_bias(const rules *r, size_t b, size_t n, float *buf)
{
    size_t m = b >= r->n_bias ? 0 : r->n_bias - b < n ? r->n_bias - b : n;
    for (size_t j = 0; j < m; j++)
        buf[j] += r->bias_w * r->bias[b + j];
}

#define SKIP_BITS 1024

/* The filter of a skip list (SKIP_BITS bits): a candidate is usually
 * not skipped, and one bit tells it without a binary search. */
static inline size_t skip_bit(uint32_t i)
{
    return (i * 0x9E3779B1u) >> (32 - 10);
}

static void skip_filter(const uint32_t *skip, size_t n, uint64_t *bits)
{
    memset(bits, 0, SKIP_BITS / 8);
    for (size_t j = 0; j < n; j++)
        bits[skip_bit(skip[j]) / 64] |= 1ull << (skip_bit(skip[j]) % 64);
}

static int in_sorted(const uint32_t *a, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == x;
}

static int allowed(const rules *r, uint32_t i)
{
    if (!r->e)
        return !in_sorted(r->skip, r->n_skip, i);
    uint8_t f = r->e->item_flags[i];
    if ((f & CX__ITEM_REMOVED) ||
        (r->in_stock_only && !(f & CX__ITEM_IN_STOCK)) ||
        (r->cat != CX_NONE && r->e->item_cat[i] != r->cat) || i == r->self ||
        (r->no_x && r->e->item_xslot[i] != CX_NONE))
        return 0;
    if (r->n_deny && in_sorted(r->deny, r->n_deny, i))
        return 0;
    if (r->skip_set)
        return !(r->skip_set[i / 64] >> (i % 64) & 1);
    if (r->skip_bits &&
        !(r->skip_bits[skip_bit(i) / 64] >> (skip_bit(i) % 64) & 1))
        return 1;
    return !in_sorted(r->skip, r->n_skip, i);
}

/* A growable list of item indexes that starts on the caller's stack. */
typedef struct idlist {
    uint32_t *v;
    size_t n, cap;
    int heap;
} idlist;

static int idlist_push(idlist *l, uint32_t x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap * 2;
        uint32_t *v = l->heap ? realloc(l->v, cap * sizeof *v)
                              : malloc(cap * sizeof *v);
        if (!v)
            return CX_ENOMEM;
        if (!l->heap)
            memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
        l->heap = 1;
    }
    l->v[l->n++] = x;
    return CX_OK;
}

static void idlist_sort(idlist *l)
{
    qsort(l->v, l->n, sizeof *l->v, cx__cmp_u32);
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!w || l->v[w - 1] != l->v[i])
            l->v[w++] = l->v[i];
    l->n = w;
}

static void idlist_free(idlist *l)
{
    if (l->heap)
        free(l->v);
}

/* Items customer u must not see under `exclude`: pairs from the model
 * (its CSR row) plus signals that arrived after training. */
static int customer_skip(const cx_engine *e, uint32_t u, unsigned exclude,
                         idlist *out)
{
    const cx__model *m = e->model;
    unsigned neg = cx__negative_types(&e->opt);
    int rc = CX_OK;
    if (m && u < m->n_users)
        for (uint64_t p = m->ui.ptr[u]; p < m->ui.ptr[u + 1] && !rc; p++)
            if ((m->ui.mask[p] & (exclude | neg)) || m->ui.conf[p] < -1.0f)
                rc = idlist_push(out, m->ui.idx[p]);
    uint64_t done = m ? m->n_events : 0;
    for (uint32_t ev = e->cust_last[u]; ev != CX_NONE && ev >= done && !rc;
         ev = e->ev_prev[ev])
        if (CX_TYPE_BIT(e->ev[ev].type) & (exclude | neg))
            rc = idlist_push(out, e->ev[ev].item);
    idlist_sort(out);
    return rc;
}

/* Resolve a list of ids to sorted indexes, ignoring unknown ones. */
static int resolve(const cx_engine *e, const char *const *ids, size_t n,
                   idlist *out)
{
    for (size_t i = 0; i < n; i++) {
        if (!cx__id_len(ids[i]))
            return cx__fail(e, CX_EINVAL, "allow/deny entry %zu is not a "
                            "valid id", i);
        uint32_t it = cx__idmap_find(&e->items, ids[i]);
        if (it != CX_NONE && idlist_push(out, it))
            return cx__fail(e, CX_ENOMEM, "out of memory");
    }
    idlist_sort(out);
    return CX_OK;
}

/* ===================================================================== */
/* Scans                                                                 */
/* ===================================================================== */

/* Exact scores of items [0, n) against x (times scale), rules applied.
 * Only scores above the current k-th best reach the rules and the heap;
 * `above` finds them eight at a time. */
static void scan_exact(const cx__model *m, const float *x, const float *scale,
                       const rules *r, cx__topk *t)
{
    float buf[BLOCK];
    uint32_t hit[BLOCK];
    for (uint32_t b = 0; b < m->n_items; b += BLOCK) {
        size_t n = m->n_items - b < BLOCK ? m->n_items - b : BLOCK;
        cx__k.scores(m->Y + (size_t)b * m->k, x, m->k, n,
                     scale ? scale + b : NULL, buf);
        if (r->bias)
            add_bias(r, b, n, buf);
        float lim = bar(t);
        size_t nh = cx__k.above(buf, n, lim, hit);
        for (size_t h = 0; h < nh; h++) {
            uint32_t j = hit[h];
            if (buf[j] > lim && allowed(r, b + j)) {
                cx__topk_push(t, buf[j], b + j);
                lim = bar(t);
            }
        }
    }
}

/* A hit as one integer that orders as worse() does, larger for better:
 * the score's bits made monotonic (0 is +0: the 4-bit scores give no -0,
 * and -0 == +0 must tie), then the complement of the item. */
static inline uint64_t hit_key(const cx__hit *h)
{
    uint32_t b;
    float s = h->score == 0 ? 0.0f : h->score;
    memcpy(&b, &s, sizeof b);
    b = b & 0x80000000u ? ~b : b | 0x80000000u;
    return (uint64_t)b << 32 | (uint32_t)~h->item;
}

static inline cx__hit key_hit(uint64_t k)
{
    uint32_t b = (uint32_t)(k >> 32);
    cx__hit h;
    b = b & 0x80000000u ? b & 0x7fffffffu : ~b;
    memcpy(&h.score, &b, sizeof b);
    h.item = ~(uint32_t)k;
    return h;
}

/* The hits become integer keys in place (a cx__hit is 8 bytes) and a
 * quickselect partitions them without a branch per element (Lomuto,
 * swapping always), where comparing (score, item) pairs mispredicted
 * half the branches on random scores: 0.91x the time of a 20k-item
 * layout, 0.99x at 100k. */
float cx__select_best(cx__hit *h, size_t n, size_t keep)
{
    _Static_assert(sizeof(cx__hit) == sizeof(uint64_t), "a hit is 8 bytes");
    unsigned char *k = (unsigned char *)h; /* key i at k + 8 i */
#define LD(i) (memcpy(&v_, k + 8 * (i), 8), v_)
#define ST(i, v) (v_ = (v), memcpy(k + 8 * (i), &v_, 8))
    uint64_t v_;
    for (size_t i = 0; i < n; i++)
        ST(i, hit_key(&h[i]));
    size_t lo = 0, hi = n; /* the keep-th largest is in [lo, hi) */
    while (keep > lo && keep < hi) {
        /* median of three as the pivot, moved to the end */
        size_t mid = lo + (hi - lo) / 2;
        uint64_t a = LD(lo), b = LD(mid), c = LD(hi - 1);
        size_t pi = (a > b) != (a > c) ? lo : (b > a) != (b > c) ? mid
                                                                 : hi - 1;
        uint64_t p = LD(pi);
        ST(pi, LD(hi - 1));
        size_t st = lo;
        for (size_t i = lo; i < hi - 1; i++) {
            uint64_t x = LD(i);
            ST(i, LD(st));
            ST(st, x);
            st += x > p;
        }
        ST(hi - 1, LD(st));
        ST(st, p); /* keys [lo, st) > p = key st > keys (st, hi) */
        if (st + 1 == keep || st == keep)
            break;
        if (st + 1 < keep)
            lo = st + 1;
        else
            hi = st;
    }
    float m = INFINITY;
    for (size_t i = 0; i < n; i++) {
        h[i] = key_hit(LD(i));
        if (i < keep)
            m = h[i].score < m ? h[i].score : m;
    }
#undef LD
#undef ST
    return m;
}

/* Approximate 4-bit scan collecting the best `cand->cap` candidates, then
 * exact re-ranking into t.  Candidates go into a buffer of twice that
 * size that is cut back by quickselect when full: O(1) per candidate,
 * where a heap would pay a sift on every one.  A fastq is one query's
 * state, so several queries can share one pass over the factors; one
 * with a category (cat, from item_cat) takes only that category's items,
 * and queries with the same vector share its scores (src: the first). */
typedef struct fastq {
    const float *x, *scale, *qscale;
    const rules *r;
    int8_t xq[1024 + 4];
    float qs, lim;
    cx__topk *cand;
    size_t n_c, keep, src;
    uint32_t cat;
    const uint32_t *item_cat;
} fastq;

static void fastq_init(fastq *f, const cx__model *m, const float *x,
                       const float *scale, const float *qscale,
                       const rules *r, cx__topk *cand)
{
    f->x = x;
    f->scale = scale;
    f->qscale = qscale;
    f->r = r;
    f->qs = cx__quantize(x, m->k, m->kq, f->xq);
    f->lim = -INFINITY;
    f->cand = cand;
    f->n_c = 0;
    f->keep = cand->cap / 2;
    f->src = 0;
    f->cat = CX_NONE;
    f->item_cat = NULL;
}

/* The candidates among the scores buf of blocks [b, b + nb). */
static void fastq_take(fastq *f, const cx__model *m, size_t b, size_t nb,
                       const float *buf, uint32_t *hit)
{
    size_t n = nb * 8, base = b * 8;
    if (base + n > m->n_items)
        n = m->n_items - base;
    size_t nh = f->cat == CX_NONE
                    ? cx__k.above(buf, n, f->lim, hit)
                    : cx__k.above_in(buf, f->item_cat + base, n, f->lim,
                                     f->cat, hit);
    for (size_t h = 0; h < nh; h++) {
        uint32_t j = hit[h];
        if (!(buf[j] > f->lim) || !allowed(f->r, (uint32_t)base + j))
            continue;
        f->cand->h[f->n_c++] = (cx__hit){buf[j], (uint32_t)base + j};
        if (f->n_c == f->cand->cap) {
            f->lim = cx__select_best(f->cand->h, f->n_c, f->keep);
            f->n_c = f->keep;
        }
    }
}

/* Re-rank the candidates through the same kernel as the exact scan, so
 * a candidate gets the bit-identical score it would get there. */
static void fastq_finish(fastq *f, const cx__model *m, cx__topk *t)
{
    size_t n_c = f->n_c;
    if (n_c > f->keep)
        cx__select_best(f->cand->h, n_c, f->keep), n_c = f->keep;
    uint32_t ids_buf[512];
    float sc_buf[512];
    uint32_t *ids = n_c <= 512 ? ids_buf : malloc(n_c * sizeof *ids);
    float *sc = n_c <= 512 ? sc_buf : malloc(n_c * sizeof *sc);
    if (!ids || !sc) { /* fall back to one row at a time */
        for (size_t c = 0; c < n_c; c++) {
            float v;
            uint32_t i = f->cand->h[c].item;
            cx__k.gdots(m->Y, &i, 1, m->k, f->x, &v);
            cx__topk_push(t, (f->scale ? v * f->scale[i] : v) +
                                 bias_of(f->r, i), i);
        }
    } else {
        for (size_t c = 0; c < n_c; c++)
            ids[c] = f->cand->h[c].item;
        cx__k.gdots(m->Y, ids, n_c, m->k, f->x, sc);
        for (size_t c = 0; c < n_c; c++)
            cx__topk_push(t, (f->scale ? sc[c] * f->scale[ids[c]] : sc[c]) +
                                 bias_of(f->r, ids[c]), ids[c]);
    }
    if (ids != ids_buf)
        free(ids);
    if (sc != sc_buf)
        free(sc);
}

/* Queries f[0..nq) in one pass: each block of factors is read once and
 * scored against up to CX__QN distinct queries by one kernel (the loads
 * shared, their arithmetic done while the next lines arrive), the rest
 * CX__QN at a time while the block is in the cache; queries sharing a
 * vector (f[q].src < q) read the scores of their first. */
static void scan_fast_n(const cx__model *m, fastq *f, size_t nq,
                        cx__topk *const *t)
{
    float buf[CX__QN][BLOCK];
    uint32_t hit[BLOCK];
    size_t nblocks = ((size_t)m->n_items + 7) / 8;
    size_t d[MULTI_MAX], nd = 0;
    for (size_t q = 0; q < nq; q++)
        if (f[q].src == q)
            d[nd++] = q;
    for (size_t b = 0; b < nblocks; b += BLOCK / 8) {
        size_t nb = nblocks - b < BLOCK / 8 ? nblocks - b : BLOCK / 8;
        for (size_t g = 0; g < nd; g += CX__QN) {
            size_t n = nd - g < CX__QN ? nd - g : CX__QN;
            cx__qn qn[CX__QN];
            for (size_t a = 0; a < n; a++) {
                const fastq *h = &f[d[g + a]];
                qn[a] = (cx__qn){h->xq, h->qs, h->qscale, h->r->bias,
                                 h->r->bias_w, buf[a]};
            }
            cx__k.scores_qn(m->Yq, m->kq, b, nb, n, qn);
            for (size_t a = 0; a < n; a++)
                for (size_t p = d[g + a]; p < nq; p++)
                    if (f[p].src == d[g + a])
                        fastq_take(&f[p], m, b, nb, buf[a], hit);
        }
    }
    for (size_t q = 0; q < nq; q++)
        fastq_finish(&f[q], m, t[q]);
}

static void scan_fast(const cx__model *m, const float *x, const float *scale,
                      const float *qscale, const rules *r, cx__topk *cand,
                      cx__topk *t)
{
    fastq f;
    fastq_init(&f, m, x, scale, qscale, r, cand);
    scan_fast_n(m, &f, 1, &t);
}

/* Score only the listed items (an allow list, or a category's items):
 * model rows BLOCK at a time through the scan kernel's arithmetic, so a
 * listed item scores bit-identically to the exact scan; fold-ins one by
 * one as scan_extra does. */
static void scan_list(const cx_engine *e, const float *x, int cosine,
                      const idlist *list, const rules *r, cx__topk *t)
{
    const cx__model *m = e->model;
    uint32_t ids[BLOCK];
    float sc[BLOCK];
    size_t nb = 0;
    for (size_t j = 0; j <= list->n; j++) {
        if (j < list->n) {
            uint32_t i = list->v[j];
            float inv;
            if (!allowed(r, i))
                continue;
            if (i < m->n_items && m->inv_norm[i] > 0) {
                ids[nb++] = i;
                if (nb < BLOCK)
                    continue;
            } else {
                const float *y = cx__item_vec(e, i, &inv);
                if (y) {
                    float v = cx__k.dot(y, x, m->k);
                    cx__topk_push(t, (cosine ? v * inv : v) + bias_of(r, i),
                                  i);
                }
                continue;
            }
        }
        if (nb)
            cx__k.gdots(m->Y, ids, nb, m->k, x, sc);
        for (size_t h = 0; h < nb; h++)
            cx__topk_push(t, (cosine ? sc[h] * m->inv_norm[ids[h]] : sc[h]) +
                                 bias_of(r, ids[h]), ids[h]);
        nb = 0;
    }
}

/* Items folded in since training: few, scored exactly. */
static void scan_extra(const cx_engine *e, const float *x, int cosine,
                       rules *r, cx__topk *t)
{
    int k = e->model->k, no_x = r->no_x;
    r->no_x = 0;
    for (uint32_t s = 0; s < e->xv_n; s++) {
        float v = cx__k.dot(e->xv + (size_t)s * k, x, k);
        if (cosine)
            v *= e->xv_inv_norm[s];
        uint32_t i = e->xv_item[s];
        v += bias_of(r, i);
        if (v >= bar(t) && allowed(r, i))
            cx__topk_push(t, v, i);
    }
    r->no_x = no_x;
}

enum { LIST_POPULAR = CX__LIST_POPULAR, LIST_TRENDING = CX__LIST_TRENDING,
       LIST_NEW = CX__LIST_NEW };

/* Customer-free lists in one pass over the items (or over `allow`): list
 * j (LIST_*, in category cat[j] or any with CX_NONE) keeps its best in
 * t[j].  Popular and trending score the live popularity as of the newest
 * signal; new arrivals score minus their age in seconds at the newest
 * signal or creation time (a float keeps it to 1 s for half a year, and
 * relatively close after), turned into days by ages_in_days(). */
static void scan_lists_pass(const cx_engine *e, const rules *r, const idlist *allow,
                       const int *list, const uint32_t *cat, size_t nreq,
                       cx__topk *t)
{
    double hp = e->opt.pop_half_life, ht = e->opt.trend_half_life;
    double fp = hp > 0 ? exp2((double)(e->pop_t0 - e->ts_max) / hp) : 1.0;
    double ft = ht > 0 ? exp2((double)(e->trend_t0 - e->ts_max) / ht) : 1.0;
    size_t n = allow ? allow->n : e->items.n;
    int64_t newest = e->created_max > e->ts_max ? e->created_max : e->ts_max;
    for (size_t a = 0; a < n; a++) {
        uint32_t i = allow ? allow->v[a] : (uint32_t)a;
        if (allow && a + 16 < n) {
            /* Gathered items: their columns are cache misses, fetched
             * 16 items ahead (0.97x the time of a 100k-item layout). */
            uint32_t p = allow->v[a + 16];
            __builtin_prefetch(&e->item_flags[p]);
            __builtin_prefetch(&e->item_cat[p]);
            __builtin_prefetch(&e->item_pop[p]);
            __builtin_prefetch(&e->item_trend[p]);
            __builtin_prefetch(&e->item_created[p]);
        }
        uint8_t f = e->item_flags[i];
        if (f & CX__ITEM_REMOVED)
            continue;
        for (size_t j = 0; j < nreq; j++) {
            if (cat[j] != CX_NONE && cat[j] != e->item_cat[i])
                continue;
            float v;
            if (list[j] == LIST_POPULAR)
                v = (float)(e->item_pop[i] * fp);
            else if (list[j] == LIST_TRENDING)
                v = (float)(e->item_trend[i] * ft);
            else if (e->item_created[i] > 0 && (f & CX__ITEM_CATALOGUED))
                v = (float)(e->item_created[i] - newest);
            else
                continue;
            if (v >= bar(&t[j]) && allowed(r, i))
                cx__topk_push(&t[j], v, i);
        }
    }
}

/* The same, reading a list's top set instead of the catalogue where the
 * set answers: when its members that pass the rules fill the list, every
 * other item ranks below them. */
static void scan_lists(const cx_engine *e, const rules *r, const idlist *allow,
                       const int *list, const uint32_t *cat, size_t nreq,
                       cx__topk *t)
{
    int rest_list[8];
    uint32_t rest_cat[8];
    cx__topk rest_t[8];
    size_t from[8], n_rest = 0;
    if (allow || nreq > 8) {
        scan_lists_pass(e, r, allow, list, cat, nreq, t);
        return;
    }
    for (size_t j = 0; j < nreq; j++) {
        size_t n;
        const uint32_t *top = cat[j] == CX_NONE
                                  ? cx__top_items(e, list[j], &n) : NULL;
        if (top) {
            idlist members = {(uint32_t *)top, n, n, 0};
            scan_lists_pass(e, r, &members, &list[j], &cat[j], 1, &t[j]);
            if (t[j].n == t[j].cap)
                continue;
            t[j].n = 0;
        }
        rest_list[n_rest] = list[j];
        rest_cat[n_rest] = cat[j];
        rest_t[n_rest] = t[j];
        from[n_rest++] = j;
    }
    if (n_rest)
        scan_lists_pass(e, r, NULL, rest_list, rest_cat, n_rest, rest_t);
    for (size_t a = 0; a < n_rest; a++)
        t[from[a]] = rest_t[a];
}

/* New arrivals' scores (minus the age in seconds) as ages in days. */
static void ages_in_days(cx__hit *h, size_t n)
{
    for (size_t j = 0; j < n; j++)
        h[j].score = (float)(-(double)h[j].score / 86400.0);
}

size_t cx__rank_exact(const cx__model *m, const float *x, size_t k,
                      const uint32_t *skip, size_t n_skip, cx__hit *out)
{
    rules r = {NULL, CX_NONE, 0, CX_NONE, NULL, 0, skip, n_skip, 0, NULL,
               NULL, NULL, 0, 0};
    cx__topk t = {out, 0, k};
    scan_exact(m, x, NULL, &r, &t);
    cx__topk_sort(&t);
    return t.n;
}

/* ===================================================================== */
/* Requests                                                              */
/* ===================================================================== */

CX_API void cx_rec_opts_init(cx_rec_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->exclude = CX_EXCLUDE_SEEN;
    o->in_stock_only = 1;
    o->exact = 0;
}

/* Everything a ranking call needs, resolved from the public arguments. */
typedef struct request {
    cx_rec_opts o;
    rules r;
    idlist deny, allow, skip;
    uint32_t deny_buf[64], allow_buf[64], skip_buf[STACK_IDS];
    uint64_t skip_bits[SKIP_BITS / 64];
    uint64_t *skip_set;
    cx__hit heap_buf[256];
    cx__hit *heap;
    int pool; /* a candidate pool: no re-ranking margin (cx__rank_hits) */
} request;

static int request_init(cx_engine *e, const cx_rec_opts *opts, size_t k,
                        const char *fn, request *q)
{
    memset(&q->r, 0, sizeof q->r);
    q->heap = NULL;
    q->skip_set = NULL;
    q->pool = 0;
    q->deny = (idlist){q->deny_buf, 0, 64, 0};
    q->allow = (idlist){q->allow_buf, 0, 64, 0};
    q->skip = (idlist){q->skip_buf, 0, STACK_IDS, 0};
    cx_rec_opts_init(&q->o);
    if (opts) {
        if (opts->size < offsetof(cx_rec_opts, exact) + sizeof(int) ||
            opts->size > 4096)
            return cx__fail(e, CX_EINVAL, "%s: options not initialised "
                            "with cx_rec_opts_init (size %zu)", fn,
                            opts->size);
        /* An older caller's struct ends early: its missing fields keep
         * their defaults. */
        memcpy(&q->o, opts, opts->size < sizeof q->o ? opts->size
                                                      : sizeof q->o);
        q->o.size = sizeof q->o;
    }
    if (!(q->o.diversity >= 0) || !isfinite(q->o.diversity))
        return cx__fail(e, CX_EINVAL, "%s: diversity must be a finite "
                        "number >= 0", fn);
    if (k == 0 || k > CX_MAX_K)
        return cx__fail(e, CX_EINVAL, "%s: k = %zu, must be 1..%d", fn, k,
                        CX_MAX_K);
    if ((q->o.n_deny && !q->o.deny) || (q->o.n_allow && !q->o.allow))
        return cx__fail(e, CX_EINVAL, "%s: allow/deny list is NULL", fn);
    q->r.e = e;
    q->r.cat = CX_NONE;
    q->r.self = CX_NONE;
    q->r.in_stock_only = q->o.in_stock_only;
    if (q->o.category) {
        if (!cx__id_len(q->o.category) && q->o.category[0])
            return cx__fail(e, CX_EINVAL, "%s: invalid category", fn);
        q->r.cat = cx__idmap_find(&e->categories, q->o.category);
        if (q->r.cat == CX_NONE)
            return cx__fail(e, CX_ENOTFOUND, "%s: unknown category '%s'", fn,
                            q->o.category);
    }
    int rc;
    if ((rc = resolve(e, q->o.deny, q->o.n_deny, &q->deny)) ||
        (rc = resolve(e, q->o.allow, q->o.n_allow, &q->allow)))
        return rc;
    q->r.deny = q->deny.v;
    q->r.n_deny = q->deny.n;
    return CX_OK;
}

static void request_free(request *q)
{
    idlist_free(&q->deny);
    idlist_free(&q->allow);
    idlist_free(&q->skip);
    free(q->skip_set);
    if (q->heap != q->heap_buf)
        free(q->heap);
}

/* A heap of `cap` hits, on the stack when small. */
static int heap_for(request *q, size_t cap, cx__topk *t)
{
    q->heap = cap <= 256 ? q->heap_buf : malloc(cap * sizeof *q->heap);
    *t = (cx__topk){q->heap, 0, cap};
    return q->heap ? CX_OK : CX_ENOMEM;
}

/* Diversify a list sorted best first, in place, keeping at most `keep`:
 * a per-category cap, and MMR (Carbonell & Goldstein 1998): pick in turn
 * the hit maximising score - lambda * range * (highest cosine to a picked
 * item), range being the list's score range.  Returns the count kept. */
size_t cx__diversify(const cx_engine *e, const cx__model *m,
                     const uint32_t *item_cat, size_t ncat, cx__hit *h,
                     size_t n, size_t keep, size_t cat_cap, double lambda)
{
    int k = m ? m->k : 0, mmr = lambda > 0 && m;
    uint32_t cnt_buf[256];
    float sim_buf[512];
    const float *vec_buf[512];
    float inv_buf[512];
    uint32_t *cnt = ncat <= 256 ? cnt_buf : calloc(ncat, sizeof *cnt);
    float *sim = n <= 512 ? sim_buf : malloc(n * sizeof *sim);
    const float **vec = n <= 512 ? vec_buf : malloc(n * sizeof *vec);
    float *inv = n <= 512 ? inv_buf : malloc(n * sizeof *inv);
    size_t out = 0;
    if (!cnt || !sim || !vec || !inv) { /* no memory: plain relevance */
        out = n < keep ? n : keep;
        goto done;
    }
    if (ncat <= 256)
        memset(cnt, 0, ncat * sizeof *cnt);
    double range = n ? (double)h[0].score - h[n - 1].score : 0;
    if (!(range > 0))
        range = n ? fabs(h[0].score) : 0;
    for (size_t j = 0; j < n; j++) {
        sim[j] = -INFINITY;
        inv[j] = 0;
        uint32_t i = h[j].item;
        if (!mmr)
            vec[j] = NULL;
        else if (e) /* the engine's current vectors, fold-ins included */
            vec[j] = cx__item_vec(e, i, &inv[j]);
        else if (i < m->n_items && m->inv_norm[i] > 0)
            vec[j] = m->Y + (size_t)i * k, inv[j] = m->inv_norm[i];
        else
            vec[j] = NULL;
    }
    /* h[out..n) are the candidates left; pick one, swap it to h[out]. */
    while (out < keep && out < n) {
        size_t best = SIZE_MAX;
        double bv = -INFINITY;
        for (size_t j = out; j < n; j++) {
            if (cat_cap && cnt[item_cat[h[j].item]] >= cat_cap)
                continue;
            double v = h[j].score;
            if (mmr && out)
                v -= lambda * range * (sim[j] > 0 ? sim[j] : 0);
            if (v > bv) {
                bv = v;
                best = j;
            }
            if (!mmr || !out)
                break; /* sorted: the first allowed one is the best */
        }
        if (best == SIZE_MAX)
            break;
        cx__hit t = h[best];
        const float *tv = vec[best];
        float ti = inv[best], ts = sim[best];
        /* Keep the remaining candidates in relevance order. */
        memmove(h + out + 1, h + out, (best - out) * sizeof *h);
        memmove(vec + out + 1, vec + out, (best - out) * sizeof *vec);
        memmove(inv + out + 1, inv + out, (best - out) * sizeof *inv);
        memmove(sim + out + 1, sim + out, (best - out) * sizeof *sim);
        h[out] = t, vec[out] = tv, inv[out] = ti, sim[out] = ts;
        if (cat_cap)
            cnt[item_cat[t.item]]++;
        out++;
        if (mmr && tv)
            for (size_t j = out; j < n; j++)
                if (vec[j]) {
                    float c = cx__k.dot(tv, vec[j], k) * ti * inv[j];
                    sim[j] = c > sim[j] ? c : sim[j];
                }
    }
done:
    if (cnt != cnt_buf)
        free(cnt);
    if (sim != sim_buf)
        free(sim);
    if (vec != vec_buf)
        free(vec);
    if (inv != inv_buf)
        free(inv);
    return out;
}

/* Write a list in order into the caller's arrays. */
static size_t write_out(const cx_engine *e, const cx__hit *h, size_t n,
                        int reason, const char **items, float *scores,
                        int *reasons)
{
    for (size_t j = 0; j < n; j++) {
        if (items)
            items[j] = e->items.str[h[j].item];
        if (scores)
            scores[j] = h[j].score;
        if (reasons)
            reasons[j] = reason;
    }
    return n;
}

static size_t emit(const cx_engine *e, cx__topk *t, int reason,
                   const char **items, float *scores, int *reasons)
{
    cx__topk_sort(t);
    return write_out(e, t->h, t->n, reason, items, scores, reasons);
}


/* The best `cap` hits for x (or the list) into a fresh heap *t. */
/* How many candidates the fast scan re-ranks exactly for cap results:
 * CX_OPT_CANDIDATES per result, and few results need a wider margin than
 * a multiple of cap gives.  A pool, whose members its caller scores
 * again or shows in part (a layout row, the blend), takes a narrower
 * one: on the 20k-item synthetic shop the 4-bit top 1.5 cap + 32 held
 * every exact top 10 and top 36 of 400 customers, and missed one item of
 * the top 60 for 0.5% of them (a numpy check of the quantization).
 * Against 2 cap + 32: 0.94x the time of a 20k-item layout (six
 * alternating runs of bench_layout --latency). */
static size_t fast_candidates(const cx_engine *e, size_t cap, int pool)
{
    if (pool)
        return cap + cap / 2 + 32;
    size_t n = cap * (size_t)e->opt.candidates;
    return n < cap + 32 ? cap + 32 : n;
}

static int scan_into(cx_engine *e, request *q, const float *x, int cosine,
                     int list, size_t cap, cx__topk *t)
{
    const cx__model *m = e->model;
    size_t nitems = e->items.n;
    const idlist *allow = q->o.n_allow ? &q->allow : NULL;
    idlist cat = {0};
    if (!allow && q->r.cat != CX_NONE) {
        int rc = cx__catidx_items(e, q->r.cat, nitems / CX__CATEGORY_SCAN_SHARE,
                                  &cat.v, &cat.n);
        if (rc == CX_ENOMEM)
            return cx__fail(e, CX_ENOMEM, "out of memory");
        if (rc == 0) {
            cat.cap = cat.n;
            cat.heap = 1;
            allow = &cat;
        }
    }
    int fast = x && !q->o.exact && !allow;
    size_t ncand = fast ? fast_candidates(e, cap, q->pool) : 0;
    if (ncand > nitems)
        ncand = nitems;
    cx__topk cand = {0};
    if (q->heap && q->heap != q->heap_buf)
        free(q->heap);
    if (heap_for(q, cap + 2 * ncand + 1, t)) {
        idlist_free(&cat);
        return cx__fail(e, CX_ENOMEM, "out of memory");
    }
    t->cap = cap;
    if (!x) {
        uint32_t any = CX_NONE;
        scan_lists(e, &q->r, allow, &list, &any, 1, t);
    } else if (allow) {
        scan_list(e, x, cosine, allow, &q->r, t);
    } else {
        const float *scale = cosine ? m->inv_norm : NULL;
        q->r.no_x = e->xv_n > 0;
        if (fast) {
            cand = (cx__topk){t->h + cap, 0, 2 * ncand};
            scan_fast(m, x, scale, cosine ? m->q_cos_scale : m->q_scale,
                      &q->r, &cand, t);
        } else {
            scan_exact(m, x, scale, &q->r, t);
        }
        if (e->xv_n)
            scan_extra(e, x, cosine, &q->r, t);
    }
    idlist_free(&cat);
    return CX_OK;
}

/* The best k for vector x (cosine: x is a unit item vector and items are
 * scored by cosine), or, with x NULL, the list `list`: *hits points into
 * q's heap, best first, *n of them. */
static int rank_core(cx_engine *e, request *q, const float *x, int cosine,
                     int list, size_t k, cx__hit **hits, size_t *n)
{
    size_t nitems = e->items.n;
    size_t want = k < nitems ? k : nitems;
    cx__topk t;
    int rc;
    if (!q->o.max_per_category && !(q->o.diversity > 0 && x)) {
        if ((rc = scan_into(e, q, x, cosine, list, want, &t)))
            return rc;
        cx__topk_sort(&t);
        if (!x && list == LIST_NEW)
            ages_in_days(t.h, t.n);
        *hits = t.h;
        *n = t.n;
        return CX_OK;
    }
    /* Diversity picks from a wider pool of the most relevant items; a
     * category cap that leaves the list short widens it again. */
    size_t cap = 4 * want > want + 50 ? 4 * want : want + 50;
    for (;;) {
        cap = cap < nitems ? cap : nitems;
        if ((rc = scan_into(e, q, x, cosine, list, cap, &t)))
            return rc;
        size_t pool = t.n;
        cx__topk_sort(&t);
        t.n = cx__diversify(e, e->model, e->item_cat, e->categories.n, t.h,
                            t.n, want, q->o.max_per_category,
                            x ? q->o.diversity : 0);
        if (t.n == want || pool < cap || cap == nitems)
            break;
        cap *= 4;
    }
    if (!x && list == LIST_NEW)
        ages_in_days(t.h, t.n);
    *hits = t.h;
    *n = t.n;
    return CX_OK;
}

static int rank_one(cx_engine *e, request *q, const float *x, int cosine,
                    int list, size_t k, int reason, const char **items,
                    float *scores, int *reasons, size_t *n)
{
    cx__hit *h;
    size_t m;
    int rc = rank_core(e, q, x, cosine, list, k, &h, &m);
    if (rc == CX_OK)
        *n = write_out(e, h, m, reason, items, scores, reasons);
    return rc;
}

/* A customer's exclusions, made for lending (cx__skip_make). */
struct cx__skip {
    uint32_t u;
    request q;
};

/* The skip list of customer u (may be CX_NONE) into q: lent's, if it is
 * u's under the same exclusions. */
static int skip_for(cx_engine *e, request *q, uint32_t u,
                    const cx__skip *lent)
{
    if (u == CX_NONE)
        return CX_OK;
    if (lent && lent->u == u && lent->q.o.exclude == q->o.exclude) {
        q->r.skip = lent->q.r.skip;
        q->r.n_skip = lent->q.r.n_skip;
        q->r.skip_bits = lent->q.r.skip_bits;
        q->r.skip_set = lent->q.r.skip_set;
        return CX_OK;
    }
    if (customer_skip(e, u, q->o.exclude, &q->skip))
        return cx__fail(e, CX_ENOMEM, "out of memory");
    q->r.skip = q->skip.v;
    q->r.n_skip = q->skip.n;
    skip_filter(q->skip.v, q->skip.n, q->skip_bits);
    q->r.skip_bits = q->skip_bits;
    /* A long list sets most of the filter's bits: a bit per item then
     * (2.5 KB at 20,000 items), as a heavy customer's candidates each
     * paid a binary search. */
    if (q->skip.n > SKIP_BITS / 8 &&
        (q->skip_set = calloc((e->items.n + 63) / 64, 8))) {
        for (size_t j = 0; j < q->skip.n; j++)
            q->skip_set[q->skip.v[j] / 64] |= 1ull << (q->skip.v[j] % 64);
        q->r.skip_set = q->skip_set;
    }
    return CX_OK;
}

int cx__skip_make(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                  cx__skip **out)
{
    *out = NULL;
    if (u == CX_NONE)
        return CX_OK;
    cx__skip *s = malloc(sizeof *s);
    if (!s)
        return cx__fail(e, CX_ENOMEM, "out of memory");
    int rc = request_init(e, opts, 1, "cx_layout", &s->q);
    if (rc == CX_OK)
        rc = skip_for(e, &s->q, u, NULL);
    if (rc) {
        request_free(&s->q);
        free(s);
        return rc;
    }
    s->u = u;
    *out = s;
    return CX_OK;
}

void cx__skip_free(cx__skip *s)
{
    if (s) {
        request_free(&s->q);
        free(s);
    }
}

int cx__rank_lists(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                   const cx__skip *lent, cx__list_req *req, size_t nreq)
{
    request q;
    int rc = request_init(e, opts, 1, "cx_layout", &q);
    size_t m = nreq ? nreq : 1;
    /* t[] the requests' heaps; ta[] (list[], cat[], from[]) those of one
     * pass, and tg[] (and the second halves) those of one category's. */
    cx__topk *t = calloc(3 * m, sizeof *t), *ta = t + m, *tg = t + 2 * m;
    int *list = malloc(2 * m * sizeof *list);
    uint32_t *cat = malloc(2 * m * sizeof *cat);
    size_t *from = malloc(2 * m * sizeof *from);
    if (rc == CX_OK && (!t || !list || !cat || !from))
        rc = cx__fail(e, CX_ENOMEM, "out of memory");
    if (rc == CX_OK)
        rc = skip_for(e, &q, u, lent);
    q.r.cat = CX_NONE; /* each list has its own */
    /* The lists in a small category share one pass over its items; the
     * others share one pass over the catalogue. */
    size_t n_all = 0;
    for (size_t j = 0; rc == CX_OK && j < nreq; j++)
        t[j] = (cx__topk){req[j].out, 0, req[j].k};
    for (size_t j = 0; rc == CX_OK && j < nreq; j++) {
        idlist l = {0};
        size_t n_same = 0;
        if (req[j].cat == CX_NONE || q.o.n_allow) {
            ta[n_all] = t[j];
            list[n_all] = req[j].list;
            cat[n_all] = req[j].cat;
            from[n_all++] = j;
            continue;
        }
        int seen = 0;
        for (size_t p = 0; p < j && !seen; p++)
            seen = req[p].cat == req[j].cat;
        if (seen)
            continue; /* served with the first of its category */
        int c = cx__catidx_items(e, req[j].cat,
                                 e->items.n / CX__CATEGORY_SCAN_SHARE, &l.v,
                                 &l.n);
        if (c == CX_ENOMEM) {
            rc = cx__fail(e, CX_ENOMEM, "out of memory");
            break;
        }
        for (size_t p = j; p < nreq; p++) {
            if (req[p].cat != req[j].cat)
                continue;
            if (c == 0) { /* small: read its own items below */
                tg[n_same] = t[p];
                list[m + n_same] = req[p].list;
                cat[m + n_same] = req[p].cat;
                from[m + n_same++] = p;
            } else {
                ta[n_all] = t[p];
                list[n_all] = req[p].list;
                cat[n_all] = req[p].cat;
                from[n_all++] = p;
            }
        }
        if (n_same) {
            scan_lists(e, &q.r, &l, list + m, cat + m, n_same, tg);
            for (size_t a = 0; a < n_same; a++)
                t[from[m + a]] = tg[a];
        }
        free(l.v);
    }
    if (rc == CX_OK && n_all) {
        scan_lists(e, &q.r, q.o.n_allow ? &q.allow : NULL, list, cat, n_all,
                   ta);
        for (size_t a = 0; a < n_all; a++)
            t[from[a]] = ta[a];
    }
    for (size_t j = 0; rc == CX_OK && j < nreq; j++) {
        cx__topk_sort(&t[j]);
        if (req[j].list == LIST_NEW)
            ages_in_days(t[j].h, t[j].n);
        req[j].n = t[j].n;
    }
    request_free(&q);
    free(t), free(list), free(cat), free(from);
    return rc;
}

/* cx__rank_hits, with a bias term (rules.bias) in the scores. */
static int rank_hits(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                     const cx__skip *lent, const float *x, int cosine,
                     int list, uint32_t cat,
                     uint32_t self, size_t k, int pool, const float *bias,
                     size_t n_bias, float bias_w, cx__hit *out, size_t *n)
{
    request q;
    cx__hit *h;
    size_t m = 0;
    *n = 0;
    int rc = request_init(e, opts, k, "cx_layout", &q);
    q.pool = pool;
    if (rc == CX_OK) {
        if (cat != CX_NONE)
            q.r.cat = cat;
        q.r.self = self;
        q.r.bias = bias;
        q.r.n_bias = n_bias;
        q.r.bias_w = bias_w;
        if (bias && e->model &&
            n_bias < ((size_t)e->model->n_items + 7) / 8 * 8)
            rc = cx__fail(e, CX_EINVAL, "internal: bias shorter than the "
                          "model's blocks");
        else
            rc = skip_for(e, &q, u, lent);
    }
    if (rc == CX_OK && (rc = rank_core(e, &q, x, cosine, list, k, &h, &m)) ==
                           CX_OK) {
        memcpy(out, h, m * sizeof *h);
        *n = m;
    }
    request_free(&q);
    return rc;
}

int cx__rank_hits(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                  const cx__skip *lent, const float *x, int cosine,
                  int list, uint32_t cat, uint32_t self, size_t k, int pool,
                  cx__hit *out, size_t *n)
{
    return rank_hits(e, opts, u, lent, x, cosine, list, cat, self, k, pool,
                     NULL, 0, 0, out, n);
}

int cx__rank_biased(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                    const cx__skip *lent, const float *x, const float *bias,
                    size_t n_bias, float w, size_t k, cx__hit *out,
                    size_t *n)
{
    return rank_hits(e, opts, u, lent, x, 0, 0, CX_NONE, CX_NONE, k, 1,
                     bias, n_bias, w, out, n);
}

int cx__rank_filter(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                    const cx__skip *lent, unsigned exclude, uint32_t self,
                    const uint32_t *items, size_t n, uint8_t *pass)
{
    request q;
    int rc = request_init(e, opts, 1, "cx_layout", &q);
    q.o.exclude = exclude;
    q.r.self = self;
    if (rc == CX_OK)
        rc = skip_for(e, &q, u, lent);
    for (size_t j = 0; rc == CX_OK && j < n; j++)
        pass[j] = allowed(&q.r, items[j]) &&
                  (!q.o.n_allow || in_sorted(q.allow.v, q.allow.n, items[j]));
    request_free(&q);
    return rc;
}

/* ===================================================================== */
/* Neighbour lists                                                       */
/* ===================================================================== */

/* A seed item's NBR_KEEP most similar model items by cosine, kept with
 * the model in a table of up to NBR_SLOTS seeds (a seed's slot: its index
 * modulo the table's size), so that the next "because" row or
 * similar_items of that seed filters the list instead of scanning the
 * catalogue.  A list is what the fast scan finds with no rule but the
 * seed left out: NBR_KEEP + 1 results from nbr_candidates() candidates,
 * re-ranked exactly.  The model's vectors never change (training makes
 * a new model, with an empty table), so a list stays right for as long
 * as its model serves.  Rules apply on the way out; a list whose passing
 * items do not fill the request, if it was cut at NBR_KEEP, does not
 * answer and the scan runs.  Items folded in since training are scored
 * at every request (scan_extra), as without the table.  About 520 bytes
 * a seed: 8.5 MB at most, touched as seeds come.  16,384 seeds
 * rather than 8,192: 1.18-1.29x the nginx /layout requests/s in three
 * alternating pairs of four (0.97x in the fourth) on the 20k-item shop,
 * whose pages have 15,700 distinct seeds. */
#define NBR_KEEP 64
#define NBR_SLOTS 16384

typedef struct nbr_slot {
    uint32_t seed, n; /* n = 0: empty */
    uint32_t ncand;   /* made with nbr_candidates() of this many */
    cx__hit h[NBR_KEEP];
} nbr_slot;

struct cx__nbrs {
    pthread_mutex_t mu;
    size_t mask;
    nbr_slot slot[];
};

void cx__nbrs_free(struct cx__nbrs *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* The model's table, made at the first call; NULL without memory. */
static struct cx__nbrs *nbrs_of(const cx__model *cm)
{
    cx__model *m = (cx__model *)cm; /* the table is its mutable part */
    struct cx__nbrs *t = atomic_load_explicit(&m->nbrs,
                                              memory_order_acquire);
    if (t)
        return t;
    size_t n = 1;
    while (n < m->n_items && n < NBR_SLOTS)
        n *= 2;
    if (!(t = calloc(1, sizeof *t + n * sizeof t->slot[0])))
        return NULL;
    if (pthread_mutex_init(&t->mu, NULL)) {
        free(t);
        return NULL;
    }
    t->mask = n - 1;
    struct cx__nbrs *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(
            &m->nbrs, &none, t, memory_order_acq_rel, memory_order_acquire)) {
        cx__nbrs_free(t); /* another thread's came first */
        return none;
    }
    return t;
}

/* Candidates a list is made from: for a layout row, the pool margin of
 * NBR_KEEP + 1 (129); for similar_items, the CX_OPT_CANDIDATES margin of
 * a top 20 if that is wider (160 by default: its top 20 then agrees
 * with the exact one as often as similar_items' own did before lists;
 * 99.05% instead of 99.65% of bench_rank's 100k-item random model with
 * 129).  A list serves a request that needs no more candidates than it
 * was made from.  Where seeds rarely repeat (bench_layout's 2,000
 * customers over 100,000 items) a list costs its extra candidates over
 * the row's own 86. */
static size_t nbr_candidates(const cx_engine *e, int similar)
{
    size_t a = fast_candidates(e, NBR_KEEP + 1, 1);
    size_t b = similar ? (size_t)e->opt.candidates * 20 : 0;
    return a > b ? a : b;
}

/* Seed's list into h (NBR_KEEP of room): its length, or -1 if none (or
 * one made from fewer than ncand candidates). */
static int nbrs_get(const cx__model *m, uint32_t seed, size_t ncand,
                    cx__hit *h)
{
    struct cx__nbrs *t = nbrs_of(m);
    int n = -1;
    if (!t)
        return -1;
    pthread_mutex_lock(&t->mu);
    const nbr_slot *s = &t->slot[seed & t->mask];
    if (s->n && s->seed == seed && s->ncand >= ncand) {
        n = (int)s->n;
        memcpy(h, s->h, (size_t)n * sizeof *h);
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* The list of seed out of its NBR_KEEP + 1 best hits t (sorted): the
 * seed left out, into h; returns its length. */
static int list_of(uint32_t seed, const cx__topk *t, cx__hit *h)
{
    int n = 0;
    for (size_t j = 0; j < t->n && n < NBR_KEEP; j++)
        if (t->h[j].item != seed)
            h[n++] = t->h[j];
    return n;
}

/* Keep seed's list h[0..n) in the model's table. */
static void nbrs_put(const cx__model *m, uint32_t seed, size_t ncand,
                     const cx__hit *h, int n)
{
    struct cx__nbrs *tb = nbrs_of(m);
    if (!tb || n <= 0)
        return;
    pthread_mutex_lock(&tb->mu);
    nbr_slot *s = &tb->slot[seed & tb->mask];
    memcpy(s->h, h, (size_t)n * sizeof *h);
    s->n = (uint32_t)n;
    s->seed = seed;
    s->ncand = (uint32_t)ncand;
    pthread_mutex_unlock(&tb->mu);
}

/* Whether the best k by cosine to item `seed` under q's rules may come
 * from its list: the seed's vector is its model row and no rule needs
 * what a list leaves out (exact scores, an allow list or category, whose
 * small ones are scanned exactly, diversity's wider pool, a bias). */
static int nbrs_usable(const cx_engine *e, const request *q, uint32_t seed,
                       uint32_t cat, size_t k)
{
    const cx__model *m = e->model;
    return m && seed < m->n_items && m->inv_norm[seed] > 0 &&
           k <= NBR_KEEP && cat == CX_NONE && q->r.cat == CX_NONE &&
           !q->o.exact && !q->o.n_allow && !q->o.max_per_category &&
           !(q->o.diversity > 0) && !q->r.bias;
}

/* The best t->cap items of a seed's list h[0..n) that pass r, into t:
 * 1, or 0 if the list cannot answer (too few pass, and it was cut). */
static int list_answer(const cx__hit *h, int n, const rules *r,
                       cx__topk *t)
{
    t->n = 0;
    for (int j = 0; j < n && t->n < t->cap; j++)
        if (allowed(r, h[j].item))
            cx__topk_push(t, h[j].score, h[j].item);
    if (t->n < t->cap && n == NBR_KEEP) {
        t->n = 0;
        return 0;
    }
    return 1;
}

/* The same from the table: 1, 0, or -1 if seed has no list there. */
static int nbrs_answer(const cx_engine *e, uint32_t seed, size_t ncand,
                       const rules *r, cx__topk *t)
{
    cx__hit h[NBR_KEEP];
    int n = nbrs_get(e->model, seed, ncand, h);
    t->n = 0;
    return n < 0 ? -1 : list_answer(h, n, r, t);
}

static const rules no_rules; /* e NULL: every item passes */

/* A fastq making seed's list (x its unit vector) into t, from cand's
 * buffer (2 nbr_candidates() hits) and t's (NBR_KEEP + 1). */
static void nbrs_fastq(const cx_engine *e, const float *x, size_t ncand,
                       fastq *f, cx__topk *cand, cx__hit *cbuf,
                       cx__topk *t, cx__hit *tbuf)
{
    const cx__model *m = e->model;
    size_t nc = ncand < m->n_items ? ncand : m->n_items;
    *cand = (cx__topk){cbuf, 0, 2 * nc};
    *t = (cx__topk){tbuf, 0, NBR_KEEP + 1};
    fastq_init(f, m, x, m->inv_norm, m->q_cos_scale, &no_rules, cand);
}

/* Make seed's list by a scan of its own, into h (NBR_KEEP of room) and
 * the table; returns its length, or -1 without memory. */
static int nbrs_fill(const cx_engine *e, const float *x, uint32_t seed,
                     size_t ncand, cx__hit *h)
{
    fastq f;
    cx__topk cand, t, *tp = &t;
    cx__hit tbuf[NBR_KEEP + 1];
    cx__hit *cbuf = malloc(2 * ncand * sizeof *cbuf);
    if (!cbuf)
        return -1;
    nbrs_fastq(e, x, ncand, &f, &cand, cbuf, &t, tbuf);
    scan_fast_n(e->model, &f, 1, &tp);
    free(cbuf);
    cx__topk_sort(&t);
    int n = list_of(seed, &t, h);
    nbrs_put(e->model, seed, ncand, h, n);
    return n;
}

int cx__rank_multi(cx_engine *e, const cx_rec_opts *opts, uint32_t u,
                   const cx__skip *lent, cx__rank_q *q, size_t nq)
{
    request rq;
    int rc = request_init(e, opts, 1, "cx_layout", &rq);
    if (rc == CX_OK)
        rc = skip_for(e, &rq, u, lent);
    const cx__model *m = e->model;
    /* The fused pass serves the plain fast scan; anything else (allow
     * list, exact, diversity) goes one query at a time. */
    if (rc != CX_OK || !m || nq < 2 || nq > MULTI_MAX || rq.o.n_allow ||
        rq.o.category || rq.o.exact || rq.o.max_per_category ||
        rq.o.diversity > 0) {
        request_free(&rq);
        for (size_t j = 0; rc == CX_OK && j < nq; j++)
            rc = cx__rank_hits(e, opts, u, lent, q[j].x, q[j].cosine, 0,
                               q[j].cat, q[j].self, q[j].k, 1, q[j].out,
                               &q[j].n);
        return rc;
    }
    /* Seed queries (cosine, with the seed left out) answered by their
     * lists take no part in the pass; a seed without one gets a query
     * that makes its list instead, and is answered from it after. */
    rules r[MULTI_MAX];
    fastq *f = malloc(MULTI_MAX * sizeof *f); /* a query's is 1 KiB */
    cx__topk t[MULTI_MAX], cand[MULTI_MAX], *tp[MULTI_MAX];
    cx__topk lt[MULTI_MAX];           /* the lists made */
    cx__hit *lbuf[MULTI_MAX] = {0};
    size_t lq[MULTI_MAX];             /* the query each list answers */
    cx__hit *buf[MULTI_MAX] = {0};
    uint8_t redo[MULTI_MAX] = {0};
    size_t nitems = e->items.n, nf = 0, nl = 0;
    size_t nl_cand = nbr_candidates(e, 0);
    rq.r.no_x = e->xv_n > 0;
    if (!f)
        rc = CX_ENOMEM;
    for (size_t j = 0; rc == CX_OK && j < nq; j++) {
        size_t k = q[j].k < nitems ? q[j].k : nitems;
        r[j] = rq.r;
        r[j].self = q[j].self;
        r[j].cat = q[j].cat;
        t[j] = (cx__topk){q[j].out, 0, k};
        int listed = q[j].cosine && q[j].self != CX_NONE &&
                     nbrs_usable(e, &rq, q[j].self, q[j].cat, k);
        int got = listed ? nbrs_answer(e, q[j].self, nl_cand, &r[j], &t[j])
                         : 0;
        if (got == 1)
            continue;
        int make = got < 0; /* its list, on the pass's shared scores */
        size_t ncand = make ? nl_cand : fast_candidates(e, k, 1);
        ncand = ncand < nitems ? ncand : nitems;
        if (!(buf[nf] = malloc(2 * ncand * sizeof *buf[nf])) ||
            (make && !(lbuf[nl] = malloc((NBR_KEEP + 1) *
                                         sizeof *lbuf[nl])))) {
            rc = CX_ENOMEM;
            break;
        }
        if (make) {
            nbrs_fastq(e, q[j].x, nl_cand, &f[nf], &cand[nf], buf[nf],
                       &lt[nl], lbuf[nl]);
            tp[nf] = &lt[nl];
            lq[nl++] = j;
        } else {
            cand[nf] = (cx__topk){buf[nf], 0, 2 * ncand};
            tp[nf] = &t[j];
            fastq_init(&f[nf], m, q[j].x, q[j].cosine ? m->inv_norm : NULL,
                       q[j].cosine ? m->q_cos_scale : m->q_scale, &r[j],
                       &cand[nf]);
            f[nf].cat = q[j].cat;
            f[nf].item_cat = e->item_cat;
        }
        f[nf].src = nf;
        for (size_t p = 0; p < nf && f[nf].src == nf; p++)
            if (f[p].x == f[nf].x && f[p].scale == f[nf].scale)
                f[nf].src = p;
        nf++;
    }
    if (rc == CX_OK) {
        if (nf)
            scan_fast_n(m, f, nf, tp);
        for (size_t a = 0; a < nl; a++) {
            cx__hit h[NBR_KEEP];
            size_t j = lq[a];
            cx__topk_sort(&lt[a]);
            int n = list_of(q[j].self, &lt[a], h);
            nbrs_put(m, q[j].self, nl_cand, h, n);
            redo[j] = !list_answer(h, n, &r[j], &t[j]);
        }
        for (size_t j = 0; j < nq; j++) {
            if (redo[j])
                continue;
            if (e->xv_n)
                scan_extra(e, q[j].x, q[j].cosine, &r[j], &t[j]);
            cx__topk_sort(&t[j]);
            q[j].n = t[j].n;
        }
    } else {
        rc = cx__fail(e, CX_ENOMEM, "out of memory");
    }
    for (size_t a = 0; a < MULTI_MAX; a++)
        free(buf[a]), free(lbuf[a]);
    free(f);
    request_free(&rq);
    /* Lists too short for their rules: the scan, one query each. */
    for (size_t j = 0; rc == CX_OK && j < nq; j++)
        if (redo[j])
            rc = cx__rank_hits(e, opts, u, lent, q[j].x, q[j].cosine, 0,
                               q[j].cat, q[j].self, q[j].k, 1, q[j].out,
                               &q[j].n);
    return rc;
}

CX_API int cx_recommend(cx_engine *e, const char *customer, size_t k,
                        const cx_rec_opts *opts, const char **items,
                        float *scores, int *reasons, size_t *n)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_recommend: engine is NULL");
    if (!n || !items)
        return cx__fail(e, CX_EINVAL, "cx_recommend: items or n is NULL");
    *n = 0;
    if (!cx__id_len(customer))
        return cx__fail(e, CX_EINVAL, "cx_recommend: customer id is NULL, "
                        "empty or longer than %d bytes", CX_MAX_ID_LEN);
    request q;
    cx__fold *tmp = NULL;
    cx__rdlock(e);
    int rc = request_init(e, opts, k, "cx_recommend", &q);
    if (rc == CX_OK) {
        uint32_t u = cx__idmap_find(&e->customers, customer);
        const float *x = NULL;
        if (u != CX_NONE)
            x = cx__customer_vec(e, u, NULL, &tmp);
        cx__blend b;
        cx__blend_from(&e->opt, &b);
        /* The blend builds its own skip lists (hybrid.c). */
        if (u != CX_NONE && e->model && !cx__blend_plain(&b))
            rc = cx__hybrid_recommend(e, opts, u, x, k, items, scores,
                                      reasons, n);
        else if ((rc = skip_for(e, &q, u, NULL)) == CX_OK)
            rc = rank_one(e, &q, x, 0, LIST_POPULAR, k,
                          x ? CX_REASON_PERSONAL : CX_REASON_POPULAR, items,
                          scores, reasons, n);
    }
    request_free(&q);
    cx__rdunlock(e);
    free(tmp);
    return rc;
}

#define MAX_SESSION 10000

CX_API int cx_recommend_session(cx_engine *e, size_t n_sig,
                                const char *const *sig_items,
                                const int *sig_types, const float *sig_values,
                                size_t k, const cx_rec_opts *opts,
                                const char **items, float *scores,
                                int *reasons, size_t *n)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL,
                        "cx_recommend_session: engine is NULL");
    if (!n || !items)
        return cx__fail(e, CX_EINVAL,
                        "cx_recommend_session: items or n is NULL");
    *n = 0;
    if (n_sig > MAX_SESSION)
        return cx__fail(e, CX_EINVAL, "cx_recommend_session: %zu signals, "
                        "at most %d", n_sig, MAX_SESSION);
    if (n_sig && (!sig_items || !sig_types))
        return cx__fail(e, CX_EINVAL, "cx_recommend_session: signal items "
                        "or types is NULL");
    for (size_t j = 0; j < n_sig; j++) {
        float v = sig_values ? sig_values[j] : 1.0f;
        int t = sig_types[j];
        if (!cx__id_len(sig_items[j]))
            return cx__fail(e, CX_EINVAL, "cx_recommend_session: signal %zu:"
                            " item id is not valid", j);
        if (t < 0 || t >= CX_MAX_SIGNAL_TYPES)
            return cx__fail(e, CX_EINVAL, "cx_recommend_session: signal %zu:"
                            " undefined type %d", j, t);
        if (!isfinite(v) || (t == CX_RATING ? (v < 0 || v > 5)
                                            : (v <= 0 || v > 1e6)))
            return cx__fail(e, CX_EINVAL, "cx_recommend_session: signal %zu:"
                            " value %g out of range", j, (double)v);
    }
    uint32_t it_buf[64];
    double r_buf[64];
    uint32_t *its = n_sig <= 64 ? it_buf : malloc(n_sig * sizeof *its);
    double *r = n_sig <= 64 ? r_buf : malloc(n_sig * sizeof *r);
    float x_buf[1024];
    request q;
    cx__rdlock(e);
    int rc = request_init(e, opts, k, "cx_recommend_session", &q);
    if (rc == CX_OK && (!its || !r))
        rc = cx__fail(e, CX_ENOMEM, "out of memory");
    size_t m = 0;
    unsigned neg = cx__negative_types(&e->opt);
    for (size_t j = 0; rc == CX_OK && j < n_sig; j++) {
        if (!cx_signal_type_name(e, sig_types[j])) {
            rc = cx__fail(e, CX_EINVAL, "cx_recommend_session: signal %zu: "
                          "undefined type %d", j, sig_types[j]);
            break;
        }
        uint32_t i = cx__idmap_find(&e->items, sig_items[j]);
        if (i == CX_NONE)
            continue;
        const cx__options *o = e->model ? &e->model->opt : &e->opt;
        cx__event ev = {0, i, 0, sig_values ? sig_values[j] : 1.0f,
                        (uint8_t)sig_types[j], 0, 0};
        its[m] = i;
        r[m] = cx__signal_strength(o, &ev);
        if ((CX_TYPE_BIT(sig_types[j]) & (q.o.exclude | neg)) &&
            idlist_push(&q.skip, i))
            rc = cx__fail(e, CX_ENOMEM, "out of memory");
        m++;
    }
    const float *x = NULL;
    if (rc == CX_OK) {
        idlist_sort(&q.skip);
        q.r.skip = q.skip.v;
        q.r.n_skip = q.skip.n;
        int hv = 0;
        if (e->model && e->opt.fold_in != CX_FOLD_OFF && m &&
            (rc = cx__fold_pairs(e, e->model, its, r, m, x_buf, &hv)))
            rc = cx__fail(e, rc, "out of memory");
        x = hv ? x_buf : NULL;
    }
    if (rc == CX_OK)
        rc = rank_one(e, &q, x, 0, LIST_POPULAR, k,
                      x ? CX_REASON_PERSONAL : CX_REASON_POPULAR, items,
                      scores, reasons, n);
    request_free(&q);
    cx__rdunlock(e);
    if (its != it_buf)
        free(its);
    if (r != r_buf)
        free(r);
    return rc;
}

/* cx_trending, cx_popular, cx_new_arrivals. */
static int list_call(cx_engine *e, int list, const char *fn, size_t k,
                     const cx_rec_opts *opts, const char **items,
                     float *scores, int *reasons, size_t *n)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "%s: engine is NULL", fn);
    if (!n || !items)
        return cx__fail(e, CX_EINVAL, "%s: items or n is NULL", fn);
    *n = 0;
    request q;
    cx__rdlock(e);
    int rc = request_init(e, opts, k, fn, &q);
    static const int reason[] = {CX_REASON_POPULAR, CX_REASON_TRENDING,
                                 CX_REASON_NEW};
    if (rc == CX_OK)
        rc = rank_one(e, &q, NULL, 0, list, k, reason[list], items, scores,
                      reasons, n);
    request_free(&q);
    cx__rdunlock(e);
    return rc;
}

CX_API int cx_trending(cx_engine *e, size_t k, const cx_rec_opts *opts,
                       const char **items, float *scores, int *reasons,
                       size_t *n)
{
    return list_call(e, LIST_TRENDING, "cx_trending", k, opts, items, scores,
                     reasons, n);
}

CX_API int cx_popular(cx_engine *e, size_t k, const cx_rec_opts *opts,
                      const char **items, float *scores, int *reasons,
                      size_t *n)
{
    return list_call(e, LIST_POPULAR, "cx_popular", k, opts, items, scores,
                     reasons, n);
}

CX_API int cx_new_arrivals(cx_engine *e, size_t k, const cx_rec_opts *opts,
                           const char **items, float *scores, int *reasons,
                           size_t *n)
{
    return list_call(e, LIST_NEW, "cx_new_arrivals", k, opts, items, scores,
                     reasons, n);
}

CX_API int cx_similar_items(cx_engine *e, const char *item, size_t k,
                            const cx_rec_opts *opts, const char **items,
                            float *scores, int *reasons, size_t *n)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_similar_items: engine is NULL");
    if (!n || !items)
        return cx__fail(e, CX_EINVAL,
                        "cx_similar_items: items or n is NULL");
    *n = 0;
    if (!cx__id_len(item))
        return cx__fail(e, CX_EINVAL, "cx_similar_items: item id is NULL, "
                        "empty or longer than %d bytes", CX_MAX_ID_LEN);
    request q;
    cx__rdlock(e);
    int rc = request_init(e, opts, k, "cx_similar_items", &q);
    const cx__model *m = e->model;
    uint32_t i = rc ? CX_NONE : cx__idmap_find(&e->items, item);
    if (rc == CX_OK && i == CX_NONE)
        rc = cx__fail(e, CX_ENOTFOUND, "cx_similar_items: unknown item '%s'",
                      item);
    if (rc == CX_OK && !m)
        rc = cx__fail(e, CX_ENOTTRAINED, "cx_similar_items: no trained "
                      "model yet (call cx_train)");
    if (rc == CX_OK) {
        q.r.self = i;
        float inv = 0;
        const float *y = cx__item_vec(e, i, &inv);
        if (y && inv > 0) {
            float x[1024];
            cx__topk t;
            int done = 0;
            for (int d = 0; d < m->k; d++)
                x[d] = y[d] * inv;
            q.r.no_x = e->xv_n > 0;
            if (nbrs_usable(e, &q, i, CX_NONE, k) &&
                heap_for(&q, k, &t) == CX_OK) {
                /* From the seed's list, made now if it has none. */
                size_t nc = nbr_candidates(e, 1);
                int got = nbrs_answer(e, i, nc, &q.r, &t);
                done = got == 1;
                if (got < 0) {
                    cx__hit h[NBR_KEEP];
                    int nh = nbrs_fill(e, x, i, nc, h);
                    done = nh >= 0 && list_answer(h, nh, &q.r, &t);
                }
                if (done) {
                    if (e->xv_n)
                        scan_extra(e, x, 1, &q.r, &t);
                    *n = emit(e, &t, CX_REASON_SIMILAR, items, scores,
                              reasons);
                }
            }
            if (!done)
                rc = rank_one(e, &q, x, 1, 0, k, CX_REASON_SIMILAR, items,
                              scores, reasons, n);
        } else {
            /* No vector yet: what sells in its category. */
            if (q.r.cat == CX_NONE)
                q.r.cat = e->item_cat[i];
            rc = rank_one(e, &q, NULL, 0, LIST_POPULAR, k, CX_REASON_CATEGORY,
                          items, scores, reasons, n);
        }
    }
    request_free(&q);
    cx__rdunlock(e);
    return rc;
}

/* Copy out the vector serving uses for a customer or an item. */
static int vector_call(cx_engine *e, int item, const char *id, float *x,
                       size_t cap, int *source)
{
    const char *fn = item ? "cx_item_vector" : "cx_customer_vector";
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "%s: engine is NULL", fn);
    if (!x || !cx__id_len(id))
        return cx__fail(e, CX_EINVAL, "%s: NULL output or invalid id", fn);
    cx__fold *tmp = NULL;
    int rc = CX_OK, folded = 0;
    cx__rdlock(e);
    const cx__model *m = e->model;
    uint32_t i = cx__idmap_find(item ? &e->items : &e->customers, id);
    const float *v = NULL;
    if (!m) {
        rc = cx__fail(e, CX_ENOTTRAINED, "%s: no trained model", fn);
    } else if (cap < (size_t)m->k) {
        rc = cx__fail(e, CX_EINVAL, "%s: room for %zu floats, the model has "
                      "%d factors", fn, cap, m->k);
    } else if (i == CX_NONE) {
        rc = cx__fail(e, CX_ENOTFOUND, "%s: unknown id '%s'", fn, id);
    } else if (item) {
        float inv;
        v = cx__item_vec(e, i, &inv);
        folded = v && !(i < m->n_items && v == m->Y + (size_t)i * m->k);
    } else {
        v = cx__customer_vec(e, i, &folded, &tmp);
    }
    if (rc == CX_OK && !v)
        rc = cx__fail(e, CX_ENOTFOUND, "%s: '%s' has no vector", fn, id);
    if (rc == CX_OK) {
        memcpy(x, v, (size_t)m->k * sizeof *x);
        if (source)
            *source = folded;
    }
    cx__rdunlock(e);
    free(tmp);
    return rc;
}

CX_API int cx_customer_vector(cx_engine *e, const char *customer, float *x,
                              size_t cap, int *source)
{
    return vector_call(e, 0, customer, x, cap, source);
}

CX_API int cx_item_vector(cx_engine *e, const char *item, float *x,
                          size_t cap, int *source)
{
    return vector_call(e, 1, item, x, cap, source);
}

/* ===================================================================== */
/* Batch                                                                 */
/* ===================================================================== */

#define BATCH_USERS 64
#define BATCH_ITEMS 2048

CX_API int cx_recommend_batch(cx_engine *e, size_t mcount,
                              const char *const *customers, size_t k,
                              const cx_rec_opts *opts, const char **items,
                              float *scores, int *reasons, size_t *counts)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_recommend_batch: engine is NULL");
    if (!customers || !items || !counts)
        return cx__fail(e, CX_EINVAL, "cx_recommend_batch: NULL argument");
    for (size_t j = 0; j < mcount; j++) {
        counts[j] = 0;
        if (!cx__id_len(customers[j]))
            return cx__fail(e, CX_EINVAL, "cx_recommend_batch: customer %zu "
                            "is not a valid id", j);
    }
    if (k == 0 || k > CX_MAX_K)
        return cx__fail(e, CX_EINVAL, "cx_recommend_batch: k = %zu, must be "
                        "1..%d", k, CX_MAX_K);
    cx__rdlock(e);
    cx__blend bl;
    cx__blend_from(&e->opt, &bl);
    cx__rdunlock(e);
    if (!cx__blend_plain(&bl)) /* hybrid.c: customer by customer */
        return cx__hybrid_batch(e, mcount, customers, k, opts, items, scores,
                                reasons, counts);
    cx__rdlock(e);
    const cx__model *m = e->model;
    int rc = CX_OK;
    size_t kk = m ? (size_t)m->k : 0;
    float *S = m ? malloc((size_t)BATCH_USERS * BATCH_ITEMS * sizeof *S) : NULL;
    uint32_t *hit = malloc(BATCH_ITEMS * sizeof *hit);
    float *Xb = m ? malloc((size_t)BATCH_USERS * kk * sizeof *Xb) : NULL;
    size_t cap = k < e->items.n ? k : e->items.n;
    cx__hit *hits = malloc((size_t)BATCH_USERS * (cap + 1) * sizeof *hits);
    request *qs = malloc(BATCH_USERS * sizeof *qs);
    if ((m && (!S || !Xb)) || !hits || !qs || !hit)
        rc = cx__fail(e, CX_ENOMEM, "cx_recommend_batch: out of memory");
    for (size_t u0 = 0; rc == CX_OK && u0 < mcount; u0 += BATCH_USERS) {
        size_t nu = mcount - u0 < BATCH_USERS ? mcount - u0 : BATCH_USERS;
        size_t ready = 0, nvec = 0, slot[BATCH_USERS];
        cx__topk t[BATCH_USERS];
        /* Resolve each customer; those without a vector go the single
         * path (popularity), the rest get a row in Xb. */
        for (size_t j = 0; j < nu && rc == CX_OK; j++, ready++) {
            size_t row = u0 + j;
            request *q = &qs[j];
            slot[j] = SIZE_MAX;
            if ((rc = request_init(e, opts, k, "cx_recommend_batch", q))) {
                ready++;
                break;
            }
            uint32_t u = cx__idmap_find(&e->customers, customers[row]);
            if (skip_for(e, q, u, NULL)) {
                rc = CX_ENOMEM;
                ready++;
                break;
            }
            cx__fold *tmp = NULL;
            const float *x = u != CX_NONE ? cx__customer_vec(e, u, NULL, &tmp)
                                          : NULL;
            if (x && !q->o.n_allow && !q->o.max_per_category &&
                !(q->o.diversity > 0)) {
                memcpy(Xb + nvec * kk, x, kk * sizeof *Xb);
                slot[j] = nvec;
                t[nvec] = (cx__topk){hits + nvec * (cap + 1), 0, cap};
                nvec++;
            } else {
                rc = rank_one(e, q, x, 0, LIST_POPULAR, k,
                              x ? CX_REASON_PERSONAL : CX_REASON_POPULAR,
                              items + row * k,
                              scores ? scores + row * k : NULL,
                              reasons ? reasons + row * k : NULL,
                              &counts[row]);
            }
            free(tmp);
            q->r.no_x = e->xv_n > 0;
        }
        for (size_t b = 0; rc == CX_OK && nvec && b < m->n_items;
             b += BATCH_ITEMS) {
            size_t ni = m->n_items - b < BATCH_ITEMS ? m->n_items - b
                                                     : BATCH_ITEMS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nvec,
                        (int)ni, (int)kk, 1.0f, Xb, (int)kk,
                        m->Y + b * kk, (int)kk, 0.0f, S, (int)ni);
            for (size_t j = 0; j < nu; j++) {
                if (slot[j] == SIZE_MAX)
                    continue;
                cx__topk *tt = &t[slot[j]];
                const float *s = S + slot[j] * ni;
                float lim = bar(tt);
                size_t nh = cx__k.above(s, ni, lim, hit);
                for (size_t h = 0; h < nh; h++) {
                    uint32_t i = hit[h];
                    if (s[i] > lim && allowed(&qs[j].r, (uint32_t)b + i)) {
                        cx__topk_push(tt, s[i], (uint32_t)b + i);
                        lim = bar(tt);
                    }
                }
            }
        }
        for (size_t j = 0; rc == CX_OK && j < nu; j++)
            if (slot[j] != SIZE_MAX) {
                size_t row = u0 + j;
                if (e->xv_n)
                    scan_extra(e, Xb + slot[j] * kk, 0, &qs[j].r,
                               &t[slot[j]]);
                counts[row] = emit(e, &t[slot[j]], CX_REASON_PERSONAL,
                                   items + row * k,
                                   scores ? scores + row * k : NULL,
                                   reasons ? reasons + row * k : NULL);
            }
        for (size_t j = 0; j < ready; j++)
            request_free(&qs[j]);
    }
    free(S);
    free(hit);
    free(Xb);
    free(hits);
    free(qs);
    cx__rdunlock(e);
    return rc;
}
