/* spark.c -- factor rows from Apache Spark MLlib ALS output (JSON lines, CSV).
 * One pass over a buffer that is not NUL-terminated; rows are collected in
 * a table of their own and handed to the caller only once the buffer parsed. */
#include "spark.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NUM_MAX 63          /* longest number accepted, in bytes */

typedef struct parser {
    const char *s;
    size_t len, pos;        /* unread bytes are s[pos..len) */
    size_t end;             /* JSON: end of the current line */
    size_t line;            /* 1-based line of s[pos] */
    size_t k;               /* features per row; 0 until the first row */
    size_t base;            /* rows the caller already holds */
    size_t n, cap;          /* rows collected so far */
    char **ids;
    float *v;               /* cap x k */
    char *err;
    size_t errlen;
    size_t idlen;           /* length of the id, even past what id[] holds */
    size_t nf;              /* values in row[] */
    char id[CX_MAX_ID_LEN + 1];
    float row[CX__SPARK_MAX_K];
} parser;

/* ===================================================================== */
/* Errors and the row table                                              */
/* ===================================================================== */

static int fail(parser *p, int status, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int fail(parser *p, int status, const char *fmt, ...)
{
    if (p->errlen == 0)
        return status;
    int n = snprintf(p->err, p->errlen, "line %zu: ", p->line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* a * b, or 0 when that overflows (callers never multiply by 0). */
static size_t mul(size_t a, size_t b)
{
    return b && a > SIZE_MAX / b ? 0 : a * b;
}

/* Room for one more row of k values. */
static int grow(parser *p)
{
    if (p->base + p->n >= CX__SPARK_MAX_ROWS)
        return fail(p, CX_ELIMIT, "more than %zu rows", CX__SPARK_MAX_ROWS);
    if (p->n < p->cap)
        return CX_OK;
    size_t cap = p->cap ? mul(p->cap, 2) : 256;
    size_t ids_bytes = mul(cap, sizeof *p->ids);
    size_t v_bytes = mul(mul(cap, p->k), sizeof *p->v);
    if (!ids_bytes || !v_bytes)
        return fail(p, CX_ENOMEM, "row table too large");
    char **ids = realloc(p->ids, ids_bytes);
    if (!ids)
        return fail(p, CX_ENOMEM, "out of memory");
    p->ids = ids;
    float *v = realloc(p->v, v_bytes);
    if (!v)
        return fail(p, CX_ENOMEM, "out of memory");
    p->v = v;
    p->cap = cap;
    return CX_OK;
}

/* Keep a byte of the id; idlen goes on counting past what id[] holds, so
 * an overlong id is caught by check_id. */
static void put_id(parser *p, char c)
{
    if (p->idlen < CX_MAX_ID_LEN)
        p->id[p->idlen] = c;
    p->idlen++;
}

static int check_id(parser *p)
{
    if (p->idlen == 0)
        return fail(p, CX_EFORMAT, "empty id");
    if (p->idlen > CX_MAX_ID_LEN)
        return fail(p, CX_EFORMAT, "id longer than %d bytes", CX_MAX_ID_LEN);
    if (memchr(p->id, 0, p->idlen))
        return fail(p, CX_EFORMAT, "id contains a NUL byte");
    return CX_OK;
}

/* The row in id[] and row[] joins the table. */
static int add_row(parser *p)
{
    if (p->k == 0)
        p->k = p->nf;
    else if (p->nf != p->k)
        return fail(p, CX_EFORMAT, "%zu features, the rows before have %zu",
                    p->nf, p->k);
    int rc = grow(p);
    if (rc)
        return rc;
    char *id = malloc(p->idlen + 1);
    if (!id)
        return fail(p, CX_ENOMEM, "out of memory");
    memcpy(id, p->id, p->idlen);
    id[p->idlen] = '\0';
    p->ids[p->n] = id;
    memcpy(p->v + p->n * p->k, p->row, p->k * sizeof *p->v);
    p->n++;
    return CX_OK;
}

static void drop_rows(parser *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->ids[i]);
    free(p->ids);
    free(p->v);
    p->ids = NULL;
    p->v = NULL;
    p->n = p->cap = 0;
}

/* ===================================================================== */
/* Numbers                                                               */
/* ===================================================================== */

static int is_num_byte(int c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
           c == 'e' || c == 'E';
}

/* Length of the number at pos (ending before `end`), its value in *f; 0
 * when the bytes there are not a number strtof reads whole.  strtof works
 * on a bounded, NUL-terminated copy: the buffer may end right after the
 * number.  It rounds straight to float (no double rounding) and gives
 * +-inf, never undefined behaviour, past FLT_MAX. */
static size_t number(const parser *p, size_t end, float *f)
{
    size_t i = p->pos;
    while (i < end && is_num_byte((unsigned char)p->s[i]))
        i++;
    size_t n = i - p->pos;
    if (n == 0 || n > NUM_MAX)
        return 0;
    char buf[NUM_MAX + 1], *stop;
    memcpy(buf, p->s + p->pos, n);
    buf[n] = '\0';
    *f = strtof(buf, &stop);
    return stop == buf + n ? n : 0;
}

/* One feature value at pos, appended to row[]. */
static int feature(parser *p, size_t end)
{
    float f;
    if (p->nf == CX__SPARK_MAX_K)
        return fail(p, CX_EFORMAT, "more than %d features", CX__SPARK_MAX_K);
    size_t n = number(p, end, &f);
    if (n == 0)
        return fail(p, CX_EFORMAT, "features must be finite numbers");
    if (!isfinite(f))
        return fail(p, CX_EFORMAT, "%.*s is out of the range of a float",
                    (int)n, p->s + p->pos);
    p->row[p->nf++] = f;
    p->pos += n;
    return CX_OK;
}

/* ===================================================================== */
/* JSON lines                                                            */
/* ===================================================================== */

/* The current line is s[pos..end); '\n' never occurs inside it. */
static int json_peek(const parser *p)
{
    return p->pos < p->end ? (unsigned char)p->s[p->pos] : -1;
}

static void json_ws(parser *p)
{
    int c;
    while ((c = json_peek(p)) == ' ' || c == '\t' || c == '\r')
        p->pos++;
}

static int json_expect(parser *p, int c, const char *what)
{
    json_ws(p);
    if (json_peek(p) != c)
        return fail(p, CX_EFORMAT, "expected %s", what);
    p->pos++;
    return CX_OK;
}

static void put_byte(char *out, size_t cap, size_t *n, unsigned c)
{
    if (*n < cap)
        out[*n] = (char)c;
    ++*n;
}

static void put_utf8(char *out, size_t cap, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        put_byte(out, cap, n, cp);
    } else if (cp < 0x800) {
        put_byte(out, cap, n, 0xC0 | (cp >> 6));
        put_byte(out, cap, n, 0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        put_byte(out, cap, n, 0xE0 | (cp >> 12));
        put_byte(out, cap, n, 0x80 | ((cp >> 6) & 0x3F));
        put_byte(out, cap, n, 0x80 | (cp & 0x3F));
    } else {
        put_byte(out, cap, n, 0xF0 | (cp >> 18));
        put_byte(out, cap, n, 0x80 | ((cp >> 12) & 0x3F));
        put_byte(out, cap, n, 0x80 | ((cp >> 6) & 0x3F));
        put_byte(out, cap, n, 0x80 | (cp & 0x3F));
    }
}

/* The four hex digits of a \u escape, pos just past the 'u'. */
static int hex4(parser *p, uint32_t *v)
{
    if (p->end - p->pos < 4)
        return fail(p, CX_EFORMAT, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)p->s[p->pos++], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return fail(p, CX_EFORMAT, "bad hex digit in a \\u escape");
        *v = *v * 16 + (uint32_t)d;
    }
    return CX_OK;
}

/* A \u escape, pos just past the 'u'; a surrogate pair makes one code
 * point, a lone surrogate is refused. */
static int json_u(parser *p, uint32_t *cp)
{
    uint32_t lo;
    int rc = hex4(p, cp);
    if (rc)
        return rc;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return fail(p, CX_EFORMAT, "unpaired surrogate in a \\u escape");
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return CX_OK;
    if (p->end - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
        return fail(p, CX_EFORMAT, "unpaired surrogate in a \\u escape");
    p->pos += 2;
    if ((rc = hex4(p, &lo)))
        return rc;
    if (lo < 0xDC00 || lo > 0xDFFF)
        return fail(p, CX_EFORMAT, "unpaired surrogate in a \\u escape");
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return CX_OK;
}

/* Decode the string at pos (just past its opening quote).  The first cap
 * bytes go to out (NULL when cap is 0); *len receives the whole length. */
static int json_string(parser *p, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    for (;;) {
        if (p->pos == p->end)
            return fail(p, CX_EFORMAT, "unterminated string");
        unsigned c = (unsigned char)p->s[p->pos++];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, CX_EFORMAT, "control character in a string");
        if (c == '\\') {
            if (p->pos == p->end)
                return fail(p, CX_EFORMAT, "unterminated string");
            c = (unsigned char)p->s[p->pos++];
            switch (c) {
            case '"': case '\\': case '/': break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                uint32_t cp;
                int rc = json_u(p, &cp);
                if (rc)
                    return rc;
                put_utf8(out, cap, &n, cp);
                continue;
            }
            default:
                return fail(p, CX_EFORMAT, "bad escape in a string");
            }
        }
        put_byte(out, cap, &n, c);
    }
    *len = n;
    return CX_OK;
}

