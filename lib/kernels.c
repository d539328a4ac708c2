/* kernels.c -- the few inner loops that decide training and serving speed.
 * AVX2+FMA versions chosen at run time when the CPU has them, portable C
 * otherwise; both compute the same sums in the same order per lane. */
#include "internal.h"

#include <math.h>
#include <string.h>

cx__kernels cx__k;

/* ===================================================================== */
/* Portable C                                                            */
/* ===================================================================== */

static float dot_c(const float *a, const float *b, int k)
{
    float s = 0;
    for (int i = 0; i < k; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_c(float a, const float *x, float *y, int k)
{
    for (int i = 0; i < k; i++)
        y[i] += a * x[i];
}

static void symv_c(const float *G, const float *x, float *out, int k)
{
    for (int i = 0; i < k; i++)
        out[i] = 0;
    for (int j = 0; j < k; j++)
        axpy_c(x[j], G + (size_t)j * k, out, k);
}

static void scores_c(const float *rows, const float *x, int k, size_t n,
                     const float *scale, float *out)
{
    for (size_t j = 0; j < n; j++) {
        float s = dot_c(rows + j * (size_t)k, x, k);
        out[j] = scale ? s * scale[j] : s;
    }
}

static void gdots_c(const float *F, const uint32_t *idx, size_t n, int k,
                    const float *x, float *out)
{
    for (size_t j = 0; j < n; j++)
        out[j] = dot_c(F + (size_t)idx[j] * k, x, k);
}

static void gaxpys_c(const float *F, const uint32_t *idx, const float *coef,
                     size_t n, int k, float *out)
{
    for (size_t j = 0; j < n; j++)
        axpy_c(coef[j], F + (size_t)idx[j] * k, out, k);
}

static void fold_update_c(double *A, double *b, int k, const float *const *y,
                          const float *c, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        const float *v = y[j];
        double ca = c[j] < 0 ? -(double)c[j] : (double)c[j], w = ca - 1;
        if (c[j] > 0)
            for (int d = 0; d < k; d++)
                b[d] += (double)c[j] * v[d];
        if (w == 0)
            continue;
        for (int a = 0; a < k; a++) {
            double s = w * v[a];
            double *row = A + (size_t)a * k;
            for (int d = a; d < k; d++)
                row[d] += s * v[d];
        }
    }
}

/* U x = z for the upper triangular U in A (row-major), x into b: a dot
 * per row, short enough that both kernel sets share it. */
static void back_substitute(const double *A, double *b, int k)
{
    for (int i = k - 1; i >= 0; i--) {
        const double *ri = A + (size_t)i * k;
        double s = b[i];
        for (int c = i + 1; c < k; c++)
            s -= ri[c] * b[c];
        b[i] = s / ri[i];
    }
}

/* Right-looking Cholesky A = U'U on the upper triangle, row by row, then
 * U'z = b and U x = z; every inner loop runs along a row. */
static int chol_solve_c(double *A, double *b, int k)
{
    for (int j = 0; j < k; j++) {
        double *rj = A + (size_t)j * k;
        if (!(rj[j] > 0))
            return -1;
        double d = sqrt(rj[j]), inv = 1.0 / d;
        rj[j] = d;
        for (int c = j + 1; c < k; c++)
            rj[c] *= inv;
        for (int i = j + 1; i < k; i++) {
            double a = rj[i], *ri = A + (size_t)i * k;
            for (int c = i; c < k; c++)
                ri[c] -= a * rj[c];
        }
    }
    for (int j = 0; j < k; j++) {
        const double *rj = A + (size_t)j * k;
        b[j] /= rj[j];
        for (int c = j + 1; c < k; c++)
            b[c] -= rj[c] * b[j];
    }
    back_substitute(A, b, k);
    return 0;
}

static size_t above_c(const float *v, size_t n, float lim, uint32_t *out)
{
    size_t c = 0;
    for (size_t j = 0; j < n; j++)
        if (v[j] > lim)
            out[c++] = (uint32_t)j;
    return c;
}

static size_t above_in_c(const float *v, const uint32_t *cat, size_t n,
                         float lim, uint32_t c, uint32_t *out)
{
    size_t m = 0;
    for (size_t j = 0; j < n; j++)
        if (cat[j] == c && v[j] > lim)
            out[m++] = (uint32_t)j;
    return m;
}

static void scores_qn_c(const uint8_t *Yq, int kq, size_t b0, size_t nb,
                        size_t nq, const cx__qn *qn)
{
    for (size_t q = 0; q < nq; q++)
        for (size_t b = 0; b < nb; b++)
            for (int j = 0; j < 8; j++) {
                size_t i = (b0 + b) * 8 + (size_t)j;
                int32_t acc = 0;
                for (int d = 0; d < kq; d++)
                    acc += cx__q4_get(Yq, kq, i, d) * qn[q].xq[d];
                float v = (float)acc * qn[q].qs * qn[q].scale[i];
                if (qn[q].bias)
                    v = fmaf(qn[q].bias_w, qn[q].bias[i], v);
                qn[q].out[b * 8 + (size_t)j] = v;
            }
}

/* ===================================================================== */
/* AVX2 + FMA                                                            */
/* ===================================================================== */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static float dot_avx2(const float *a, const float *b, int k)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= k; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                             s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= k; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                             s0);
    float s = hsum(_mm256_add_ps(s0, s1));
    for (; i < k; i++)
        s += a[i] * b[i];
    return s;
}

