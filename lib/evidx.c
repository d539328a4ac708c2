/* evidx.c -- the event index: the signals grouped by customer and by
 * item, for readers that would otherwise follow a chain of events.
 *
 * The events are in arrival order, each linked to the previous one of
 * its customer and of its item.  Following such a chain, each step waits
 * for the cache miss of the one before: a customer with 3,000 signals
 * cost a page 0.6-0.9 ms in their profile's walk alone, when the caches
 * hold other customers' (2M signals, this VM), and a bought-together row
 * walked about 3,500 steps.  The index lists, newest first, for the
 * events [0, n_cov):
 *   - each item's purchase and cart customers (start, cust) and each
 *     customer's purchase and cart items (cstart, item): the bought-
 *     together row's buyers and what they bought;
 *   - each heavy customer's events (wstart, wev; customers with at least
 *     CX__WALK_MIN signals, the others have none listed): cx__walk reads
 *     their ids in a row and the events themselves ahead of use, so their
 *     misses overlap.
 * The first reader that finds none, or finds the events after it grown
 * past a quarter of it, makes one: under evidx_mu, holding only the read
 * lock, which keeps the events still, while other readers keep using the
 * one they have.  Events after it are walked along their chains.  A
 * replaced index waits for the next write lock (cx__wrunlock), when no
 * reader can hold it; cx_forget drops it, as it renumbers the events.
 * 8 bytes a basket signal, 4 a heavy customer's signal, 8 a customer
 * and 4 an item. */
#include "internal.h"

#include <string.h>

#define SLACK 4096 /* events after an index before a quarter of it */

void cx__evidx_free(struct cx__evidx *x)
{
    while (x) {
        struct cx__evidx *next = x->next;
        free(x->start);
        free(x->cust);
        free(x->cstart);
        free(x->item);
        free(x->wstart);
        free(x->wev);
        free(x);
        x = next;
    }
}

/* Onto the retired list, freed at the next write lock. */
static void retire(cx_engine *e, struct cx__evidx *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&e->retire_mu);
    x->next = e->evidx_retired;
    e->evidx_retired = x;
    pthread_mutex_unlock(&e->retire_mu);
}

void cx__evidx_drop(cx_engine *e)
{
    retire(e, atomic_exchange(&e->evidx, NULL));
}

/* Counts to offsets: start[j] becomes the sum of the counts before j
 * (start[0] is 0 and start[j + 1] held j's count); returns the total. */
static uint32_t offsets(uint32_t *start, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++)
        start[j + 1] += start[j];
    return start[n];
}

static struct cx__evidx *build(const cx_engine *e)
{
    uint32_t n = (uint32_t)e->n_ev, ni = (uint32_t)e->items.n,
             nc = (uint32_t)e->customers.n;
    struct cx__evidx *x = calloc(1, sizeof *x);
    uint32_t *at = malloc(((size_t)(ni > nc ? ni : nc) + 1) * sizeof *at);
    if (!x || !at || !(x->start = calloc((size_t)ni + 1, sizeof *x->start)) ||
        !(x->cstart = calloc((size_t)nc + 1, sizeof *x->cstart)) ||
        !(x->wstart = calloc((size_t)nc + 1, sizeof *x->wstart)))
        goto fail;
    for (uint32_t j = 0; j < n; j++) {
        const cx__event *v = &e->ev[j];
        x->wstart[v->cust + 1]++;
        if (cx__basket(v->type)) {
            x->start[v->item + 1]++;
            x->cstart[v->cust + 1]++;
        }
    }
    for (uint32_t u = 0; u < nc; u++)
        if (x->wstart[u + 1] < CX__WALK_MIN)
            x->wstart[u + 1] = 0;
    uint32_t nb = offsets(x->start, ni);
    offsets(x->cstart, nc);
    uint32_t nw = offsets(x->wstart, nc);
    if (!(x->cust = malloc(((size_t)nb + 1) * sizeof *x->cust)) ||
        !(x->item = malloc(((size_t)nb + 1) * sizeof *x->item)) ||
        !(x->wev = malloc(((size_t)nw + 1) * sizeof *x->wev)))
        goto fail;
    memcpy(at, x->start, (size_t)ni * sizeof *at);
    for (uint32_t j = n; j-- > 0;)
        if (cx__basket(e->ev[j].type))
            x->cust[at[e->ev[j].item]++] = e->ev[j].cust;
    memcpy(at, x->cstart, (size_t)nc * sizeof *at);
    for (uint32_t j = n; j-- > 0;)
        if (cx__basket(e->ev[j].type))
            x->item[at[e->ev[j].cust]++] = e->ev[j].item;
    memcpy(at, x->wstart, (size_t)nc * sizeof *at);
    for (uint32_t j = n; j-- > 0;) {
        uint32_t u = e->ev[j].cust;
        if (x->wstart[u + 1] > x->wstart[u])
            x->wev[at[u]++] = j;
    }
    free(at);
    x->n_cov = n;
    x->n_items = ni;
    x->n_cust = nc;
    return x;
fail:
    free(at);
    cx__evidx_free(x);
    return NULL;
}

static int fresh(const cx_engine *e, const struct cx__evidx *x)
{
    return x && e->n_ev - x->n_cov <= x->n_cov / 4 + SLACK;
}

const struct cx__evidx *cx__evidx_get(const cx_engine *ce)
{
    cx_engine *e = (cx_engine *)ce; /* the index is its mutable part */
    struct cx__evidx *x = atomic_load_explicit(&e->evidx,
                                               memory_order_acquire);
    if (fresh(e, x))
        return x;
    pthread_mutex_lock(&e->evidx_mu);
    x = atomic_load_explicit(&e->evidx, memory_order_acquire);
    if (!fresh(e, x)) {
        struct cx__evidx *y = build(e);
        if (y) {
            atomic_store_explicit(&e->evidx, y, memory_order_release);
            retire(e, x);
            x = y;
        }
    }
    pthread_mutex_unlock(&e->evidx_mu);
    return x;
}

void cx__walk_init(cx__walk *w, const cx_engine *e, uint32_t u)
{
    const struct cx__evidx *x = u < e->customers.n ? cx__evidx_get(e) : NULL;
    w->e = e;
    w->ev = u < e->customers.n ? e->cust_last[u] : CX_NONE;
    w->cov = 0;
    w->at = w->end = NULL;
    if (x && u < x->n_cust && x->wstart[u + 1] > x->wstart[u]) {
        w->cov = x->n_cov;
        w->at = x->wev + x->wstart[u];
        w->end = x->wev + x->wstart[u + 1];
    }
}
