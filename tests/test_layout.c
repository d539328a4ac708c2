/* test_layout.c -- home-page layouts: page invariants on synthetic shops,
 * planted tastes near the top, cold start, journey stages, channel context,
 * determinism, rules on every row, and misuse. */
#include "testutil.h"


#define MAXR 64
#define MAXI (64 * 100)

/* One page, as the library returned it. */
typedef struct pageout {
    cx_layout_row rows[MAXR];
    cx_layout_item items[MAXI];
    size_t n_rows, n_items;
} pageout;

static void get_page(cx_engine *e, const char *cust,
                     const cx_layout_spec *spec, pageout *p)
{
    memset(p, 0, sizeof *p);
    TU_OK(e, cx_layout(e, cust, spec, p->rows, MAXR, p->items, MAXI,
                       &p->n_rows));
    p->n_items = 0;
    for (size_t r = 0; r < p->n_rows; r++)
        p->n_items += p->rows[r].count;
}

static int reason_of_kind(int kind)
{
    switch (kind) {
    case CX_ROW_FOR_YOU: return CX_REASON_PERSONAL;
    case CX_ROW_BECAUSE: return CX_REASON_SIMILAR;
    case CX_ROW_CONTINUE: return CX_REASON_CONTINUE;
    case CX_ROW_BOUGHT_TOGETHER: return CX_REASON_BOUGHT_TOGETHER;
    case CX_ROW_TRENDING: return CX_REASON_TRENDING;
    case CX_ROW_NEW: return CX_REASON_NEW;
    case CX_ROW_CATEGORY: return CX_REASON_CATEGORY;
    }
    return -1;
}

/* ===================================================================== */
/* A shop with what each customer did, for the seed checks               */
/* ===================================================================== */

typedef struct world {
    synth_shop shop;
    cx_engine *e;
    uint8_t *touched;  /* n_customers x n_items: any signal */
    uint8_t *app_pos;  /* n_customers x n_items: positive signal on "app" */
    uint32_t *n_sig;   /* signals per customer */
} world;

static int positive_signal(const synth_signal *g)
{
    if (g->type == SYNTH_RETURN || g->type == SYNTH_DISLIKE)
        return 0;
    if (g->type == SYNTH_RATING)
        return g->value > 3;
    return 1;
}

static void world_make(world *w, const synth_config *c, int train)
{
    memset(w, 0, sizeof *w);
    w->e = tu_shop_engine_cfg(c, &w->shop);
    TU_OK(w->e, cx_set_option(w->e, CX_OPT_THREADS, 2));
    size_t nc = w->shop.n_customers, ni = w->shop.n_items;
    w->touched = calloc(nc * ni, 1);
    w->app_pos = calloc(nc * ni, 1);
    w->n_sig = calloc(nc, sizeof *w->n_sig);
    assert_non_null(w->touched);
    assert_non_null(w->app_pos);
    assert_non_null(w->n_sig);
    for (size_t j = 0; j < w->shop.n_signals; j++) {
        const synth_signal *g = &w->shop.signals[j];
        w->touched[(size_t)g->customer * ni + g->item] = 1;
        w->n_sig[g->customer]++;
        if (g->channel == 1 && positive_signal(g))
            w->app_pos[(size_t)g->customer * ni + g->item] = 1;
    }
    if (train) {
        TU_OK(w->e, cx_set_option(w->e, CX_OPT_FACTORS, 16));
        TU_OK(w->e, cx_set_option(w->e, CX_OPT_ITERATIONS, 8));
        TU_OK(w->e, cx_train(w->e, NULL, NULL));
    }
}

/* world_make on the default synthetic shop of 20,000 signals. */
static void world_shop(world *w, uint64_t seed, int train)
{
    synth_config c;
    synth_config_default(&c, 20000);
    c.seed = seed;
    world_make(w, &c, train);
}

static void world_free(world *w)
{
    cx_close(w->e);
    synth_free(&w->shop);
    free(w->touched);
    free(w->app_pos);
    free(w->n_sig);
}

/* Shop index of an id "i000123" / "c0000123" (the synth ids). */
static size_t shop_index(const char *id)
{
    return (size_t)strtoul(id + 1, NULL, 10);
}

/* Every invariant of one page.  shop_cust is the shop index of the
 * customer, or SIZE_MAX for an unknown id (w may then be NULL). */
static void check_page(cx_engine *e, const world *w, size_t shop_cust,
                       const cx_layout_spec *s, const pageout *p,
                       const char *const *deny, size_t n_deny)
{
    assert_true(p->n_rows <= s->max_rows);
    size_t per_kind[CX_ROW_KINDS] = {0};
    size_t next = 0;
    for (size_t r = 0; r < p->n_rows; r++) {
        const cx_layout_row *row = &p->rows[r];
        assert_true(row->kind >= 0 && row->kind < CX_ROW_KINDS);
        assert_true(s->kinds & CX_ROW_BIT(row->kind));
        per_kind[row->kind]++;
        if (row->count < s->min_row || row->count > s->items_per_row)
            print_error("row %zu (%s) has %zu items, spec %zu..%zu\n", r,
                        cx_row_kind_name(row->kind), row->count, s->min_row,
                        s->items_per_row);
        assert_true(row->count >= s->min_row && row->count >= 1);
        assert_true(row->count <= s->items_per_row);
        /* Rows tile the item array in order. */
        assert_int_equal(row->first, next);
        next += row->count;
        assert_true(next <= MAXI);
        if (r > 0)
            assert_true(p->rows[r - 1].fit >= row->fit);
        assert_true(isfinite(row->fit));
        if (shop_cust == SIZE_MAX)
            assert_true(row->kind == CX_ROW_TRENDING ||
                        row->kind == CX_ROW_NEW ||
                        row->kind == CX_ROW_CATEGORY);
        /* Seeds. */
        if (row->kind == CX_ROW_BECAUSE ||
            row->kind == CX_ROW_BOUGHT_TOGETHER) {
            assert_non_null(row->seed);
            if (w && shop_cust != SIZE_MAX) {
                size_t it = shop_index(row->seed);
                assert_true(it < w->shop.n_items);
                assert_true(w->touched[shop_cust * w->shop.n_items + it]);
            }
        }
        if (row->kind == CX_ROW_FOR_YOU || row->kind == CX_ROW_CONTINUE)
            assert_null(row->seed);
        int cat_row = row->kind == CX_ROW_CATEGORY ||
                      row->kind == CX_ROW_NEW || row->kind == CX_ROW_TRENDING;
        if (row->kind == CX_ROW_CATEGORY)
            assert_non_null(row->seed);
        for (size_t j = row->first; j < row->first + row->count; j++) {
            const cx_layout_item *it = &p->items[j];
            assert_non_null(it->item);
            if (it->reason != reason_of_kind(row->kind))
                print_error("row %zu %s: item %s has reason %d\n", r,
                            cx_row_kind_name(row->kind), it->item,
                            it->reason);
            assert_int_equal(it->reason, reason_of_kind(row->kind));
            assert_true(isfinite(it->score));
            const char *cat = NULL;
            int in_stock = -1;
            TU_OK(e, cx_item_get(e, it->item, &cat, NULL, &in_stock, NULL));
            if (s->rules.in_stock_only)
                assert_int_equal(in_stock, 1);
            if (cat_row && row->seed)
                assert_string_equal(cat, row->seed);
            for (size_t d = 0; d < n_deny; d++)
                assert_string_not_equal(it->item, deny[d]);
            /* Once on the page. */
            for (size_t q = 0; q < j; q++)
                assert_string_not_equal(p->items[q].item, it->item);
        }
    }
    for (int k = 0; k < CX_ROW_KINDS; k++)
        assert_true(per_kind[k] <= s->per_kind[k]);
}