/* "id": a string, or an integer kept as its text. */
static int json_id(parser *p)
{
    int c = json_peek(p);
    if (c == '"') {
        p->pos++;
        int rc = json_string(p, p->id, CX_MAX_ID_LEN, &p->idlen);
        return rc ? rc : check_id(p);
    }
    size_t i = p->pos, digits;
    if (c == '-')
        i++;
    digits = i;
    while (i < p->end && p->s[i] >= '0' && p->s[i] <= '9')
        i++;
    if (i == digits || (p->s[digits] == '0' && i - digits > 1) ||
        (i < p->end && (p->s[i] == '.' || p->s[i] == 'e' || p->s[i] == 'E')))
        return fail(p, CX_EFORMAT, "id must be an integer or a string");
    p->idlen = 0;
    for (; p->pos < i; p->pos++)
        put_id(p, p->s[p->pos]);
    return check_id(p);
}

/* "features": [number, ...] */
static int json_features(parser *p)
{
    if (json_peek(p) != '[')
        return fail(p, CX_EFORMAT, "features must be an array of numbers");
    p->pos++;
    json_ws(p);
    if (json_peek(p) == ']')
        return fail(p, CX_EFORMAT, "features is empty");
    for (;;) {
        json_ws(p);
        int rc = feature(p, p->end);
        if (rc)
            return rc;
        json_ws(p);
        int c = json_peek(p);
        if (c == ']') {
            p->pos++;
            return CX_OK;
        }
        if (c != ',')
            return fail(p, CX_EFORMAT, "expected ',' or ']' in features");
        p->pos++;
    }
}

