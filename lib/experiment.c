/* experiment.c -- A/B experiments: deterministic variant assignment,
 * per-variant overrides and exposure counts. */
#include "internal.h"
#include "db.h"

#include <math.h>
#include <string.h>

#define MAX_VARIANTS    64
#define MAX_NAME        64
#define MAX_OVERRIDES   64     /* per variant */
#define MAX_EXPERIMENTS 65536

/* ===================================================================== */
/* The table                                                             */
/* ===================================================================== */

/*
 * Readers see an immutable table: a sorted array of pointers to immutable
 * definitions.  A writer builds a new table beside the current one (the
 * definitions it does not touch are shared, not copied), swaps the
 * pointer under the write lock and frees what was replaced after it.
 *
 * A variant's name and exposure counter live in an `arm`, shared by the
 * successive definitions of an experiment for as long as the name
 * remains: a reader still counting on the replaced definition counts on
 * the same atomic, so no exposure is lost across a redefinition, and the
 * name pointers cx_variant returned stay valid while the name survives.
 */
typedef struct arm {
    atomic_llong exposures;
    int64_t saved;          /* exposures in the data directory (wmu) */
    int64_t pending;        /* being saved */
    char name[MAX_NAME + 1];
} arm;

typedef struct override {
    int key;
    double value;
} override;

typedef struct variant {
    arm *arm;
    double cum;             /* cumulative normalised share */
    double weight;          /* the share as defined */
    size_t n_over;
    override *over;         /* owned by the definition, sorted by key */
} variant;

typedef struct definition {
    char name[MAX_NAME + 1];
    size_t n;
    variant v[];
} definition;

struct cx__experiments {
    size_t n;
    definition *def[];      /* sorted by name */
};

/* Free a definition, and every arm of it that `successor` does not
 * carry on (NULL: all of them). */
static void def_free(definition *d, const definition *successor)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        int kept = 0;
        for (size_t j = 0; successor && j < successor->n && !kept; j++)
            kept = successor->v[j].arm == d->v[i].arm;
        if (!kept)
            free(d->v[i].arm);
        free(d->v[i].over);
    }
    free(d);
}

void cx__experiments_free(struct cx__experiments *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++)
        def_free(x->def[i], NULL);
    free(x);
}

/* Position of experiment `name` in x (or where it would go); *found. */
static size_t find_def(const struct cx__experiments *x, const char *name,
                       int *found)
{
    size_t lo = 0, hi = x ? x->n : 0;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(x->def[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const definition *lookup(const cx_engine *e, const char *name)
{
    int found;
    size_t at = find_def(e->exps, name, &found);
    return found ? e->exps->def[at] : NULL;
}

static const variant *find_variant(const definition *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i].arm->name, name) == 0)
            return &d->v[i];
    return NULL;
}

/* Write definition d to the data directory, if there is one. */
static int persist(cx_engine *e, const definition *d)
{
    if (!e->db)
        return CX_OK;
    cx__db_variant v[MAX_VARIANTS];
    int keys[MAX_VARIANTS][MAX_OVERRIDES];
    double vals[MAX_VARIANTS][MAX_OVERRIDES];
    for (size_t i = 0; i < d->n; i++) {
        v[i].name = d->v[i].arm->name;
        v[i].weight = d->v[i].weight;
        v[i].n_over = d->v[i].n_over;
        for (size_t j = 0; j < d->v[i].n_over; j++) {
            keys[i][j] = d->v[i].over[j].key;
            vals[i][j] = d->v[i].over[j].value;
        }
        v[i].key = keys[i];
        v[i].value = vals[i];
    }
    return cx__db_experiment(e, d->name, d->n, v);
}