static void same_page(const pageout *a, const pageout *b)
{
    assert_int_equal(a->n_rows, b->n_rows);
    for (size_t r = 0; r < a->n_rows; r++) {
        assert_int_equal(a->rows[r].kind, b->rows[r].kind);
        assert_ptr_equal(a->rows[r].seed, b->rows[r].seed);
        assert_true(a->rows[r].fit == b->rows[r].fit);
        assert_int_equal(a->rows[r].first, b->rows[r].first);
        assert_int_equal(a->rows[r].count, b->rows[r].count);
    }
    for (size_t j = 0; j < a->n_items; j++) {
        assert_ptr_equal(a->items[j].item, b->items[j].item);
        assert_true(a->items[j].score == b->items[j].score);
        assert_int_equal(a->items[j].reason, b->items[j].reason);
    }
}

/* ===================================================================== */
/* Invariants on three shops                                             */
/* ===================================================================== */

static void invariants_on(const synth_config *c)
{
    world w;
    world_make(&w, c, 1);
    cx_engine *e = w.e;
    static pageout p, q;

    /* Rules for every row: deny the top trending items, and take the next
     * ones out of stock. */
    const char *tr[12];
    size_t nt = 0;
    TU_OK(e, cx_trending(e, 12, NULL, tr, NULL, NULL, &nt));
    assert_true(nt >= 8);
    const char *deny[4] = {tr[0], tr[1], tr[2], tr[3]};
    const char *oos[4] = {tr[4], tr[5], tr[6], tr[7]};
    const int zero[4] = {0, 0, 0, 0};
    TU_OK(e, cx_items_upsert(e, 4, oos, NULL, NULL, zero, NULL, NULL));

    cx_layout_spec specs[4];
    for (int v = 0; v < 4; v++)
        cx_layout_spec_init(&specs[v]);
    specs[1].rules.deny = deny;
    specs[1].rules.n_deny = 4;
    specs[2].max_rows = 3;
    specs[2].items_per_row = 5;
    specs[2].min_row = 2;
    for (int k = 0; k < CX_ROW_KINDS; k++)
        specs[2].per_kind[k] = 1;
    specs[2].per_kind[CX_ROW_FOR_YOU] = 0;
    specs[3].kinds = CX_ROW_BIT(CX_ROW_TRENDING) | CX_ROW_BIT(CX_ROW_NEW);
    specs[3].rules.deny = deny;
    specs[3].rules.n_deny = 4;

    size_t stepc = w.shop.n_customers / 50 ? w.shop.n_customers / 50 : 1;
    size_t pages = 0, rows_seen[CX_ROW_KINDS] = {0};
    for (size_t ci = 0; ci < w.shop.n_customers; ci += stepc) {
        char id[24];
        synth_customer_id((uint32_t)ci, id);
        for (int v = 0; v < 4; v++) {
            int with_deny = v == 1 || v == 3;
            get_page(e, id, &specs[v], &p);
            check_page(e, &w, ci, &specs[v], &p, with_deny ? deny : NULL,
                       with_deny ? 4 : 0);
            assert_true(p.n_rows > 0);
            for (size_t r = 0; r < p.n_rows; r++) {
                rows_seen[p.rows[r].kind]++;
                if (v == 2)
                    assert_int_not_equal(p.rows[r].kind, CX_ROW_FOR_YOU);
            }
            pages++;
        }
        /* The default spec page has the out-of-stock items nowhere. */
        get_page(e, id, NULL, &p);
        for (size_t j = 0; j < p.n_items; j++)
            for (int d = 0; d < 4; d++)
                assert_string_not_equal(p.items[j].item, oos[d]);
        /* Determinism. */
        get_page(e, id, &specs[0], &q);
        get_page(e, id, &specs[0], &p);
        same_page(&p, &q);
    }
    /* Unknown ids: a new visitor's page. */
    for (int u = 0; u < 5; u++) {
        char id[32];
        snprintf(id, sizeof id, "visitor-%d", u);
        for (int v = 0; v < 4; v++) {
            int with_deny = v == 1 || v == 3;
            get_page(e, id, &specs[v], &p);
            assert_true(p.n_rows > 0);
            check_page(e, &w, SIZE_MAX, &specs[v], &p,
                       with_deny ? deny : NULL, with_deny ? 4 : 0);
        }
    }
    /* An allow list in the rules holds on every row, the listed ones
     * (continue shopping, bought together) included: here the items with
     * an even shop index. */
    {
        cx_layout_spec sa;
        cx_layout_spec_init(&sa);
        size_t na = (w.shop.n_items + 1) / 2;
        const char **allow = malloc(na * sizeof *allow);
        assert_non_null(allow);
        for (size_t j = 0; j < na; j++)
            allow[j] = w.shop.items[2 * j].id;
        sa.rules.allow = allow;
        sa.rules.n_allow = na;
        size_t listed = 0;
        for (size_t ci = 0; ci < w.shop.n_customers; ci += stepc) {
            char id[24];
            synth_customer_id((uint32_t)ci, id);
            get_page(e, id, &sa, &p);
            check_page(e, &w, ci, &sa, &p, NULL, 0);
            for (size_t r = 0; r < p.n_rows; r++)
                listed += p.rows[r].kind == CX_ROW_CONTINUE ||
                          p.rows[r].kind == CX_ROW_BOUGHT_TOGETHER;
            for (size_t j = 0; j < p.n_items; j++)
                assert_int_equal(shop_index(p.items[j].item) % 2, 0);
        }
        assert_true(listed > 0);
        free(allow);
    }
    assert_true(pages >= 150);
    /* The checks were not vacuous: the personal kinds appeared. */
    assert_true(rows_seen[CX_ROW_FOR_YOU] > 0);
    assert_true(rows_seen[CX_ROW_BECAUSE] > 0);
    assert_true(rows_seen[CX_ROW_CONTINUE] > 0);
    assert_true(rows_seen[CX_ROW_BOUGHT_TOGETHER] > 0);
    assert_true(rows_seen[CX_ROW_CATEGORY] > 0);
    assert_true(rows_seen[CX_ROW_TRENDING] > 0);
    world_free(&w);
}

static void test_invariants_default_shop(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 20000);
    c.seed = 11;
    invariants_on(&c);
}

static void test_invariants_weak_taste_skewed(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 30000);
    c.seed = 22;
    c.taste_strength = 0.3;
    c.bestseller_skew = 1.6;
    c.n_categories = 25;
    invariants_on(&c);
}

static void test_invariants_repeat_buyers(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 25000);
    c.seed = 33;
    c.taste_strength = 0.95;
    c.repeat_rate = 0.4;
    c.n_items = 600;
    c.n_customers = 300;
    c.days = 30;
    invariants_on(&c);
}

/* BECAUSE rows come from a scan the first time a seed is seen (the pass
 * makes the seed's neighbour list on the same scores) and from the list
 * after: the pages are the same, and a list made by a page answers
 * similar_items as the exact scan does. */
