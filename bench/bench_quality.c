/* bench_quality.c -- recommendation quality in each synthetic regime:
 * popularity, plain ALS with the default settings, the default blend and
 * the blend tuned for 20 s, NDCG@10 and recall@10 with 95% bootstrap
 * intervals on a per-customer time split (newest 20% of each customer's
 * signals); then cx_tune within a 60-second budget on a 1M-signal shop.
 *   bench_quality [SIGNALS_PER_REGIME [TUNE_SIGNALS [TUNE_SECONDS]]]
 * Defaults 200000, 1000000, 60.  Writes build/bench/quality.json. */
#include "benchutil.h"
#include "cxengine.h"
#include "shopload.h"
#include "synth.h"

#include <stdint.h>

static void die_on(cx_engine *e, int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench_quality: %s: %s\n", what, cx_errmsg(e));
        exit(1);
    }
}

static cx_engine *shop_engine(int regime, size_t n, synth_shop *shop)
{
    synth_config c;
    synth_config_regime(&c, regime, n);
    if (synth_generate(&c, shop)) {
        fprintf(stderr, "bench_quality: cannot generate the shop\n");
        exit(1);
    }
    cx_engine *e;
    die_on(NULL, cx_open(&e, NULL, 0), "open");
    die_on(e, shop_upsert_catalogue(e, shop), "catalogue");
    die_on(e, shop_ingest(e, shop, 0, shop->n_signals, 0), "ingest");
    return e;
}

static const int blend_key[4] = {CX_OPT_BLEND_ALS, CX_OPT_BLEND_POPULAR,
                                 CX_OPT_BLEND_REPEAT, CX_OPT_BLEND_COBOUGHT};

static void set_blend(cx_engine *e, const double *w)
{
    for (int j = 0; j < 4; j++)
        die_on(e, cx_set_option(e, blend_key[j], w[j]), "blend");
}

typedef struct fig {
    double ndcg, lo, hi, recall, rlo, rhi;
} fig;

static fig fig_of(const double *v, const double *ci, int lo, int hi)
{
    fig f = {v[CX_METRIC_NDCG], ci[lo * CX_METRIC_COUNT + CX_METRIC_NDCG],
             ci[hi * CX_METRIC_COUNT + CX_METRIC_NDCG], v[CX_METRIC_RECALL],
             ci[lo * CX_METRIC_COUNT + CX_METRIC_RECALL],
             ci[hi * CX_METRIC_COUNT + CX_METRIC_RECALL]};
    return f;
}

static void print_fig(const char *name, fig f)
{
    printf("  %-22s ndcg@10 %.4f [%.4f, %.4f]  recall@10 %.4f [%.4f, "
           "%.4f]\n", name, f.ndcg, f.lo, f.hi, f.recall, f.rlo, f.rhi);
}

/* The engine's current options on the events split; the popularity
 * baseline into *pop when asked. */
static fig eval_now(cx_engine *e, int untuned, fig *pop)
{
    cx_eval_opts eo;
    cx_eval_opts_init(&eo);
    eo.split = CX_SPLIT_EVENTS;
    eo.untuned = untuned;
    double m[CX_METRIC_COUNT], b[CX_METRIC_COUNT];
    double ci[CX_CI_COUNT * CX_METRIC_COUNT];
    die_on(e, cx_evaluate_ci(e, &eo, m, b, ci), "evaluate");
    if (pop)
        *pop = fig_of(b, ci, CX_CI_BASELINE_LO, CX_CI_BASELINE_HI);
    return fig_of(m, ci, CX_CI_MODEL_LO, CX_CI_MODEL_HI);
}

