/* catalog.c -- the product catalogue: category, price, stock, age, tags.
 * Columns indexed by dense item index; batches validate before applying. */
#include "internal.h"
#include "db.h"

#include <math.h>
#include <string.h>

static int check_tags(const char *t)
{
    if (strlen(t) > 4 * CX_MAX_ID_LEN)
        return 0;
    int n = 1;
    for (; *t; t++)
        n += *t == ',';
    return n <= CX_MAX_TAGS;
}

/* Validate the whole batch and count what it will add, so applying it
 * cannot fail halfway. */
static int validate(cx_engine *e, size_t n, const char *const *ids,
                    const char *const *cats, const double *prices,
                    const int64_t *created, const char *const *tags,
                    size_t *bytes, size_t *cat_bytes, size_t *tag_bytes)
{
    *bytes = *cat_bytes = *tag_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = cx__id_len(ids[i]);
        if (!len)
            return cx__fail(e, CX_EINVAL,
                            "item row %zu: id is NULL, empty or longer "
                            "than %d bytes", i, CX_MAX_ID_LEN);
        *bytes += len + 1;
        if (cats) {
            if (!cats[i] || strnlen(cats[i], CX_MAX_ID_LEN + 1) >
                                CX_MAX_ID_LEN)
                return cx__fail(e, CX_EINVAL,
                                "item row %zu (%s): category is NULL or "
                                "longer than %d bytes", i, ids[i],
                                CX_MAX_ID_LEN);
            *cat_bytes += strlen(cats[i]) + 1;
        }
        if (prices && (!isfinite(prices[i]) || prices[i] < 0))
            return cx__fail(e, CX_EINVAL,
                            "item row %zu (%s): price %g is not a finite "
                            "number >= 0", i, ids[i], prices[i]);
        if (created && (created[i] < 0 || created[i] > (int64_t)1 << 40))
            return cx__fail(e, CX_EINVAL,
                            "item row %zu (%s): created_at %lld is not a "
                            "plausible unix time", i, ids[i],
                            (long long)created[i]);
        if (tags && tags[i]) {
            if (!check_tags(tags[i]))
                return cx__fail(e, CX_EINVAL,
                                "item row %zu (%s): more than %d tags or "
                                "tags too long", i, ids[i], CX_MAX_TAGS);
            *tag_bytes += strlen(tags[i]) + 1;
        }
    }
    return CX_OK;
}

/* Write the batch to the data directory as the rows it will leave: one
 * per distinct item, with the values the publish below will give it. */