static void test_because_rows_from_lists(void **state)
{
    (void)state;
    world w;
    world_shop(&w, 44, 1); /* a new model: no list yet */
    cx_engine *e = w.e;
    enum { NC = 40 };
    pageout *first = calloc(NC, sizeof *first);
    static pageout again;
    assert_non_null(first);
    size_t step = w.shop.n_customers / NC, because = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t j = 0; j < NC; j++) {
            char id[24];
            synth_customer_id((uint32_t)(j * step), id);
            get_page(e, id, NULL, pass ? &again : &first[j]);
            if (pass)
                same_page(&first[j], &again);
        }
    cx_rec_opts ex;
    cx_rec_opts_init(&ex);
    ex.exact = 1;
    for (size_t j = 0; j < NC; j++)
        for (size_t r = 0; r < first[j].n_rows; r++) {
            const cx_layout_row *row = &first[j].rows[r];
            if (row->kind != CX_ROW_BECAUSE)
                continue;
            result a, x;
            memset(&a, 0, sizeof a);
            memset(&x, 0, sizeof x);
            TU_OK(e, cx_similar_items(e, row->seed, 12, NULL, a.items,
                                      a.scores, NULL, &a.n));
            TU_OK(e, cx_similar_items(e, row->seed, 12, &ex, x.items,
                                      x.scores, NULL, &x.n));
            assert_int_equal(a.n, x.n);
            for (size_t t = 0; t < a.n; t++)
                if (strcmp(a.items[t], x.items[t]) != 0)
                    assert_true(fabsf(a.scores[t] - x.scores[t]) <= 1e-5f);
            because++;
        }
    assert_true(because >= 20);

    /* Rules that leave a list too short: a new model (no lists), and a
     * page denying the 60 items nearest to one of its BECAUSE seeds.  The
     * first page makes the list, finds it short and scans; the second
     * finds the list short and scans in the pass: the same rows. */
    TU_OK(e, cx_train(e, NULL, NULL));
    size_t cj = 0, cr = 0;
    for (cj = 0; cj < NC; cj++) {
        char id[24];
        synth_customer_id((uint32_t)(cj * step), id);
        get_page(e, id, NULL, &again);
        for (cr = 0; cr < again.n_rows; cr++)
            if (again.rows[cr].kind == CX_ROW_BECAUSE)
                break;
        if (cr < again.n_rows)
            break;
    }
    assert_true(cj < NC);
    char cid[24], seed[64];
    synth_customer_id((uint32_t)(cj * step), cid);
    snprintf(seed, sizeof seed, "%s", again.rows[cr].seed);
    TU_OK(e, cx_train(e, NULL, NULL)); /* and no list again */
    static result near;
    memset(&near, 0, sizeof near);
    TU_OK(e, cx_similar_items(e, seed, 60, &ex, near.items, near.scores,
                              NULL, &near.n));
    assert_int_equal(near.n, 60);
    cx_layout_spec sd;
    cx_layout_spec_init(&sd);
    sd.rules.deny = near.items;
    sd.rules.n_deny = near.n;
    get_page(e, cid, &sd, &first[0]);
    get_page(e, cid, &sd, &again);
    same_page(&first[0], &again);
    size_t seen_seed = 0;
    for (size_t r = 0; r < again.n_rows; r++) {
        if (again.rows[r].kind != CX_ROW_BECAUSE ||
            strcmp(again.rows[r].seed, seed) != 0)
            continue;
        seen_seed++;
        for (size_t j = again.rows[r].first;
             j < again.rows[r].first + again.rows[r].count; j++)
            for (size_t d = 0; d < near.n; d++)
                assert_string_not_equal(again.items[j].item, near.items[d]);
    }
    assert_int_equal(seen_seed, 1);
    free(first);
    world_free(&w);
}

/* The bought-together row by its definition, from the signals in order
 * (the engine's events): the seed is u's newest purchase, else newest
 * cart, among u's newest 2000 signals; its buyers are the first 64
 * customers but u met walking its signals newest first, every signal
 * from index cov on (after the basket index) and then only purchases and
 * carts, 1000 steps in all; each buyer's newest 16 signals, counted the
 * same way, add 1 to each distinct item bought or carted there but the
 * seed; the best 128 by
 * count, then item index; then the rules: nothing u has a signal of, not
 * the seed, in stock.  Returns the row's length (into out/cnt), with
 * *seed_out the seed or SIZE_MAX. */
static int is_basket_sig(const synth_signal *g)
{
    return g->type == SYNTH_PURCHASE || g->type == SYNTH_ADD_TO_CART;
}

static size_t ref_together(const world *w, const synth_signal *sig,
                           size_t ns, size_t cov, uint32_t u,
                           size_t *seed_out, uint32_t *out, float *cnt_out)
{
    size_t ni = w->shop.n_items, seed = SIZE_MAX, cart = SIZE_MAX, walked;
    uint8_t *touched = calloc(ni, 1);
    float *count = calloc(ni, sizeof *count);
    uint8_t *mine = calloc(ni, 1);
    assert_non_null(touched);
    assert_non_null(count);
    assert_non_null(mine);
    walked = 0;
    for (size_t j = ns; j-- > 0;) {
        if (sig[j].customer != u)
            continue;
        touched[sig[j].item] = 1;
        if (walked++ >= 2000)
            continue;
        if (sig[j].type == SYNTH_PURCHASE && seed == SIZE_MAX)
            seed = sig[j].item;
        if (sig[j].type == SYNTH_ADD_TO_CART && cart == SIZE_MAX)
            cart = sig[j].item;
    }
    if (seed == SIZE_MAX)
        seed = cart;
    *seed_out = seed;
    size_t n = 0;
    if (seed != SIZE_MAX) {
        uint32_t buyers[64];
        size_t nb = 0;
        walked = 0;
        for (size_t j = ns; j-- > 0 && walked < 1000 && nb < 64;) {
            const synth_signal *g = &sig[j];
            if (g->item != seed || (j < cov && !is_basket_sig(g)))
                continue;
            walked++;
            int seen = g->customer == u;
            for (size_t b = 0; b < nb && !seen; b++)
                seen = buyers[b] == g->customer;
            if (is_basket_sig(g) && !seen)
                buyers[nb++] = g->customer;
        }
        for (size_t b = 0; b < nb; b++) {
            memset(mine, 0, ni);
            size_t seen = 0;
            for (size_t j = ns; j-- > 0 && seen < 16;) {
                const synth_signal *g = &sig[j];
                if (g->customer != buyers[b] ||
                    (j < cov && !is_basket_sig(g)))
                    continue;
                seen++;
                if (is_basket_sig(g) && g->item != seed && !mine[g->item]) {
                    mine[g->item] = 1;
                    count[g->item] += 1;
                }
            }
        }
        /* The best 128 by count, then index; then the rules. */
        uint32_t best[128];
        size_t nbest = 0, distinct = 0;
        for (size_t i = 0; i < ni; i++) {
            if (count[i] == 0)
                continue;
            distinct++;
            size_t at = nbest < 128 ? nbest++ : 128;
            if (at == 128) {
                if (count[i] <= count[best[127]])
                    continue;
                at = 127;
            }
            while (at > 0 && count[best[at - 1]] < count[i]) {
                best[at] = best[at - 1];
                at--;
            }
            best[at] = (uint32_t)i;
        }
        assert_true(distinct < 2048); /* the engine's table keeps all */
        for (size_t j = 0; j < nbest && n < 100; j++) {
            uint32_t i = best[j];
            if (touched[i] || i == seed || !w->shop.items[i].in_stock)
                continue;
            out[n] = i;
            cnt_out[n++] = count[i];
        }
    }
    free(touched), free(count), free(mine);
    return n;
}

