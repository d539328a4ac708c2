/* ids.c -- external string ids <-> dense uint32 indexes.
 * Open addressing over indexes, strings in an append-only arena so that
 * id pointers handed to callers never move. */
#include "internal.h"

#include <string.h>

#define CHUNK_MIN (64 * 1024)

uint32_t cx__hash_str(const char *s)
{
    /* FNV-1a: ids are short, and this is not on the scoring path. */
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

size_t cx__id_len(const char *s)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, CX_MAX_ID_LEN + 1);
    return n > CX_MAX_ID_LEN ? 0 : n;
}

void cx__idmap_free(cx__idmap *m)
{
    cx__chunk *c = m->chunks;
    while (c) {
        cx__chunk *next = c->next;
        free(c);
        c = next;
    }
    free(m->str);
    cx__free_array(m->hash); /* these two may be in an engine image */
    cx__free_array(m->slot);
    memset(m, 0, sizeof *m);
}

uint32_t cx__idmap_find(const cx__idmap *m, const char *s)
{
    if (!m->nslot)
        return CX_NONE;
    uint32_t h = cx__hash_str(s), mask = m->nslot - 1;
    for (uint32_t p = h & mask;; p = (p + 1) & mask) {
        uint32_t v = m->slot[p];
        if (!v)
            return CX_NONE;
        if (m->hash[v - 1] == h && strcmp(m->str[v - 1], s) == 0)
            return v - 1;
    }
}

int cx__idmap_plan(cx__idmap *m, size_t ids, size_t bytes, cx__plan *p)
{
    size_t need = (size_t)m->n + ids;
    if (need >= CX_NONE / 2)
        return CX_ELIMIT;
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < need)
            cap *= 2;
        cx__plan_array(p, (void **)&m->str, m->n * sizeof *m->str,
                       cap * sizeof *m->str);
        cx__plan_array(p, (void **)&m->hash, m->n * sizeof *m->hash,
                       cap * sizeof *m->hash);
        cx__plan_cap(p, &m->cap, 4, cap);
    }
    /* Keep the load factor under 1/2: a new table, filled from the
     * current entries while readers keep using the old one. */
    if (need * 2 > m->nslot) {
        uint32_t nslot = m->nslot ? m->nslot : 128;
        while ((size_t)nslot < need * 2)
            nslot *= 2;
        uint32_t *slot = cx__plan_array(p, (void **)&m->slot, 0,
                                        (size_t)nslot * sizeof *slot);
        for (uint32_t i = 0; slot && i < m->n; i++) {
            uint32_t q = m->hash[i] & (nslot - 1);
            while (slot[q])
                q = (q + 1) & (nslot - 1);
            slot[q] = i + 1;
        }
        cx__plan_cap(p, &m->nslot, 4, nslot);
    }
    cx__chunk *c = m->chunks;
    if (bytes && !p->failed && (!c || c->cap - c->used < bytes)) {
        size_t cap = bytes > CHUNK_MIN ? bytes : CHUNK_MIN;
        cx__chunk *n = malloc(sizeof *n + cap);
        if (!n)
            return CX_ENOMEM;
        n->next = c;
        n->used = 0;
        n->cap = cap;
        cx__plan_link(p, (void **)&m->chunks, n);
    }
    return p->failed ? CX_ENOMEM : CX_OK;
}

int cx__idmap_reserve(cx__idmap *m, size_t ids, size_t bytes)
{
    cx__plan p;
    memset(&p, 0, sizeof p);
    int rc = cx__idmap_plan(m, ids, bytes, &p);
    if (rc == CX_OK)
        cx__plan_commit(&p);
    cx__plan_release(&p, rc == CX_OK);
    return rc;
}

uint32_t cx__idmap_add(cx__idmap *m, const char *s, int *added)
{
    uint32_t h = cx__hash_str(s), mask = m->nslot - 1, p;
    for (p = h & mask; m->slot[p]; p = (p + 1) & mask) {
        uint32_t v = m->slot[p] - 1;
        if (m->hash[v] == h && strcmp(m->str[v], s) == 0) {
            if (added)
                *added = 0;
            return v;
        }
    }
    size_t len = strlen(s) + 1;
    cx__chunk *c = m->chunks;
    char *dst = c->data + c->used;
    memcpy(dst, s, len);
    c->used += len;
    uint32_t i = m->n++;
    m->str[i] = dst;
    m->hash[i] = h;
    m->slot[p] = i + 1;
    if (added)
        *added = 1;
    return i;
}

static const char dead[1] = "";

void cx__idmap_kill(cx__idmap *m, uint32_t i)
{
    if (m->str[i] != dead)
        memset((char *)m->str[i], 0, strlen(m->str[i]));
    m->str[i] = dead; /* matches no valid id; its slot stays in place */
}

uint32_t cx__idmap_add_dead(cx__idmap *m)
{
    uint32_t i = m->n++;
    m->str[i] = dead;
    m->hash[i] = 0;
    return i;
}

uint32_t cx__idmap_will_be(const cx__idmap *m, cx__idmap *fresh,
                           const char *s)
{
    uint32_t i = cx__idmap_find(m, s);
    return i != CX_NONE ? i : m->n + cx__idmap_add(fresh, s, NULL);
}