static int durable(cx_engine *e, size_t n, const char *const *ids,
                   const char *const *cats, const double *prices,
                   const int *in_stock, const int64_t *created,
                   const char *const *tags, size_t bytes, size_t cb,
                   size_t tb)
{
    cx__idmap seen = {0}, newi = {0}, nc = {0}, nt = {0};
    uint32_t *idx = malloc(n * sizeof *idx), *cat = malloc(n * sizeof *cat),
             *tag = malloc(n * sizeof *tag);
    double *price = malloc(n * sizeof *price);
    uint8_t *flags = malloc(n);
    int64_t *cr = malloc(n * sizeof *cr);
    const char **id = malloc(n * sizeof *id);
    int rc = CX_OK;
    if (!idx || !cat || !tag || !price || !flags || !cr || !id ||
        cx__idmap_reserve(&seen, n, bytes) ||
        cx__idmap_reserve(&newi, n, bytes) ||
        cx__idmap_reserve(&nc, cats ? n : 0, cb) ||
        cx__idmap_reserve(&nt, tags ? n : 0, tb)) {
        rc = cx__fail(e, CX_ENOMEM, "cx_items_upsert: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int added;
        uint32_t j = cx__idmap_add(&seen, ids[i], &added);
        if (added) {
            uint32_t it = cx__idmap_will_be(&e->items, &newi, ids[i]);
            idx[j] = it;
            id[j] = seen.str[j];
            if (it < e->items.n) {
                cat[j] = e->item_cat[it];
                price[j] = e->item_price[it];
                flags[j] = e->item_flags[it];
                cr[j] = e->item_created[it];
                tag[j] = e->item_tags[it];
            } else {
                cat[j] = 0, price[j] = 0, flags[j] = CX__ITEM_IN_STOCK;
                cr[j] = 0, tag[j] = CX_NONE;
            }
        }
        uint8_t f = (uint8_t)((flags[j] | CX__ITEM_CATALOGUED) &
                              ~CX__ITEM_REMOVED);
        if (in_stock)
            f = (uint8_t)(in_stock[i] ? f | CX__ITEM_IN_STOCK
                                      : f & ~CX__ITEM_IN_STOCK);
        flags[j] = f;
        if (cats)
            cat[j] = cx__idmap_will_be(&e->categories, &nc, cats[i]);
        if (prices)
            price[j] = prices[i];
        if (created)
            cr[j] = created[i];
        if (tags)
            tag[j] = tags[i] && tags[i][0]
                         ? cx__idmap_will_be(&e->tagsets, &nt, tags[i])
                         : CX_NONE;
    }
    cx__db_items_batch b = {seen.n, idx, id, cat, tag, price, flags, cr,
                            &nc, &nt};
    rc = cx__db_items(e, &b);
out:
    cx__idmap_free(&seen);
    cx__idmap_free(&newi);
    cx__idmap_free(&nc);
    cx__idmap_free(&nt);
    free(idx), free(cat), free(tag), free(price), free(flags), free(cr);
    free(id);
    return rc;
}

CX_API int cx_items_upsert(cx_engine *e, size_t n, const char *const *ids,
                           const char *const *cats, const double *prices,
                           const int *in_stock, const int64_t *created,
                           const char *const *tags)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_items_upsert: engine is NULL");
    if (n == 0)
        return CX_OK;
    if (!ids)
        return cx__fail(e, CX_EINVAL, "cx_items_upsert: ids is NULL");
    size_t bytes, cb, tb;
    cx__plan p;
    memset(&p, 0, sizeof p);
    pthread_mutex_lock(&e->wmu);
    /* In a directory, ids are resolved inside the write transaction. */
    int rc = e->db ? cx__db_claim(e, "cx_items_upsert") : CX_OK;
    if (rc == CX_OK)
        rc = validate(e, n, ids, cats, prices, created, tags, &bytes, &cb,
                      &tb);
    if (rc == CX_OK &&
        ((rc = cx__idmap_plan(&e->items, n, bytes, &p)) ||
         (rc = cx__idmap_plan(&e->categories, cats ? n : 0, cb, &p)) ||
         (rc = cx__idmap_plan(&e->tagsets, tags ? n : 0, tb, &p)) ||
         (rc = cx__plan_items(e, n, &p))))
        rc = cx__fail(e, rc, "cx_items_upsert: %s", cx_strerror(rc));
    if (rc == CX_OK && e->db)
        rc = durable(e, n, ids, cats, prices, in_stock, created, tags, bytes,
                     cb, tb);
    if (rc && e->db)
        cx__db_rollback(e);
    /* Publish a slice of rows per hold of the lock; nothing can fail. */
    for (size_t i = 0; rc == CX_OK && i < n;) {
        cx__wrlock(e);
        if (i == 0)
            cx__plan_commit(&p);
        for (size_t end = i + 64 < n ? i + 64 : n; i < end; i++) {
            int added;
            uint32_t it = cx__idmap_add(&e->items, ids[i], &added);
            if (added)
                cx__item_init(e, it);
            uint8_t f = e->item_flags[it];
            int64_t was = (f & CX__ITEM_CATALOGUED) ? e->item_created[it] : 0;
            f = (uint8_t)((f | CX__ITEM_CATALOGUED) & ~CX__ITEM_REMOVED);
            if (in_stock)
                f = (uint8_t)(in_stock[i] ? f | CX__ITEM_IN_STOCK
                                          : f & ~CX__ITEM_IN_STOCK);
            e->item_flags[it] = f;
            if (cats)
                cx__catidx_set(e, it, cx__idmap_add(&e->categories, cats[i],
                                                    NULL));
            if (prices)
                e->item_price[it] = prices[i];
            if (created) {
                e->item_created[it] = created[i];
                if (created[i] > e->created_max)
                    e->created_max = created[i];
            }
            /* Its new-arrivals key: created_at once catalogued. */
            if (e->item_created[it] > was)
                cx__top_bump(e, CX__LIST_NEW, it);
            else if (e->item_created[it] < was)
                cx__top_drop(e, CX__LIST_NEW, it);
            if (tags)
                e->item_tags[it] =
                    tags[i] && tags[i][0]
                        ? cx__idmap_add(&e->tagsets, tags[i], NULL)
                        : CX_NONE;
        }
        cx__wrunlock(e);
    }
    cx__plan_release(&p, rc == CX_OK);
    if (rc == CX_OK) {
        cx__catidx_refresh(e);
        cx__top_refresh(e);
    }
    pthread_mutex_unlock(&e->wmu);
    return rc;
}