/* The engine's row against ref_together() for customers of the shop:
 * first from the basket index alone, then with signals after it (the
 * chain's part), then after cx_forget renumbered the events. */
static void check_together(const world *w, const synth_signal *sig,
                           size_t ns, size_t cov, size_t *rows)
{
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    s.kinds = CX_ROW_BIT(CX_ROW_BOUGHT_TOGETHER);
    s.max_rows = 1;
    s.items_per_row = 100;
    s.min_row = 1;
    static pageout p;
    uint32_t ref[100];
    float cnt[100];
    for (uint32_t u = 0; u < w->shop.n_customers; u += 3) {
        char id[24];
        synth_customer_id(u, id);
        size_t seed;
        size_t n = ref_together(w, sig, ns, cov, u, &seed, ref, cnt);
        get_page(w->e, id, &s, &p);
        if (n == 0) { /* no row, or the popular fallback */
            assert_true(p.n_rows == 0 ||
                        p.rows[0].kind != CX_ROW_BOUGHT_TOGETHER);
            continue;
        }
        assert_int_equal(p.n_rows, 1);
        assert_int_equal(p.rows[0].kind, CX_ROW_BOUGHT_TOGETHER);
        assert_string_equal(p.rows[0].seed, w->shop.items[seed].id);
        assert_int_equal(p.rows[0].count, n);
        for (size_t j = 0; j < n; j++) {
            assert_string_equal(p.items[j].item, w->shop.items[ref[j]].id);
            assert_true(p.items[j].score == cnt[j]);
        }
        (*rows)++;
    }
}

static void test_bought_together_reference(void **state)
{
    (void)state;
    world w;
    world_shop(&w, 55, 0);
    size_t ns = w.shop.n_signals, rows = 0;
    assert_true(w.shop.n_items < 2048);
    synth_signal *sig = malloc((ns + 64) * sizeof *sig);
    assert_non_null(sig);
    memcpy(sig, w.shop.signals, ns * sizeof *sig);
    /* The first page makes the index: it covers every signal. */
    check_together(&w, sig, ns, ns, &rows);
    assert_true(rows >= 20);

    /* After the index: the item most bought gets new buyers, each also
     * buying the next item. */
    uint32_t *buys = calloc(w.shop.n_items, sizeof *buys);
    assert_non_null(buys);
    for (size_t j = 0; j < ns; j++)
        buys[sig[j].item] += is_basket_sig(&sig[j]);
    uint32_t top = 0;
    for (uint32_t i = 0; i < w.shop.n_items; i++)
        if (buys[i] > buys[top])
            top = i;
    uint32_t other = (top + 1) % (uint32_t)w.shop.n_items;
    size_t n2 = ns;
    const char *cu[16], *it[16];
    int ty[16];
    int64_t ts[16];
    char ids[8][24];
    for (uint32_t k = 0; k < 8; k++) {
        uint32_t u = (uint32_t)((k * 37 + 5) % w.shop.n_customers);
        synth_customer_id(u, ids[k]);
        for (int h = 0; h < 2; h++) {
            synth_signal g = {u, h ? other : top, SYNTH_PURCHASE, 1,
                              sig[ns - 1].ts + 10 + 2 * k + h, 0};
            sig[n2] = g;
            cu[n2 - ns] = ids[k];
            it[n2 - ns] = w.shop.items[g.item].id;
            ty[n2 - ns] = CX_PURCHASE;
            ts[n2 - ns] = g.ts;
            n2++;
        }
    }
    TU_OK(w.e, cx_ingest(w.e, n2 - ns, cu, it, ty, NULL, ts, NULL));
    rows = 0;
    check_together(&w, sig, n2, ns, &rows);
    assert_true(rows >= 20);

    /* cx_forget renumbers the events: a new index over what is left. */
    uint32_t gone = 5;
    char gid[24];
    synth_customer_id(gone, gid);
    const char *gl[1] = {gid};
    size_t forgotten = 0;
    TU_OK(w.e, cx_forget(w.e, 1, gl, &forgotten));
    assert_int_equal(forgotten, 1);
    size_t n3 = 0;
    for (size_t j = 0; j < n2; j++)
        if (sig[j].customer != gone)
            sig[n3++] = sig[j];
    /* Views enough to bring the count of events back above the old
     * index's: it must not be taken for a fresh one. */
    size_t n_views = n2 - n3 + 40;
    sig = realloc(sig, (n3 + n_views) * sizeof *sig);
    assert_non_null(sig);
    char vid[24];
    synth_customer_id(7, vid);
    for (size_t k = 0; k < n_views; k++) {
        synth_signal g = {7, (uint32_t)(k % w.shop.n_items), SYNTH_VIEW, 1,
                          sig[n3 - 1].ts + 100, 0};
        sig[n3 + k] = g;
        const char *vc[1] = {vid}, *vi[1] = {w.shop.items[g.item].id};
        int vt[1] = {CX_VIEW};
        int64_t vts[1] = {g.ts};
        TU_OK(w.e, cx_ingest(w.e, 1, vc, vi, vt, NULL, vts, NULL));
    }
    n3 += n_views;
    rows = 0;
    check_together(&w, sig, n3, n3, &rows);
    assert_true(rows >= 20);
    free(buys);
    free(sig);
    world_free(&w);
}

/* A customer's events by cx__walk (the event index, then or only their
 * chain) against their chain, for every customer: the same events in the
 * same order.  Returns how many customers' walks read the index's list,
 * and through *mixed how many of those also walked events after it. */
static size_t check_walks(cx_engine *e, size_t *mixed)
{
    size_t listed = 0;
    *mixed = 0;
    cx__rdlock(e);
    for (uint32_t u = 0; u < e->customers.n; u++) {
        cx__walk w;
        cx__walk_init(&w, e, u);
        int uses_list = w.at != w.end;
        size_t after = 0;
        uint32_t ev = e->cust_last[u], got;
        while ((got = cx__walk_next(&w)) != CX_NONE) {
            assert_int_equal(got, ev);
            after += uses_list && got >= w.cov;
            ev = e->ev_prev[ev];
        }
        assert_int_equal(ev, CX_NONE); /* nothing left out */
        listed += uses_list;
        *mixed += after > 0;
    }
    cx__rdunlock(e);
    return listed;
}

