/* benchutil.h -- timing, percentiles and JSON output for bench/ programs.
 * Benchmarks print figures and write JSON; they never pass or fail. */
#ifndef CX_BENCHUTIL_H
#define CX_BENCHUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p-th percentile (0..100) of v[n]; sorts v. */
static inline double percentile(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static inline double peak_rss_mb(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_maxrss / 1024.0;
}

/* A flat JSON object written as figures are produced. */
typedef struct bjson {
    FILE *f;
    int first;
} bjson;

static inline void bjson_open(bjson *j, const char *path)
{
    j->f = fopen(path, "w");
    j->first = 1;
    if (j->f)
        fputs("{", j->f);
}

static inline void bjson_num(bjson *j, const char *key, double v)
{
    if (j->f)
        fprintf(j->f, "%s\n  \"%s\": %.6g", j->first ? "" : ",", key, v);
    j->first = 0;
}

static inline void bjson_str(bjson *j, const char *key, const char *v)
{
    if (j->f)
        fprintf(j->f, "%s\n  \"%s\": \"%s\"", j->first ? "" : ",", key, v);
    j->first = 0;
}

static inline void bjson_close(bjson *j)
{
    if (j->f) {
        fputs("\n}\n", j->f);
        fclose(j->f);
    }
}

/* Small deterministic PRNG for workloads. */
static inline unsigned long long bench_rand(unsigned long long *s)
{
    unsigned long long z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
