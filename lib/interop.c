/* interop.c -- training elsewhere: export the signals as CSV for Apache
 * Spark MLlib ALS, and import the factors Spark writes as the engine's
 * model (published like a training, and snapshotted in a data
 * directory). */
#include "internal.h"
#include "db.h"
#include "spark.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ===================================================================== */
/* Export                                                                */
/* ===================================================================== */

/* An id as a CSV field: quoted when it holds a comma, quote or newline. */
static void put_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

CX_API int cx_export_signals(cx_engine *e, const char *path)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_export_signals: engine is "
                        "NULL");
    if (!path || !*path)
        return cx__fail(e, CX_EINVAL, "cx_export_signals: path is NULL or "
                        "empty");
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    if (!tmp)
        return cx__fail(e, CX_ENOMEM, "cx_export_signals: out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int rc = cx__fail(e, CX_EIO, "cx_export_signals: cannot create %s: "
                          "%s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    /* The writer mutex keeps the signals and ids still; readers go on. */
    pthread_mutex_lock(&e->wmu);
    fputs("customer_idx,item_idx,strength,customer,item,type,value,ts,"
          "channel\n", f);
    for (size_t i = 0; i < e->n_ev; i++) {
        const cx__event *ev = &e->ev[i];
        fprintf(f, "%u,%u,%.9g,", ev->cust, ev->item,
                cx__signal_strength(&e->opt, ev));
        put_field(f, e->customers.str[ev->cust]);
        fputc(',', f);
        put_field(f, e->items.str[ev->item]);
        fputc(',', f);
        put_field(f, cx_signal_type_name(e, ev->type));
        fprintf(f, ",%.9g,%lld,", (double)ev->value, (long long)ev->ts);
        put_field(f, e->channels.str[ev->channel]);
        fputc('\n', f);
    }
    pthread_mutex_unlock(&e->wmu);
    int bad = ferror(f) | fflush(f) | fsync(fileno(f));
    bad |= fclose(f);
    int rc = CX_OK;
    if (bad || rename(tmp, path)) {
        rc = cx__fail(e, CX_EIO, "cx_export_signals: writing %s failed: %s",
                      path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* ===================================================================== */
/* Import                                                                */
/* ===================================================================== */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parse path: one file, or a directory of part files as Spark writes it
 * (files starting with '.' or '_', like _SUCCESS and .crc, skipped; the
 * others read in name order). */
static int parse_path(cx_engine *e, const char *path, cx__factors_in *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st))
        return cx__fail(e, CX_EIO, "cx_import_factors: %s: %s", path,
                        strerror(errno));
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int rc = CX_OK;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && rc == CX_OK && (de = readdir(d))) {
            if (de->d_name[0] == '.' || de->d_name[0] == '_')
                continue;
            if (nn == cap) {
                cap = cap ? 2 * cap : 16;
                char **q = realloc(names, cap * sizeof *q);
                if (!q) {
                    rc = CX_ENOMEM;
                    break;
                }
                names = q;
            }
            size_t a = strlen(path), b = strlen(de->d_name);
            if (!(names[nn] = malloc(a + b + 2))) {
                rc = CX_ENOMEM;
                break;
            }
            snprintf(names[nn++], a + b + 2, "%s/%s", path, de->d_name);
        }
        if (!d)
            rc = cx__fail(e, CX_EIO, "cx_import_factors: cannot list %s",
                          path);
        else
            closedir(d);
        if (rc == CX_ENOMEM)
            rc = cx__fail(e, rc, "cx_import_factors: out of memory");
        if (rc == CX_OK && nn)
            qsort(names, nn, sizeof *names, name_cmp);
        if (rc == CX_OK && !nn)
            rc = cx__fail(e, CX_EFORMAT, "cx_import_factors: %s holds no "
                          "part files", path);
    } else if (!(names = malloc(sizeof *names)) ||
               !(names[0] = strdup(path))) {
        rc = cx__fail(e, CX_ENOMEM, "cx_import_factors: out of memory");
    } else {
        nn = 1;
    }
    for (size_t i = 0; i < nn && rc == CX_OK; i++) {
        char err[256];
        size_t len = 0;
        char *text = cx__read_file(names[i], &len, SIZE_MAX - 1, NULL);
        if (!text) {
            rc = cx__fail(e, CX_EIO, "cx_import_factors: cannot read %s",
                          names[i]);
            break;
        }
        rc = i == 0 ? cx__spark_parse(text, len, CX__SPARK_AUTO, out, err,
                                      sizeof err)
                    : cx__spark_parse_more(text, len, CX__SPARK_AUTO, out,
                                           err, sizeof err);
        free(text);
        if (rc)
            rc = cx__fail(e, rc, "cx_import_factors: %s: %s", names[i], err);
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (rc == CX_OK && out->n == 0)
        rc = cx__fail(e, CX_EFORMAT, "cx_import_factors: %s holds no rows",
                      path);
    if (rc)
        cx__factors_in_free(out);
    return rc;
}

/* Scatter the parsed rows into F (rows x k, zeroed) by index; has[] marks
 * the rows set (may be NULL).  Under the writer mutex. */