static void test_event_walks(void **state)
{
    (void)state;
    world w;
    world_shop(&w, 77, 0);
    size_t mixed, heavy = 0;
    for (size_t u = 0; u < w.shop.n_customers; u++)
        heavy += w.n_sig[u] >= CX__WALK_MIN;
    assert_true(heavy >= 10);
    /* The first walk makes the index: every heavy customer is listed. */
    assert_int_equal(check_walks(w.e, &mixed), heavy);
    assert_int_equal(mixed, 0);

    /* Signals after the index: each customer's newest are on the chain,
     * the older ones in the list (too few to make the index stale). */
    const char *cu[64], *it[64];
    int ty[64];
    int64_t ts[64];
    char ids[64][24];
    size_t k = 0;
    for (uint32_t u = 0; u < w.shop.n_customers && k < 64; u++) {
        if (w.n_sig[u] < CX__WALK_MIN && u % 7)
            continue;
        synth_customer_id(u, ids[k]);
        cu[k] = ids[k];
        it[k] = w.shop.items[(u * 13) % w.shop.n_items].id;
        ty[k] = CX_VIEW;
        ts[k] = w.shop.signals[w.shop.n_signals - 1].ts + 1 + (int64_t)k;
        k++;
    }
    TU_OK(w.e, cx_ingest(w.e, k, cu, it, ty, NULL, ts, NULL));
    assert_int_equal(check_walks(w.e, &mixed), heavy);
    assert_true(mixed >= 10);

    /* cx_forget renumbers the events: the index is made again. */
    char gid[24];
    uint32_t gone = 0;
    while (w.n_sig[gone] < CX__WALK_MIN)
        gone++;
    synth_customer_id(gone, gid);
    const char *gl[1] = {gid};
    size_t forgotten = 0;
    TU_OK(w.e, cx_forget(w.e, 1, gl, &forgotten));
    assert_int_equal(forgotten, 1);
    assert_int_equal(check_walks(w.e, &mixed), heavy - 1);
    assert_int_equal(mixed, 0);
    world_free(&w);
}

/* ===================================================================== */
/* Planted taste near the top                                            */
/* ===================================================================== */

static void test_planted_taste_on_top(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 40000);
    c.seed = 5;
    c.taste_strength = 0.9;
    world w;
    world_make(&w, &c, 1);
    static pageout p;
    size_t checked = 0, top_fav = 0, top_items = 0, cat_rank_ok = 0,
           cat_rank_n = 0;
    for (size_t ci = 0; ci < w.shop.n_customers && checked < 80; ci++) {
        if (w.n_sig[ci] < 40)
            continue;
        char id[24];
        synth_customer_id((uint32_t)ci, id);
        get_page(w.e, id, NULL, &p);
        const uint32_t *fav = &w.shop.fav[2 * ci];
        /* The first two rows' items. */
        size_t upto = p.n_rows < 2 ? p.n_rows : 2;
        for (size_t r = 0; r < upto; r++)
            for (size_t j = p.rows[r].first;
                 j < p.rows[r].first + p.rows[r].count; j++) {
                uint32_t cat = w.shop.items[shop_index(p.items[j].item)].cat;
                top_items++;
                top_fav += cat == fav[0] || cat == fav[1];
            }
        /* The best category row is about a planted category, above any
         * category row of another category. */
        int seen_other = 0, bad = 0, any_fav = 0;
        for (size_t r = 0; r < p.n_rows; r++) {
            if (p.rows[r].kind != CX_ROW_CATEGORY)
                continue;
            size_t cat = shop_index(p.rows[r].seed + 2); /* "cat07" */
            int is_fav = cat == fav[0] || cat == fav[1];
            if (is_fav && seen_other)
                bad = 1;
            if (!is_fav)
                seen_other = 1;
            any_fav |= is_fav;
        }
        if (any_fav) {
            cat_rank_n++;
            cat_rank_ok += !bad;
        }
        checked++;
    }
    double share = (double)top_fav / (double)top_items;
    double chance = 2.0 / (double)w.shop.n_categories;
    print_message("planted taste: %zu customers, %.0f%% of the first two "
                  "rows' items in a planted category (chance %.0f%%); "
                  "category rows ranked right for %zu/%zu\n", checked,
                  100 * share, 100 * chance, cat_rank_ok, cat_rank_n);
    assert_true(checked >= 40);
    assert_true(share >= 0.6);
    assert_true(share >= 3 * chance);
    assert_true(cat_rank_n >= checked / 2);
    assert_true(cat_rank_ok >= cat_rank_n * 9 / 10);
    world_free(&w);
}

/* ===================================================================== */
/* Cold start                                                            */
/* ===================================================================== */

static void test_new_visitor(void **state)
{
    (void)state;
    world w;
    world_shop(&w, 7, 1);
    static pageout p;
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    get_page(w.e, "never-seen-before", &s, &p);
    assert_true(p.n_rows >= 3);
    check_page(w.e, &w, SIZE_MAX, &s, &p, NULL, 0);
    int kinds = 0;
    for (size_t r = 0; r < p.n_rows; r++)
        kinds |= 1 << p.rows[r].kind;
    assert_true(kinds & CX_ROW_BIT(CX_ROW_TRENDING));
    assert_true(kinds & CX_ROW_BIT(CX_ROW_NEW));
    assert_true(kinds & CX_ROW_BIT(CX_ROW_CATEGORY));
    world_free(&w);
}

/* Catalogue only: no signals, no training. */
static void test_catalogue_only(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 20000);
    c.seed = 8;
    synth_shop shop;
    assert_int_equal(synth_generate(&c, &shop), 0);
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    TU_OK(e, tu_upsert_catalogue(e, &shop));
    static pageout p;
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    get_page(e, "c0000001", &s, &p);
    assert_true(p.n_rows > 0);
    assert_true(p.n_items >= s.min_row);
    check_page(e, NULL, SIZE_MAX, &s, &p, NULL, 0);
    get_page(e, "someone", NULL, &p);
    assert_true(p.n_rows > 0);
    cx_close(e);
    synth_free(&shop);
}

/* Catalogue without created_at and no signals: only the fallback can
 * fill the page; it must still not be empty. */
static void test_catalogue_only_no_dates(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    const char *ids[6] = {"a", "b", "c", "d", "e", "f"};
    const char *cats[6] = {"x", "x", "x", "y", "y", "y"};
    TU_OK(e, cx_items_upsert(e, 6, ids, cats, NULL, NULL, NULL, NULL));
    static pageout p;
    get_page(e, "anyone", NULL, &p);
    assert_true(p.n_rows > 0);
    assert_true(p.n_items > 0);
    for (size_t r = 0; r < p.n_rows; r++)
        for (size_t j = p.rows[r].first;
             j < p.rows[r].first + p.rows[r].count; j++)
            if (p.items[j].reason != reason_of_kind(p.rows[r].kind))
                print_message("note: fallback row kind %s carries reason "
                              "%d\n", cx_row_kind_name(p.rows[r].kind),
                              p.items[j].reason);
    cx_close(e);
}

/* The kinds mask holds even when only the never-empty fallback could
 * fill the page, and that row's items carry the reason of its kind. */
static void test_kinds_mask_fallback(void **state)
{
    (void)state;
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    const char *ids[6] = {"a", "b", "c", "d", "e", "f"};
    const char *cats[6] = {"x", "x", "x", "y", "y", "y"};
    TU_OK(e, cx_items_upsert(e, 6, ids, cats, NULL, NULL, NULL, NULL));
    static pageout p;
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    s.kinds = CX_ROW_BIT(CX_ROW_CONTINUE); /* nothing to continue */
    get_page(e, "anyone", &s, &p);
    for (size_t r = 0; r < p.n_rows; r++) {
        if (!(s.kinds & CX_ROW_BIT(p.rows[r].kind)))
            print_error("kinds = CONTINUE only, got a %s row (reason %d)\n",
                        cx_row_kind_name(p.rows[r].kind),
                        p.items[p.rows[r].first].reason);
        assert_true(s.kinds & CX_ROW_BIT(p.rows[r].kind));
        for (size_t j = p.rows[r].first;
             j < p.rows[r].first + p.rows[r].count; j++)
            assert_int_equal(p.items[j].reason,
                             reason_of_kind(p.rows[r].kind));
    }
    cx_close(e);
}