int cx__db_exposures(cx_engine *e)
{
    if (!e->db || !e->exps)
        return CX_OK;
    int rc = cx__db_begin(e);
    for (size_t i = 0; rc == CX_OK && i < e->exps->n; i++) {
        const definition *d = e->exps->def[i];
        for (size_t j = 0; rc == CX_OK && j < d->n; j++) {
            arm *a = d->v[j].arm;
            a->pending = (int64_t)atomic_load(&a->exposures);
            if (a->pending != a->saved)
                rc = cx__db_exposure(e, d->name, a->name,
                                     a->pending - a->saved);
        }
    }
    if (rc == CX_OK && (rc = cx__db_commit(e)) == CX_OK)
        for (size_t i = 0; i < e->exps->n; i++) {
            const definition *d = e->exps->def[i];
            for (size_t j = 0; j < d->n; j++)
                d->v[j].arm->saved = d->v[j].arm->pending;
        }
    if (rc)
        cx__db_rollback(e);
    return rc;
}

void cx__experiment_exposed(cx_engine *e, const char *experiment,
                            const char *variant_name, int64_t n)
{
    const definition *d = experiment ? lookup(e, experiment) : NULL;
    const variant *v = d && variant_name ? find_variant(d, variant_name)
                                         : NULL;
    if (v) {
        atomic_store(&v->arm->exposures, n);
        v->arm->saved = n;
    }
}

/* Publish a table in which definition `fresh` replaces the one at `at`
 * (found) or is inserted there.  Writer mutex held; frees what it
 * replaced.  On failure nothing changes and `fresh` is the caller's. */
static int publish(cx_engine *e, definition *fresh, size_t at, int found)
{
    struct cx__experiments *old = e->exps;
    size_t n = old ? old->n : 0, m = found ? n : n + 1;
    if (m > MAX_EXPERIMENTS)
        return cx__fail(e, CX_ELIMIT, "more than %d experiments",
                        MAX_EXPERIMENTS);
    struct cx__experiments *x = malloc(sizeof *x + m * sizeof x->def[0]);
    if (!x)
        return cx__fail(e, CX_ENOMEM, "out of memory");
    x->n = m;
    if (n)
        memcpy(x->def, old->def, at * sizeof x->def[0]);
    x->def[at] = fresh;
    if (n > at)
        memcpy(x->def + at + 1, old->def + at + found,
               (n - at - (size_t)found) * sizeof x->def[0]);
    definition *replaced = found ? old->def[at] : NULL;
    cx__wrlock(e);
    e->exps = x;
    cx__wrunlock(e);
    /* No reader can hold the old table or definition any more. */
    def_free(replaced, fresh);
    free(old);
    return CX_OK;
}

/* ===================================================================== */
/* Validation                                                            */
/* ===================================================================== */

static int check_name(const cx_engine *e, const char *what, const char *s)
{
    size_t len = s ? strnlen(s, MAX_NAME + 1) : 0;
    if (len == 0 || len > MAX_NAME)
        return cx__fail(e, CX_EINVAL, "%s name is NULL, empty or longer "
                        "than %d bytes", what, MAX_NAME);
    return CX_OK;
}

static int check_define(const cx_engine *e, const char *experiment,
                        size_t n, const char *const *variants,
                        const double *shares)
{
    int rc;
    if ((rc = check_name(e, "experiment", experiment)))
        return rc;
    if (n == 0 || n > MAX_VARIANTS)
        return cx__fail(e, CX_EINVAL, "experiment '%s': %zu variants, "
                        "need 1..%d", experiment, n, MAX_VARIANTS);
    if (!variants || !shares)
        return cx__fail(e, CX_EINVAL, "experiment '%s': variants and "
                        "shares are required", experiment);
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        if (check_name(e, "variant", variants[i]))
            return cx__fail(e, CX_EINVAL, "experiment '%s': variant %zu: "
                            "name is NULL, empty or longer than %d bytes",
                            experiment, i, MAX_NAME);
        for (size_t j = 0; j < i; j++)
            if (strcmp(variants[i], variants[j]) == 0)
                return cx__fail(e, CX_EINVAL, "experiment '%s': variant "
                                "'%s' appears twice", experiment,
                                variants[i]);
        if (!isfinite(shares[i]) || shares[i] <= 0)
            return cx__fail(e, CX_EINVAL, "experiment '%s': variant '%s': "
                            "share %g is not a finite number > 0",
                            experiment, variants[i], shares[i]);
        total += shares[i];
    }
    if (!isfinite(total))
        return cx__fail(e, CX_EINVAL, "experiment '%s': the shares add up "
                        "to infinity", experiment);
    return CX_OK;
}