/* The value of a key we do not know: a string, number, true, false or
 * null.  Objects and arrays are refused rather than skipped. */
static int json_skip_scalar(parser *p)
{
    static const char *const words[] = {"true", "false", "null"};
    int c = json_peek(p);
    size_t n;
    float f;
    if (c == '"') {
        p->pos++;
        return json_string(p, NULL, 0, &n);
    }
    if (c == '{' || c == '[')
        return fail(p, CX_EFORMAT, "nested object or array");
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        n = strlen(words[i]);
        if (p->end - p->pos >= n && memcmp(p->s + p->pos, words[i], n) == 0) {
            p->pos += n;
            return CX_OK;
        }
    }
    if ((n = number(p, p->end, &f)) == 0)
        return fail(p, CX_EFORMAT, "expected a value");
    p->pos += n;
    return CX_OK;
}

static int is_key(const char *key, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(key, name, len) == 0;
}

/* One object, filling the line s[pos..end). */
static int json_row(parser *p)
{
    int have_id = 0, have_features = 0, rc;
    p->idlen = 0;
    p->nf = 0;
    if ((rc = json_expect(p, '{', "'{'")))
        return rc;
    json_ws(p);
    if (json_peek(p) == '}')
        p->pos++;
    else
        for (;;) {
            char key[8];    /* enough to tell "id" and "features" */
            size_t klen;
            if ((rc = json_expect(p, '"', "a key")) ||
                (rc = json_string(p, key, sizeof key, &klen)) ||
                (rc = json_expect(p, ':', "':'")))
                return rc;
            json_ws(p);
            if (is_key(key, klen, "id"))
                rc = have_id++ ? fail(p, CX_EFORMAT, "duplicate key \"id\"")
                               : json_id(p);
            else if (is_key(key, klen, "features"))
                rc = have_features++
                         ? fail(p, CX_EFORMAT, "duplicate key \"features\"")
                         : json_features(p);
            else
                rc = json_skip_scalar(p);
            if (rc)
                return rc;
            json_ws(p);
            int c = json_peek(p);
            if (c != ',' && c != '}')
                return fail(p, CX_EFORMAT, "expected ',' or '}'");
            p->pos++;
            if (c == '}')
                break;
        }
    json_ws(p);
    if (p->pos != p->end)
        return fail(p, CX_EFORMAT, "trailing garbage after the object");
    if (!have_id)
        return fail(p, CX_EFORMAT, "missing \"id\"");
    if (!have_features)
        return fail(p, CX_EFORMAT, "missing \"features\"");
    return add_row(p);
}

