/* test_customer.c -- customer profiles and journey stages, and A/B
 * experiments: deterministic assignment, shares, exposures, overrides,
 * redefinition, misuse and concurrent use. */
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>


static cx_profile profile(cx_engine *e, const char *customer, int64_t now)
{
    cx_profile p;
    memset(&p, 0xAB, sizeof p); /* everything must be written */
    p.size = sizeof p;
    TU_OK(e, cx_profile_get(e, customer, now, &p));
    return p;
}

static void ingest1(cx_engine *e, const char *c, const char *item, int type,
                    float value, int64_t ts, const char *channel)
{
    TU_OK(e, cx_ingest(e, 1, &c, &item, &type, &value, &ts, &channel));
}

/* ===================================================================== */
/* Journey stages                                                        */
/* ===================================================================== */

static void test_stage_names(void **state)
{
    (void)state;
    assert_string_equal(cx_stage_name(CX_STAGE_NEW), "new");
    assert_string_equal(cx_stage_name(CX_STAGE_BROWSING), "browsing");
    assert_string_equal(cx_stage_name(CX_STAGE_CONSIDERING), "considering");
    assert_string_equal(cx_stage_name(CX_STAGE_PURCHASED), "purchased");
    assert_string_equal(cx_stage_name(CX_STAGE_LOYAL), "loyal");
    assert_string_equal(cx_stage_name(CX_STAGE_LAPSED), "lapsed");
    assert_null(cx_stage_name(-1));
    assert_null(cx_stage_name(6));
}

static void test_journey(void **state)
{
    (void)state;
    const int64_t T = 1700000000;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);

    cx_profile p = profile(e, "nobody", 0);
    assert_int_equal(p.stage, CX_STAGE_NEW);
    assert_int_equal(p.signals, 0);
    assert_int_equal(p.first_seen, 0);
    assert_int_equal(p.last_seen, 0);
    assert_int_equal(p.n_channels, 0);
    assert_int_equal(p.n_categories, 0);
    assert_true(p.avg_price == 0 && p.price_level == 0);
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        assert_int_equal(p.by_type[t], 0);

    ingest1(e, "j", "shoe", CX_VIEW, 1, T, "web");
    ingest1(e, "j", "hat", CX_CLICK, 1, T + 5, "web");
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_BROWSING);
    ingest1(e, "j", "shoe", CX_ADD_TO_CART, 1, T + 10, "web");
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_CONSIDERING);
    ingest1(e, "j", "shoe", CX_PURCHASE, 2, T + 20, "web");
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_PURCHASED);
    ingest1(e, "j", "hat", CX_PURCHASE, 1, T + 30, "web");
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_PURCHASED);
    ingest1(e, "j", "sock", CX_PURCHASE, 1, T + 40, "web");
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_LOYAL);
    /* An explicit `now` inside the window is the same as 0. */
    assert_int_equal(profile(e, "j", T + 40).stage, CX_STAGE_LOYAL);

    /* Lapsed: strictly more than lapsed_after (default 60 days). */
    int64_t window = 60 * 86400;
    assert_int_equal(profile(e, "j", T + 40 + window).stage, CX_STAGE_LOYAL);
    assert_int_equal(profile(e, "j", T + 41 + window).stage,
                     CX_STAGE_LAPSED);
    TU_OK(e, cx_set_option(e, CX_OPT_LAPSED_AFTER, 100));
    assert_int_equal(profile(e, "j", T + 140).stage, CX_STAGE_LOYAL);
    assert_int_equal(profile(e, "j", T + 141).stage, CX_STAGE_LAPSED);
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_LOYAL);

    /* The loyalty threshold moves the outcome. */
    TU_OK(e, cx_set_option(e, CX_OPT_LOYAL_PURCHASES, 4));
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_PURCHASED);
    TU_OK(e, cx_set_option(e, CX_OPT_LOYAL_PURCHASES, 2));
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_LOYAL);

    /* Another customer's later signal makes j lapsed at now = 0. */
    ingest1(e, "k", "hat", CX_VIEW, 1, T + 1000, "web");
    assert_int_equal(profile(e, "j", 0).stage, CX_STAGE_LAPSED);
    assert_int_equal(profile(e, "k", 0).stage, CX_STAGE_BROWSING);
    p = profile(e, "j", 0);
    assert_int_equal(p.signals, 6);
    assert_int_equal(p.by_type[CX_PURCHASE], 3);
    assert_int_equal(p.first_seen, T);
    assert_int_equal(p.last_seen, T + 40);
    assert_int_equal(profile(e, "unknown", 0).stage, CX_STAGE_NEW);
    cx_close(e);
}

/* ===================================================================== */
/* Profile fields                                                        */
/* ===================================================================== */

/* A hand-made shop.  Categories by index: "" 0, shoes 1, hats 2, bags 3.
 * Catalogue mean price of the priced, live items: i1 i2 i3 i5 =
 * (100 + 50 + 20 + 30) / 4 = 50 (i4 has no price, i6 is removed, u1 is
 * not catalogued). */