/* ===================================================================== */
/* Writers                                                               */
/* ===================================================================== */

/* A copy of variant `from`'s overrides, with room for one more. */
static int copy_overrides(const variant *from, variant *to)
{
    to->n_over = from ? from->n_over : 0;
    to->over = malloc((to->n_over + 1) * sizeof *to->over);
    if (!to->over)
        return CX_ENOMEM;
    if (to->n_over)
        memcpy(to->over, from->over, to->n_over * sizeof *to->over);
    return CX_OK;
}

/* A new definition of `experiment`, carrying on the arms and overrides
 * of the variants of `old` whose names remain. */
static definition *def_build(const char *experiment, size_t n,
                             const char *const *variants,
                             const double *shares, const definition *old)
{
    definition *d = calloc(1, sizeof *d + n * sizeof d->v[0]);
    if (!d)
        return NULL;
    strcpy(d->name, experiment);
    double total = 0, run = 0;
    for (size_t i = 0; i < n; i++)
        total += shares[i];
    for (size_t i = 0; i < n; i++) {
        variant *v = &d->v[i];
        const variant *prev = old ? find_variant(old, variants[i]) : NULL;
        v->arm = prev ? prev->arm : calloc(1, sizeof *v->arm);
        d->n = i + 1;
        if (!v->arm || copy_overrides(prev, v)) {
            def_free(d, old); /* the arms made here, not the old ones */
            return NULL;
        }
        if (!prev) {
            atomic_init(&v->arm->exposures, 0);
            strcpy(v->arm->name, variants[i]);
        }
        run += shares[i];
        v->cum = run / total;
        v->weight = shares[i];
    }
    return d;
}

CX_API int cx_experiment_define(cx_engine *e, const char *experiment,
                                size_t n, const char *const *variants,
                                const double *shares)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL,
                        "cx_experiment_define: engine is NULL");
    int rc = check_define(e, experiment, n, variants, shares);
    if (rc)
        return rc;
    /* The thread that replays or follows the directory holds the engine
     * (or its writer mutex) already. */
    int lock = !cx__db_replaying(e);
    if (lock)
        pthread_mutex_lock(&e->wmu);
    int found;
    size_t at = find_def(e->exps, experiment, &found);
    const definition *old = found ? e->exps->def[at] : NULL;
    definition *d = def_build(experiment, n, variants, shares, old);
    rc = !d ? cx__fail(e, CX_ENOMEM, "cx_experiment_define: out of memory")
            : persist(e, d);
    if (rc == CX_OK)
        rc = publish(e, d, at, found);
    if (rc && d)
        def_free(d, old);
    if (lock)
        pthread_mutex_unlock(&e->wmu);
    return rc;
}

/* A copy of definition d sharing its arms, with room for one more
 * override on every variant. */
static definition *def_clone(const definition *d)
{
    definition *c = calloc(1, sizeof *c + d->n * sizeof c->v[0]);
    if (!c)
        return NULL;
    memcpy(c->name, d->name, sizeof c->name);
    for (size_t i = 0; i < d->n; i++) {
        c->v[i].arm = d->v[i].arm;
        c->v[i].cum = d->v[i].cum;
        c->v[i].weight = d->v[i].weight;
        c->n = i + 1;
        if (copy_overrides(&d->v[i], &c->v[i])) {
            def_free(c, d);
            return NULL;
        }
    }
    return c;
}