AVX2 static void axpy_avx2(float a, const float *x, float *y, int k)
{
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= k; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i),
                                                _mm256_loadu_ps(y + i)));
    for (; i < k; i++)
        y[i] += a * x[i];
}

/* out = G x, G symmetric: out is a sum of rows of G weighted by x, which
 * streams G row by row and keeps up to 64 outputs in registers. */
AVX2 static void symv_avx2(const float *G, const float *x, float *out, int k)
{
    int c0 = 0;
    for (; c0 + 64 <= k; c0 += 64) {
        __m256 a[8];
        #pragma GCC unroll 8
        for (int c = 0; c < 8; c++)
            a[c] = _mm256_setzero_ps();
        for (int j = 0; j < k; j++) {
            __m256 xb = _mm256_set1_ps(x[j]);
            const float *g = G + (size_t)j * k + c0;
            #pragma GCC unroll 8
            for (int c = 0; c < 8; c++)
                a[c] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(g + 8 * c), a[c]);
        }
        #pragma GCC unroll 8
        for (int c = 0; c < 8; c++)
            _mm256_storeu_ps(out + c0 + 8 * c, a[c]);
    }
    for (; c0 + 8 <= k; c0 += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int j = 0; j < k; j++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(x[j]),
                                _mm256_loadu_ps(G + (size_t)j * k + c0), a);
        _mm256_storeu_ps(out + c0, a);
    }
    for (; c0 < k; c0++) {
        float s = 0;
        for (int j = 0; j < k; j++)
            s += x[j] * G[(size_t)j * k + c0];
        out[c0] = s;
    }
}

/* Eight horizontal sums at once: lane j of the result = sum of a[j]. */
AVX2 static inline __m256 hsum8(const __m256 *a)
{
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    t0 = _mm256_hadd_ps(t0, t1);
    t2 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(t0, t2, 0x20),
                         _mm256_permute2f128_ps(t0, t2, 0x31));
}

/* Dot products of eight rows with x, as one vector.  Every path that
 * scores items (scan, gathered rows, re-ranking) goes through here, so the
 * same item gets the bit-identical score whichever path computed it. */
AVX2 static inline __m256 dot8(const float *const *r, const float *x, int k)
{
    int k8 = k & ~7;
    __m256 a[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        a[t] = _mm256_setzero_ps();
    for (int d = 0; d < k8; d += 8) {
        __m256 xv = _mm256_loadu_ps(x + d);
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++)
            a[t] = _mm256_fmadd_ps(_mm256_loadu_ps(r[t] + d), xv, a[t]);
    }
    __m256 s = hsum8(a);
    if (k8 < k) {
        float tail[8];
        for (int t = 0; t < 8; t++) {
            float v = 0;
            for (int d = k8; d < k; d++)
                v += r[t][d] * x[d];
            tail[t] = v;
        }
        s = _mm256_add_ps(s, _mm256_loadu_ps(tail));
    }
    return s;
}

