/* csvread.c -- streaming RFC 4180 CSV records with line numbers.
 * One 64 KiB read buffer and one growing field arena per reader. */
#include "csvread.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fuzz build shrinks the read buffer so records cross refills often. */
#ifndef CSV_BUF_SIZE
#define CSV_BUF_SIZE (64 * 1024)
#endif
#define BUF_SIZE  CSV_BUF_SIZE
#define FIELD_MAX (64 * 1024)   /* longest field accepted, in bytes */

enum { END_OF_FILE = -1, READ_ERROR = -2 };   /* from next_byte() */
enum { FIELD_COMMA = 1, FIELD_LAST = 2, FIELD_BAD = -1 };

struct csv_reader {
    FILE *f;
    int own;                /* we opened f, so we close it */
    int eof;                /* f has nothing more to give */
    int started;            /* the BOM check has been done */
    int quoted;             /* inside a quoted field */
    size_t pos, len;        /* unread bytes are buf[pos..len) */
    long line;              /* line of the next unread byte */
    long rec_line;          /* line where the last record started */
    char *data;             /* field bytes of the record, NUL separated */
    size_t used, cap;
    size_t *off;            /* start of each field in data */
    char **fields;          /* handed out: data + off[i], NULL at the end */
    size_t nf, fcap;
    char err[160];
    unsigned char buf[BUF_SIZE];
};

int csv_open(csv_reader **out, const char *path)
{
    *out = NULL;
    if (!path) { errno = EINVAL; return -1; }
    csv_reader *r = calloc(1, sizeof *r);
    if (!r) { errno = ENOMEM; return -1; }
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
    } else if (!(r->f = fopen(path, "rb"))) {
        int e = errno;
        free(r);
        errno = e;
        return -1;
    }
    r->own = r->f != stdin;
    r->line = 1;
    *out = r;
    return 0;
}

void csv_close(csv_reader *r)
{
    if (!r) return;
    if (r->own) fclose(r->f);
    free(r->data);
    free(r->off);
    free(r->fields);
    free(r);
}

long csv_line(const csv_reader *r) { return r->rec_line; }
const char *csv_error(const csv_reader *r) { return r->err; }

/* ------------------------------------------------------------ bytes */

/* Refill the buffer: 1 if there are bytes, 0 at end of file, -1 on a read
 * error (errno set, and the reader then reports end of file). */