/* Signals but no training. */
static void test_untrained_with_signals(void **state)
{
    (void)state;
    world w;
    world_shop(&w, 9, 0);
    static pageout p;
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    size_t personal_rows = 0;
    for (size_t ci = 0; ci < w.shop.n_customers; ci += 25) {
        char id[24];
        synth_customer_id((uint32_t)ci, id);
        get_page(w.e, id, &s, &p);
        assert_true(p.n_rows > 0);
        check_page(w.e, &w, ci, &s, &p, NULL, 0);
        for (size_t r = 0; r < p.n_rows; r++) {
            /* No model: no vector-scored rows. */
            assert_int_not_equal(p.rows[r].kind, CX_ROW_FOR_YOU);
            assert_int_not_equal(p.rows[r].kind, CX_ROW_BECAUSE);
            personal_rows += p.rows[r].kind == CX_ROW_CONTINUE ||
                             p.rows[r].kind == CX_ROW_BOUGHT_TOGETHER;
        }
    }
    assert_true(personal_rows > 0);
    get_page(w.e, "stranger", &s, &p);
    assert_true(p.n_rows > 0);
    check_page(w.e, &w, SIZE_MAX, &s, &p, NULL, 0);
    world_free(&w);
}

/* ===================================================================== */
/* Journey stages                                                        */
/* ===================================================================== */

#define T0 1767225600

/* A small shop: 3 categories x 30 items created over the last year, 60
 * background customers with views and purchases. */
static cx_engine *journey_shop(void)
{
    cx_engine *e = tu_engine(0, NULL, NULL, NULL, NULL, NULL);
    char ids[90][16], cats[90][16];
    const char *ip[90], *cp[90];
    int64_t created[90];
    for (int i = 0; i < 90; i++) {
        snprintf(ids[i], 16, "it%02d", i);
        snprintf(cats[i], 16, "cat%d", i % 3);
        ip[i] = ids[i];
        cp[i] = cats[i];
        created[i] = T0 - 86400 * (int64_t)(i * 4);
    }
    TU_OK(e, cx_items_upsert(e, 90, ip, cp, NULL, NULL, created, NULL));
    unsigned long long r = 3;
    for (int u = 0; u < 60; u++) {
        char cu[16];
        snprintf(cu, 16, "bg%02d", u);
        for (int s = 0; s < 25; s++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            int it = (int)((r >> 33) % 30) * 3 + u % 3; /* one category */
            if ((r >> 20) % 5 == 0)
                it = (int)((r >> 40) % 90);
            int type = (r >> 13) % 6 == 0 ? CX_PURCHASE : CX_VIEW;
            const char *cs = cu, *is = ip[it];
            float v = 1;
            int64_t ts = T0 + 86400 * 10 + s * 3600 + u * 60;
            TU_OK(e, cx_ingest(e, 1, &cs, &is, &type, &v, &ts, NULL));
        }
    }
    return e;
}

static void ingest1(cx_engine *e, const char *c, const char *item, int type,
                    int64_t ts)
{
    float v = 1;
    TU_OK(e, cx_ingest(e, 1, &c, &item, &type, &v, &ts, NULL));
}

static int row_pos(const pageout *p, int kind)
{
    for (size_t r = 0; r < p->n_rows; r++)
        if (p->rows[r].kind == kind)
            return (int)r;
    return -1;
}

static void print_page(const char *tag, const pageout *p)
{
    print_message("%s:", tag);
    for (size_t r = 0; r < p->n_rows; r++)
        print_message(" %s(%.2f)", cx_row_kind_name(p->rows[r].kind),
                      p->rows[r].fit);
    print_message("\n");
}

static void journey_case(int trained)
{
    cx_engine *e = journey_shop();
    const int64_t T = T0 + 86400 * 12;
    /* Alice views and carts six items of cat1, buys nothing. */
    for (int j = 0; j < 6; j++) {
        char it[16];
        snprintf(it, 16, "it%02d", 1 + 3 * j);
        ingest1(e, "alice", it, CX_VIEW, T + j * 60);
        ingest1(e, "alice", it, CX_ADD_TO_CART, T + j * 60 + 30);
    }
    if (trained)
        TU_OK(e, cx_train(e, NULL, NULL));
    cx_profile prof;
    prof.size = sizeof prof;
    TU_OK(e, cx_profile_get(e, "alice", 0, &prof));
    assert_int_equal(prof.stage, CX_STAGE_CONSIDERING);
    static pageout considering, loyal, lapsed;
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    get_page(e, "alice", &s, &considering);
    check_page(e, NULL, 0, &s, &considering, NULL, 0);
    print_page(trained ? "considering (trained)" : "considering", &considering);
    int pc = row_pos(&considering, CX_ROW_CONTINUE);
    assert_true(pc >= 0);

    /* The same customer lapsed: two years later. */
    s.now = T + 2 * 365 * 86400LL;
    TU_OK(e, cx_profile_get(e, "alice", s.now, &prof));
    assert_int_equal(prof.stage, CX_STAGE_LAPSED);
    get_page(e, "alice", &s, &lapsed);
    print_page(trained ? "lapsed (trained)" : "lapsed", &lapsed);
    assert_true(lapsed.n_rows > 0);
    assert_true(lapsed.rows[0].kind == CX_ROW_TRENDING ||
                lapsed.rows[0].kind == CX_ROW_NEW);
    int pl = row_pos(&lapsed, CX_ROW_CONTINUE);
    assert_true(pl < 0 || pl > pc);

    /* Then she buys three other items: loyal. */
    for (int j = 0; j < 3; j++) {
        char it[16];
        snprintf(it, 16, "it%02d", 31 + 3 * j);
        ingest1(e, "alice", it, CX_PURCHASE, T + 3600 + j * 60);
    }
    TU_OK(e, cx_profile_get(e, "alice", 0, &prof));
    assert_int_equal(prof.stage, CX_STAGE_LOYAL);
    s.now = 0;
    get_page(e, "alice", &s, &loyal);
    check_page(e, NULL, 0, &s, &loyal, NULL, 0);
    print_page(trained ? "loyal (trained)" : "loyal", &loyal);
    int po = row_pos(&loyal, CX_ROW_CONTINUE);
    assert_true(po < 0 || po > pc);
    /* The continue row is still there for the loyal customer: its fit
     * fell with the stage weight (1.2 -> 0.6). */
    assert_true(po >= 0);
    assert_true(loyal.rows[po].fit < considering.rows[pc].fit);
    cx_close(e);
}

static void test_journey_untrained(void **state)
{
    (void)state;
    journey_case(0);
}

static void test_journey_trained(void **state)
{
    (void)state;
    journey_case(1);
}