/* A last group of fewer than 8 rows repeats its last row, so it is
 * scored exactly like a full group. */
AVX2 static void scores_avx2(const float *rows, const float *x, int k,
                             size_t n, const float *scale, float *out)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float *r[8];
#pragma GCC unroll 8
        for (size_t t = 0; t < 8; t++)
            r[t] = rows + (j + t) * (size_t)k;
        __m256 s = dot8(r, x, k);
        if (scale)
            s = _mm256_mul_ps(s, _mm256_loadu_ps(scale + j));
        _mm256_storeu_ps(out + j, s);
    }
    if (j < n) {
        const float *r[8];
        size_t m = n - j;
        for (size_t t = 0; t < 8; t++)
            r[t] = rows + (j + (t < m ? t : m - 1)) * (size_t)k;
        float v[8];
        _mm256_storeu_ps(v, dot8(r, x, k));
        for (size_t t = 0; t < m; t++)
            out[j + t] = scale ? v[t] * scale[j + t] : v[t];
    }
}

static inline void prefetch_row(const float *r, int k)
{
    for (int d = 0; d < k; d += 16)
        __builtin_prefetch(r + d);
}

/* Eight gathered rows at a time: eight loads in flight and one batched
 * horizontal sum, where a dot per row would serialise on its own sum. */
AVX2 static void gdots_avx2(const float *F, const uint32_t *idx, size_t n,
                            int k, const float *x, float *out)
{
    for (size_t t = 8; t < 16 && t < n; t++)
        prefetch_row(F + (size_t)idx[t] * k, k);
    for (size_t j = 0; j < n; j += 8) {
        const float *r[8];
        size_t m = n - j < 8 ? n - j : 8;
        for (size_t t = 0; t < 8; t++) {
            r[t] = F + (size_t)idx[j + (t < m ? t : m - 1)] * k;
            if (j + 16 + t < n)
                prefetch_row(F + (size_t)idx[j + 16 + t] * k, k);
        }
        __m256 s = dot8(r, x, k);
        if (m == 8) {
            _mm256_storeu_ps(out + j, s);
        } else {
            float v[8];
            _mm256_storeu_ps(v, s);
            memcpy(out + j, v, m * sizeof *v);
        }
    }
}

/* Indexes j < n with v[j] > lim, eight compares at a time. */
AVX2 static size_t above_avx2(const float *v, size_t n, float lim,
                              uint32_t *out)
{
    __m256 l = _mm256_set1_ps(lim);
    size_t c = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        unsigned m = (unsigned)_mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_loadu_ps(v + j), l, _CMP_GT_OQ));
        while (m) {
            out[c++] = (uint32_t)j + (uint32_t)__builtin_ctz(m);
            m &= m - 1;
        }
    }
    for (; j < n; j++)
        if (v[j] > lim)
            out[c++] = (uint32_t)j;
    return c;
}

/* The same, of the items in category c: a category row's share of a
 * customer's scores, without a branch per item. */
AVX2 static size_t above_in_avx2(const float *v, const uint32_t *cat,
                                 size_t n, float lim, uint32_t c,
                                 uint32_t *out)
{
    __m256 l = _mm256_set1_ps(lim);
    __m256i cv = _mm256_set1_epi32((int32_t)c);
    size_t m = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 gt = _mm256_cmp_ps(_mm256_loadu_ps(v + j), l, _CMP_GT_OQ);
        __m256i in = _mm256_cmpeq_epi32(
            _mm256_loadu_si256((const __m256i *)(cat + j)), cv);
        unsigned k = (unsigned)_mm256_movemask_ps(
            _mm256_and_ps(gt, _mm256_castsi256_ps(in)));
        while (k) {
            out[m++] = (uint32_t)j + (uint32_t)__builtin_ctz(k);
            k &= k - 1;
        }
    }
    for (; j < n; j++)
        if (cat[j] == c && v[j] > lim)
            out[m++] = (uint32_t)j;
    return m;
}

/* out += sum coef[j] F[idx[j]]: up to 64 outputs stay in registers while
 * the rows stream past. */
