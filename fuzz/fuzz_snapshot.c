/* fuzz_snapshot.c -- libFuzzer target for the snapshot MANIFEST reader,
 * the engine image's IMAGE reader and the VERIFIED stamp's reader (the
 * input goes to all three).  Any bytes
 * in: a parser must accept only a text whose checksum line matches and
 * whose lengths agree with its counts, and never read outside the
 * buffer.  A parsed text must parse again identically. */
#include "internal.h"
#include "db.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*parse_fn)(const char *, size_t, void *, char *, size_t);

static void one(parse_fn parse, size_t msz, const uint8_t *data,
                size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(cx__manifest_parse, cx__manifest_size(), data, size);
    one(cx__image_manifest_parse, cx__image_manifest_size(), data, size);
    one(cx__stamp_parse, cx__stamp_size(), data, size);
    return 0;
}

static void one(parse_fn parse, size_t msz, const uint8_t *data, size_t size)
{
    /* An exact-size copy: ASan sees any read past the end. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return;
    memcpy(text, data, size);
    void *a = malloc(msz), *b = malloc(msz);
    char why[256];
    int rc = parse(text, size, a, why, sizeof why);
    if (rc != CX_OK && rc != CX_ECORRUPT && rc != CX_EVERSION)
        abort();
    if (rc != CX_OK && why[0] == 0)
        abort(); /* a refusal always says why */
    if (rc == CX_OK &&
        (parse(text, size, b, why, sizeof why) != CX_OK ||
         memcmp(a, b, msz) != 0))
        abort();
    /* Random bytes rarely match a checksum: also parse the input as the
     * body of a manifest with its checksum line made to match, so the
     * line parser sees everything. */
    size_t body = size;
    while (body > 0 && text[body - 1] != '\n')
        body--; /* drop a last line without a newline (or the old sum) */
    if (body > 0) {
        size_t cut = body - 1;
        while (cut > 0 && text[cut - 1] != '\n')
            cut--;
        if (body - cut >= 9 && memcmp(text + cut, "checksum ", 9) == 0)
            body = cut;
    }
    char *m = malloc(body + 32);
    if (m) {
        memcpy(m, text, body);
        int n = snprintf(m + body, 32, "checksum %016llx\n",
                         (unsigned long long)cx__checksum(m, body));
        rc = parse(m, body + (size_t)n, a, why, sizeof why);
        if (rc != CX_OK && rc != CX_ECORRUPT && rc != CX_EVERSION)
            abort();
        if (rc != CX_OK && why[0] == 0)
            abort();
        free(m);
    }
    free(a);
    free(b);
    free(text);
}