static cx_engine *hand_shop(void)
{
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    const char *ids[] = {"i1", "i2", "i3", "i4", "i5", "i6"};
    const char *cats[] = {"shoes", "shoes", "hats", "bags", "hats", "bags"};
    double prices[] = {100, 50, 20, 0, 30, 1000};
    TU_OK(e, cx_items_upsert(e, 6, ids, cats, prices, NULL, NULL, NULL));
    TU_OK(e, cx_item_remove(e, "i6"));
    /* alice:                           strength  category  channel */
    const char *c[] = {"alice", "alice", "alice", "alice", "alice",
                       "alice", "alice", "alice", "alice", "bob",
                       "carol", "carol", "alice"};
    const char *it[] = {"i1", "i3", "i1", "i1", "i2", "i4", "i3",
                        "i3", "u1", "i5", "i3", "i1", "i6"};
    int ty[] = {CX_VIEW,       /*  1  shoes  web   */
                CX_VIEW,       /*  1  hats   app   */
                CX_ADD_TO_CART,/*  5  shoes  app   */
                CX_PURCHASE,   /* 10  shoes  web   */
                CX_DISLIKE,    /* -10 shoes  web   */
                CX_CLICK,      /*  2  bags   email */
                CX_RATING,     /* -2.5 hats  email */
                CX_RATING,     /*  5  hats   app   */
                CX_VIEW,       /*  1  ""     app   */
                CX_PURCHASE, CX_VIEW, CX_VIEW,
                CX_RETURN};    /* -15 bags   web: removed item */
    float v[] = {1, 1, 1, 1, 1, 1, 2, 5, 1, 1, 1, 1, 1};
    int64_t ts[] = {1000, 1100, 1200, 1300, 1400, 900, 1500, 1600, 1700,
                    2000, 1000, 1000, 1650};
    const char *ch[] = {"web", "app", "app", "web", "web", "email",
                        "email", "app", "app", "web", "web", "web", "web"};
    TU_OK(e, cx_ingest(e, 13, c, it, ty, v, ts, ch));
    return e;
}

static void test_profile_fields(void **state)
{
    (void)state;
    cx_engine *e = hand_shop();
    cx_profile p = profile(e, "alice", 0);
    assert_int_equal(p.size, sizeof p);
    assert_int_equal(p.stage, CX_STAGE_PURCHASED);
    assert_int_equal(p.signals, 10);
    assert_int_equal(p.first_seen, 900);
    assert_int_equal(p.last_seen, 1700);
    uint64_t want_type[CX_MAX_SIGNAL_TYPES] = {0};
    want_type[CX_VIEW] = 3;
    want_type[CX_CLICK] = 1;
    want_type[CX_ADD_TO_CART] = 1;
    want_type[CX_PURCHASE] = 1;
    want_type[CX_RATING] = 2;
    want_type[CX_DISLIKE] = 1;
    want_type[CX_RETURN] = 1;
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        assert_int_equal(p.by_type[t], want_type[t]);

    /* Channels: web 4, app 4 (tie: web is channel 0), email 2. */
    assert_int_equal(p.n_channels, 3);
    assert_string_equal(p.channel[0], "web");
    assert_int_equal(p.by_channel[0], 4);
    assert_string_equal(p.channel[1], "app");
    assert_int_equal(p.by_channel[1], 4);
    assert_string_equal(p.channel[2], "email");
    assert_int_equal(p.by_channel[2], 2);

    /* Positive strength: shoes 1+5+10 = 16, hats 1+5 = 6, bags 2,
     * "" 1; total 25. */
    assert_int_equal(p.n_categories, 4);
    const char *want_cat[] = {"shoes", "hats", "bags", ""};
    double want_share[] = {16 / 25.0, 6 / 25.0, 2 / 25.0, 1 / 25.0};
    double sum = 0;
    for (int j = 0; j < 4; j++) {
        assert_string_equal(p.category[j], want_cat[j]);
        assert_true(fabs(p.category_share[j] - want_share[j]) < 1e-12);
        sum += p.category_share[j];
    }
    assert_true(fabs(sum - 1) < 1e-12);

    /* Distinct positive items: i1 100, i3 20, i4 and u1 unpriced. */
    assert_true(fabs(p.avg_price - 60) < 1e-12);
    assert_true(fabs(p.price_level - 60 / 50.0) < 1e-12);

    /* Ties between categories go to the smaller category index. */
    p = profile(e, "carol", 0);
    assert_int_equal(p.n_categories, 2);
    assert_string_equal(p.category[0], "shoes");
    assert_string_equal(p.category[1], "hats");
    assert_true(fabs(p.category_share[0] - 0.5) < 1e-12);
    assert_true(fabs(p.avg_price - 60) < 1e-12);

    /* bob bought i5 (30): below the catalogue mean. */
    p = profile(e, "bob", 0);
    assert_int_equal(p.stage, CX_STAGE_PURCHASED);
    assert_int_equal(p.signals, 1);
    assert_true(fabs(p.avg_price - 30) < 1e-12);
    assert_true(fabs(p.price_level - 0.6) < 1e-12);

    /* Weights are read at call time: no positive signal, no shares (a
     * rating below 3 with a negative weight would be positive: 0). */
    for (int t = 0; t < CX_SIGNAL_CUSTOM; t++)
        TU_OK(e, cx_set_option(e, CX_OPT_WEIGHT + t, t == CX_RATING ? 0
                                                                    : -1));
    p = profile(e, "alice", 0);
    assert_int_equal(p.n_categories, 0);
    assert_true(p.avg_price == 0 && p.price_level == 0);
    assert_int_equal(p.signals, 10);
    cx_close(e);
}

