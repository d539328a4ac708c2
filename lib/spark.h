/* spark.h -- private: factor rows read from Apache Spark MLlib ALS output.
 * Not part of the API; names are cx__* and never exported. */
#ifndef CX_SPARK_H
#define CX_SPARK_H

#include "cxengine.h"

#include <stddef.h>

/* Limits of what the reader accepts.  Ids are limited by CX_MAX_ID_LEN. */
#define CX__SPARK_MAX_K    1024                 /* features per row */
#define CX__SPARK_MAX_ROWS ((size_t)1 << 31)    /* rows in one cx__factors_in */

/* Factor rows read from Apache Spark MLlib ALS output. */
typedef struct cx__factors_in {
    size_t n, k;        /* rows, features per row */
    char **ids;         /* n NUL-terminated ids (a numeric JSON id is kept as
                           its decimal text, e.g. "123"), each malloc'd */
    float *v;           /* n x k, row-major */
} cx__factors_in;

enum { CX__SPARK_AUTO = 0, CX__SPARK_JSONL = 1, CX__SPARK_CSV = 2 };

/* Parse a whole text buffer (not NUL-terminated; len bytes) as written by
 * Spark, in one of the formats below.  Returns CX_OK, or CX_EFORMAT for
 * malformed text, CX_ENOMEM, CX_ELIMIT past CX__SPARK_MAX_ROWS rows, and
 * CX_EINVAL for a NULL out, a NULL text with len > 0 or an unknown format.
 * The message names the 1-based line ("line 7: ...") and goes to
 * err[errlen], always NUL-terminated when errlen > 0 ("" on success; err
 * may be NULL when errlen is 0).  On failure *out is left zeroed.
 *
 * A buffer with no rows (Spark writes empty part files for empty
 * partitions) parses to n = 0, k = 0.  Duplicate ids are not checked here.
 *
 * Formats:
 *   CX__SPARK_JSONL  model.userFactors.write.json(dir): one object a line,
 *                    {"id":12,"features":[0.1,-0.2,1.0E-4]}; keys in any
 *                    order, id an integer or a string, unknown keys with
 *                    scalar values ignored, blank lines and CRLF accepted.
 *   CX__SPARK_CSV    id,f1,...,fk or id,"[f1, ..., fk]" (a cast of the
 *                    features array to string; the quotes may be left
 *                    out); RFC 4180 quotes on any field; a first line whose
 *                    first field is "id" (any case) is a header.
 *   CX__SPARK_AUTO   JSON lines if the first non-blank byte is '{', else CSV.
 * Every row has the same k, 1..CX__SPARK_MAX_K; every value is a finite
 * float; ids are 1..CX_MAX_ID_LEN bytes without a NUL.  A number is a run
 * of [0-9+-.eE], at most 63 bytes, that strtof reads whole and rounds to a
 * finite float (NaN, Infinity and hex are refused); so the C library's
 * LC_NUMERIC must use '.' (the default "C" locale does).
 *
 * No shared state: calls on different structs may run concurrently. */
int cx__spark_parse(const char *text, size_t len, int format,
                    cx__factors_in *out, char *err, size_t errlen);

/* Append the rows of another buffer (Spark writes a directory of part-*
 * files) to *out, which holds the rows of earlier calls: the same k is
 * required.  Line numbers in the message count from the start of this
 * buffer.  On failure *out is left as it was before the call. */
int cx__spark_parse_more(const char *text, size_t len, int format,
                         cx__factors_in *out, char *err, size_t errlen);

/* Free the ids and values and zero *f.  Accepts NULL and a zeroed struct. */
void cx__factors_in_free(cx__factors_in *f);

#endif /* CX_SPARK_H */