/* Set key = value in v's sorted overrides (room for one more exists). */
static void override_put(variant *v, int key, double value)
{
    size_t j = 0;
    while (j < v->n_over && v->over[j].key < key)
        j++;
    if (j < v->n_over && v->over[j].key == key) {
        v->over[j].value = value;
        return;
    }
    memmove(v->over + j + 1, v->over + j,
            (v->n_over - j) * sizeof v->over[0]);
    v->over[j] = (override){key, value};
    v->n_over++;
}

static const override *override_find(const variant *v, int key)
{
    for (size_t j = 0; j < v->n_over; j++)
        if (v->over[j].key == key)
            return &v->over[j];
    return NULL;
}

CX_API int cx_variant_set(cx_engine *e, const char *experiment,
                          const char *variant_name, int key, double value)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_variant_set: engine is NULL");
    int rc;
    if ((rc = check_name(e, "experiment", experiment)) ||
        (rc = check_name(e, "variant", variant_name)))
        return rc;
    if (!isfinite(value))
        return cx__fail(e, CX_EINVAL, "cx_variant_set: override %d: value "
                        "is not a finite number", key);
    int lock = !cx__db_replaying(e); /* see cx_experiment_define */
    if (lock)
        pthread_mutex_lock(&e->wmu);
    int found;
    size_t at = find_def(e->exps, experiment, &found);
    const definition *old = found ? e->exps->def[at] : NULL;
    const variant *v = old ? find_variant(old, variant_name) : NULL;
    definition *d = NULL;
    if (!old)
        rc = cx__fail(e, CX_ENOTFOUND, "unknown experiment '%s'",
                      experiment);
    else if (!v)
        rc = cx__fail(e, CX_ENOTFOUND, "experiment '%s' has no variant "
                      "'%s'", experiment, variant_name);
    else if (v->n_over == MAX_OVERRIDES && !override_find(v, key))
        rc = cx__fail(e, CX_ELIMIT, "variant '%s' already carries %d "
                      "overrides", variant_name, MAX_OVERRIDES);
    else if (!(d = def_clone(old)))
        rc = cx__fail(e, CX_ENOMEM, "cx_variant_set: out of memory");
    if (rc == CX_OK) {
        override_put(&d->v[v - old->v], key, value);
        rc = persist(e, d);
        if (rc == CX_OK)
            rc = publish(e, d, at, 1);
        if (rc)
            def_free(d, old);
    }
    if (lock)
        pthread_mutex_unlock(&e->wmu);
    return rc;
}

/* ===================================================================== */
/* Readers                                                               */
/* ===================================================================== */

/* The experiment and variant of a reader's call, under the read lock;
 * fails with CX_ENOTFOUND. */
static int find_both(const cx_engine *e, const char *fn,
                     const char *experiment, const char *variant_name,
                     const variant **out)
{
    const definition *d = lookup(e, experiment);
    if (!d)
        return cx__fail(e, CX_ENOTFOUND, "%s: unknown experiment '%s'", fn,
                        experiment);
    if (!(*out = find_variant(d, variant_name)))
        return cx__fail(e, CX_ENOTFOUND, "%s: experiment '%s' has no "
                        "variant '%s'", fn, experiment, variant_name);
    return CX_OK;
}

CX_API int cx_variant_get(cx_engine *e, const char *experiment,
                          const char *variant_name, int key, double *value)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_variant_get: engine is NULL");
    int rc;
    if ((rc = check_name(e, "experiment", experiment)) ||
        (rc = check_name(e, "variant", variant_name)))
        return rc;
    if (!value)
        return cx__fail(e, CX_EINVAL, "cx_variant_get: value is NULL");
    cx__rdlock(e);
    const variant *v;
    rc = find_both(e, "cx_variant_get", experiment, variant_name, &v);
    const override *o = rc ? NULL : override_find(v, key);
    if (o)
        *value = o->value;
    else if (!rc)
        rc = cx__fail(e, CX_ENOTFOUND, "cx_variant_get: variant '%s' "
                      "carries no override %d", variant_name, key);
    cx__rdunlock(e);
    return rc;
}

