/* fuzz_csv.c -- libFuzzer target for the CSV reader in tools/csvread.c.
 * The input goes to a memfd that csv_open reads through /proc/self/fd,
 * so the reader runs exactly as on a file; then every record is read. */
#include "csvread.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_csv", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    for (size_t done = 0; done < size;) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0)
            abort();
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    csv_reader *r;
    if (csv_open(&r, path) != 0)
        abort();
    close(fd);                  /* the reader opened a file of its own */
    char **fields;
    long last = 0;
    size_t calls = 0;
    int n;
    while ((n = csv_next(r, &fields)) != 0) {
        /* Every record, good or bad, takes at least one byte. */
        if (++calls > size)
            abort();
        if (csv_line(r) < last || csv_line(r) < 1)
            abort();
        last = csv_line(r);
        if (n < 0) {
            if (csv_error(r)[0] == '\0')
                abort();
            continue;
        }
        if (fields[n] != NULL)
            abort();
        for (int i = 0; i < n; i++)
            if (strlen(fields[i]) > 64 * 1024)
                abort();
    }
    csv_close(r);
    return 0;
}
