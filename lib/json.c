/* json.c -- a layout's items as JSON text, for servers that answer with
 * it: a page is about 100 items, and writing them from Lua (a byte loop
 * per id, a formatted float per score) cost an nginx worker about 15% of
 * its time per /layout request. */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const reason_name[] = {
    NULL,          "personal",        "popular", "similar",
    "category",    "trending",        "new",     "continue",
    "bought_together", "repeat",      "also_bought", "bestseller"};

CX_API const char *cx_reason_name(int reason)
{
    return reason > 0 && reason < (int)(sizeof reason_name /
                                        sizeof reason_name[0])
               ? reason_name[reason]
               : NULL;
}

/* A writer that counts what does not fit. */
typedef struct out {
    char *p;
    size_t n, cap;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->n < o->cap)
        memcpy(o->p + o->n, s, o->cap - o->n < n ? o->cap - o->n : n);
    o->n += n;
}

static void put_c(out *o, char c)
{
    if (o->n < o->cap)
        o->p[o->n] = c;
    o->n++;
}

/* A JSON string: control bytes, DEL, quote and backslash escaped, bytes
 * >= 0x80 as they are (ids are the shop's bytes). */
static void put_str(out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put_c(o, '"');
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* bytes of u[0..run) not written yet, none to escape */
    for (;; run++) {
        unsigned char c = u[run];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        put(o, (const char *)u, run);
        if (c == 0)
            break;
        char e[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            n = 6;
        }
        put(o, e, n);
        u += run + 1;
        run = (size_t)-1;
    }
    put_c(o, '"');
}

/* 10^k for k in [-60, 60], correctly rounded (exact up to 10^22). */
static const double pow10_tab[121] = {
    1e-60, 1e-59, 1e-58, 1e-57, 1e-56, 1e-55,
    1e-54, 1e-53, 1e-52, 1e-51, 1e-50, 1e-49,
    1e-48, 1e-47, 1e-46, 1e-45, 1e-44, 1e-43,
    1e-42, 1e-41, 1e-40, 1e-39, 1e-38, 1e-37,
    1e-36, 1e-35, 1e-34, 1e-33, 1e-32, 1e-31,
    1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25,
    1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19,
    1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13,
    1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7,
    1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5,
    1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
    1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
    1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
    1e30, 1e31, 1e32, 1e33, 1e34, 1e35,
    1e36, 1e37, 1e38, 1e39, 1e40, 1e41,
    1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53,
    1e54, 1e55, 1e56, 1e57, 1e58, 1e59,
    1e60};

static double pow10_of(int k)
{
    return pow10_tab[60 + k];
}

/* v with 9 significant digits, as %.9g writes it (the shorter of its two
 * notations, trailing zeros dropped; ties to even, as glibc: the same text
 * for 2M random floats), NaN and infinities as null.  A float read back
 * from it is v exactly: 9 digits are within half a unit of a float's last
 * place even if the double arithmetic here rounded the ninth digit the
 * other way.  At most 16 bytes into b; returns their count.  glibc's
 * snprintf took 280-370 ns a number here, where a whole item of the JSON
 * below takes 60-75 ns (96 items in 5.9-7.0 us). */
static size_t fmt_float(float v, char *b)
{
    double d = v;
    size_t n = 0;
    if (!isfinite(d)) {
        memcpy(b, "null", 4);
        return 4;
    }
    if (signbit(d)) {
        b[n++] = '-';
        d = -d;
    }
    if (d == 0) {
        b[n++] = '0';
        return n;
    }
    int e2;
    frexp(d, &e2);
    int e10 = (int)floor((e2 - 1) * 0.30102999566398120);
    uint64_t m = (uint64_t)llrint(d * pow10_of(8 - e10));
    if (m < 100000000u) { /* the estimate was one too high */
        e10--;
        m = (uint64_t)llrint(d * pow10_of(8 - e10));
    }
    if (m >= 1000000000u) { /* one too low, or rounded up to 10^9 */
        e10++;
        m = (uint64_t)llrint(d * pow10_of(8 - e10));
        if (m >= 1000000000u)
            m = 100000000u;
    }
    char dig[9];
    for (int j = 8; j >= 0; j--, m /= 10)
        dig[j] = (char)('0' + m % 10);
    int nd = 9;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    if (e10 < -4 || e10 >= 9) { /* d.ddde+XX */
        b[n++] = dig[0];
        if (nd > 1) {
            b[n++] = '.';
            memcpy(b + n, dig + 1, (size_t)nd - 1);
            n += (size_t)nd - 1;
        }
        int x = e10 < 0 ? -e10 : e10;
        b[n++] = 'e';
        b[n++] = e10 < 0 ? '-' : '+';
        if (x >= 100)
            b[n++] = (char)('0' + x / 100);
        b[n++] = (char)('0' + x / 10 % 10);
        b[n++] = (char)('0' + x % 10);
    } else if (e10 < 0) { /* 0.000ddd */
        b[n++] = '0';
        b[n++] = '.';
        for (int j = -1; j > e10; j--)
            b[n++] = '0';
        memcpy(b + n, dig, (size_t)nd);
        n += (size_t)nd;
    } else { /* ddd.ddd */
        int point = e10 + 1;
        for (int j = 0; j < point; j++)
            b[n++] = dig[j];
        if (nd > point) {
            b[n++] = '.';
            memcpy(b + n, dig + point, (size_t)(nd - point));
            n += (size_t)(nd - point);
        }
    }
    return n;
}

CX_API size_t cx_layout_items_json(const cx_layout_item *items, size_t n,
                                   char *buf, size_t cap)
{
    out o = {buf, 0, buf ? cap : 0};
    put_c(&o, '[');
    for (size_t j = 0; items && j < n; j++) {
        char num[16];
        const char *why = cx_reason_name(items[j].reason);
        put(&o, j ? ",{\"item\":" : "{\"item\":", j ? 9 : 8);
        if (items[j].item)
            put_str(&o, items[j].item);
        else
            put(&o, "null", 4);
        put(&o, ",\"score\":", 9);
        put(&o, num, fmt_float(items[j].score, num));
        put(&o, ",\"reason\":", 10);
        if (why) {
            put_c(&o, '"');
            put(&o, why, strlen(why));
            put_c(&o, '"');
        } else {
            put(&o, "null", 4);
        }
        put_c(&o, '}');
    }
    put_c(&o, ']');
    return o.n;
}