static int json_rows(parser *p)
{
    while (p->pos < p->len) {
        const char *nl = memchr(p->s + p->pos, '\n', p->len - p->pos);
        p->end = nl ? (size_t)(nl - p->s) : p->len;
        json_ws(p);
        if (p->pos < p->end) {      /* not a blank line */
            int rc = json_row(p);
            if (rc)
                return rc;
        }
        p->pos = nl ? p->end + 1 : p->len;
        p->line++;
    }
    return CX_OK;
}

/* ===================================================================== */
/* CSV                                                                   */
/* ===================================================================== */

static int csv_peek(const parser *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int at_eol(const parser *p)
{
    int c = csv_peek(p);
    return c == -1 || c == '\n' || c == '\r';
}

/* Is s[i] a line break: LF, or a CR not followed by LF (CRLF counts once,
 * at its LF)? */
static int is_break(const parser *p, size_t i)
{
    return p->s[i] == '\n' ||
           (p->s[i] == '\r' && (i + 1 == p->len || p->s[i + 1] != '\n'));
}

/* Step over the line end at pos, if any: LF, CRLF or a lone CR. */
static void csv_eol(parser *p)
{
    if (csv_peek(p) == '\r')
        p->pos++;
    if (csv_peek(p) == '\n')
        p->pos++;
    p->line++;
}

static void csv_blanks(parser *p)
{
    int c;
    while ((c = csv_peek(p)) == ' ' || c == '\t')
        p->pos++;
}

/* The id field, quoted (RFC 4180: "" for a quote, line breaks allowed) or
 * not.  Leaves pos on the comma or line end after it. */
static int csv_id(parser *p)
{
    p->idlen = 0;
    if (csv_peek(p) != '"') {
        while (!at_eol(p) && csv_peek(p) != ',') {
            if (csv_peek(p) == '"')
                return fail(p, CX_EFORMAT, "quote inside an unquoted id");
            put_id(p, p->s[p->pos++]);
        }
        return CX_OK;
    }
    size_t opened = p->line;
    p->pos++;
    for (;;) {
        if (p->pos == p->len) {
            p->line = opened;
            return fail(p, CX_EFORMAT, "unterminated quoted id");
        }
        if (is_break(p, p->pos))
            p->line++;
        char c = p->s[p->pos++];
        if (c == '"') {
            if (csv_peek(p) != '"')
                break;
            p->pos++;           /* "" stands for one quote */
        }
        put_id(p, c);
    }
    if (!at_eol(p) && csv_peek(p) != ',')
        return fail(p, CX_EFORMAT, "text after the closing quote of the id");
    return CX_OK;
}

/* Skip the rest of a header record, minding quotes. */
static void csv_skip_record(parser *p)
{
    int quoted = 0;
    for (; p->pos < p->len; p->pos++) {
        char c = p->s[p->pos];
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && (c == '\n' || c == '\r'))
            break;
        else if (is_break(p, p->pos))
            p->line++;
    }
    csv_eol(p);
}

