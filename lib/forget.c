/* forget.c -- erasing customers (the right to erasure).
 *
 * cx_forget removes customers' signals and their id from the data
 * directory's database (SQLite's secure_delete overwrites the freed
 * bytes; the log is checkpointed and truncated), from memory (the event
 * arrays are compacted, so popularity, co-occurrence, profiles and later
 * trainings no longer see them; the id's bytes are zeroed) and from the
 * model: the current model is republished without their vectors and
 * pairs as a new snapshot generation, and the older generations, which
 * still hold them, are deleted.  A forgotten customer's index stays
 * allocated (indexes are dense) with no id; the same id coming back
 * later is a new customer. */
#include "internal.h"
#include "db.h"

#include <string.h>

/* A copy of model m without the customers in gone[] (vectors zeroed,
 * pairs dropped), trained on n_events of the compacted events. */
static int model_without(const cx__model *m, const uint8_t *gone,
                         size_t n_events, cx__model **out)
{
    size_t k = (size_t)m->k, nu = m->n_users, ni = m->n_items;
    cx__model *c = calloc(1, sizeof *c);
    uint64_t nnz = 0;
    for (uint32_t u = 0; u < nu; u++)
        if (!gone[u])
            nnz += m->ui.ptr[u + 1] - m->ui.ptr[u];
    if (c) {
        c->X = malloc((nu * k + 1) * sizeof *c->X);
        c->Y = malloc((ni * k + 1) * sizeof *c->Y);
        c->has_vec = malloc(nu + 1);
        c->ui.ptr = malloc((nu + 1) * sizeof *c->ui.ptr);
        c->ui.idx = malloc((nnz + 1) * sizeof *c->ui.idx);
        c->ui.conf = malloc((nnz + 1) * sizeof *c->ui.conf);
        c->ui.mask = malloc((nnz + 1) * sizeof *c->ui.mask);
    }
    if (!c || !c->X || !c->Y || !c->has_vec || !c->ui.ptr || !c->ui.idx ||
        !c->ui.conf || !c->ui.mask) {
        cx__model_free(c);
        return CX_ENOMEM;
    }
    c->k = m->k;
    c->n_users = m->n_users;
    c->n_items = m->n_items;
    memcpy(c->X, m->X, nu * k * sizeof *c->X);
    memcpy(c->Y, m->Y, ni * k * sizeof *c->Y);
    memcpy(c->has_vec, m->has_vec, nu);
    c->ui.rows = m->ui.rows;
    c->ui.ptr[0] = 0;
    uint64_t w = 0;
    for (uint32_t u = 0; u < nu; u++) {
        if (gone[u]) {
            memset(c->X + u * k, 0, k * sizeof *c->X);
            c->has_vec[u] = 0;
        } else {
            for (uint64_t q = m->ui.ptr[u]; q < m->ui.ptr[u + 1]; q++, w++) {
                c->ui.idx[w] = m->ui.idx[q];
                c->ui.conf[w] = m->ui.conf[q];
                c->ui.mask[w] = m->ui.mask[q];
            }
        }
        c->ui.ptr[u + 1] = w;
    }
    c->n_events = n_events;
    c->seq_end = m->seq_end;
    c->loss = m->loss;
    int rc = cx__model_prepare_fold(c, &m->opt, m->ts_ref);
    if (rc == CX_OK)
        rc = cx__model_finish(c);
    if (rc) {
        cx__model_free(c);
        return rc;
    }
    *out = c;
    return CX_OK;
}

