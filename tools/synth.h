/* synth.h -- a synthetic shop with planted tastes, for judging recommenders.
 * Same seed and config give byte-identical catalogue, signals and CSV. */
#ifndef SYNTH_H
#define SYNTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct synth_config {
    uint64_t seed;            /* same seed + config => byte-identical output */
    size_t n_customers;
    size_t n_items;
    size_t n_categories;
    size_t n_signals;         /* approximate target number of signals */
    double taste_strength;    /* 0..1: probability a session is in one of the customer's favourite categories */
    double repeat_rate;       /* 0..1: probability a purchase is a re-purchase of an item bought before (groceries); default 0.05 */
    double bestseller_skew;   /* Zipf exponent of item popularity within a category, default 1.0 */
    int64_t start_time;       /* unix seconds of first signal, default 1767225600 (2026-01-01) */
    int days;                 /* length of the period, default 90 */
    int max_views;            /* views per browsing session, at most; 1..8, default 8 (0 = 8) */
} synth_config;

/* Defaults sized for about n_signals signals: customers ~ n_signals/40,
 * items ~ n_signals/100 (min 200, max 100000), categories ~ sqrt(items)/2
 * clamped 5..200, taste_strength 0.8, seed 1. */
void synth_config_default(synth_config *c, size_t n_signals);

/* Named shops for judging recommenders in the regimes real shops show
 * (every preset starts from synth_config_default, so the same seed and
 * size give the same shop):
 *   SYNTH_REGIME_DEFAULT     synth_config_default itself
 *   SYNTH_REGIME_GROCERY     few items (n_signals / 500, 150..3000), many
 *                            customers coming back, 60% of purchases
 *                            re-buys of their own recent staples
 *   SYNTH_REGIME_SPARSE      a long tail: items n_signals / 15, about five
 *                            signals per customer, flat popularity,
 *                            weak taste
 *   SYNTH_REGIME_TASTE       strong planted tastes (0.97), flat
 *                            popularity, few re-buys
 *   SYNTH_REGIME_BESTSELLER  a few bestsellers take most of the traffic
 *                            (Zipf 2.2), weak taste */
enum { SYNTH_REGIME_DEFAULT = 0, SYNTH_REGIME_GROCERY = 1,
       SYNTH_REGIME_SPARSE = 2, SYNTH_REGIME_TASTE = 3,
       SYNTH_REGIME_BESTSELLER = 4, SYNTH_REGIMES = 5 };
/* 0 ok, -1 for an unknown regime. */
int synth_config_regime(synth_config *c, int regime, size_t n_signals);
/* "default", "grocery", "sparse", "taste", "bestseller"; NULL if unknown. */
const char *synth_regime_name(int regime);

typedef struct synth_item {
    char id[24];        /* "i000123" style, zero padded to fixed width */
    char category[24];  /* "cat07" style */
    double price;       /* category-dependent log-normal, 2 decimals */
    int in_stock;       /* ~95% in stock */
    int64_t created_at; /* spread over the year before start_time; ~5% created during the period */
    char tags[64];      /* 0-3 comma-separated tags like "eco,sale" */
    uint32_t cat;       /* category index (the number in category) */
} synth_item;

enum { SYNTH_VIEW=0, SYNTH_CLICK=1, SYNTH_ADD_TO_CART=2, SYNTH_PURCHASE=3, SYNTH_RATING=4, SYNTH_RETURN=5, SYNTH_DISLIKE=6 };

/* Price tiers, a second planted taste: within a category, budget customers
 * shy away from items priced above the category level, premium ones from
 * items below it. */
enum { SYNTH_TIER_NEUTRAL=0, SYNTH_TIER_BUDGET=1, SYNTH_TIER_PREMIUM=2 };

typedef struct synth_signal {
    uint32_t customer;  /* index; id is synth_customer_id() */
    uint32_t item;      /* index into items */
    int type;           /* SYNTH_* above */
    float value;        /* 1 for most; quantity 1-3 for purchases; rating 1..5 for SYNTH_RATING */
    int64_t ts;         /* unix seconds */
    int channel;        /* index into synth_channel_name(): web, app, store, email */
} synth_signal;

typedef struct synth_shop {
    synth_item *items;   size_t n_items;
    synth_signal *signals; size_t n_signals;   /* sorted by ts ascending (stable, ties by generation order) */
    size_t n_customers;
    size_t n_categories;
    uint32_t *fav;       /* n_customers x 2: each customer's two favourite category indexes (the planted taste) */
    uint8_t *tier;       /* n_customers: SYNTH_TIER_* (the planted price taste) */
} synth_shop;

int synth_generate(const synth_config *c, synth_shop *out);   /* 0 ok, -1 out of memory / bad config; out zeroed on failure */
void synth_free(synth_shop *s);                              /* accepts zeroed struct */
void synth_customer_id(uint32_t c, char buf[24]);            /* "c0000123" */
const char *synth_channel_name(int ch);                       /* "web","app","store","email"; NULL if out of range */
const char *synth_type_name(int type);                        /* "view","click",...,"dislike"; NULL if out of range */

/* Write items CSV (header: item,category,price,in_stock,created_at,tags) and
 * signals CSV (header: customer,item,type,value,timestamp,channel). Fields
 * are quoted per RFC 4180 when needed (tags contain commas); in_stock is 0/1,
 * times are unix seconds. 0 ok, -1 on I/O error (errno set). Either path may
 * be NULL to skip it. */
int synth_write_csv(const synth_shop *s, const char *items_csv, const char *signals_csv);

#endif /* SYNTH_H */