AVX2 static void gaxpys_avx2(const float *F, const uint32_t *idx,
                             const float *coef, size_t n, int k, float *out)
{
    int c0 = 0;
    for (; c0 + 64 <= k; c0 += 64) {
        __m256 a[8];
        #pragma GCC unroll 8
        for (int c = 0; c < 8; c++)
            a[c] = _mm256_loadu_ps(out + c0 + 8 * c);
        for (size_t j = 0; j < n; j++) {
            const float *r = F + (size_t)idx[j] * k + c0;
            __m256 cb = _mm256_set1_ps(coef[j]);
            #pragma GCC unroll 8
            for (int c = 0; c < 8; c++)
                a[c] = _mm256_fmadd_ps(cb, _mm256_loadu_ps(r + 8 * c), a[c]);
        }
        #pragma GCC unroll 8
        for (int c = 0; c < 8; c++)
            _mm256_storeu_ps(out + c0 + 8 * c, a[c]);
    }
    for (; c0 + 8 <= k; c0 += 8) {
        __m256 a = _mm256_loadu_ps(out + c0);
        for (size_t j = 0; j < n; j++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(coef[j]),
                                _mm256_loadu_ps(F + (size_t)idx[j] * k + c0),
                                a);
        _mm256_storeu_ps(out + c0, a);
    }
    for (; c0 < k; c0++) {
        float s = out[c0];
        for (size_t j = 0; j < n; j++)
            s += coef[j] * F[(size_t)idx[j] * k + c0];
        out[c0] = s;
    }
}

/* 4-bit scan, several queries over one read of the factors: each 32-byte
 * load holds 8 dimensions of 8 items (cx__q4_at), its low nibbles 4 of
 * them and its high nibbles the other 4, and is multiplied by every
 * query's 8 dimensions, one accumulator per query.  maddubs multiplies
 * unsigned by signed bytes: the nibbles are the codes + 8, and each
 * accumulator starts at minus 8 times its query's sum, which takes the
 * offset back out exactly.  A maddubs pair sum is at most 2 * 15 * 127,
 * so the products of four loads (32 dimensions) add up in 16 bits before
 * one madd widens them.  Against the int8 copy this replaced (64 bytes
 * an item at 64 factors, one maddubs per 4 dimensions): 0.66x the
 * kernel's time at 20,000 and 100,000 items, one query.  NQ is a
 * constant in each caller, so the loops over the queries unroll; the
 * query vectors are read from L1 beside the factors. */
/* p[q] += query q's products with run c (16 bits: at most 4 runs). */
AVX2 static inline __attribute__((always_inline)) void
q4_run(const __m256i *run, __m256i low, size_t NQ,
       const __m256i (*qv)[2][128], int c, __m256i *p)
{
    __m256i v = _mm256_loadu_si256(run);
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
#pragma GCC unroll 4
    for (size_t q = 0; q < NQ; q++)
        p[q] = _mm256_add_epi16(
            p[q], _mm256_add_epi16(_mm256_maddubs_epi16(lo, qv[q][0][c]),
                                   _mm256_maddubs_epi16(hi, qv[q][1][c])));
}

