/* matrix.c -- signals to the sparse customer x item confidence matrix.
 * Two stable counting sorts group events by (customer, item); each pair's
 * r becomes a signed confidence (see the convention in cxengine.h). */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Stable counting sort of `in` (n event indexes) by key(ev) < nkeys. */
static int sort_by(const cx__event *ev, const uint32_t *in, uint32_t *out,
                   size_t n, uint32_t nkeys, int by_item)
{
    uint64_t *cnt = calloc((size_t)nkeys + 1, sizeof *cnt);
    if (!cnt)
        return CX_ENOMEM;
    for (size_t i = 0; i < n; i++)
        cnt[(by_item ? ev[in[i]].item : ev[in[i]].cust) + 1]++;
    for (uint32_t k = 0; k < nkeys; k++)
        cnt[k + 1] += cnt[k];
    for (size_t i = 0; i < n; i++)
        out[cnt[by_item ? ev[in[i]].item : ev[in[i]].cust]++] = in[i];
    free(cnt);
    return CX_OK;
}

float cx__confidence(double r, double alpha)
{
    if (r > 0)
        return (float)(1.0 + alpha * r);
    if (r < 0)
        return (float)-(1.0 + alpha * -r);
    return -1.0f; /* seen, but nets to nothing: like an unseen pair */
}

int cx__build_pairs(const cx__train_input *in, const cx__options *o,
                    cx__csr *ui)
{
    memset(ui, 0, sizeof *ui);
    size_t n = 0;
    for (size_t i = 0; i < in->n_ev; i++)
        n += !in->keep || in->keep[i];
    uint32_t *a = malloc((n ? n : 1) * sizeof *a);
    uint32_t *b = malloc((n ? n : 1) * sizeof *b);
    ui->ptr = calloc((size_t)in->n_users + 1, sizeof *ui->ptr);
    ui->idx = malloc((n ? n : 1) * sizeof *ui->idx);
    ui->conf = malloc((n ? n : 1) * sizeof *ui->conf);
    ui->mask = malloc((n ? n : 1) * sizeof *ui->mask);
    int rc = CX_ENOMEM;
    if (!a || !b || !ui->ptr || !ui->idx || !ui->conf || !ui->mask)
        goto out;
    n = 0;
    for (size_t i = 0; i < in->n_ev; i++)
        if (!in->keep || in->keep[i])
            a[n++] = (uint32_t)i;
    if ((rc = sort_by(in->ev, a, b, n, in->n_items, 1)) ||
        (rc = sort_by(in->ev, b, a, n, in->n_users, 0)))
        goto out;
    ui->rows = in->n_users;
    size_t nnz = 0;
    for (size_t s = 0; s < n;) {
        const cx__event *first = &in->ev[a[s]];
        uint32_t u = first->cust, it = first->item, mask = 0;
        double r = 0;
        for (; s < n && in->ev[a[s]].cust == u && in->ev[a[s]].item == it;
             s++) {
            const cx__event *ev = &in->ev[a[s]];
            r += cx__signal_strength(o, ev) * cx__decay(o, in->ts_ref, ev->ts);
            mask |= CX_TYPE_BIT(ev->type);
        }
        ui->idx[nnz] = it;
        ui->conf[nnz] = cx__confidence(r, o->alpha);
        ui->mask[nnz] = mask;
        nnz++;
        ui->ptr[u + 1] = nnz;
    }
    /* Rows without pairs inherit the running end. */
    for (uint32_t u = 0; u < in->n_users; u++)
        if (ui->ptr[u + 1] < ui->ptr[u])
            ui->ptr[u + 1] = ui->ptr[u];
    rc = CX_OK;
out:
    free(a);
    free(b);
    if (rc)
        cx__csr_free(ui);
    return rc;
}

int cx__csr_transpose(const cx__csr *m, uint32_t cols, cx__csr *t)
{
    memset(t, 0, sizeof *t);
    uint64_t nnz = m->ptr[m->rows];
    t->rows = cols;
    t->ptr = calloc((size_t)cols + 1, sizeof *t->ptr);
    t->idx = malloc((nnz ? nnz : 1) * sizeof *t->idx);
    t->conf = malloc((nnz ? nnz : 1) * sizeof *t->conf);
    t->mask = malloc((nnz ? nnz : 1) * sizeof *t->mask);
    if (!t->ptr || !t->idx || !t->conf || !t->mask) {
        cx__csr_free(t);
        return CX_ENOMEM;
    }
    for (uint64_t p = 0; p < nnz; p++)
        t->ptr[m->idx[p] + 1]++;
    for (uint32_t c = 0; c < cols; c++)
        t->ptr[c + 1] += t->ptr[c];
    uint64_t *fill = malloc(((size_t)cols + 1) * sizeof *fill);
    if (!fill) {
        cx__csr_free(t);
        return CX_ENOMEM;
    }
    memcpy(fill, t->ptr, ((size_t)cols + 1) * sizeof *fill);
    for (uint32_t r = 0; r < m->rows; r++)
        for (uint64_t p = m->ptr[r]; p < m->ptr[r + 1]; p++) {
            uint64_t q = fill[m->idx[p]]++;
            t->idx[q] = r;
            t->conf[q] = m->conf[p];
            t->mask[q] = m->mask[p];
        }
    free(fill);
    return CX_OK;
}