int cx__variant_options(cx_engine *e, const char *experiment,
                        const char *variant_name, cx__options *o)
{
    const variant *v;
    int rc = find_both(e, "cx_evaluate", experiment, variant_name, &v);
    for (size_t j = 0; rc == CX_OK && j < v->n_over; j++) {
        int key = v->over[j].key;
        double val = v->over[j].value;
        if (!cx__option_key_valid(key))
            continue; /* an application's own override */
        if ((rc = cx__option_check(e, key, val)))
            rc = cx__fail(e, rc, "cx_evaluate: variant '%s' carries option "
                          "%d = %g: %s", variant_name, key, val,
                          cx_strerror(rc));
        else
            cx__option_put(o, key, val);
    }
    return rc;
}

/* The documented assignment hash: FNV-1a 64 over experiment, 0, id,
 * then fmix64. */
static uint64_t assign_hash(const char *experiment, const char *customer)
{
    uint64_t h = 14695981039346656037ull;
    const uint64_t prime = 1099511628211ull;
    for (const unsigned char *p = (const unsigned char *)experiment; *p; p++)
        h = (h ^ *p) * prime;
    h *= prime; /* the zero byte: h ^ 0 = h */
    for (const unsigned char *p = (const unsigned char *)customer; *p; p++)
        h = (h ^ *p) * prime;
    /* murmur3's fmix64: raw FNV-1a's top bits barely depend on the last
     * bytes, so ids like user1, user2 would cluster in [0, 1). */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

CX_API int cx_variant(cx_engine *e, const char *experiment,
                      const char *customer, int count_exposure,
                      const char **variant_out)
{
    if (variant_out)
        *variant_out = NULL;
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_variant: engine is NULL");
    int rc;
    if ((rc = check_name(e, "experiment", experiment)))
        return rc;
    if (!cx__id_len(customer))
        return cx__fail(e, CX_EINVAL, "cx_variant: customer id is NULL, "
                        "empty or longer than %d bytes", CX_MAX_ID_LEN);
    if (!variant_out)
        return cx__fail(e, CX_EINVAL, "cx_variant: variant is NULL");
    double u = (double)(assign_hash(experiment, customer) >> 11) *
               0x1.0p-53;
    cx__rdlock(e);
    const definition *d = lookup(e, experiment);
    if (d) {
        size_t i = 0;
        while (i + 1 < d->n && !(d->v[i].cum > u))
            i++;
        arm *a = d->v[i].arm;
        if (count_exposure)
            atomic_fetch_add_explicit(&a->exposures, 1,
                                      memory_order_relaxed);
        *variant_out = a->name;
    } else {
        rc = cx__fail(e, CX_ENOTFOUND, "cx_variant: unknown experiment "
                      "'%s'", experiment);
    }
    cx__rdunlock(e);
    return rc;
}

CX_API int cx_exposures(cx_engine *e, const char *experiment,
                        const char *variant_name, int64_t *count)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_exposures: engine is NULL");
    int rc;
    if ((rc = check_name(e, "experiment", experiment)) ||
        (rc = check_name(e, "variant", variant_name)))
        return rc;
    if (!count)
        return cx__fail(e, CX_EINVAL, "cx_exposures: count is NULL");
    cx__rdlock(e);
    const variant *v;
    rc = find_both(e, "cx_exposures", experiment, variant_name, &v);
    if (!rc)
        *count = (int64_t)atomic_load_explicit(&v->arm->exposures,
                                               memory_order_relaxed);
    cx__rdunlock(e);
    return rc;
}