AVX2 static inline __attribute__((always_inline)) void
scores_qn_blocks(const uint8_t *Yq, int kq, size_t b0, size_t nb,
                 size_t NQ, const __m256i (*qv)[2][128], const int32_t *corr,
                 const cx__qn *qn)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i low = _mm256_set1_epi8(0x0f);
    int runs = kq / 8;
    for (size_t b = 0; b < nb; b++) {
        const __m256i *blk =
            (const __m256i *)(Yq + (b0 + b) * (size_t)kq * 4);
        __m256i acc[CX__QN];
#pragma GCC unroll 4
        for (size_t q = 0; q < NQ; q++)
            acc[q] = _mm256_set1_epi32(-corr[q]);
        for (int c0 = 0; c0 < runs; c0 += 4) {
            __m256i p[CX__QN];
#pragma GCC unroll 4
            for (size_t q = 0; q < NQ; q++)
                p[q] = _mm256_setzero_si256();
            if (c0 + 4 <= runs) {
#pragma GCC unroll 4
                for (int c = c0; c < c0 + 4; c++)
                    q4_run(blk + c, low, NQ, qv, c, p);
            } else {
                for (int c = c0; c < runs; c++)
                    q4_run(blk + c, low, NQ, qv, c, p);
            }
#pragma GCC unroll 4
            for (size_t q = 0; q < NQ; q++)
                acc[q] = _mm256_add_epi32(acc[q], _mm256_madd_epi16(p[q], ones));
        }
        size_t i = (b0 + b) * 8;
#pragma GCC unroll 4
        for (size_t q = 0; q < NQ; q++) {
            __m256 f = _mm256_cvtepi32_ps(acc[q]);
            f = _mm256_mul_ps(_mm256_mul_ps(f, _mm256_set1_ps(qn[q].qs)),
                              _mm256_loadu_ps(qn[q].scale + i));
            if (qn[q].bias) /* as fmaf in the C kernel: one rounding */
                f = _mm256_fmadd_ps(_mm256_set1_ps(qn[q].bias_w),
                                    _mm256_loadu_ps(qn[q].bias + i), f);
            _mm256_storeu_ps(qn[q].out + b * 8, f);
        }
    }
}

AVX2 static void scores_qn_avx2(const uint8_t *Yq, int kq, size_t b0,
                                size_t nb, size_t nq, const cx__qn *qn)
{
    int runs = kq / 8;
    __m256i qv[CX__QN][2][128];
    int32_t corr[CX__QN];
    if (runs > 128 || nq > CX__QN || nq == 0) {
        scores_qn_c(Yq, kq, b0, nb, nq, qn);
        return;
    }
    for (size_t q = 0; q < nq; q++) {
        corr[q] = 0;
        for (int d = 0; d < kq; d++)
            corr[q] += 8 * qn[q].xq[d];
        for (int c = 0; c < runs; c++) {
            int32_t w;
            memcpy(&w, qn[q].xq + 8 * c, 4);
            qv[q][0][c] = _mm256_set1_epi32(w);
            memcpy(&w, qn[q].xq + 8 * c + 4, 4);
            qv[q][1][c] = _mm256_set1_epi32(w);
        }
    }
    if (nq == 1)
        scores_qn_blocks(Yq, kq, b0, nb, 1, qv, corr, qn);
    else if (nq == 2)
        scores_qn_blocks(Yq, kq, b0, nb, 2, qv, corr, qn);
    else if (nq == 3)
        scores_qn_blocks(Yq, kq, b0, nb, 3, qv, corr, qn);
    else
        scores_qn_blocks(Yq, kq, b0, nb, 4, qv, corr, qn);
}

/* Fold-in rank updates.  The sum of the rank-one terms is accumulated in
 * float, eight lanes wide and four pairs per pass over the upper triangle
 * (each row of the sum is loaded and stored once per four FMAs), then
 * added to the double A: the Gram matrix, which carries the conditioning,
 * stays in double. */