/* Lapsed customers of a trained shop get trending or new rows on top. */
static void test_lapsed_on_shop(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 20000);
    c.seed = 12;
    world w;
    world_make(&w, &c, 1);
    static pageout p;
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    s.now = c.start_time + 86400LL * (c.days + 365);
    size_t n = 0, top_ok = 0;
    for (size_t ci = 0; ci < w.shop.n_customers; ci += 10) {
        char id[24];
        synth_customer_id((uint32_t)ci, id);
        get_page(w.e, id, &s, &p);
        if (!w.n_sig[ci])
            continue;
        n++;
        top_ok += p.rows[0].kind == CX_ROW_TRENDING ||
                  p.rows[0].kind == CX_ROW_NEW;
    }
    print_message("lapsed: trending/new on top for %zu/%zu\n", top_ok, n);
    assert_true(n >= 20);
    assert_true(top_ok >= n * 9 / 10);
    world_free(&w);
}

/* ===================================================================== */
/* Channel context                                                       */
/* ===================================================================== */

static void test_channel_seeds(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 30000);
    c.seed = 14;
    world w;
    world_make(&w, &c, 1);
    static pageout p, q;
    cx_layout_spec s, any;
    cx_layout_spec_init(&s);
    s.channel = "app";
    for (int k = 0; k < CX_ROW_KINDS; k++)
        s.per_kind[k] = 0;
    s.per_kind[CX_ROW_BECAUSE] = 1;  /* one BECAUSE row: the first seed */
    s.kinds = CX_ROW_BIT(CX_ROW_BECAUSE);
    s.min_row = 1;
    any = s;
    any.channel = NULL;
    size_t with_app = 0, app_seed = 0, differs = 0;
    for (size_t ci = 0; ci < w.shop.n_customers; ci++) {
        size_t ni = w.shop.n_items;
        int has_app = 0;
        for (size_t i = 0; i < ni && !has_app; i++)
            has_app = w.app_pos[ci * ni + i];
        if (!has_app)
            continue;
        char id[24];
        synth_customer_id((uint32_t)ci, id);
        get_page(w.e, id, &s, &p);
        int r = row_pos(&p, CX_ROW_BECAUSE);
        if (r < 0)
            continue;
        with_app++;
        size_t it = shop_index(p.rows[r].seed);
        app_seed += w.app_pos[ci * ni + it];
        if (!w.app_pos[ci * ni + it])
            print_error("%s: BECAUSE seed %s not touched on app\n", id,
                        p.rows[r].seed);
        get_page(w.e, id, &any, &q);
        int rq = row_pos(&q, CX_ROW_BECAUSE);
        differs += rq >= 0 && q.rows[rq].seed != p.rows[r].seed;
    }
    print_message("channel: %zu customers with app items, %zu app seeds, "
                  "%zu differ from the any-channel seed\n", with_app,
                  app_seed, differs);
    assert_true(with_app >= 50);
    assert_int_equal(app_seed, with_app);
    assert_true(differs > 0);
    /* An unknown channel is no error. */
    s.channel = "kiosk";
    get_page(w.e, "c0000001", &s, &p);
    world_free(&w);
}

/* ===================================================================== */
/* Misuse                                                                */
/* ===================================================================== */

