/* signals.c -- signal types and weights, and batch ingest.
 * A batch is validated whole before anything is applied, so a bad row
 * never leaves half a batch behind. */
#include "internal.h"
#include "db.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define MAX_CHANNELS 255

static const char *const builtin_name[CX_SIGNAL_CUSTOM] = {
    "view", "click", "add_to_cart", "purchase", "rating", "return",
    "dislike", NULL};

CX_API const char *cx_signal_type_name(const cx_engine *e, int type)
{
    if (type < 0 || type >= CX_MAX_SIGNAL_TYPES)
        return NULL;
    if (type < CX_SIGNAL_CUSTOM)
        return builtin_name[type];
    return e ? e->type_name[type] : NULL;
}

static int lookup(const cx_engine *e, const char *name)
{
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++) {
        const char *n = cx_signal_type_name(e, t);
        if (n && strcmp(n, name) == 0)
            return t;
    }
    return -1;
}

CX_API int cx_signal_type_lookup(const cx_engine *e, const char *name,
                                 int *type)
{
    if (!e || !name || !type)
        return cx__fail(e, CX_EINVAL, "cx_signal_type_lookup: NULL argument");
    cx_engine *w = (cx_engine *)e;
    cx__rdlock(w);
    int t = lookup(e, name);
    cx__rdunlock(w);
    if (t < 0)
        return cx__fail(e, CX_ENOTFOUND, "unknown signal type '%s'", name);
    *type = t;
    return CX_OK;
}

CX_API int cx_signal_type_define(cx_engine *e, const char *name,
                                 double weight, int *type)
{
    if (!e || !name || !type)
        return cx__fail(e, CX_EINVAL, "cx_signal_type_define: NULL argument");
    size_t len = strnlen(name, 65);
    if (len == 0 || len > 64)
        return cx__fail(e, CX_EINVAL,
                        "signal type name must have 1..64 bytes");
    if (isnan(weight))
        return cx__fail(e, CX_EINVAL, "signal weight is NaN");
    if (!isfinite(weight) || fabs(weight) > 1e6)
        return cx__fail(e, CX_ERANGE, "signal weight %g out of range",
                        weight);
    int rc = CX_OK;
    pthread_mutex_lock(&e->wmu);
    int t = lookup(e, name);
    char *dup = NULL;
    if (t < 0) {
        for (t = CX_SIGNAL_CUSTOM; t < CX_MAX_SIGNAL_TYPES; t++)
            if (!e->type_name[t])
                break;
        if (t == CX_MAX_SIGNAL_TYPES)
            rc = cx__fail(e, CX_ELIMIT, "all %d custom signal types are "
                          "defined", CX_MAX_SIGNAL_TYPES - CX_SIGNAL_CUSTOM);
        else if (!(dup = strdup(name)))
            rc = cx__fail(e, CX_ENOMEM, "out of memory");
    }
    if (rc == CX_OK && t < CX_MAX_SIGNAL_TYPES && e->db &&
        (rc = cx__db_type(e, t, name, weight)) != CX_OK)
        free(dup);
    if (rc == CX_OK && t < CX_MAX_SIGNAL_TYPES) {
        int reweight = e->opt.weight[t] != weight;
        cx__wrlock(e);
        if (dup)
            e->type_name[t] = dup;
        e->opt.weight[t] = weight;
        cx__wrunlock(e);
        *type = t;
        if (reweight)
            rc = cx__pop_rebuild(e);
    }
    pthread_mutex_unlock(&e->wmu);
    return rc;
}

double cx__signal_strength(const cx__options *o, const cx__event *ev)
{
    double v = ev->value;
    if (ev->type == CX_RATING)
        v = (v - 3.0) / 2.0;
    return o->weight[ev->type] * v;
}

unsigned cx__negative_types(const cx__options *o)
{
    unsigned m = CX_TYPE_BIT(CX_RETURN) | CX_TYPE_BIT(CX_DISLIKE);
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        if (o->weight[t] < 0)
            m |= CX_TYPE_BIT(t);
    return m;
}

/* ===================================================================== */
/* Ingest                                                                */
/* ===================================================================== */

typedef struct batch_need {
    size_t cust_ids, cust_bytes, item_ids, item_bytes, chan_ids, chan_bytes;
    const char *new_chan[MAX_CHANNELS + 1]; /* distinct, for the limit */
} batch_need;

/* Count a channel the engine does not know yet, once per batch. */
static int new_channel(batch_need *need, const char *ch)
{
    for (size_t i = 0; i < need->chan_ids; i++)
        if (strcmp(need->new_chan[i], ch) == 0)
            return 1;
    if (need->chan_ids == MAX_CHANNELS)
        return 0;
    need->new_chan[need->chan_ids++] = ch;
    need->chan_bytes += strlen(ch) + 1;
    return 1;
}