/* More categories and channels than CX_PROFILE_TOP: the top ones. */
static void test_profile_top(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    char ids[12][8], cats[12][8], chans[12][8];
    const char *idp[12], *catp[12];
    for (int j = 0; j < 12; j++) {
        snprintf(ids[j], 8, "it%d", j);
        snprintf(cats[j], 8, "cat%d", j);
        snprintf(chans[j], 8, "ch%d", j);
        idp[j] = ids[j];
        catp[j] = cats[j];
    }
    TU_OK(e, cx_items_upsert(e, 12, idp, catp, NULL, NULL, NULL, NULL));
    /* Item j gets j + 1 views through channel j. */
    for (int j = 0; j < 12; j++)
        for (int r = 0; r <= j; r++)
            ingest1(e, "z", ids[j], CX_VIEW, 1, 5000 + r, chans[j]);
    cx_profile p = profile(e, "z", 0);
    assert_int_equal(p.signals, 78);
    assert_int_equal(p.n_categories, CX_PROFILE_TOP);
    assert_int_equal(p.n_channels, CX_PROFILE_TOP);
    for (int j = 0; j < CX_PROFILE_TOP; j++) {
        assert_string_equal(p.category[j], cats[11 - j]);
        assert_true(fabs(p.category_share[j] - (12 - j) / 78.0) < 1e-12);
        assert_string_equal(p.channel[j], chans[11 - j]);
        assert_int_equal(p.by_channel[j], 12 - j);
    }
    assert_true(p.avg_price == 0 && p.price_level == 0);
    /* A heavy customer: 12 x 60 + 66 = 786 positive signals, more than
     * the profile's first buffer holds. */
    for (int j = 0; j < 12; j++)
        for (int r = 0; r < 60 + (j == 3 ? 66 : 0); r++)
            ingest1(e, "heavy", ids[j], CX_VIEW, 1, 6000 + r, chans[j]);
    p = profile(e, "heavy", 0);
    assert_int_equal(p.signals, 786);
    assert_int_equal(p.by_type[CX_VIEW], 786);
    assert_int_equal(p.first_seen, 6000);
    assert_int_equal(p.last_seen, 6125);
    assert_int_equal(p.n_categories, CX_PROFILE_TOP);
    assert_string_equal(p.category[0], "cat3");
    assert_true(fabs(p.category_share[0] - 126 / 786.0) < 1e-12);
    for (int j = 1; j < CX_PROFILE_TOP; j++) { /* ties: smaller index */
        assert_string_equal(p.category[j], cats[j <= 3 ? j - 1 : j]);
        assert_true(fabs(p.category_share[j] - 60 / 786.0) < 1e-12);
    }
    cx_close(e);
}