static void test_misuse(void **state)
{
    (void)state;
    synth_config c;
    synth_config_default(&c, 5000);
    synth_shop shop;
    cx_engine *e = tu_shop_engine_cfg(&c, &shop);
    cx_layout_row rows[64];
    cx_layout_item items[64 * 12];
    size_t n = 99;
    cx_layout_spec s;
    cx_layout_spec_init(&s);
    assert_int_equal(cx_layout(NULL, "c0000001", &s, rows, 64, items, 768,
                               &n), CX_EINVAL);
    assert_true(strlen(cx_errmsg(NULL)) > 0);
    FAILS(e, cx_layout(e, NULL, &s, rows, 64, items, 768, &n), CX_EINVAL);
    FAILS(e, cx_layout(e, "", &s, rows, 64, items, 768, &n), CX_EINVAL);
    FAILS(e, cx_layout(e, "c0000001", &s, NULL, 64, items, 768, &n),
          CX_EINVAL);
    FAILS(e, cx_layout(e, "c0000001", &s, rows, 64, NULL, 768, &n),
          CX_EINVAL);
    FAILS(e, cx_layout(e, "c0000001", &s, rows, 64, items, 768, NULL),
          CX_EINVAL);
    char longid[CX_MAX_ID_LEN + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    FAILS(e, cx_layout(e, longid, &s, rows, 64, items, 768, &n), CX_EINVAL);

#define BAD_SPEC(field, value)                                              \
    do {                                                                    \
        cx_layout_spec b_;                                                  \
        cx_layout_spec_init(&b_);                                           \
        b_.field = value;                                                   \
        n = 99;                                                             \
        FAILS(e, cx_layout(e, "c0000001", &b_, rows, 64, items, 768, &n),   \
              CX_EINVAL);                                                   \
        assert_int_equal(n, 0);                                             \
    } while (0)
    BAD_SPEC(size, 0);
    BAD_SPEC(size, sizeof(cx_layout_spec) - 8);
    BAD_SPEC(size, sizeof(cx_layout_spec) + 8);
    BAD_SPEC(max_rows, 0);
    BAD_SPEC(max_rows, 65);
    BAD_SPEC(items_per_row, 0);
    BAD_SPEC(items_per_row, 101);
    BAD_SPEC(min_row, 13);
    BAD_SPEC(kinds, 0);
    BAD_SPEC(kinds, 1u << CX_ROW_KINDS);
    BAD_SPEC(now, -1);
    BAD_SPEC(channel, "");
    /* The rules are checked too (exclusions, unknown category). */
    cx_layout_spec b;
    cx_layout_spec_init(&b);
    b.rules.size = 0;
    FAILS(e, cx_layout(e, "c0000001", &b, rows, 64, items, 768, &n),
          CX_EINVAL);
    /* Edges that are valid. */
    cx_layout_spec ok;
    cx_layout_spec_init(&ok);
    ok.max_rows = 64;
    ok.items_per_row = 100;
    ok.min_row = 100;
    static cx_layout_item big[64 * 100];
    TU_OK(e, cx_layout(e, "c0000001", &ok, rows, 64, big, 6400, &n));
    for (size_t r = 0; r < n; r++)
        assert_int_equal(rows[r].count, 100);
    /* A NULL spec is the default one. */
    TU_OK(e, cx_layout(e, "c0000001", NULL, rows, 64, items, 768, &n));
    assert_true(n > 0);
    /* Names. */
    assert_string_equal(cx_row_kind_name(CX_ROW_FOR_YOU), "for_you");
    assert_string_equal(cx_row_kind_name(CX_ROW_BECAUSE), "because");
    assert_string_equal(cx_row_kind_name(CX_ROW_CONTINUE), "continue");
    assert_string_equal(cx_row_kind_name(CX_ROW_BOUGHT_TOGETHER),
                        "bought_together");
    assert_string_equal(cx_row_kind_name(CX_ROW_TRENDING), "trending");
    assert_string_equal(cx_row_kind_name(CX_ROW_NEW), "new");
    assert_string_equal(cx_row_kind_name(CX_ROW_CATEGORY), "category");
    assert_null(cx_row_kind_name(-1));
    assert_null(cx_row_kind_name(CX_ROW_KINDS));
    cx_layout_spec_init(NULL); /* no crash */
    cx_close(e);
    synth_free(&shop);
}

/* Output arrays smaller than the page: truncated, never overrun (heap
 * buffers of the exact size, for ASan). */
/* ===================================================================== */
/* Items as JSON                                                         */
/* ===================================================================== */

/* The text of one item with score v. */
static size_t item_json(float v, char *buf, size_t cap)
{
    cx_layout_item it = {"a", v, CX_REASON_PERSONAL};
    size_t n = cx_layout_items_json(&it, 1, buf, cap - 1);
    assert_true(n < cap);
    buf[n] = 0;
    return n;
}

/* The score of item_json's text, read back as JSON readers do. */
static float score_back(const char *text)
{
    const char *p = strstr(text, "\"score\":");
    assert_non_null(p);
    char *end;
    float f = strtof(p + 8, &end);
    assert_true(end > p + 8);
    assert_true(strncmp(end, ",\"reason\":\"personal\"}]", 22) == 0);
    return f;
}

static void test_items_json_numbers(void **state)
{
    (void)state;
    char buf[128];
    /* Written as %.9g writes them. */
    static const float same[] = {0.5f, 1, 100, 1e-05f, 1.5e10f, 0.1f,
                                 123456789.0f, 3.40282347e38f, 1e-45f,
                                 -2.25f, 7, 0.0001f, 999999999.0f};
    for (size_t j = 0; j < sizeof same / sizeof same[0]; j++) {
        char want[64];
        item_json(same[j], buf, sizeof buf);
        snprintf(want, sizeof want,
                 "[{\"item\":\"a\",\"score\":%.9g,\"reason\":\"personal\"}]",
                 (double)same[j]);
        assert_string_equal(buf, want);
    }
    /* Every float it writes reads back as itself: random bit patterns
     * over the whole range, then each power of two and its neighbours. */
    uint64_t x = 88172645463325252ull;
    size_t checked = 0;
    for (int j = 0; j < 200000; j++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t bits = (uint32_t)x;
        float v;
        memcpy(&v, &bits, 4);
        if (!isfinite(v))
            continue;
        item_json(v, buf, sizeof buf);
        float back = score_back(buf);
        assert_memory_equal(&back, &v, 4);
        checked++;
    }
    for (int e2 = -149; e2 <= 127; e2++)
        for (int d = -1; d <= 1; d++) {
            float v = nextafterf(ldexpf(1, e2), d < 0 ? 0 : d > 0 ? INFINITY
                                                                : ldexpf(1, e2));
            item_json(v, buf, sizeof buf);
            float back = score_back(buf);
            assert_memory_equal(&back, &v, 4);
            checked++;
        }
    assert_true(checked > 190000);
    /* JSON has no NaN or infinities. */
    float bad[] = {NAN, INFINITY, -INFINITY};
    for (int j = 0; j < 3; j++) {
        item_json(bad[j], buf, sizeof buf);
        assert_string_equal(buf, "[{\"item\":\"a\",\"score\":null,"
                                 "\"reason\":\"personal\"}]");
    }
    item_json(-0.0f, buf, sizeof buf);
    assert_string_equal(buf, "[{\"item\":\"a\",\"score\":-0,"
                             "\"reason\":\"personal\"}]");
}

static void test_items_json_text(void **state)
{
    (void)state;
    cx_layout_item it[4] = {
        {"q\"b\\s/\x01\x1f\x7f\b\f\n\r\t \xc3\xa9", 2, CX_REASON_SIMILAR},
        {"", 0.25f, CX_REASON_BESTSELLER},
        {"x", 1, 99},
        {NULL, 1, CX_REASON_NEW}};
    const char *want =
        "[{\"item\":\"q\\\"b\\\\s/\\u0001\\u001f\\u007f\\b\\f\\n\\r\\t "
        "\xc3\xa9\",\"score\":2,\"reason\":\"similar\"},"
        "{\"item\":\"\",\"score\":0.25,\"reason\":\"bestseller\"},"
        "{\"item\":\"x\",\"score\":1,\"reason\":null},"
        "{\"item\":null,\"score\":1,\"reason\":\"new\"}]";
    char buf[512];
    size_t n = cx_layout_items_json(it, 4, buf, sizeof buf);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    /* Short buffers: the length all the same, the text cut at cap. */
    assert_int_equal(cx_layout_items_json(it, 4, NULL, 0), n);
    for (size_t cap = 0; cap < n; cap += 7) {
        memset(buf, '#', sizeof buf);
        assert_int_equal(cx_layout_items_json(it, 4, buf, cap), n);
        assert_memory_equal(buf, want, cap);
        assert_int_equal(buf[cap], '#');
    }
    assert_int_equal(cx_layout_items_json(NULL, 0, buf, sizeof buf), 2);
    assert_memory_equal(buf, "[]", 2);
    for (int r = 1; r <= CX_REASON_BESTSELLER; r++)
        assert_non_null(cx_reason_name(r));
    assert_string_equal(cx_reason_name(CX_REASON_BOUGHT_TOGETHER),
                        "bought_together");
    assert_null(cx_reason_name(0));
    assert_null(cx_reason_name(CX_REASON_BESTSELLER + 1));
}

static void test_small_buffers(void **state)
{
    (void)state;
    world w;
    world_shop(&w, 4, 1);
    static pageout full;
    get_page(w.e, "c0000002", NULL, &full);
    assert_true(full.n_rows >= 3);
    for (size_t mi = 1; mi <= 30; mi += 3)
        for (size_t mr = 1; mr <= 3; mr++) {
            cx_layout_row *rows = malloc(mr * sizeof *rows);
            cx_layout_item *items = malloc(mi * sizeof *items);
            size_t n = 99;
            TU_OK(w.e, cx_layout(w.e, "c0000002", NULL, rows, mr, items, mi,
                                 &n));
            assert_true(n <= mr);
            size_t total = 0;
            for (size_t r = 0; r < n; r++) {
                assert_true(rows[r].first + rows[r].count <= mi);
                assert_true(rows[r].count >= 4 || mi < 4);
                total += rows[r].count;
            }
            assert_true(total <= mi);
            if (mi >= 12) {
                /* Room for one full row: it is the page's first row. */
                assert_true(n >= 1);
                assert_int_equal(rows[0].kind, full.rows[0].kind);
                assert_int_equal(rows[0].count, full.rows[0].count);
            }
            free(rows);
            free(items);
        }
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invariants_default_shop),
        cmocka_unit_test(test_invariants_weak_taste_skewed),
        cmocka_unit_test(test_invariants_repeat_buyers),
        cmocka_unit_test(test_because_rows_from_lists),
        cmocka_unit_test(test_bought_together_reference),
        cmocka_unit_test(test_event_walks),
        cmocka_unit_test(test_planted_taste_on_top),
        cmocka_unit_test(test_new_visitor),
        cmocka_unit_test(test_catalogue_only),
        cmocka_unit_test(test_catalogue_only_no_dates),
        cmocka_unit_test(test_kinds_mask_fallback),
        cmocka_unit_test(test_untrained_with_signals),
        cmocka_unit_test(test_journey_untrained),
        cmocka_unit_test(test_journey_trained),
        cmocka_unit_test(test_lapsed_on_shop),
        cmocka_unit_test(test_channel_seeds),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_small_buffers),
        cmocka_unit_test(test_items_json_numbers),
        cmocka_unit_test(test_items_json_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