static int check_row(cx_engine *e, size_t i, const char *c, const char *it,
                     int type, float value, int64_t ts, const char *ch,
                     batch_need *need)
{
    size_t lc = cx__id_len(c), li = cx__id_len(it);
    if (!lc)
        return cx__fail(e, CX_EINVAL, "signal row %zu: customer id is NULL,"
                        " empty or longer than %d bytes", i, CX_MAX_ID_LEN);
    if (!li)
        return cx__fail(e, CX_EINVAL, "signal row %zu: item id is NULL, "
                        "empty or longer than %d bytes", i, CX_MAX_ID_LEN);
    if (type < 0 || type >= CX_MAX_SIGNAL_TYPES ||
        !cx_signal_type_name(e, type))
        return cx__fail(e, CX_EINVAL, "signal row %zu: undefined signal "
                        "type %d", i, type);
    if (!isfinite(value))
        return cx__fail(e, CX_EINVAL, "signal row %zu: value is not a "
                        "finite number", i);
    if (type == CX_RATING ? (value < 0 || value > 5) : value <= 0 ||
                                                           value > 1e6)
        return cx__fail(e, CX_EINVAL, "signal row %zu: value %g out of "
                        "range (%s)", i, (double)value,
                        type == CX_RATING ? "ratings are 0..5"
                                          : "counts are > 0 and <= 1e6");
    if (ts < 0 || ts > (int64_t)1 << 40)
        return cx__fail(e, CX_EINVAL, "signal row %zu: timestamp %lld is "
                        "not a plausible unix time", i, (long long)ts);
    if (ch && (!cx__id_len(ch) || strlen(ch) > 64))
        return cx__fail(e, CX_EINVAL, "signal row %zu: channel must have "
                        "1..64 bytes", i);
    if (cx__idmap_find(&e->customers, c) == CX_NONE) {
        need->cust_ids++;
        need->cust_bytes += lc + 1;
    }
    if (cx__idmap_find(&e->items, it) == CX_NONE) {
        need->item_ids++;
        need->item_bytes += li + 1;
    }
    if (ch && cx__idmap_find(&e->channels, ch) == CX_NONE &&
        !new_channel(need, ch))
        return cx__fail(e, CX_ELIMIT, "signal row %zu: more than %d "
                        "distinct channels", i, MAX_CHANNELS);
    return CX_OK;
}

static int plan(cx_engine *e, size_t n, const batch_need *need,
                int64_t ts_max, cx__plan *p, int64_t t0[2])
{
    int rc;
    if (e->channels.n + need->chan_ids > MAX_CHANNELS)
        return cx__fail(e, CX_ELIMIT, "more than %d distinct channels",
                        MAX_CHANNELS);
    if (e->n_ev + n >= CX_NONE)
        return cx__fail(e, CX_ELIMIT, "more than %u signals", CX_NONE - 1);
    if ((rc = cx__idmap_plan(&e->customers, need->cust_ids,
                             need->cust_bytes, p)) ||
        (rc = cx__idmap_plan(&e->items, need->item_ids, need->item_bytes,
                             p)) ||
        (rc = cx__idmap_plan(&e->channels, need->chan_ids, need->chan_bytes,
                             p)) ||
        (rc = cx__plan_items(e, need->item_ids, p)) ||
        (rc = cx__plan_customers(e, need->cust_ids, p)) ||
        (rc = cx__plan_events(e, n, p)) ||
        (rc = cx__pop_plan(e, ts_max, p, &t0[0], &t0[1])))
        return cx__fail(e, rc, "cx_ingest: %s", cx_strerror(rc));
    return CX_OK;
}

/* Rows applied per hold of the write lock. */
#define SLICE 64