int cx__forget_memory(cx_engine *e, const uint8_t *gone, int64_t *ev_seq,
                      size_t *n_trained)
{
    size_t n = e->n_ev, keep = 0, trained = e->model ? e->model->n_events
                                                      : 0;
    *n_trained = 0;
    for (size_t j = 0; j < n; j++)
        if (!gone[e->ev[j].cust]) {
            keep++;
            *n_trained += j < trained;
        }
    cx__plan p;
    memset(&p, 0, sizeof p);
    cx__event *ev = cx__plan_array(&p, (void **)&e->ev, 0,
                                   e->ev_cap * sizeof *ev);
    uint32_t *prev = cx__plan_array(&p, (void **)&e->ev_prev, 0,
                                    e->ev_cap * sizeof *prev);
    uint32_t *iprev = cx__plan_array(&p, (void **)&e->ev_iprev, 0,
                                     e->ev_cap * sizeof *iprev);
    uint32_t *clast = cx__plan_array(&p, (void **)&e->cust_last, 0,
                                     e->cust_cap * sizeof *clast);
    uint32_t *ilast = cx__plan_array(&p, (void **)&e->item_last, 0,
                                     e->item_cap * sizeof *ilast);
    if (p.failed) {
        cx__plan_release(&p, 0);
        return CX_ENOMEM;
    }
    memset(clast, 0xff, e->cust_cap * sizeof *clast);
    memset(ilast, 0xff, e->item_cap * sizeof *ilast);
    size_t w = 0;
    for (size_t j = 0; j < n; j++) {
        const cx__event *x = &e->ev[j];
        if (gone[x->cust])
            continue;
        ev[w] = *x;
        prev[w] = clast[x->cust];
        clast[x->cust] = (uint32_t)w;
        iprev[w] = ilast[x->item];
        ilast[x->item] = (uint32_t)w;
        if (ev_seq)
            ev_seq[w] = ev_seq[j];
        w++;
    }
    /* The ids: no longer found, their bytes zeroed. */
    cx__wrlock(e);
    cx__plan_commit(&p);
    e->n_ev = keep;
    cx__evidx_drop(e); /* the events are renumbered */
    for (uint32_t u = 0; u < e->customers.n; u++)
        if (gone[u])
            cx__idmap_kill(&e->customers, u);
    cx__wrunlock(e);
    cx__plan_release(&p, 1);
    return cx__pop_rebuild(e);
}

/* The database first (nothing in memory changes if it fails), then
 * memory, then the model: publishing it also replaces the fold-in table,
 * so no fold-in of a forgotten customer outlives the call. */
CX_API int cx_forget(cx_engine *e, size_t n, const char *const *customers,
                     size_t *forgotten)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_forget: engine is NULL");
    if (forgotten)
        *forgotten = 0;
    if (n && !customers)
        return cx__fail(e, CX_EINVAL, "cx_forget: customers is NULL");
    for (size_t j = 0; j < n; j++)
        if (!cx__id_len(customers[j]))
            return cx__fail(e, CX_EINVAL, "cx_forget: customer %zu: id is "
                            "NULL, empty or longer than %d bytes", j,
                            CX_MAX_ID_LEN);
    if (cx__db_readonly(e))
        return cx__fail(e, CX_EREADONLY, "cx_forget: the engine is open "
                        "read-only (the directory's writer forgets)");
    /* No training may publish meanwhile, and no writer may add. */
    pthread_mutex_lock(&e->train_mu);
    pthread_mutex_lock(&e->wmu);
    /* Customers readers added (CX_OPEN_SIGNALS) are known here first. */
    int rc = cx__db_catch_up(e);
    uint8_t *gone = calloc(e->customers.n + 1, 1);
    uint32_t *idx = malloc((n + 1) * sizeof *idx);
    size_t m = 0;
    if (rc == CX_OK && (!gone || !idx))
        rc = cx__fail(e, CX_ENOMEM, "cx_forget: out of memory");
    for (size_t j = 0; rc == CX_OK && j < n; j++) {
        uint32_t u = cx__idmap_find(&e->customers, customers[j]);
        if (u != CX_NONE && !gone[u]) {
            gone[u] = 1;
            idx[m++] = u;
        }
    }
    if (rc == CX_OK && m && e->db)
        rc = cx__db_forget(e, idx, m);
    size_t n_trained = 0;
    if (rc == CX_OK && m &&
        cx__forget_memory(e, gone, NULL, &n_trained))
        rc = cx__fail(e, CX_ENOMEM, "cx_forget: out of memory (the "
                      "customers are erased from the database; reopen)");
    pthread_mutex_unlock(&e->wmu);
    /* The model without them, as a new generation; the older ones go. */
    cx__model *c = NULL;
    if (rc == CX_OK && m && e->model) {
        if (model_without(e->model, gone, n_trained, &c))
            rc = cx__fail(e, CX_ENOMEM, "cx_forget: out of memory");
        else if ((rc = cx__model_publish(e, c, n_trained, 0)) == CX_OK &&
                 e->db)
            rc = cx__snapshot_prune(e, 1);
    }
    pthread_mutex_unlock(&e->train_mu);
    free(gone);
    free(idx);
    if (rc == CX_OK && forgotten)
        *forgotten = m;
    return rc;
}