static int place(cx_engine *e, const cx__factors_in *in,
                 const cx__idmap *ids, size_t rows, int by_index,
                 const char *what, float *F, uint8_t *has, uint8_t *seen)
{
    size_t k = in->k;
    for (size_t r = 0; r < in->n; r++) {
        const char *id = in->ids[r];
        size_t at;
        if (by_index) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(id, &end, 10);
            if (*end || errno || id[0] < '0' || id[0] > '9' || v >= rows)
                return cx__fail(e, CX_ENOTFOUND, "cx_import_factors: %s "
                                "id '%s' is not an index below %zu", what,
                                id, rows);
            at = (size_t)v;
        } else {
            uint32_t i = cx__idmap_find(ids, id);
            if (i == CX_NONE)
                return cx__fail(e, CX_ENOTFOUND, "cx_import_factors: "
                                "unknown %s '%s'", what, id);
            at = i;
        }
        if (seen[at])
            return cx__fail(e, CX_EFORMAT, "cx_import_factors: %s '%s' "
                            "appears twice", what, id);
        seen[at] = 1;
        if (has)
            has[at] = 1;
        memcpy(F + at * k, in->v + r * k, k * sizeof *F);
    }
    return CX_OK;
}

CX_API int cx_import_factors(cx_engine *e, const char *customers,
                             const char *items, unsigned flags)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_import_factors: engine is "
                        "NULL");
    if (!customers || !items)
        return cx__fail(e, CX_EINVAL, "cx_import_factors: both paths are "
                        "required");
    if (flags & ~(unsigned)CX_IMPORT_BY_INDEX)
        return cx__fail(e, CX_EINVAL, "cx_import_factors: unknown flags "
                        "0x%x", flags);
    if (cx__db_readonly(e))
        return cx__fail(e, CX_EREADONLY, "cx_import_factors: the engine is "
                        "open read-only");
    int by_index = (flags & CX_IMPORT_BY_INDEX) != 0;
    cx__factors_in cu, it;
    int rc = parse_path(e, customers, &cu);
    if (rc)
        return rc;
    if ((rc = parse_path(e, items, &it))) {
        cx__factors_in_free(&cu);
        return rc;
    }
    if (cu.k != it.k) {
        rc = cx__fail(e, CX_EFORMAT, "cx_import_factors: customers have %zu "
                      "features, items %zu", cu.k, it.k);
        goto out_parsed;
    }
    /* One model at a time: no training may publish meanwhile. */
    pthread_mutex_lock(&e->train_mu);
    pthread_mutex_lock(&e->wmu);
    /* Signals and ids other processes added count too. */
    rc = cx__db_catch_up(e);
    size_t n = e->n_ev, nu = e->customers.n, ni = e->items.n, k = cu.k;
    cx__options o = e->opt;
    o.factors = (int)k;
    cx__model *m = calloc(1, sizeof *m);
    uint8_t *seen_u = calloc(nu ? nu : 1, 1), *seen_i = calloc(ni ? ni : 1, 1);
    if (m) {
        m->X = calloc(nu * k + 1, sizeof *m->X);
        m->Y = calloc(ni * k + 1, sizeof *m->Y);
        m->has_vec = calloc(nu + 1, 1);
    }
    if (!m || !m->X || !m->Y || !m->has_vec || !seen_u || !seen_i)
        rc = cx__fail(e, CX_ENOMEM, "cx_import_factors: out of memory");
    if (rc == CX_OK && n == 0)
        rc = cx__fail(e, CX_EINVAL, "cx_import_factors: the engine has no "
                      "signals (ingest the signals Spark trained on first)");
    if (rc == CX_OK)
        rc = place(e, &cu, &e->customers, nu, by_index, "customer", m->X,
                   m->has_vec, seen_u);
    if (rc == CX_OK)
        rc = place(e, &it, &e->items, ni, by_index, "item", m->Y, NULL,
                   seen_i);
    cx__train_input in = {e->ev, n, NULL, (uint32_t)nu, (uint32_t)ni,
                          e->ts_max, NULL};
    int64_t seq_end = cx__db_last_seq(e) + 1;
    if (rc == CX_OK) {
        m->k = (int)k;
        m->n_users = (uint32_t)nu;
        m->n_items = (uint32_t)ni;
        m->n_events = n;
        m->seq_end = seq_end;
        if (cx__build_pairs(&in, &o, &m->ui))
            rc = cx__fail(e, CX_ENOMEM, "cx_import_factors: out of memory");
    }
    pthread_mutex_unlock(&e->wmu);
    if (rc == CX_OK) {
        m->loss = cx__loss(&m->ui, m->X, m->Y, m->n_users, m->n_items,
                           m->k, o.regularization);
        if ((rc = cx__model_finish(m)) ||
            (rc = cx__model_prepare_fold(m, &o, in.ts_ref)))
            rc = cx__fail(e, rc, "cx_import_factors: out of memory");
    }
    if (rc == CX_OK) {
        rc = cx__model_publish(e, m, n, 0);
        m = NULL;
    }
    pthread_mutex_unlock(&e->train_mu);
    cx__model_free(m);
    free(seen_u);
    free(seen_i);
out_parsed:
    cx__factors_in_free(&cu);
    cx__factors_in_free(&it);
    return rc;
}
