/* tune.c -- cx_tune: random search over the training options and the
 * blend, scored on a validation part carved by time from training data. */
#include "quality.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define BLENDS 8   /* blends scored per trained model */

CX_API void cx_tune_opts_init(cx_tune_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->seconds = 60;
    o->trials = 0;
    o->seed = 1;
    o->params = CX_TUNE_ALL;
    o->k = 10;
    o->split = CX_SPLIT_EVENTS;
    o->test_fraction = 0.2;
    o->min_items = 3;
    o->validation_fraction = 0.2;
    o->max_customers = 5000;
    o->apply = 1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ===================================================================== */
/* Sampling                                                              */
/* ===================================================================== */

static double u01(uint64_t *s)
{
    return (double)(cx__mix64(s) >> 11) * 0x1.0p-53;
}

static double log_uniform(uint64_t *s, double lo, double hi)
{
    return exp(log(lo) + u01(s) * (log(hi) - log(lo)));
}

static const int factor_choice[] = {16, 32, 48, 64, 96, 128};
static const double half_choice[] = {0, 3 * 86400.0, 14 * 86400.0,
                                     60 * 86400.0};
static const int tuned_types[] = {CX_VIEW, CX_CLICK, CX_ADD_TO_CART,
                                  CX_PURCHASE, CX_RATING};

/* ALS options for a model: at random, or near the best so far. */
static void draw_model(uint64_t *s, unsigned params, const cx__options *base,
                       const cx__options *best, int near, cx__options *o)
{
    cx__options d;
    cx__options_default(&d);
    *o = near ? *best : *base;
    if (params & CX_TUNE_FACTORS) {
        if (near) {
            int f = o->factors + (int)(cx__mix64(s) % 3) * 16 - 16;
            o->factors = f < 8 ? 8 : f > 256 ? 256 : f;
        } else {
            o->factors = factor_choice[cx__mix64(s) % 6];
        }
    }
    if (params & CX_TUNE_REGULARIZATION)
        o->regularization = near ? o->regularization *
                                       log_uniform(s, 0.5, 2)
                                 : log_uniform(s, 0.01, 100);
    if (params & CX_TUNE_ALPHA)
        o->alpha = near ? o->alpha * log_uniform(s, 0.5, 2)
                        : log_uniform(s, 0.1, 50);
    if (params & CX_TUNE_HALF_LIFE)
        o->half_life = half_choice[cx__mix64(s) % 4];
    if (params & CX_TUNE_WEIGHTS)
        for (size_t j = 0; j < sizeof tuned_types / sizeof *tuned_types;
             j++) {
            int t = tuned_types[j];
            double w = near ? o->weight[t] : d.weight[t];
            o->weight[t] = w * log_uniform(s, near ? 0.7 : 0.25,
                                           near ? 1.4 : 4);
        }
    if (o->regularization > 1e4)
        o->regularization = 1e4;
    if (o->alpha > 1e4)
        o->alpha = 1e4;
}

/* Blend b of BLENDS for one model: the best so far, plain ALS, the
 * engine's own, then random ones (a third of them near the best). */
static void draw_blend(uint64_t *s, int b, const cx__blend *engine,
                       const cx__blend *best, cx__blend *out)
{
    static const float cons[] = {0.1f, 0.2f, 0.3f, 0.5f, 1.0f};
    if (b == 0) {
        *out = *best;
    } else if (b == 1) {
        *out = (cx__blend){1, 0, 0, 0, engine->consumable};
    } else if (b == 2) {
        *out = *engine;
    } else if (b % 3 == 0) {
        *out = *best;
        out->pop *= (float)log_uniform(s, 0.5, 2);
        out->rep *= (float)log_uniform(s, 0.5, 2);
        out->co *= (float)log_uniform(s, 0.5, 2);
    } else {
        out->als = 1;
        out->pop = u01(s) < 0.2 ? 0 : (float)log_uniform(s, 0.005, 2);
        out->rep = u01(s) < 0.2 ? 0 : (float)log_uniform(s, 0.05, 5);
        out->co = u01(s) < 0.3 ? 0 : (float)log_uniform(s, 0.005, 1);
        out->consumable = cons[cx__mix64(s) % 5];
    }
}

/* ===================================================================== */
/* The search                                                            */
/* ===================================================================== */

static void put_trial(cx_tune_trial *t, int model, const cx__options *o,
                      const cx__blend *b, double ndcg, double seconds)
{
    memset(t, 0, sizeof *t);
    t->model = model;
    t->factors = o->factors;
    t->regularization = o->regularization;
    t->alpha = o->alpha;
    t->half_life = o->half_life;
    for (int j = 0; j < CX_SIGNAL_CUSTOM; j++)
        t->weight[j] = o->weight[j];
    t->blend_als = b->als;
    t->blend_popular = b->pop;
    t->blend_repeat = b->rep;
    t->blend_cobought = b->co;
    t->consumable = b->consumable;
    t->ndcg = ndcg;
    t->seconds = seconds;
}

static int check_opts(cx_engine *e, const cx_tune_opts *o)
{
    if (!(o->seconds >= 0 && o->seconds <= 1e7))
        return cx__fail(e, CX_EINVAL, "cx_tune: seconds must be in "
                        "[0, 1e7]");
    if (o->trials > 1000000)
        return cx__fail(e, CX_EINVAL, "cx_tune: trials = %zu, at most "
                        "1000000", o->trials);
    if (o->seconds == 0 && o->trials == 0)
        return cx__fail(e, CX_EINVAL, "cx_tune: no budget (seconds and "
                        "trials are both 0)");
    if (!o->params || (o->params & ~CX_TUNE_ALL))
        return cx__fail(e, CX_EINVAL, "cx_tune: params 0x%x is not a "
                        "non-empty set of CX_TUNE_* bits", o->params);
    if (o->k == 0 || o->k > 10000)
        return cx__fail(e, CX_EINVAL, "cx_tune: k = %zu, must be 1..10000",
                        o->k);
    if (o->split != CX_SPLIT_ITEMS && o->split != CX_SPLIT_EVENTS)
        return cx__fail(e, CX_EINVAL, "cx_tune: split %d is not "
                        "CX_SPLIT_ITEMS or CX_SPLIT_EVENTS", o->split);
    if (!(o->test_fraction >= 0 && o->test_fraction < 1))
        return cx__fail(e, CX_EINVAL, "cx_tune: test_fraction must be in "
                        "[0, 1)");
    if (!(o->validation_fraction > 0 && o->validation_fraction < 1))
        return cx__fail(e, CX_EINVAL, "cx_tune: validation_fraction must "
                        "be in (0, 1)");
    if (o->apply != 0 && o->apply != 1)
        return cx__fail(e, CX_EINVAL, "cx_tune: apply must be 0 or 1");
    return CX_OK;
}

/* Set the chosen options as cx_set_option would (and keep them in a data
 * directory), then train. */
static int apply_best(cx_engine *e, const cx__options *o, const cx__blend *b)
{
    int rc = CX_OK;
    const struct { int key; double v; } set[] = {
        {CX_OPT_FACTORS, o->factors},
        {CX_OPT_REGULARIZATION, o->regularization},
        {CX_OPT_ALPHA, o->alpha},
        {CX_OPT_HALF_LIFE, o->half_life},
        {CX_OPT_BLEND_ALS, b->als},
        {CX_OPT_BLEND_POPULAR, b->pop},
        {CX_OPT_BLEND_REPEAT, b->rep},
        {CX_OPT_BLEND_COBOUGHT, b->co},
        {CX_OPT_CONSUMABLE, b->consumable},
    };
    for (size_t j = 0; rc == CX_OK && j < sizeof set / sizeof *set; j++)
        rc = cx_set_option(e, set[j].key, set[j].v);
    for (size_t j = 0; rc == CX_OK && j < sizeof tuned_types /
                                              sizeof *tuned_types; j++)
        rc = cx_set_option(e, CX_OPT_WEIGHT + tuned_types[j],
                           o->weight[tuned_types[j]]);
    return rc ? rc : cx_train(e, NULL, NULL);
}

/* Do two option sets train the same model? */
static int same_model(const cx__options *a, const cx__options *b)
{
    if (a->factors != b->factors || a->regularization != b->regularization ||
        a->alpha != b->alpha || a->half_life != b->half_life)
        return 0;
    for (size_t j = 0; j < sizeof tuned_types / sizeof *tuned_types; j++)
        if (a->weight[tuned_types[j]] != b->weight[tuned_types[j]])
            return 0;
    return 1;
}

CX_API int cx_tune(cx_engine *e, const cx_tune_opts *opts,
                   cx_tune_trial *trials, size_t max_trials,
                   size_t *n_trials)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_tune: engine is NULL");
    if (!n_trials)
        return cx__fail(e, CX_EINVAL, "cx_tune: n_trials is NULL");
    *n_trials = 0;
    if (!trials && max_trials)
        return cx__fail(e, CX_EINVAL, "cx_tune: trials is NULL with "
                        "max_trials %zu", max_trials);
    cx_tune_opts o;
    cx_tune_opts_init(&o);
    if (opts) {
        if (opts->size < offsetof(cx_tune_opts, apply) + sizeof(int) ||
            opts->size > 4096)
            return cx__fail(e, CX_EINVAL, "cx_tune: options not "
                            "initialised with cx_tune_opts_init");
        memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
        o.size = sizeof o;
    }
    int rc = check_opts(e, &o);
    if (rc)
        return rc;
    double t0 = now_s();
    /* The splits and a copy of the signals, under the writer mutex. */
    pthread_mutex_lock(&e->wmu);
    uint32_t nu = e->customers.n, ni = e->items.n;
    size_t n_ev = e->n_ev;
    cx__options base = e->opt;
    cx__split test = {0}, val = {0};
    cx__event *ev = malloc((n_ev + 1) * sizeof *ev);
    if (!ev)
        rc = cx__fail(e, CX_ENOMEM, "cx_tune: out of memory");
    else if (n_ev == 0)
        rc = cx__fail(e, CX_EINVAL, "cx_tune: no signals");
    if (rc == CX_OK && o.test_fraction > 0 &&
        cx__split_make(e, NULL, o.split, o.test_fraction, o.min_items,
                       CX_EXCLUDE_SEEN, &e->opt, &test))
        rc = cx__fail(e, CX_ENOMEM, "cx_tune: out of memory");
    if (rc == CX_OK &&
        cx__split_make(e, test.keep, o.split, o.validation_fraction,
                       o.min_items, CX_EXCLUDE_SEEN, &e->opt, &val))
        rc = cx__fail(e, CX_ENOMEM, "cx_tune: out of memory");
    if (rc == CX_OK)
        memcpy(ev, e->ev, n_ev * sizeof *ev);
    pthread_mutex_unlock(&e->wmu);
    /* "Now" for time decay is the newest signal trained on: nothing of
     * the held-out parts, not even their times, reaches the search. */
    int64_t ts_ref = INT64_MIN;
    for (size_t x = 0; rc == CX_OK && x < n_ev; x++)
        if (val.keep[x] && ev[x].ts > ts_ref)
            ts_ref = ev[x].ts;
    if (rc == CX_OK && ts_ref == INT64_MIN)
        rc = cx__fail(e, CX_EINVAL, "cx_tune: no signals left to train on "
                      "after the splits");
    uint64_t seed = o.seed;
    cx__options best_o = base;
    cx__blend engine_b, best_b;
    cx__blend_from(&base, &engine_b);
    best_b = engine_b;
    double best = -1, model_s = 0;
    size_t best_trial = 0, run = 0;
    for (int model = 0; rc == CX_OK; model++) {
        double t = now_s();
        if (o.trials && run >= o.trials)
            break;
        if (o.seconds > 0 && model > 0 && t - t0 + model_s > o.seconds)
            break;
        cx__options mo;
        if (model == 0) {
            mo = base;
        } else if (model == 1) {
            mo = base;
            cx__untuned(&mo);
            cx__blend ub;
            cx__blend_from(&mo, &ub);
            if (same_model(&mo, &base) && !memcmp(&ub, &engine_b, sizeof ub))
                continue; /* the engine is at the defaults already */
        } else {
            draw_model(&seed, o.params, &base, &best_o,
                       model >= 4 && u01(&seed) < 0.5, &mo);
        }
        cx__train_input in = {ev, n_ev, val.keep, nu, ni, ts_ref, NULL};
        cx__model *m = NULL;
        cx__hstats *hs = NULL;
        rc = cx__train_model(e, &in, &mo, NULL, NULL, &m);
        if (rc == CX_OK &&
            cx__hstats_build(ev, n_ev, val.keep, &m->ui, nu, ni, &hs))
            rc = cx__fail(e, CX_ENOMEM, "cx_tune: out of memory");
        cx__blend b[BLENDS];
        size_t nb = (o.params & CX_TUNE_BLEND) ? BLENDS : 1;
        if (model == 1) { /* the defaults: their own blend */
            cx__blend_from(&mo, &b[0]);
            nb = 1;
        } else {
            for (size_t j = 0; j < nb; j++)
                draw_blend(&seed, (int)j + (nb == 1 ? 2 : 0), &engine_b,
                           &best_b, &b[j]);
        }
        if (o.trials && nb > o.trials - run)
            nb = o.trials - run;
        double ndcg[BLENDS];
        if (rc == CX_OK && cx__eval_blends(m, hs, &val, o.k, b, nb,
                                           o.max_customers, o.seed, ndcg))
            rc = cx__fail(e, CX_ENOMEM, "cx_tune: out of memory");
        for (size_t j = 0; rc == CX_OK && j < nb; j++, run++) {
            if (run < max_trials)
                put_trial(&trials[run], model, &mo, &b[j], ndcg[j],
                          now_s() - t0);
            if (ndcg[j] > best) {
                best = ndcg[j];
                best_o = mo;
                best_b = b[j];
                best_trial = run;
            }
        }
        cx__model_free(m);
        cx__hstats_free(hs);
        model_s = now_s() - t;
    }
    free(ev);
    cx__split_free(&test);
    cx__split_free(&val);
    if (rc == CX_OK && best_trial < max_trials && run)
        trials[best_trial].best = 1;
    *n_trials = run;
    if (rc == CX_OK && o.apply && run)
        rc = apply_best(e, &best_o, &best_b);
    return rc;
}
