/* test_kernels.c -- the serving scan's kernels (cx__k, AVX2 or portable
 * as the machine picks; `make check-c` runs this file again with
 * CX_KERNELS=c) against slow, obviously correct loops, on small random
 * inputs of every length around the vector width. */
#include "testutil.h"

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A float in [-1, 1), with exact ties now and then. */
static float rfloat(uint64_t *s)
{
    uint64_t r = rnd(s);
    if (r % 7 == 0)
        return 0.25f;
    return (float)((double)(r >> 11) * 0x1p-52 - 1.0);
}

static void test_above(void **state)
{
    (void)state;
    cx__kernels_init();
    uint64_t s = 42;
    float v[67];
    uint32_t cat[67], got[67];
    for (size_t n = 0; n <= 67; n++) {
        for (int round = 0; round < 20; round++) {
            for (size_t j = 0; j < n; j++) {
                v[j] = rfloat(&s);
                cat[j] = (uint32_t)(rnd(&s) % 3);
            }
            float lim = round % 5 == 0 ? -INFINITY
                      : round % 5 == 1 ? 0.25f
                                       : rfloat(&s);
            uint32_t c = (uint32_t)(round % 3);
            size_t m = cx__k.above(v, n, lim, got), want = 0;
            for (size_t j = 0; j < n; j++)
                if (v[j] > lim) {
                    assert_true(want < m);
                    assert_int_equal(got[want++], j);
                }
            assert_int_equal(m, want);
            m = cx__k.above_in(v, cat, n, lim, c, got);
            want = 0;
            for (size_t j = 0; j < n; j++)
                if (cat[j] == c && v[j] > lim) {
                    assert_true(want < m);
                    assert_int_equal(got[want++], j);
                }
            assert_int_equal(m, want);
        }
    }
}

/* Every query count 1..CX__QN, each query with its own vector, factor
 * and scales, odd queries with a bias term, every start and length of a
 * run of blocks, factor counts 8..72 (a last group of fewer than four
 * runs of 8 dimensions included); random codes, then only the extremes
 * (every product at the largest the kernel's 16-bit sums must hold,
 * both signs).  Each score is the plain loop's, to the bit, and the
 * codes read back as written. */
static void test_scores_qn(void **state)
{
    (void)state;
    cx__kernels_init();
    uint64_t s = 7;
    enum { NB = 19, N = NB * 8 };
    for (int round = 0; round < 2; round++)
    for (int kq = 8; kq <= 72; kq += 8) {
        uint8_t *Yq = malloc(N * (size_t)kq / 2 + 32);
        int8_t xq[CX__QN][72];
        float scale[CX__QN][N], bias[CX__QN][N], out[CX__QN][N];
        cx__qn qn[CX__QN];
        assert_non_null(Yq);
        memset(Yq, 0x88, N * (size_t)kq / 2 + 32);
        for (size_t i = 0; i < N; i++)
            for (int d = 0; d < kq; d++) {
                /* the extremes included: |y| reaches CX__YMAX */
                int c = round ? (i % 2 ? CX__YMAX : -CX__YMAX)
                              : (int)(rnd(&s) % (2 * CX__YMAX + 1)) - CX__YMAX;
                cx__q4_put(Yq, kq, i, d, c);
                assert_int_equal(cx__q4_get(Yq, kq, i, d), c);
            }
        for (int q = 0; q < CX__QN; q++) {
            for (size_t i = 0; i < N; i++) {
                scale[q][i] = (float)(rnd(&s) % 1000 + 1) * 1e-3f;
                bias[q][i] = (float)(rnd(&s) % 1000) * 1e-3f;
            }
            /* |q| reaches CX__QMAX, with one sign in the extremes round:
             * the 16-bit sums reach their largest */
            for (int d = 0; d < kq; d++)
                xq[q][d] = (int8_t)(round || (d + q) % 9 == 0
                                        ? ((round ? q : d / 8 + q) % 2 ? CX__QMAX
                                                           : -CX__QMAX)
                                        : (int)(rnd(&s) % (2 * CX__QMAX + 1)) -
                                              CX__QMAX);
            qn[q] = (cx__qn){xq[q], 0.0123f * (float)(q + 1), scale[q],
                             q % 2 ? bias[q] : NULL, 0.25f * (float)q,
                             out[q]};
        }
        for (size_t nq = 1; nq <= CX__QN; nq++)
            for (size_t b0 = 0; b0 < NB; b0++)
                for (size_t m = 1; b0 + m <= NB; m++) {
                    cx__k.scores_qn(Yq, kq, b0, m, nq, qn);
                    for (size_t q = 0; q < nq; q++)
                        for (size_t j = 0; j < m * 8; j++) {
                            size_t i = b0 * 8 + j;
                            int32_t acc = 0;
                            for (int d = 0; d < kq; d++)
                                acc += cx__q4_get(Yq, kq, i, d) * xq[q][d];
                            float v = (float)acc * qn[q].qs * scale[q][i];
                            if (qn[q].bias)
                                v = fmaf(qn[q].bias_w, bias[q][i], v);
                            assert_true(out[q][j] == v);
                        }
                }
        free(Yq);
    }
}

static int by_rank(const void *a, const void *b)
{
    const cx__hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

/* cx__select_best keeps the same hits as a full sort by (score
 * descending, item ascending), ties and signed zeros included. */
static void test_select_best(void **state)
{
    (void)state;
    uint64_t s = 99;
    static const float pool[] = {0.5f, 0.25f, 0.0f, -0.0f, -0.25f, 1e-30f,
                                 -3.0f, 7.0f};
    cx__hit h[300], want[300];
    for (size_t n = 2; n <= 300; n += n < 20 ? 1 : 37) {
        for (int round = 0; round < 20; round++) {
            for (size_t j = 0; j < n; j++) {
                uint64_t r = rnd(&s);
                h[j].score = round % 2 ? pool[r % 8] : rfloat(&s);
                h[j].item = (uint32_t)(rnd(&s) % 100000) * 300 + (uint32_t)j;
            }
            size_t keep = 1 + (size_t)(rnd(&s) % (n - 1));
            memcpy(want, h, n * sizeof *h);
            qsort(want, n, sizeof *want, by_rank);
            float lim = cx__select_best(h, n, keep);
            qsort(h, keep, sizeof *h, by_rank);
            for (size_t j = 0; j < keep; j++) {
                assert_int_equal(h[j].item, want[j].item);
                assert_true(h[j].score == want[j].score);
            }
            assert_true(lim == want[keep - 1].score);
            /* the rest are the others, unchanged */
            qsort(h + keep, n - keep, sizeof *h, by_rank);
            for (size_t j = keep; j < n; j++)
                assert_int_equal(h[j].item, want[j].item);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_above),
        cmocka_unit_test(test_scores_qn),
        cmocka_unit_test(test_select_best),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