static void json_fig(bjson *j, const char *regime, const char *what, fig f)
{
    char key[96];
    snprintf(key, sizeof key, "%s_%s_ndcg10", regime, what);
    bjson_num(j, key, f.ndcg);
    snprintf(key, sizeof key, "%s_%s_ndcg10_lo", regime, what);
    bjson_num(j, key, f.lo);
    snprintf(key, sizeof key, "%s_%s_ndcg10_hi", regime, what);
    bjson_num(j, key, f.hi);
    snprintf(key, sizeof key, "%s_%s_recall10", regime, what);
    bjson_num(j, key, f.recall);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atof(argv[1]) : 200000;
    size_t tune_n = argc > 2 ? (size_t)atof(argv[2]) : 1000000;
    double tune_s = argc > 3 ? atof(argv[3]) : 60;
    double tune_each = 20; /* per regime */
    bjson j;
    if (system("mkdir -p build/bench") != 0)
        fprintf(stderr, "bench_quality: cannot create build/bench\n");
    bjson_open(&j, "build/bench/quality.json");
    bjson_num(&j, "signals_per_regime", (double)n);
    printf("quality per regime: %zu signals each, events split (newest "
           "20%% of each customer's signals), 95%% bootstrap intervals "
           "over customers\n", n);
    for (int r = SYNTH_REGIME_GROCERY; r < SYNTH_REGIMES; r++) {
        synth_shop shop;
        cx_engine *e = shop_engine(r, n, &shop);
        const char *name = synth_regime_name(r);
        printf("%s: %zu customers, %zu items, %zu signals\n", name,
               shop.n_customers, shop.n_items, shop.n_signals);
        static const double als_only[4] = {1, 0, 0, 0};
        set_blend(e, als_only);
        fig pop, als = eval_now(e, 0, &pop);
        print_fig("popularity", pop);
        print_fig("ALS, default settings", als);
        fig dflt = eval_now(e, 1, NULL);
        print_fig("default blend", dflt);
        /* Tuned on a validation part carved from the training part: the
         * test part these figures use is never read. */
        cx_tune_opts to;
        cx_tune_opts_init(&to);
        to.seconds = tune_each;
        size_t nt;
        double t = now_s();
        die_on(e, cx_tune(e, &to, NULL, 0, &nt), "tune");
        t = now_s() - t;
        fig tuned = eval_now(e, 0, NULL);
        char label[64];
        snprintf(label, sizeof label, "tuned (%zu trials, %.0fs)", nt, t);
        print_fig(label, tuned);
        json_fig(&j, name, "popularity", pop);
        json_fig(&j, name, "als", als);
        json_fig(&j, name, "default_blend", dflt);
        json_fig(&j, name, "tuned", tuned);
        cx_close(e);
        synth_free(&shop);
        fflush(stdout);
    }
    /* The budget: cx_tune for tune_s seconds on a tune_n-signal shop. */
    synth_shop shop;
    double t = now_s();
    cx_engine *e = shop_engine(SYNTH_REGIME_DEFAULT, tune_n, &shop);
    printf("tuning within %.0f s on a %zu-signal shop (%zu customers, %zu "
           "items; loaded in %.1fs)\n", tune_s, shop.n_signals,
           shop.n_customers, shop.n_items, now_s() - t);
    cx_tune_opts to;
    cx_tune_opts_init(&to);
    to.seconds = tune_s;
    to.apply = 0;
    cx_tune_trial tr[1024];
    size_t nt;
    t = now_s();
    die_on(e, cx_tune(e, &to, tr, 1024, &nt), "tune");
    t = now_s() - t;
    int models = 0;
    for (size_t i = 0; i < nt && i < 1024; i++)
        models = tr[i].model + 1 > models ? tr[i].model + 1 : models;
    for (size_t i = 0; i < nt && i < 1024; i++)
        if (tr[i].best)
            printf("  %zu trials on %d trained models in %.1fs; chosen: "
                   "factors %d, lambda %.4g, alpha %.4g, half-life %.0f d, "
                   "weights view %.3g cart %.3g purchase %.3g, blend als "
                   "%.3g popular %.3g repeat %.3g co-bought %.3g, "
                   "consumable %.2g; validation ndcg@10 %.4f (trial 0, the "
                   "defaults: %.4f)\n", nt, models, t, tr[i].factors,
                   tr[i].regularization, tr[i].alpha, tr[i].half_life / 86400,
                   tr[i].weight[CX_VIEW], tr[i].weight[CX_ADD_TO_CART],
                   tr[i].weight[CX_PURCHASE], tr[i].blend_als,
                   tr[i].blend_popular, tr[i].blend_repeat,
                   tr[i].blend_cobought, tr[i].consumable, tr[i].ndcg,
                   tr[0].ndcg);
    bjson_num(&j, "tune_signals", (double)shop.n_signals);
    bjson_num(&j, "tune_budget_s", tune_s);
    bjson_num(&j, "tune_seconds", t);
    bjson_num(&j, "tune_trials", (double)nt);
    bjson_num(&j, "tune_models", models);
    cx_close(e);
    synth_free(&shop);
    bjson_close(&j);
    return 0;
}