CX_API int cx_item_remove(cx_engine *e, const char *id)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_item_remove: engine is NULL");
    if (!cx__id_len(id))
        return cx__fail(e, CX_EINVAL, "cx_item_remove: invalid id");
    pthread_mutex_lock(&e->wmu);
    uint32_t it = cx__idmap_find(&e->items, id);
    int rc = CX_OK;
    if (it == CX_NONE) {
        rc = cx__fail(e, CX_ENOTFOUND, "cx_item_remove: unknown item '%s'",
                      id);
    } else if (!e->db || (rc = cx__db_item_remove(e, it)) == CX_OK) {
        cx__wrlock(e);
        e->item_flags[it] |= CX__ITEM_REMOVED;
        cx__wrunlock(e);
    }
    pthread_mutex_unlock(&e->wmu);
    return rc;
}

CX_API int cx_item_get(cx_engine *e, const char *id, const char **category,
                       double *price, int *in_stock, int64_t *created_at)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_item_get: engine is NULL");
    if (!cx__id_len(id))
        return cx__fail(e, CX_EINVAL, "cx_item_get: invalid id");
    cx__rdlock(e);
    uint32_t it = cx__idmap_find(&e->items, id);
    int rc = CX_OK;
    if (it == CX_NONE || (e->item_flags[it] & CX__ITEM_REMOVED)) {
        rc = cx__fail(e, CX_ENOTFOUND, "cx_item_get: unknown item '%s'", id);
    } else {
        if (category)
            *category = e->categories.str[e->item_cat[it]];
        if (price)
            *price = e->item_price[it];
        if (in_stock)
            *in_stock = !!(e->item_flags[it] & CX__ITEM_IN_STOCK);
        if (created_at)
            *created_at = e->item_created[it];
    }
    cx__rdunlock(e);
    return rc;
}

/* ===================================================================== */
/* Items by category                                                     */
/* ===================================================================== */

void cx__catidx_free(cx__catidx *x)
{
    if (!x)
        return;
    free(x->start);
    free(x->item);
    free(x->cat);
    free(x);
}

/* Items past the buckets, or moved, before a rebuild pays off: a rebuild
 * is O(items), so waiting for an eighth of them keeps it amortised O(1)
 * per change, while readers filter at most that many extra items. */
static size_t tail_bound(size_t n_items)
{
    return n_items / 8 > 1024 ? n_items / 8 : 1024;
}