static void test_profile_misuse(void **state)
{
    (void)state;
    cx_engine *e = hand_shop();
    cx_profile p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    FAILS(NULL, cx_profile_get(NULL, "alice", 0, &p), CX_EINVAL);
    FAILS(e, cx_profile_get(e, "alice", 0, NULL), CX_EINVAL);
    FAILS(e, cx_profile_get(e, NULL, 0, &p), CX_EINVAL);
    FAILS(e, cx_profile_get(e, "", 0, &p), CX_EINVAL);
    char long_id[CX_MAX_ID_LEN + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    FAILS(e, cx_profile_get(e, long_id, 0, &p), CX_EINVAL);
    FAILS(e, cx_profile_get(e, "alice", -1, &p), CX_EINVAL);
    p.size = 0;
    FAILS(e, cx_profile_get(e, "alice", 0, &p), CX_EINVAL);
    p.size = sizeof p - 1;
    FAILS(e, cx_profile_get(e, "alice", 0, &p), CX_EINVAL);
    p.size = sizeof p;
    TU_OK(e, cx_profile_get(e, "alice", 0, &p));
    assert_int_equal(p.signals, 10);
    cx_close(e);
}

/* ===================================================================== */
/* Variant assignment                                                    */
/* ===================================================================== */

/* A second implementation of the documented hash, written from the
 * header: FNV-1a 64 over the bytes of experiment || 0x00 || customer,
 * then murmur3's fmix64. */
static uint64_t ref_hash(const char *experiment, const char *customer)
{
    unsigned char buf[1200];
    size_t n = 0, le = strlen(experiment), lc = strlen(customer);
    memcpy(buf, experiment, le);
    n = le;
    buf[n++] = 0;
    memcpy(buf + n, customer, lc);
    n += lc;
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t j = 0; j < n; j++) {
        h ^= buf[j];
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static size_t ref_pick(const char *experiment, const char *customer,
                       size_t n, const double *shares)
{
    double u = ldexp((double)(ref_hash(experiment, customer) >> 11), -53);
    double total = 0, run = 0;
    for (size_t j = 0; j < n; j++)
        total += shares[j];
    for (size_t j = 0; j < n; j++) {
        run += shares[j];
        if (run / total > u)
            return j;
    }
    return n - 1;
}

static const char *const ABC[] = {"control", "treat-a", "treat-b"};
static const double ABC_SHARES[] = {50, 30, 20};

/* Computed once with the reference above (and a Python one); literals so
 * that any change to the algorithm is caught. */
static const struct {
    const char *experiment, *customer;
    uint64_t hash;
    const char *variant;
} golden[] = {
    {"checkout", "alice", 0x897ceb5f4baec7a9ull, "treat-a"},
    {"checkout", "bob", 0xdb1ce01b54c570a4ull, "treat-b"},
    {"checkout", "carol", 0x3a95d1eef08ab9fdull, "control"},
    {"checkout", "erin", 0x32d7f09df7cb97a1ull, "control"},
    {"checkout", "gina", 0x3d11ce08af4c76beull, "control"},
    {"checkout", "jack", 0x1aa439fed84ae2fbull, "control"},
    {"checkout", "ivy", 0x11f9b59bcdd9ff6bull, "control"},
    {"hero-banner", "alice", 0xcdb03cece81d34beull, "treat-b"},
    {"hero-banner", "customer-42", 0x224bbcf82dcc5183ull, "control"},
    {"hero-banner", "customer-43", 0x2663c8b836cde22dull, "control"},
    {"hero-banner", "\xc3\xa9-\xc3\xbc", 0x22aa230e113b9e05ull, "control"},
    {"x", "y", 0x8d272c786d918038ull, "treat-a"},
};
#define N_GOLDEN (sizeof golden / sizeof golden[0])

static void define_abc(cx_engine *e, const char *experiment)
{
    TU_OK(e, cx_experiment_define(e, experiment, 3, ABC, ABC_SHARES));
}

static void test_variant_golden(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    define_abc(e, "checkout");
    define_abc(e, "hero-banner");
    define_abc(e, "x");
    for (size_t j = 0; j < N_GOLDEN; j++) {
        assert_true(ref_hash(golden[j].experiment, golden[j].customer) ==
                    golden[j].hash);
        size_t want = ref_pick(golden[j].experiment, golden[j].customer, 3,
                               ABC_SHARES);
        assert_string_equal(ABC[want], golden[j].variant);
        const char *v = NULL;
        TU_OK(e, cx_variant(e, golden[j].experiment, golden[j].customer, 0,
                            &v));
        assert_string_equal(v, golden[j].variant);
    }
    /* The reference over many customers, with unequal shares (random
     * ids: sequential ones cluster, see test_variant_shares_sequential). */
    uint64_t rng = 11;
    for (int j = 0; j < 2000; j++) {
        char c[32];
        snprintf(c, sizeof c, "%016llx", (unsigned long long)cx__mix64(&rng));
        const char *v;
        TU_OK(e, cx_variant(e, "hero-banner", c, 0, &v));
        assert_string_equal(v, ABC[ref_pick("hero-banner", c, 3,
                                            ABC_SHARES)]);
    }
    cx_close(e);
}

static void test_variant_stable(void **state)
{
    (void)state;
    cx_engine *a = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    cx_engine *b = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    define_abc(a, "exp");
    /* b: other experiments around it, shares scaled by 10. */
    define_abc(b, "aaa");
    double scaled[] = {5, 3, 2};
    TU_OK(b, cx_experiment_define(b, "exp", 3, ABC, scaled));
    define_abc(b, "zzz");
    char seen[1000];
    for (int j = 0; j < 1000; j++) {
        char c[32];
        snprintf(c, sizeof c, "cust-%d", j);
        const char *va, *vb;
        TU_OK(a, cx_variant(a, "exp", c, 1, &va));
        TU_OK(b, cx_variant(b, "exp", c, 0, &vb));
        assert_string_equal(va, vb);
        seen[j] = va[strlen(va) - 1];
    }
    /* Redefinition with the same shares: the same assignment; a second
     * variant set and an override change nothing either. */
    define_abc(a, "exp");
    TU_OK(a, cx_variant_set(a, "exp", "treat-a", CX_OVERRIDE_K, 12));
    define_abc(a, "other");
    for (int j = 0; j < 1000; j++) {
        char c[32];
        snprintf(c, sizeof c, "cust-%d", j);
        const char *va;
        TU_OK(a, cx_variant(a, "exp", c, 0, &va));
        assert_int_equal(va[strlen(va) - 1], seen[j]);
    }
    cx_close(a);
    cx_close(b);
}

/* Share of each ABC variant over n customers named by make_id. */
static void measure_shares(cx_engine *e, const char *experiment, int n,
                           void (*make_id)(char *, size_t, int, uint64_t *),
                           double *share)
{
    define_abc(e, experiment);
    uint64_t rng = 7;
    for (int j = 0; j < n; j++) {
        char c[40];
        make_id(c, sizeof c, j, &rng);
        const char *v;
        TU_OK(e, cx_variant(e, experiment, c, 1, &v));
    }
    int64_t total = 0;
    for (int k = 0; k < 3; k++) {
        int64_t m;
        TU_OK(e, cx_exposures(e, experiment, ABC[k], &m));
        share[k] = (double)m / n;
        total += m;
    }
    assert_int_equal(total, n);
}

static void random_id(char *c, size_t cap, int j, uint64_t *rng)
{
    (void)j;
    snprintf(c, cap, "%016llx", (unsigned long long)cx__mix64(rng));
}

static void sequential_id(char *c, size_t cap, int j, uint64_t *rng)
{
    (void)rng;
    snprintf(c, cap, "user%d", j);
}

static void test_variant_shares(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    const int N = 100000;
    double share[3];
    /* Ids with their entropy spread over the bytes (uuids, hashes). */
    measure_shares(e, "split", N, random_id, share);
    for (int k = 0; k < 3; k++) {
        if (fabs(share[k] - ABC_SHARES[k] / 100) > 0.01)
            print_error("%s: share %.4f\n", ABC[k], share[k]);
        assert_true(fabs(share[k] - ABC_SHARES[k] / 100) <= 0.01);
    }

    /* One variant takes everything. */
    const char *one[] = {"only"};
    double w[] = {0.25};
    TU_OK(e, cx_experiment_define(e, "single", 1, one, w));
    const char *v;
    TU_OK(e, cx_variant(e, "single", "anyone", 1, &v));
    assert_string_equal(v, "only");
    cx_close(e);
}

/* Sequential ids ("user0".."user99999") must split like random ones:
 * raw FNV-1a's top bits barely depend on the last bytes (47.4/31.4/21.2
 * before the fmix64 finaliser was added). */
static void test_variant_shares_sequential(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    double share[3];
    measure_shares(e, "split", 100000, sequential_id, share);
    cx_close(e);
    print_message("sequential ids: %.4f %.4f %.4f for 0.5 0.3 0.2\n",
                  share[0], share[1], share[2]);
    for (int k = 0; k < 3; k++)
        assert_true(fabs(share[k] - ABC_SHARES[k] / 100) <= 0.01);
}

static void test_exposures(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    define_abc(e, "checkout");
    int64_t n;
    for (int k = 0; k < 3; k++) {
        TU_OK(e, cx_exposures(e, "checkout", ABC[k], &n));
        assert_int_equal(n, 0);
    }
    const char *v;
    /* alice -> treat-a, bob -> treat-b, gina -> control (golden table). */
    for (int j = 0; j < 5; j++)
        TU_OK(e, cx_variant(e, "checkout", "alice", 1, &v));
    for (int j = 0; j < 3; j++)
        TU_OK(e, cx_variant(e, "checkout", "bob", 1, &v));
    for (int j = 0; j < 7; j++)
        TU_OK(e, cx_variant(e, "checkout", "gina", 0, &v));
    TU_OK(e, cx_exposures(e, "checkout", "treat-a", &n));
    assert_int_equal(n, 5);
    TU_OK(e, cx_exposures(e, "checkout", "treat-b", &n));
    assert_int_equal(n, 3);
    TU_OK(e, cx_exposures(e, "checkout", "control", &n));
    assert_int_equal(n, 0);
    cx_close(e);
}

static void test_overrides(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    define_abc(e, "checkout");
    double x = -1;
    FAILS(e, cx_variant_get(e, "checkout", "treat-a", CX_OVERRIDE_K, &x),
          CX_ENOTFOUND);
    assert_true(x == -1);
    TU_OK(e, cx_variant_set(e, "checkout", "treat-a", CX_OVERRIDE_K, 20));
    TU_OK(e, cx_variant_set(e, "checkout", "treat-a", CX_OVERRIDE_DIVERSITY,
                            0.3));
    TU_OK(e, cx_variant_set(e, "checkout", "treat-a", CX_OPT_ALPHA, 4));
    TU_OK(e, cx_variant_set(e, "checkout", "treat-b",
                            CX_OVERRIDE_CATEGORY_CAP, 2));
    TU_OK(e, cx_variant_set(e, "checkout", "treat-a", CX_OVERRIDE_K, 30));
    TU_OK(e, cx_variant_get(e, "checkout", "treat-a", CX_OVERRIDE_K, &x));
    assert_true(x == 30);
    TU_OK(e, cx_variant_get(e, "checkout", "treat-a", CX_OVERRIDE_DIVERSITY,
                            &x));
    assert_true(x == 0.3);
    TU_OK(e, cx_variant_get(e, "checkout", "treat-a", CX_OPT_ALPHA, &x));
    assert_true(x == 4);
    TU_OK(e, cx_variant_get(e, "checkout", "treat-b",
                            CX_OVERRIDE_CATEGORY_CAP, &x));
    assert_true(x == 2);
    FAILS(e, cx_variant_get(e, "checkout", "treat-b", CX_OVERRIDE_K, &x),
          CX_ENOTFOUND);
    FAILS(e, cx_variant_get(e, "checkout", "control", CX_OVERRIDE_K, &x),
          CX_ENOTFOUND);
    FAILS(e, cx_variant_get(e, "checkout", "nope", CX_OVERRIDE_K, &x),
          CX_ENOTFOUND);
    FAILS(e, cx_variant_get(e, "nope", "control", CX_OVERRIDE_K, &x),
          CX_ENOTFOUND);
    FAILS(e, cx_variant_set(e, "checkout", "nope", CX_OVERRIDE_K, 1),
          CX_ENOTFOUND);
    FAILS(e, cx_variant_set(e, "nope", "control", CX_OVERRIDE_K, 1),
          CX_ENOTFOUND);

    /* Overrides of surviving variants outlive a redefinition. */
    const char *two[] = {"treat-a", "fresh"};
    double w[] = {1, 1};
    TU_OK(e, cx_experiment_define(e, "checkout", 2, two, w));
    TU_OK(e, cx_variant_get(e, "checkout", "treat-a", CX_OVERRIDE_K, &x));
    assert_true(x == 30);
    FAILS(e, cx_variant_get(e, "checkout", "treat-b",
                            CX_OVERRIDE_CATEGORY_CAP, &x), CX_ENOTFOUND);
    FAILS(e, cx_variant_get(e, "checkout", "fresh", CX_OVERRIDE_K, &x),
          CX_ENOTFOUND);
    cx_close(e);
}

static void test_redefine_counts(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    define_abc(e, "checkout");
    const char *v;
    for (int j = 0; j < 4; j++)
        TU_OK(e, cx_variant(e, "checkout", "bob", 1, &v));   /* treat-b */
    for (int j = 0; j < 6; j++)
        TU_OK(e, cx_variant(e, "checkout", "gina", 1, &v));  /* control */
    for (int j = 0; j < 2; j++)
        TU_OK(e, cx_variant(e, "checkout", "alice", 1, &v)); /* treat-a */
    /* treat-a dropped, treat-b kept, "new" added, order changed. */
    const char *names[] = {"new", "treat-b", "control"};
    double w[] = {1, 1, 1};
    TU_OK(e, cx_experiment_define(e, "checkout", 3, names, w));
    int64_t n;
    TU_OK(e, cx_exposures(e, "checkout", "treat-b", &n));
    assert_int_equal(n, 4);
    TU_OK(e, cx_exposures(e, "checkout", "control", &n));
    assert_int_equal(n, 6);
    TU_OK(e, cx_exposures(e, "checkout", "new", &n));
    assert_int_equal(n, 0);
    FAILS(e, cx_exposures(e, "checkout", "treat-a", &n), CX_ENOTFOUND);
    /* A dropped and re-added name starts again from zero. */
    define_abc(e, "checkout");
    TU_OK(e, cx_exposures(e, "checkout", "treat-a", &n));
    assert_int_equal(n, 0);
    TU_OK(e, cx_exposures(e, "checkout", "treat-b", &n));
    assert_int_equal(n, 4);
    /* Other experiments are untouched, and so are the returned names. */
    define_abc(e, "other");
    TU_OK(e, cx_variant(e, "other", "bob", 1, &v));
    const char *kept = v;
    define_abc(e, "another");
    TU_OK(e, cx_variant_set(e, "checkout", "control", CX_OVERRIDE_K, 3));
    assert_string_equal(kept, v);
    TU_OK(e, cx_exposures(e, "other", v, &n));
    assert_int_equal(n, 1);
    TU_OK(e, cx_exposures(e, "checkout", "control", &n));
    assert_int_equal(n, 6);
    cx_close(e);
}

static void test_experiment_misuse(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    char name65[66], name64[65];
    memset(name65, 'n', 65);
    name65[65] = 0;
    memset(name64, 'm', 64);
    name64[64] = 0;
    const char *names[65];
    double w[65];
    char buf[65][8];
    for (int j = 0; j < 65; j++) {
        snprintf(buf[j], 8, "v%d", j);
        names[j] = buf[j];
        w[j] = 1;
    }
    FAILS(NULL, cx_experiment_define(NULL, "x", 1, names, w), CX_EINVAL);
    FAILS(e, cx_experiment_define(e, NULL, 1, names, w), CX_EINVAL);
    FAILS(e, cx_experiment_define(e, "", 1, names, w), CX_EINVAL);
    FAILS(e, cx_experiment_define(e, name65, 1, names, w), CX_EINVAL);
    FAILS(e, cx_experiment_define(e, "x", 0, names, w), CX_EINVAL);
    FAILS(e, cx_experiment_define(e, "x", 65, names, w), CX_EINVAL);
    FAILS(e, cx_experiment_define(e, "x", 1, NULL, w), CX_EINVAL);
    FAILS(e, cx_experiment_define(e, "x", 1, names, NULL), CX_EINVAL);
    const char *dup[] = {"a", "b", "a"};
    FAILS(e, cx_experiment_define(e, "x", 3, dup, w), CX_EINVAL);
    const char *bad[] = {"a", NULL};
    FAILS(e, cx_experiment_define(e, "x", 2, bad, w), CX_EINVAL);
    const char *empty[] = {"a", ""};
    FAILS(e, cx_experiment_define(e, "x", 2, empty, w), CX_EINVAL);
    const char *longv[] = {"a", name65};
    FAILS(e, cx_experiment_define(e, "x", 2, longv, w), CX_EINVAL);
    double bad_w[][2] = {{1, 0}, {1, -1}, {1, NAN}, {1, INFINITY},
                         {1e308, 1e308}};
    for (size_t j = 0; j < 5; j++)
        FAILS(e, cx_experiment_define(e, "x", 2, dup, bad_w[j]), CX_EINVAL);
    /* Nothing was defined by the failures. */
    const char *v = "sentinel";
    FAILS(e, cx_variant(e, "x", "c", 1, &v), CX_ENOTFOUND);
    assert_null(v);

    /* The limits themselves are fine. */
    TU_OK(e, cx_experiment_define(e, name64, 64, names, w));
    const char *maxv[] = {name64};
    TU_OK(e, cx_experiment_define(e, "x", 1, maxv, w));
    TU_OK(e, cx_variant(e, name64, "c", 1, &v));
    assert_true(v[0] == 'v');

    double x;
    int64_t n;
    FAILS(NULL, cx_variant(NULL, "x", "c", 1, &v), CX_EINVAL);
    FAILS(e, cx_variant(e, NULL, "c", 1, &v), CX_EINVAL);
    FAILS(e, cx_variant(e, name65, "c", 1, &v), CX_EINVAL);
    FAILS(e, cx_variant(e, "x", NULL, 1, &v), CX_EINVAL);
    FAILS(e, cx_variant(e, "x", "", 1, &v), CX_EINVAL);
    char long_id[CX_MAX_ID_LEN + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    FAILS(e, cx_variant(e, "x", long_id, 1, &v), CX_EINVAL);
    FAILS(e, cx_variant(e, "x", "c", 1, NULL), CX_EINVAL);
    FAILS(e, cx_variant(e, "nope", "c", 1, &v), CX_ENOTFOUND);

    FAILS(NULL, cx_variant_set(NULL, "x", name64, 1, 1), CX_EINVAL);
    FAILS(e, cx_variant_set(e, NULL, name64, 1, 1), CX_EINVAL);
    FAILS(e, cx_variant_set(e, "x", NULL, 1, 1), CX_EINVAL);
    FAILS(e, cx_variant_set(e, "x", name65, 1, 1), CX_EINVAL);
    FAILS(e, cx_variant_set(e, "x", name64, 1, NAN), CX_EINVAL);
    FAILS(e, cx_variant_set(e, "x", name64, 1, INFINITY), CX_EINVAL);
    FAILS(NULL, cx_variant_get(NULL, "x", name64, 1, &x), CX_EINVAL);
    FAILS(e, cx_variant_get(e, NULL, name64, 1, &x), CX_EINVAL);
    FAILS(e, cx_variant_get(e, "x", "", 1, &x), CX_EINVAL);
    FAILS(e, cx_variant_get(e, "x", name64, 1, NULL), CX_EINVAL);
    FAILS(NULL, cx_exposures(NULL, "x", name64, &n), CX_EINVAL);
    FAILS(e, cx_exposures(e, "", name64, &n), CX_EINVAL);
    FAILS(e, cx_exposures(e, "x", NULL, &n), CX_EINVAL);
    FAILS(e, cx_exposures(e, "x", name64, NULL), CX_EINVAL);
    FAILS(e, cx_exposures(e, "x", "nope", &n), CX_ENOTFOUND);
    FAILS(e, cx_exposures(e, "nope", name64, &n), CX_ENOTFOUND);

    /* Override limit: 64 keys per variant, then CX_ELIMIT; updating an
     * existing key still works. */
    for (int k = 0; k < 64; k++)
        TU_OK(e, cx_variant_set(e, "x", name64, k, k));
    FAILS(e, cx_variant_set(e, "x", name64, 64, 1), CX_ELIMIT);
    TU_OK(e, cx_variant_set(e, "x", name64, 7, 70));
    TU_OK(e, cx_variant_get(e, "x", name64, 7, &x));
    assert_true(x == 70);

    /* The engine still works, and its counts are whole. */
    TU_OK(e, cx_variant(e, "x", "c", 1, &v));
    TU_OK(e, cx_exposures(e, "x", name64, &n));
    assert_int_equal(n, 1);
    cx_close(e);
}

/* ===================================================================== */
/* Threads                                                               */
/* ===================================================================== */

#define READERS 4
#define CALLS 10000

/* Calls made by the readers so far: the redefiner spaces its
 * redefinitions by it, so they land while the readers run. */
static atomic_int progress;

typedef struct reader_arg {
    cx_engine *e;
    int id, bad;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    char c[32];
    for (int j = 0; j < CALLS; j++) {
        snprintf(c, sizeof c, "t%d-c%d", a->id, j);
        const char *v = NULL;
        if (cx_variant(a->e, "live", c, 1, &v) != CX_OK || !v ||
            (strcmp(v, "control") && strcmp(v, "treat-a") &&
             strcmp(v, "treat-b") && strcmp(v, "late")))
            a->bad++;
        atomic_fetch_add(&progress, 1);
    }
    return NULL;
}

typedef struct writer_arg {
    cx_engine *e;
    int rc;
} writer_arg;

static void *redefiner(void *p)
{
    writer_arg *a = p;
    const char *four[] = {"control", "treat-a", "treat-b", "late"};
    double s[][4] = {{1, 1, 1, 0}, {10, 1, 1, 0}, {1, 10, 1, 0},
                     {1, 1, 10, 0}, {1, 1, 1, 1}};
    /* Every name survives each redefinition, so no exposure is lost;
     * "late" joins in the last one. */
    for (int r = 0; r < 5 && !a->rc; r++) {
        while (atomic_load(&progress) < (r + 1) * READERS * CALLS / 6)
            sched_yield();
        a->rc = cx_experiment_define(a->e, "live", r < 4 ? 3 : 4, four,
                                     s[r]);
        if (!a->rc)
            a->rc = cx_variant_set(a->e, "live", "control", CX_OVERRIDE_K,
                                   r);
    }
    return NULL;
}

static void test_variant_threads(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    define_abc(e, "live");
    atomic_store(&progress, 0);
    pthread_t t[READERS + 1];
    reader_arg ra[READERS];
    writer_arg wa = {e, 0};
    for (int j = 0; j < READERS; j++) {
        ra[j] = (reader_arg){e, j, 0};
        assert_int_equal(pthread_create(&t[j], NULL, reader, &ra[j]), 0);
    }
    assert_int_equal(pthread_create(&t[READERS], NULL, redefiner, &wa), 0);
    for (int j = 0; j <= READERS; j++)
        pthread_join(t[j], NULL);
    assert_int_equal(wa.rc, CX_OK);
    int64_t total = 0, n;
    const char *four[] = {"control", "treat-a", "treat-b", "late"};
    for (int k = 0; k < 4; k++) {
        TU_OK(e, cx_exposures(e, "live", four[k], &n));
        total += n;
    }
    for (int j = 0; j < READERS; j++)
        assert_int_equal(ra[j].bad, 0);
    assert_int_equal(total, READERS * CALLS);
    double x;
    TU_OK(e, cx_variant_get(e, "live", "control", CX_OVERRIDE_K, &x));
    assert_true(x == 4);
    /* The last definition assigns as the reference does. */
    double s[] = {1, 1, 1, 1};
    uint64_t rng = 3;
    for (int j = 0; j < 100; j++) {
        char c[32];
        snprintf(c, sizeof c, "after-%d-%016llx", j,
                 (unsigned long long)cx__mix64(&rng));
        const char *v;
        TU_OK(e, cx_variant(e, "live", c, 0, &v));
        assert_string_equal(v, four[ref_pick("live", c, 4, s)]);
    }
    cx_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_names),
        cmocka_unit_test(test_journey),
        cmocka_unit_test(test_profile_fields),
        cmocka_unit_test(test_profile_top),
        cmocka_unit_test(test_profile_misuse),
        cmocka_unit_test(test_variant_golden),
        cmocka_unit_test(test_variant_stable),
        cmocka_unit_test(test_variant_shares),
        cmocka_unit_test(test_variant_shares_sequential),
        cmocka_unit_test(test_exposures),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_redefine_counts),
        cmocka_unit_test(test_experiment_misuse),
        cmocka_unit_test(test_variant_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