/* A plain value field: a number, perhaps quoted, perhaps padded. */
static int csv_number_field(parser *p)
{
    csv_blanks(p);
    int quoted = csv_peek(p) == '"';
    if (quoted) {
        p->pos++;
        csv_blanks(p);
    }
    int rc = feature(p, p->len);
    if (rc)
        return rc;
    csv_blanks(p);
    if (quoted) {
        if (csv_peek(p) != '"')
            return fail(p, CX_EFORMAT, "expected '\"' after a number");
        p->pos++;
        csv_blanks(p);
    }
    return CX_OK;
}

/* id,f1,...,fk with pos just past the id's comma. */
static int csv_plain(parser *p)
{
    for (;;) {
        int rc = csv_number_field(p);
        if (rc)
            return rc;
        if (at_eol(p))
            return CX_OK;
        if (csv_peek(p) != ',')
            return fail(p, CX_EFORMAT, "expected ',' after a number");
        p->pos++;
    }
}

/* id,"[f1, ..., fk]" with pos on the '['. */
static int csv_bracket(parser *p, int quoted)
{
    p->pos++;
    csv_blanks(p);
    if (csv_peek(p) == ']')
        return fail(p, CX_EFORMAT, "features is empty");
    for (;;) {
        csv_blanks(p);
        int rc = feature(p, p->len);
        if (rc)
            return rc;
        csv_blanks(p);
        int c = csv_peek(p);
        if (c == ']')
            break;
        if (c != ',')
            return fail(p, CX_EFORMAT, "expected ',' or ']' in features");
        p->pos++;
    }
    p->pos++;
    csv_blanks(p);
    if (quoted) {
        if (csv_peek(p) != '"')
            return fail(p, CX_EFORMAT, "expected '\"' after ']'");
        p->pos++;
    }
    if (!at_eol(p))
        return fail(p, CX_EFORMAT, "trailing text after the features");
    return CX_OK;
}

/* The values after the id, in either form; pos is on the comma or line
 * end that follows the id. */
static int csv_features(parser *p)
{
    p->nf = 0;
    if (at_eol(p))
        return fail(p, CX_EFORMAT, "no features after the id");
    size_t start = ++p->pos;    /* past the comma */
    csv_blanks(p);
    int quoted = csv_peek(p) == '"';
    if (quoted) {
        p->pos++;
        csv_blanks(p);
    }
    if (csv_peek(p) == '[')
        return csv_bracket(p, quoted);
    p->pos = start;
    return csv_plain(p);
}