/* A counting sort of items [0, n) by category. */
static cx__catidx *catidx_build(const cx_engine *e)
{
    uint32_t n = (uint32_t)e->items.n, nc = (uint32_t)e->categories.n;
    cx__catidx *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->n_items = n;
    x->n_cats = nc;
    x->start = calloc((size_t)nc + 1, sizeof *x->start);
    x->item = malloc((n ? n : 1) * sizeof *x->item);
    x->cat = malloc((n ? n : 1) * sizeof *x->cat);
    if (!x->start || !x->item || !x->cat) {
        cx__catidx_free(x);
        return NULL;
    }
    if (n)
        memcpy(x->cat, e->item_cat, (size_t)n * sizeof *x->cat);
    for (uint32_t i = 0; i < n; i++)
        x->start[x->cat[i] + 1]++;
    for (uint32_t c = 0; c < nc; c++)
        x->start[c + 1] += x->start[c];
    uint32_t *at = malloc(((size_t)nc ? nc : 1) * sizeof *at);
    if (!at) {
        cx__catidx_free(x);
        return NULL;
    }
    memcpy(at, x->start, (size_t)nc * sizeof *at);
    for (uint32_t i = 0; i < n; i++)
        x->item[at[x->cat[i]]++] = i;
    free(at);
    return x;
}

void cx__catidx_refresh(cx_engine *e)
{
    cx__catidx *old = e->catidx;
    if (old && !old->stale &&
        e->items.n - old->n_items + old->n_moved <= tail_bound(e->items.n))
        return;
    /* The writer mutex is held: item_cat cannot change while we read. */
    cx__catidx *x = catidx_build(e);
    if (!x)
        return; /* the old index (or none) still answers correctly */
    cx__wrlock(e);
    e->catidx = x;
    cx__wrunlock(e);
    cx__catidx_free(old);
}

void cx__catidx_set(cx_engine *e, uint32_t i, uint32_t c)
{
    cx__catidx *x = e->catidx;
    if (e->item_cat[i] == c)
        return;
    e->item_cat[i] = c;
    if (!x || x->stale || i >= x->n_items)
        return; /* the tail is filtered by category anyway */
    for (uint32_t j = 0; j < x->n_moved; j++)
        if (x->moved[j] == i)
            return;
    if (x->n_moved == CX__CATIDX_MOVED)
        x->stale = 1;
    else
        x->moved[x->n_moved++] = i;
}

size_t cx__catidx_size(const cx_engine *e, uint32_t c)
{
    const cx__catidx *x = e->catidx;
    if (!x || x->stale)
        return SIZE_MAX;
    size_t in_bucket = c < x->n_cats ? x->start[c + 1] - x->start[c] : 0;
    return in_bucket + (e->items.n - x->n_items) + x->n_moved;
}

int cx__catidx_items(const cx_engine *e, uint32_t c, size_t limit,
                     uint32_t **out, size_t *n)
{
    const cx__catidx *x = e->catidx;
    *out = NULL;
    *n = 0;
    if (!x || x->stale)
        return -1;
    size_t n_items = e->items.n;
    size_t in_bucket = c < x->n_cats ? x->start[c + 1] - x->start[c] : 0;
    size_t most = cx__catidx_size(e, c);
    if (most > limit)
        return -1;
    uint32_t *v = malloc((most ? most : 1) * sizeof *v);
    if (!v)
        return CX_ENOMEM;
    size_t m = 0;
    /* Bucket items that still have the category, moved items that gained
     * it since the build, and new items that have it. */
    for (size_t j = 0; j < in_bucket; j++) {
        uint32_t i = x->item[x->start[c] + j];
        if (e->item_cat[i] == c)
            v[m++] = i;
    }
    for (uint32_t j = 0; j < x->n_moved; j++) {
        uint32_t i = x->moved[j];
        if (e->item_cat[i] == c && x->cat[i] != c)
            v[m++] = i;
    }
    for (size_t i = x->n_items; i < n_items; i++)
        if (e->item_cat[i] == c)
            v[m++] = (uint32_t)i;
    *out = v;
    *n = m;
    return 0;
}