static int fill(csv_reader *r)
{
    if (r->eof) return 0;
    r->pos = 0;
    r->len = fread(r->buf, 1, BUF_SIZE, r->f);
    if (r->len == 0) {
        int failed = ferror(r->f);
        r->eof = 1;
        if (failed && errno == 0) errno = EIO;
        return failed ? -1 : 0;
    }
    if (!r->started) {
        r->started = 1;
        if (r->len >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;
        if (r->pos == r->len) return fill(r);
    }
    return 1;
}

static int peek_byte(csv_reader *r)
{
    if (r->pos == r->len) {
        int rc = fill(r);
        if (rc <= 0) return rc < 0 ? READ_ERROR : END_OF_FILE;
    }
    return r->buf[r->pos];
}

static int next_byte(csv_reader *r)
{
    int c = peek_byte(r);
    if (c >= 0) r->pos++;
    return c;
}

/* After a CR or LF has been read: swallow the LF of a CRLF, count the line. */
static void end_line(csv_reader *r, int c)
{
    if (c == '\r' && peek_byte(r) == '\n') r->pos++;
    r->line++;
}

static int is_eol(int c) { return c == '\n' || c == '\r'; }

/* ----------------------------------------------------------- errors */

static int bad(csv_reader *r, const char *what)
{
    snprintf(r->err, sizeof r->err, "%s at line %ld", what, r->line);
    return FIELD_BAD;
}

/* Drop the rest of a bad record so the next one starts afresh: finish a
 * quoted field the error interrupted (a NUL or an overlong field need not
 * break the quoting), then drop the rest of the line. */
static void skip_record(csv_reader *r)
{
    for (;;) {
        int c = next_byte(r);
        if (c < 0) break;
        if (r->quoted && c == '"') {
            if (peek_byte(r) == '"') r->pos++;
            else r->quoted = 0;
        } else if (is_eol(c)) {
            end_line(r, c);
            if (!r->quoted) break;
        }
    }
    r->quoted = 0;
}

/* ----------------------------------------------------------- fields */

static int reserve(csv_reader *r, size_t extra)
{
    if (r->cap - r->used >= extra) return 0;
    size_t n = r->cap ? r->cap * 2 : 4096;
    while (n - r->used < extra) n *= 2;
    char *p = realloc(r->data, n);
    if (!p) return -1;
    r->data = p;
    r->cap = n;
    return 0;
}

static int start_field(csv_reader *r)
{
    if (r->nf >= 0x7ffffffe)            /* the count is returned as an int */
        return bad(r, "too many fields");
    if (r->nf + 1 >= r->fcap) {
        size_t n = r->fcap ? r->fcap * 2 : 64;
        size_t *o = realloc(r->off, n * sizeof *o);
        if (!o) goto oom;
        r->off = o;
        char **f = realloc(r->fields, n * sizeof *f);
        if (!f) goto oom;
        r->fields = f;
        r->fcap = n;
    }
    r->off[r->nf++] = r->used;
    return 0;
oom:
    errno = ENOMEM;
    return bad(r, "out of memory");
}

/* Append one byte to the current field, minding the length limit. */
static int put_byte(csv_reader *r, int c)
{
    if (r->used - r->off[r->nf - 1] >= FIELD_MAX)
        return bad(r, "field longer than 65536 bytes");
    if (reserve(r, 1)) {
        errno = ENOMEM;
        return bad(r, "out of memory");
    }
    r->data[r->used++] = (char)c;
    return 0;
}

/* Copy the run of plain bytes at the read position in one go: the common
 * case, which would otherwise go through put_byte() one byte at a time. */
static int copy_run(csv_reader *r, int quoted)
{
    size_t i = r->pos;
    while (i < r->len) {
        unsigned char c = r->buf[i];
        if (c == '"' || c == '\0' || c == '\r' || c == '\n' || (c == ',' && !quoted))
            break;
        i++;
    }
    size_t n = i - r->pos, room = FIELD_MAX - (r->used - r->off[r->nf - 1]);
    if (n > room) n = room;         /* put_byte() reports the overflow */
    if (n == 0) return 0;
    if (reserve(r, n)) {
        errno = ENOMEM;
        return bad(r, "out of memory");
    }
    memcpy(r->data + r->used, r->buf + r->pos, n);
    r->used += n;
    r->pos += n;
    return 0;
}

/* What may follow a field: a comma, a line end, or the end of the file. */
static int field_end(csv_reader *r, int c, const char *otherwise)
{
    if (c == ',') return FIELD_COMMA;
    if (c == END_OF_FILE) return FIELD_LAST;
    if (is_eol(c)) { end_line(r, c); return FIELD_LAST; }
    if (c == READ_ERROR) return bad(r, "read error");
    return bad(r, c == '\0' ? "NUL byte" : otherwise);
}

static int unquoted_field(csv_reader *r)
{
    for (;;) {
        if (copy_run(r, 0)) return FIELD_BAD;
        int c = next_byte(r);
        if (c == '"') return bad(r, "quote inside unquoted field");
        if (c < 0 || c == ',' || c == '\0' || is_eol(c)) return field_end(r, c, "");
        if (put_byte(r, c)) return FIELD_BAD;
    }
}

static int quoted_field(csv_reader *r)
{
    long opened = r->line;
    r->quoted = 1;
    for (;;) {
        if (copy_run(r, 1)) return FIELD_BAD;
        int c = next_byte(r);
        if (c == END_OF_FILE) {
            snprintf(r->err, sizeof r->err,
                     "unterminated quoted field opened at line %ld", opened);
            return FIELD_BAD;
        }
        if (c == READ_ERROR) return bad(r, "read error");
        if (c == '\0') return bad(r, "NUL byte");
        if (c == '"') {
            if (peek_byte(r) != '"') {
                r->quoted = 0;
                return field_end(r, next_byte(r), "text after closing quote");
            }
            r->pos++;                       /* "" stands for one quote */
        } else if (c == '\n' || (c == '\r' && peek_byte(r) != '\n')) {
            r->line++;                      /* a line break kept in the field */
        }
        if (put_byte(r, c)) return FIELD_BAD;
    }
}

/* --------------------------------------------------------- records */

/* Skip blank lines; 1 if a record starts here, 0 at end of file, -1 on a
 * read error. */
static int skip_blank(csv_reader *r)
{
    for (;;) {
        int c = peek_byte(r);
        if (c == END_OF_FILE) return 0;
        if (c == READ_ERROR) return -1;
        if (!is_eol(c)) return 1;
        r->pos++;
        end_line(r, c);
    }
}

static int read_record(csv_reader *r)
{
    for (;;) {
        if (start_field(r)) return -1;
        int rc = peek_byte(r) == '"' ? (r->pos++, quoted_field(r)) : unquoted_field(r);
        if (rc == FIELD_BAD) return -1;
        if (reserve(r, 1)) {
            errno = ENOMEM;
            return bad(r, "out of memory");
        }
        r->data[r->used++] = '\0';
        if (rc == FIELD_LAST) return 0;
    }
}

int csv_next(csv_reader *r, char ***fields)
{
    r->nf = 0;
    r->used = 0;
    r->err[0] = '\0';
    int s = skip_blank(r);
    r->rec_line = r->line;
    if (s <= 0) {
        if (s == 0) return 0;
        snprintf(r->err, sizeof r->err, "read error at line %ld", r->line);
        return -1;
    }
    if (read_record(r)) {
        skip_record(r);
        return -1;
    }
    for (size_t i = 0; i < r->nf; i++)
        r->fields[i] = r->data + r->off[i];
    r->fields[r->nf] = NULL;
    *fields = r->fields;
    return (int)r->nf;
}