static int csv_rows(parser *p)
{
    int first = 1, rc;
    while (p->pos < p->len) {
        size_t start = p->pos;
        csv_blanks(p);
        if (at_eol(p)) {            /* a blank line, or only blanks */
            csv_eol(p);
            continue;
        }
        p->pos = start;
        if ((rc = csv_id(p)))
            return rc;
        if (first && p->idlen == 2 && strncasecmp(p->id, "id", 2) == 0) {
            first = 0;
            csv_skip_record(p);
            continue;
        }
        first = 0;
        if ((rc = check_id(p)) || (rc = csv_features(p)) || (rc = add_row(p)))
            return rc;
        csv_eol(p);
    }
    return CX_OK;
}

/* ===================================================================== */
/* Entry points                                                          */
/* ===================================================================== */

/* The rows parsed join *out: moved when it is empty, copied after its
 * rows otherwise. */
static int hand_over(parser *p, cx__factors_in *out)
{
    if (p->n == 0)
        return CX_OK;
    if (out->n == 0) {
        /* Give back the slack of the last doubling; keep it if that fails. */
        char **ids = realloc(p->ids, p->n * sizeof *ids);
        float *v = realloc(p->v, p->n * p->k * sizeof *v);
        free(out->ids);
        free(out->v);
        out->ids = ids ? ids : p->ids;
        out->v = v ? v : p->v;
        out->n = p->n;
        out->k = p->k;
        p->ids = NULL;
        p->v = NULL;
        p->n = 0;
        return CX_OK;
    }
    size_t n = out->n + p->n;       /* <= CX__SPARK_MAX_ROWS, see grow() */
    size_t ids_bytes = mul(n, sizeof *out->ids);
    size_t v_bytes = mul(mul(n, p->k), sizeof *out->v);
    if (!ids_bytes || !v_bytes)
        return fail(p, CX_ENOMEM, "row table too large");
    char **ids = realloc(out->ids, ids_bytes);
    if (!ids)
        return fail(p, CX_ENOMEM, "out of memory");
    out->ids = ids;
    float *v = realloc(out->v, v_bytes);
    if (!v)
        return fail(p, CX_ENOMEM, "out of memory");
    out->v = v;
    memcpy(out->ids + out->n, p->ids, p->n * sizeof *ids);
    memcpy(out->v + out->n * p->k, p->v, p->n * p->k * sizeof *v);
    out->n = n;
    p->n = 0;                       /* the ids belong to out now */
    return CX_OK;
}

int cx__spark_parse_more(const char *text, size_t len, int format,
                         cx__factors_in *out, char *err, size_t errlen)
{
    if (!err)
        errlen = 0;
    if (errlen)
        err[0] = '\0';
    if (!out || (!text && len) ||
        (format != CX__SPARK_AUTO && format != CX__SPARK_JSONL &&
         format != CX__SPARK_CSV)) {
        if (errlen)
            snprintf(err, errlen, "invalid argument");
        return CX_EINVAL;
    }
    parser p;
    memset(&p, 0, sizeof p);
    p.s = text;
    p.len = len;
    p.line = 1;
    p.k = out->k;
    p.base = out->n;
    p.err = err;
    p.errlen = errlen;
    /* A UTF-8 byte order mark, as some tools write, is not data. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        p.pos = 3;
    if (format == CX__SPARK_AUTO) {
        size_t i = p.pos;
        while (i < len && (text[i] == ' ' || text[i] == '\t' ||
                           text[i] == '\r' || text[i] == '\n'))
            i++;
        format = i < len && text[i] == '{' ? CX__SPARK_JSONL : CX__SPARK_CSV;
    }
    int rc = format == CX__SPARK_JSONL ? json_rows(&p) : csv_rows(&p);
    if (rc == CX_OK)
        rc = hand_over(&p, out);
    drop_rows(&p);
    return rc;
}

int cx__spark_parse(const char *text, size_t len, int format,
                    cx__factors_in *out, char *err, size_t errlen)
{
    if (out)
        memset(out, 0, sizeof *out);
    return cx__spark_parse_more(text, len, format, out, err, errlen);
}

void cx__factors_in_free(cx__factors_in *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->ids[i]);
    free(f->ids);
    free(f->v);
    memset(f, 0, sizeof *f);
}
