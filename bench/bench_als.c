/* bench_als.c -- ALS training speed and objective on the reference shape.
 * 50,000 customers x 20,000 items x 2,000,000 random nonzeros, 64 factors,
 * lambda 0.05, 15 iterations: the setting of the implicit 0.7.3 figures. */
#include "benchutil.h"
#include "cxengine.h"

#include <stdint.h>

/* implicit 0.7.3 on this machine kind (from the issue): seconds/iteration */
#define REF_CG_1T 0.72
#define REF_CG_2T 0.38
#define REF_CHOL 3.8
#define TARGET_CG_1T 0.36
#define TARGET_CG_2T 0.20
#define TARGET_CHOL 1.0

static size_t NU = 50000, NI = 20000, NNZ = 2000000;

static cx_engine *build(void)
{
    cx_engine *e;
    if (cx_open(&e, NULL, 0))
        exit(1);
    char(*cid)[24] = malloc(NU * 24), (*iid)[24] = malloc(NI * 24);
    for (size_t i = 0; i < NU; i++)
        snprintf(cid[i], 24, "c%zu", i);
    for (size_t i = 0; i < NI; i++)
        snprintf(iid[i], 24, "i%zu", i);
    enum { B = 10000 };
    static const char *cs[B], *is[B];
    static int ty[B];
    unsigned long long s = 1;
    double t = now_s();
    for (size_t done = 0; done < NNZ; done += B) {
        for (size_t j = 0; j < B; j++) {
            cs[j] = cid[bench_rand(&s) % NU];
            is[j] = iid[bench_rand(&s) % NI];
            ty[j] = 0;
        }
        if (cx_ingest(e, B, cs, is, ty, NULL, NULL, NULL)) {
            fprintf(stderr, "ingest: %s\n", cx_errmsg(e));
            exit(1);
        }
    }
    t = now_s() - t;
    printf("ingest: %zu signals in %.2f s = %.0f signals/s (in memory)\n",
           NNZ, t, (double)NNZ / t);
    free(cid);
    free(iid);
    return e;
}

static double last_loss;
static int keep_loss(void *u, int it, int n, double loss)
{
    (void)u, (void)it, (void)n;
    last_loss = loss;
    return 0;
}

/* Seconds for `iters` iterations, and the final loss. */
static double train(cx_engine *e, int solver, int threads, int iters,
                    double *loss)
{
    cx_set_option(e, CX_OPT_SOLVER, solver);
    cx_set_option(e, CX_OPT_THREADS, threads);
    cx_set_option(e, CX_OPT_ITERATIONS, iters);
    double t = now_s();
    if (cx_train(e, NULL, NULL)) {
        fprintf(stderr, "train: %s\n", cx_errmsg(e));
        exit(1);
    }
    t = now_s() - t;
    if (loss) {
        cx_set_option(e, CX_OPT_ITERATIONS, iters);
        cx_train(e, keep_loss, NULL); /* same seed: same factors */
        *loss = last_loss;
    }
    return t;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (quick) {
        NU /= 10, NI /= 10, NNZ /= 10;
    }
    bjson j;
    bjson_open(&j, "build/bench/als.json");
    printf("== ALS training: %zu customers x %zu items x %zu nonzeros, "
           "64 factors, lambda 0.05, 15 iterations\n", NU, NI, NNZ);
    cx_engine *e = build();
    cx_set_option(e, CX_OPT_FACTORS, 64);
    cx_set_option(e, CX_OPT_REGULARIZATION, 0.05);
    struct { const char *name; int solver, threads; double ref, target; } run[] = {
        {"cg_1t", CX_SOLVER_CG, 1, REF_CG_1T, TARGET_CG_1T},
        {"cg_2t", CX_SOLVER_CG, 2, REF_CG_2T, TARGET_CG_2T},
        {"cholesky_1t", CX_SOLVER_CHOLESKY, 1, REF_CHOL, TARGET_CHOL},
        {"cholesky_2t", CX_SOLVER_CHOLESKY, 2, REF_CHOL, TARGET_CHOL},
    };
    double loss[4];
    printf("%-12s %10s %10s %12s %10s %10s %12s\n", "solver", "s/iter",
           "+setup", "implicit", "target", "met", "final loss");
    for (int r = 0; r < 4; r++) {
        double t1 = train(e, run[r].solver, run[r].threads, 1, NULL);
        double t15 = train(e, run[r].solver, run[r].threads, 15, &loss[r]);
        double per = (t15 - t1) / 14, all = t15 / 15;
        printf("%-12s %10.3f %10.3f %12.2f %10.2f %10s %12.6f\n",
               run[r].name, per, all, run[r].ref, run[r].target,
               all <= run[r].target ? "yes" : "no", loss[r]);
        char key[64];
        snprintf(key, sizeof key, "%s_s_per_iter", run[r].name);
        bjson_num(&j, key, per);
        snprintf(key, sizeof key, "%s_s_per_iter_with_setup", run[r].name);
        bjson_num(&j, key, all);
        snprintf(key, sizeof key, "%s_loss", run[r].name);
        bjson_num(&j, key, loss[r]);
    }
    printf("CG loss vs exact (Cholesky) loss after 15 iterations: %+.3f%%\n",
           100.0 * (loss[0] - loss[2]) / loss[2]);
    bjson_num(&j, "cg_vs_cholesky_loss_pct", 100.0 * (loss[0] - loss[2]) / loss[2]);
    int64_t mem;
    cx_stat(e, CX_STAT_MEMORY, &mem);
    printf("engine memory %.1f MB, peak RSS %.1f MB\n", (double)mem / 1e6,
           peak_rss_mb());
    bjson_num(&j, "engine_bytes", (double)mem);
    bjson_close(&j);
    cx_close(e);
    return 0;
}
