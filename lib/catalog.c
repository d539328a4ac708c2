/* catalog.c -- the product catalogue: category, price, stock, age, tags.
 * Columns indexed by dense item index; batches validate before applying. */
#include "internal.h"

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
    int rc = validate(e, n, ids, cats, prices, created, tags, &bytes, &cb,
                      &tb);
    if (rc == CX_OK &&
        ((rc = cx__idmap_plan(&e->items, n, bytes, &p)) ||
         (rc = cx__idmap_plan(&e->categories, cats ? n : 0, cb, &p)) ||
         (rc = cx__idmap_plan(&e->tagsets, tags ? n : 0, tb, &p)) ||
         (rc = cx__plan_items(e, n, &p))))
        rc = cx__fail(e, rc, "cx_items_upsert: %s", cx_strerror(rc));
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
            f = (uint8_t)((f | CX__ITEM_CATALOGUED) & ~CX__ITEM_REMOVED);
            if (in_stock)
                f = (uint8_t)(in_stock[i] ? f | CX__ITEM_IN_STOCK
                                          : f & ~CX__ITEM_IN_STOCK);
            e->item_flags[it] = f;
            if (cats)
                e->item_cat[it] = cx__idmap_add(&e->categories, cats[i], NULL);
            if (prices)
                e->item_price[it] = prices[i];
            if (created)
                e->item_created[it] = created[i];
            if (tags)
                e->item_tags[it] =
                    tags[i] && tags[i][0]
                        ? cx__idmap_add(&e->tagsets, tags[i], NULL)
                        : CX_NONE;
        }
        cx__wrunlock(e);
    }
    cx__plan_release(&p, rc == CX_OK);
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
    } else {
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