/* Write the batch to the data directory, with the indexes it will have. */
static int durable(cx_engine *e, size_t n, const char *const *customers,
                   const char *const *items, const int *types,
                   const float *values, const int64_t *timestamps,
                   const char *const *channels, int64_t now,
                   const batch_need *need)
{
    cx__idmap nc = {0}, ni = {0}, nch = {0};
    uint32_t *cu = malloc(n * sizeof *cu), *iu = malloc(n * sizeof *iu);
    uint8_t *ch = malloc(n);
    float *val = values ? NULL : malloc(n * sizeof *val);
    int64_t *ts = timestamps ? NULL : malloc(n * sizeof *ts);
    int rc = CX_OK;
    if (!cu || !iu || !ch || (!values && !val) || (!timestamps && !ts) ||
        cx__idmap_reserve(&nc, need->cust_ids, need->cust_bytes) ||
        cx__idmap_reserve(&ni, need->item_ids, need->item_bytes) ||
        cx__idmap_reserve(&nch, need->chan_ids, need->chan_bytes)) {
        rc = cx__fail(e, CX_ENOMEM, "cx_ingest: out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            cu[i] = cx__idmap_will_be(&e->customers, &nc, customers[i]);
            iu[i] = cx__idmap_will_be(&e->items, &ni, items[i]);
            ch[i] = channels && channels[i]
                        ? (uint8_t)cx__idmap_will_be(&e->channels, &nch,
                                                     channels[i])
                        : 0;
            if (val)
                val[i] = 1.0f;
            if (ts)
                ts[i] = now;
        }
        cx__db_batch b = {n, cu, iu, types, values ? values : val,
                          timestamps ? timestamps : ts, ch,
                          &nc, &ni, &nch};
        rc = cx__db_signals(e, &b);
    }
    cx__idmap_free(&nc);
    cx__idmap_free(&ni);
    cx__idmap_free(&nch);
    free(cu), free(iu), free(ch), free(val), free(ts);
    return rc;
}

CX_API int cx_ingest(cx_engine *e, size_t n, const char *const *customers,
                     const char *const *items, const int *types,
                     const float *values, const int64_t *timestamps,
                     const char *const *channels)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_ingest: engine is NULL");
    if (n == 0)
        return CX_OK;
    if (!customers || !items || !types)
        return cx__fail(e, CX_EINVAL,
                        "cx_ingest: customers, items and types are required");
    int64_t now = (int64_t)time(NULL), ts_max = 0;
    batch_need need;
    memset(&need, 0, sizeof need);
    cx__plan p;
    memset(&p, 0, sizeof p);
    int64_t t0[2];
    int rc = CX_OK;
    /* Validate and allocate with only the writer mutex: readers go on.
     * In a directory, ids are resolved inside the write transaction (see
     * cx__db_claim: other processes may add ids too). */
    pthread_mutex_lock(&e->wmu);
    if (e->db)
        rc = cx__db_claim(e, "cx_ingest");
    for (size_t i = 0; i < n && rc == CX_OK; i++) {
        int64_t ts = timestamps ? timestamps[i] : now;
        rc = check_row(e, i, customers[i], items[i], types[i],
                       values ? values[i] : 1.0f, ts,
                       channels ? channels[i] : NULL, &need);
        ts_max = ts > ts_max ? ts : ts_max;
    }
    if (rc == CX_OK)
        rc = plan(e, n, &need, ts_max, &p, t0);
    if (rc == CX_OK && e->db)
        rc = durable(e, n, customers, items, types, values, timestamps,
                     channels, now, &need);
    if (rc) {
        if (e->db)
            cx__db_rollback(e);
        cx__plan_release(&p, 0);
        pthread_mutex_unlock(&e->wmu);
        return rc;
    }
    /* Publish, a slice of rows per hold of the lock.  Nothing below can
     * fail: every id, column and event slot was reserved above. */
    size_t from = e->n_ev;
    for (size_t i = 0; i < n;) {
        cx__wrlock(e);
        if (i == 0) {
            cx__plan_commit(&p);
            cx__pop_set_t0(e, t0);
        }
        for (size_t end = i + SLICE < n ? i + SLICE : n; i < end; i++) {
            int added;
            uint32_t c = cx__idmap_add(&e->customers, customers[i], NULL);
            uint32_t it = cx__idmap_add(&e->items, items[i], &added);
            if (added)
                cx__item_init(e, it);
            uint32_t at = (uint32_t)e->n_ev;
            cx__event *ev = &e->ev[at];
            ev->cust = c;
            ev->item = it;
            ev->ts = timestamps ? timestamps[i] : now;
            ev->value = values ? values[i] : 1.0f;
            ev->type = (uint8_t)types[i];
            ev->channel = channels && channels[i]
                              ? (uint8_t)cx__idmap_add(&e->channels,
                                                       channels[i], NULL)
                              : 0;
            ev->pad = 0;
            e->ev_prev[at] = e->cust_last[c];
            e->cust_last[c] = at;
            e->ev_iprev[at] = e->item_last[it];
            e->item_last[it] = at;
            e->n_ev++;
            if (ev->ts > e->ts_max)
                e->ts_max = ev->ts;
            cx__pop_add(e, it, cx__signal_strength(&e->opt, ev), ev->ts);
        }
        cx__wrunlock(e);
    }
    cx__plan_release_e(e, &p, 1);
    cx__catidx_refresh(e);
    /* Acknowledged from here on; fold-in failures only cost freshness. */
    if (cx__fold_after_ingest(e, from))
        cx__fail(e, CX_ENOMEM, "cx_ingest: fold-in skipped: out of memory");
    pthread_mutex_unlock(&e->wmu);
    return CX_OK;
}
