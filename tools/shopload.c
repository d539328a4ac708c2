/* shopload.c -- feed a synthetic shop (synth.h) into an engine: the one
 * loader the CLI demo, the tests and the benchmarks share. */
#include "shopload.h"

#include <stdlib.h>

/* Upsert the shop's catalogue, in item order, so that the engine's item
 * index i is the shop's item i. */
int shop_upsert_catalogue(cx_engine *e, const synth_shop *s)
{
    size_t n = s->n_items;
    const char **ids = malloc(n * sizeof *ids);
    const char **cats = malloc(n * sizeof *cats);
    const char **tags = malloc(n * sizeof *tags);
    double *price = malloc(n * sizeof *price);
    int *stock = malloc(n * sizeof *stock);
    int64_t *created = malloc(n * sizeof *created);
    int rc = CX_ENOMEM;
    if (ids && cats && tags && price && stock && created) {
        for (size_t i = 0; i < n; i++) {
            ids[i] = s->items[i].id;
            cats[i] = s->items[i].category;
            tags[i] = s->items[i].tags;
            price[i] = s->items[i].price;
            stock[i] = s->items[i].in_stock;
            created[i] = s->items[i].created_at;
        }
        rc = cx_items_upsert(e, n, ids, cats, price, stock, created, tags);
    }
    free(ids), free(cats), free(tags), free(price), free(stock),
        free(created);
    return rc;
}

/* Ingest signals [from, to) of the shop in batches of `batch`. */
int shop_ingest(cx_engine *e, const synth_shop *s, size_t from, size_t to,
                size_t batch)
{
    if (batch == 0)
        batch = 4096;
    char (*cid)[24] = malloc(batch * sizeof *cid);
    const char **cust = malloc(batch * sizeof *cust);
    const char **items = malloc(batch * sizeof *items);
    const char **chan = malloc(batch * sizeof *chan);
    int *types = malloc(batch * sizeof *types);
    float *vals = malloc(batch * sizeof *vals);
    int64_t *ts = malloc(batch * sizeof *ts);
    int rc = CX_ENOMEM;
    if (cid && cust && items && chan && types && vals && ts) {
        rc = CX_OK;
        for (size_t b = from; b < to && rc == CX_OK; b += batch) {
            size_t m = to - b < batch ? to - b : batch;
            for (size_t j = 0; j < m; j++) {
                const synth_signal *g = &s->signals[b + j];
                synth_customer_id(g->customer, cid[j]);
                cust[j] = cid[j];
                items[j] = s->items[g->item].id;
                chan[j] = synth_channel_name(g->channel);
                types[j] = g->type; /* SYNTH_* == CX_* for 0..6 */
                vals[j] = g->value;
                ts[j] = g->ts;
            }
            rc = cx_ingest(e, m, cust, items, types, vals, ts, chan);
        }
    }
    free(cid), free(cust), free(items), free(chan), free(types), free(vals),
        free(ts);
    return rc;
}

