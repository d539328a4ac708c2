/* fuzz_spark.c -- libFuzzer target for the Spark ALS factor reader.
 * Any bytes in, AUTO format; then checks what the reader promises. */
#include "spark.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Rows that parsed hold 1..512-byte ids without NUL and finite values. */
static void check_rows(const cx__factors_in *f)
{
    if (f->n && (f->k == 0 || f->k > CX__SPARK_MAX_K))
        abort();
    for (size_t i = 0; i < f->n; i++) {
        size_t len = strlen(f->ids[i]);
        if (len == 0 || len > CX_MAX_ID_LEN)
            abort();
        for (size_t d = 0; d < f->k; d++)
            if (!isfinite(f->v[i * f->k + d]))
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    cx__factors_in f;
    char err[256];
    int rc = cx__spark_parse(text, size, CX__SPARK_AUTO, &f, err, sizeof err);
    if (rc != CX_OK) {
        /* A failure names its line and leaves nothing behind. */
        if (rc != CX_EFORMAT && rc != CX_ENOMEM && rc != CX_ELIMIT)
            abort();
        if (strncmp(err, "line ", 5) != 0 || strchr(err, '\n'))
            abort();
        if (f.n || f.k || f.ids || f.v)
            abort();
        return 0;
    }
    if (err[0])
        abort();
    check_rows(&f);
    /* The same bytes as a second part file append the same rows again. */
    size_t n = f.n;
    rc = cx__spark_parse_more(text, size, CX__SPARK_AUTO, &f, err, sizeof err);
    if (rc == CX_ENOMEM) {
        if (f.n != n)
            abort();
    } else if (rc != CX_OK || f.n != 2 * n) {
        abort();
    } else {
        for (size_t i = 0; i < n; i++)
            if (strcmp(f.ids[i], f.ids[n + i]) != 0 ||
                memcmp(f.v + i * f.k, f.v + (n + i) * f.k,
                       f.k * sizeof *f.v) != 0)
                abort();
    }
    cx__factors_in_free(&f);
    return 0;
}