AVX2 static void fold_update_avx2(double *A, double *b, int k,
                                  const float *const *y, const float *c,
                                  size_t n)
{
    enum { KMAX = 128 };
    if (k > KMAX) {
        fold_update_c(A, b, k, y, c, n);
        return;
    }
    float D[KMAX * KMAX], ys[4][KMAX + 8];
    int kp = (k + 7) & ~7; /* rows of D padded to whole vectors */
    memset(D, 0, (size_t)k * kp * sizeof *D);
    size_t j = 0;
    while (j < n) {
        int m = 0;
        float w[4];
        for (; j < n && m < 4; j++) {
            double cj = c[j], ca = cj < 0 ? -cj : cj;
            const float *v = y[j];
            if (cj > 0)
                for (int d = 0; d < k; d++)
                    b[d] += cj * v[d];
            if (ca == 1)
                continue;
            w[m] = (float)(ca - 1);
            memcpy(ys[m], v, (size_t)k * sizeof *v);
            memset(ys[m] + k, 0, (size_t)(kp - k) * sizeof *v);
            m++;
        }
        if (!m)
            break;
        for (int t = m; t < 4; t++) {
            w[t] = 0;
            memset(ys[t], 0, (size_t)kp * sizeof *ys[t]);
        }
        for (int a = 0; a < k; a++) {
            float *row = D + (size_t)a * kp;
            __m256 s0 = _mm256_set1_ps(w[0] * ys[0][a]);
            __m256 s1 = _mm256_set1_ps(w[1] * ys[1][a]);
            __m256 s2 = _mm256_set1_ps(w[2] * ys[2][a]);
            __m256 s3 = _mm256_set1_ps(w[3] * ys[3][a]);
            for (int d = a & ~7; d < kp; d += 8) {
                __m256 r = _mm256_loadu_ps(row + d);
                r = _mm256_fmadd_ps(s0, _mm256_loadu_ps(ys[0] + d), r);
                r = _mm256_fmadd_ps(s1, _mm256_loadu_ps(ys[1] + d), r);
                r = _mm256_fmadd_ps(s2, _mm256_loadu_ps(ys[2] + d), r);
                r = _mm256_fmadd_ps(s3, _mm256_loadu_ps(ys[3] + d), r);
                _mm256_storeu_ps(row + d, r);
            }
        }
    }
    for (int a = 0; a < k; a++) {
        double *ra = A + (size_t)a * k;
        const float *da = D + (size_t)a * kp;
        for (int d = a; d < k; d++)
            ra[d] += da[d];
    }
}

AVX2 static int chol_solve_avx2(double *A, double *b, int k)
{
    for (int j = 0; j < k; j++) {
        double *rj = A + (size_t)j * k;
        if (!(rj[j] > 0))
            return -1;
        double d = sqrt(rj[j]), inv = 1.0 / d;
        rj[j] = d;
        for (int c = j + 1; c < k; c++)
            rj[c] *= inv;
        for (int i = j + 1; i < k; i++) {
            double *ri = A + (size_t)i * k;
            __m256d a = _mm256_set1_pd(-rj[i]);
            int c = i;
            for (; c + 4 <= k; c += 4)
                _mm256_storeu_pd(ri + c,
                                 _mm256_fmadd_pd(a, _mm256_loadu_pd(rj + c),
                                                 _mm256_loadu_pd(ri + c)));
            for (; c < k; c++)
                ri[c] -= rj[i] * rj[c];
        }
    }
    for (int j = 0; j < k; j++) {
        const double *rj = A + (size_t)j * k;
        b[j] /= rj[j];
        __m256d z = _mm256_set1_pd(-b[j]);
        int c = j + 1;
        for (; c + 4 <= k; c += 4)
            _mm256_storeu_pd(b + c, _mm256_fmadd_pd(z, _mm256_loadu_pd(rj + c),
                                                    _mm256_loadu_pd(b + c)));
        for (; c < k; c++)
            b[c] -= rj[c] * b[j];
    }
    back_substitute(A, b, k);
    return 0;
}

#endif

/* ===================================================================== */
/* Dispatch                                                              */
/* ===================================================================== */

static void pick(void)
{
    cx__kernels k = {.dot = dot_c,
                     .axpy = axpy_c,
                     .symv = symv_c,
                     .scores = scores_c,
                     .gdots = gdots_c,
                     .gaxpys = gaxpys_c,
                     .scores_qn = scores_qn_c,
                     .above = above_c,
                     .above_in = above_in_c,
                     .fold_update = fold_update_c,
                     .chol_solve = chol_solve_c,
                     .name = "portable C"};
#if defined(__x86_64__) && defined(__GNUC__)
    const char *force = getenv("CX_KERNELS");
    __builtin_cpu_init();
    if (!(force && strcmp(force, "c") == 0) &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k.dot = dot_avx2;
        k.axpy = axpy_avx2;
        k.symv = symv_avx2;
        k.scores = scores_avx2;
        k.gdots = gdots_avx2;
        k.gaxpys = gaxpys_avx2;
        k.above = above_avx2;
        k.above_in = above_in_avx2;
        k.scores_qn = scores_qn_avx2;
        k.fold_update = fold_update_avx2;
        k.chol_solve = chol_solve_avx2;
        k.name = "avx2+fma";
    }
#endif
    cx__k = k;
}

void cx__kernels_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pick);
}
