/*
 * cxengine.h -- libcxengine, an embeddable personalisation engine.
 *
 * libcxengine turns a shop's behavioural signals (views, carts, purchases...)
 * into customer and item vectors by implicit-feedback matrix factorisation
 * (ALS, Hu, Koren & Volinsky 2008) and answers, in microseconds, "what should
 * this customer see?".
 *
 * The whole contract is this header.  Read it top to bottom.
 *
 * CONVENTIONS
 *   - Every object is opaque and reached through a pointer.  The only public
 *     structs are option structs passed by pointer; each starts with a
 *     `size` member set by its *_init() function so the ABI can grow.
 *   - Every fallible call returns int: CX_OK (0) or a negative CX_E* code.
 *     Codes are never renumbered.  cx_strerror(code) gives static text;
 *     cx_errmsg(engine) gives the detailed message of the last failure of
 *     the calling thread on that engine.
 *   - Out-handles are set to NULL on failure.  cx_close(NULL) is a no-op.
 *   - Ids in and out are NUL-terminated strings of 1..CX_MAX_ID_LEN bytes.
 *     Id strings returned by the library point into the engine and stay
 *     valid until the engine is closed.
 *   - Output arrays are owned by the caller; the library writes at most the
 *     capacity it is told and returns the count written.
 *
 * THREADS AND FRESHNESS
 *   An engine is safe to use from many threads at once, and serving never
 *   waits for learning:
 *   - Reads (cx_recommend*, cx_similar_items, cx_trending, cx_popular,
 *     cx_new_arrivals, cx_item_get, cx_get_option, cx_stat, cx_*_id,
 *     cx_signal_type_*) run concurrently with each other and with every
 *     write.  They hold the engine's read lock for the length of the call.
 *   - Writes (cx_ingest, cx_items_upsert, cx_item_remove, cx_set_option,
 *     cx_signal_type_define) are serialised among themselves by a writer
 *     mutex.  A writer validates, allocates and computes outside the read
 *     lock and takes the lock exclusively only to publish: pointer swaps
 *     and O(1) updates, at most 64 rows per hold, so a reader never waits
 *     for more than a few microseconds of writer work.
 *   - Training (cx_train, cx_train_start) notes how many signals there
 *     are (they never change once ingested), trains on them with no lock
 *     held, and publishes the new model with one pointer swap: a reader
 *     sees the old model or the new one, never a mix.  Signals ingested while it trains are kept and
 *     their customers are folded in against the new model.  One training
 *     runs at a time; a second cx_train waits for the first.
 *   - cx_save, cx_export_npy and cx_evaluate hold the writer mutex while
 *     they copy what they need (writes wait, reads do not).
 *   - cx_close must not run concurrently with any other call.
 *   Functions that take no engine are thread-safe.
 *
 *   Freshness: with CX_OPT_FOLD_IN on (the default), a customer's next
 *   recommendation reflects every signal ingested before it, without
 *   retraining (see CX_OPT_FOLD_IN); items new since training get vectors
 *   from their customers as soon as they have signals, and trending and
 *   popular lists move with every signal.
 *
 * FORK
 *   Never use an engine across fork(): create engines in the child (for
 *   nginx, in init_worker_by_lua).
 *
 * OPENBLAS
 *   Training parallelises itself (CX_OPT_THREADS) with the library's own
 *   kernels.  Only the Cholesky solver calls OpenBLAS from its worker
 *   threads; while it runs with more than one thread it sets OpenBLAS to
 *   one thread and restores the previous setting afterwards (a process-wide
 *   setting).  Otherwise OpenBLAS is called from the calling thread only:
 *   the Gram matrices in training, and cx_recommend_batch.
 */
#ifndef CXENGINE_H
#define CXENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CX_BUILDING_LIBRARY) && defined(__GNUC__)
#define CX_API __attribute__((visibility("default")))
#else
#define CX_API
#endif

/* ===================================================================== */
/* Version                                                               */
/* ===================================================================== */

#define CX_VERSION_MAJOR 0
#define CX_VERSION_MINOR 1
#define CX_VERSION_PATCH 0
#define CX_VERSION_NUMBER \
    (CX_VERSION_MAJOR * 10000 + CX_VERSION_MINOR * 100 + CX_VERSION_PATCH)
#define CX_VERSION_STRING "0.1.0"

/* The library's version at run time, e.g. "0.1.0" and 100.  Bindings
 * compare cx_version_number() / 100 with the major.minor they were
 * written for. */
CX_API const char *cx_version(void);
CX_API int cx_version_number(void);

/* ===================================================================== */
/* Errors                                                                */
/* ===================================================================== */

#define CX_OK          0
#define CX_EINVAL     -1  /* invalid argument: NULL, NaN, bad id, k = 0... */
#define CX_ENOMEM     -2  /* out of memory */
#define CX_ENOTFOUND  -3  /* unknown customer, item or category */
#define CX_ENOTTRAINED -4 /* the call needs a trained model */
#define CX_EIO        -5  /* a file could not be read or written */
#define CX_ECORRUPT   -6  /* a file is truncated or fails its checksum */
#define CX_EVERSION   -7  /* a file was written by an unsupported version */
#define CX_ERANGE     -8  /* an option value is out of its range */
#define CX_EBUSY      -9  /* the resource is held by someone else */
#define CX_EFORMAT   -10  /* malformed input text (CSV) */
#define CX_ECANCELED -11  /* the progress callback asked to stop */
#define CX_ENOTSUP   -12  /* not supported by this build or version */
#define CX_ELIMIT    -13  /* a built-in limit was reached (ids, types) */
#define CX_EREADONLY -14  /* the engine is open read-only */

/* Static English text for a status code; never NULL. */
CX_API const char *cx_strerror(int status);

/* ===================================================================== */
/* Engine                                                                */
/* ===================================================================== */

typedef struct cx_engine cx_engine;

#define CX_MAX_ID_LEN 512       /* bytes, without the NUL */
#define CX_MAX_K      (1 << 20) /* largest k accepted by the ranking calls */

/* Open an engine.  With `path` NULL the engine lives in memory only.
 * With a path it opens the data directory there, creating it (one level)
 * if needed: every signal, catalogue change, option, signal type and
 * experiment is written to its SQLite database (path/cx.db) before the
 * call that makes it returns CX_OK (see CX_OPT_SYNC for when that is
 * durable), and each training writes the model as a new snapshot
 * generation (path/snapshots/).  Reopening replays the database and loads
 * the newest snapshot that verifies: the engine answers as it did before
 * it was closed or killed.  One process at a time opens a directory:
 * another gets CX_EBUSY.  A snapshot that fails its checks is skipped for
 * the one before it, with a message on stderr.  The README's "Data
 * directory" section documents the layout and schema.
 *
 * flags: 0, or CX_OPEN_READONLY for a reader of a directory another
 * process (or engine) writes: any number of them, beside the one writer.
 * A reader takes no lock, replays the database like a writer, and maps
 * the snapshot's factor files read-only and shared, so N processes hold
 * one copy of the factors in memory.  It then follows the directory: every
 * CX_OPT_REFRESH_INTERVAL ms a thread of its own (and cx_refresh, when
 * called) brings in what was committed since (signals, customers, the
 * catalogue, options, signal types, experiments) and switches to a newer
 * snapshot generation between two calls, never inside one.  A reader
 * folds in customers from the signals it has followed.  Calls that would
 * change the directory (ingest, catalogue, options, experiments, training,
 * import, forget) fail with CX_EREADONLY; exposure counts are added to the
 * database at cx_sync and cx_close.  A directory without a database gives
 * CX_ENOTFOUND.
 *
 * CX_OPEN_READONLY | CX_OPEN_SIGNALS: a reader that also appends signals
 * (an nginx worker taking POSTs).  cx_ingest commits them to the database
 * as the writer's cx_ingest does (one transaction per call, durable by the
 * directory's CX_OPT_SYNC policy, this process syncing its own commits)
 * and folds them in here at once; everything else stays CX_EREADONLY.
 * Every other engine of the directory, the writer included, brings them
 * in when it follows (cx_refresh, its thread, and before cx_train,
 * cx_import_factors and cx_forget), and the writer trains on them.  Ids
 * new to the directory get the same dense index in every process: a call
 * that may add ids catches up with the database inside its write
 * transaction first.  Writers of the database queue on SQLite's lock
 * (one at a time, for the length of one transaction; a call gives up with
 * CX_EBUSY after 10 s).  CX_OPEN_SIGNALS without CX_OPEN_READONLY is
 * CX_EINVAL.
 *
 * CX_OPEN_VERIFY (with or without the others): verify every snapshot
 * file in full, ignoring the VERIFIED stamps.  Every snapshot file's
 * size, header and checksum, and every index in it, are checked before
 * the engine uses them; a generation that fails is skipped for the one
 * before it.  The process that writes a generation, or the first one to
 * verify it in full, leaves a VERIFIED stamp in its directory with each
 * file's device, inode, size, mtime and ctime; a later open on the same
 * machine whose files all stat the same skips their checksums and range
 * checks (this keeps a read-only open short at millions of customers).
 * Any write to a file (write(2), a writable mapping, a truncate, a
 * touch) moves its ctime, which no process can set back, and a copy has
 * another device or inode: such a file is verified again in full.  A
 * stamp that is missing, damaged or stale only means a full
 * verification.  What a stamp does not catch is a change on the medium
 * without a write through the kernel (bit rot): the trust SQLite and
 * LMDB place in the disk.  With CX_OPEN_VERIFY this open, and every
 * generation the engine follows later, is verified in full. */
#define CX_OPEN_READONLY 1u
#define CX_OPEN_SIGNALS 2u
#define CX_OPEN_VERIFY 4u
CX_API int cx_open(cx_engine **out, const char *path, unsigned flags);

/* Catch up with the directory now (see cx_open): a read-only engine
 * with everything committed since it last looked and a newer snapshot
 * generation; the writer with the signals readers appended
 * (CX_OPEN_SIGNALS).  A no-op CX_OK for an engine without a directory. */
CX_API int cx_refresh(cx_engine *e);

/* Erase customers (the right to erasure): their signals, their id, their
 * profile and their vector.  Their past signals stop counting in item
 * popularity, trending and co-occurrence at once.  In a data directory
 * the rows are deleted from the database (secure_delete overwrites the
 * freed bytes; the log is checkpointed and truncated), the current model
 * is published without them as a new snapshot generation, and every
 * older generation is deleted.  Exposure counts are per variant, never
 * per customer, and stay.  The id can come back later as a new customer.
 * Unknown ids are skipped; *forgotten (may be NULL) receives how many
 * were erased.  Read-only engines get CX_EREADONLY (they drop the
 * customers when they follow the directory). */
CX_API int cx_forget(cx_engine *e, size_t n, const char *const *customers,
                     size_t *forgotten);

/* Close an engine and free everything it owns.  Accepts NULL.  No other
 * call may be running on the engine. */
CX_API void cx_close(cx_engine *e);

/* Detailed message of the calling thread's last failed call on `e` (or of
 * cx_open/cx_load when e is NULL).  Valid until that thread's next failing
 * call.  Never NULL; "" if no failure was recorded. */
CX_API const char *cx_errmsg(const cx_engine *e);

/* ===================================================================== */
/* Options                                                               */
/* ===================================================================== */

/* Options are set by key, with bounds checking (CX_ERANGE outside the
 * range, CX_EINVAL for NaN or a non-integer value for an integer option).
 * Training options apply at the next cx_train. */
enum cx_option {
    CX_OPT_FACTORS = 1,        /* int 1..1024, default 64 */
    CX_OPT_ITERATIONS = 2,     /* int 1..1000, default 15 */
    CX_OPT_REGULARIZATION = 3, /* lambda >= 0, default 0.05 */
    CX_OPT_ALPHA = 4,          /* confidence scale > 0, default 2.0 */
    CX_OPT_SOLVER = 5,         /* CX_SOLVER_CG (default) or _CHOLESKY */
    CX_OPT_CG_STEPS = 6,       /* int 1..64, default 3 */
    CX_OPT_THREADS = 7,        /* int 0..256, 0 = number of CPUs (default) */
    CX_OPT_SEED = 8,           /* int 0..2^53, default 42 */
    CX_OPT_HALF_LIFE = 9,      /* seconds, 0 = no time decay (default) */
    CX_OPT_INIT_SCALE = 10,    /* initial factor scale > 0, default 0.01 */
    CX_OPT_CANDIDATES = 11,    /* fast path candidates per result, int
                                  1..1000, default 8; at least k + 32
                                  (see cx_rec_opts.exact) */
    CX_OPT_FOLD_IN = 12,       /* CX_FOLD_LAZY (default), _EAGER, _OFF */
    CX_OPT_TRENDING_HALF_LIFE = 13, /* seconds > 0, default 86400: the
                                  half-life of the trending score */
    CX_OPT_POPULAR_HALF_LIFE = 14,  /* seconds, 0 = never decays; default
                                  30 days: the popularity used for
                                  cx_popular and the cold-start fallback */
    CX_OPT_LAPSED_AFTER = 15,  /* seconds without a signal after which a
                                  customer is lapsed; default 60 days */
    CX_OPT_LOYAL_PURCHASES = 16, /* purchases that make a customer loyal,
                                  int 2..1000, default 3 */
    CX_OPT_SYNC = 17,          /* data directory: CX_SYNC_FULL (default),
                                  _NORMAL or _OFF; saved with the data */
    CX_OPT_SYNC_INTERVAL = 18, /* CX_SYNC_NORMAL's bound in ms, int
                                  1..60000, default 1000 */
    CX_OPT_REFRESH_INTERVAL = 19, /* how often the engines of a
                                  directory follow it (cx_refresh), ms,
                                  int 0..3600000, 0 = only when called;
                                  default 1000; saved with the data */
    /* The blend of cx_recommend (see BLEND below): weights 0..1000. */
    CX_OPT_BLEND_ALS = 20,     /* the customer's ALS score, default 1 */
    CX_OPT_BLEND_POPULAR = 21, /* the popularity prior, default 0.2 */
    CX_OPT_BLEND_REPEAT = 22,  /* the re-buy propensity, default 1 */
    CX_OPT_BLEND_COBOUGHT = 23,/* co-occurrence with the customer's
                                  baskets, default 0.1 */
    CX_OPT_CONSUMABLE = 24,    /* share of an item's buyers who bought it
                                  again from which it is consumable,
                                  0..1, default 0.2 */
    /* Confidence weight of signal type t is key CX_OPT_WEIGHT + t. */
    CX_OPT_WEIGHT = 1000
};

enum cx_solver { CX_SOLVER_CG = 0, CX_SOLVER_CHOLESKY = 1 };

/*
 * SYNC POLICY of a data directory: when what a call acknowledged (returned
 * CX_OK for) survives what.
 *   CX_SYNC_FULL   the database log is fsync'ed before the call returns:
 *                  it survives the process being killed and the machine
 *                  losing power.
 *   CX_SYNC_NORMAL the call returns once the change is in the log; a
 *                  background thread fsyncs the log at most
 *                  CX_OPT_SYNC_INTERVAL ms later.  Survives the process
 *                  being killed; a power cut loses at most that interval.
 *   CX_SYNC_OFF    as NORMAL for a killed process; after a power cut the
 *                  operating system decides (for bulk loads; call cx_sync
 *                  at the end).
 */
enum cx_sync { CX_SYNC_OFF = 0, CX_SYNC_NORMAL = 1, CX_SYNC_FULL = 2 };

/* Make everything acknowledged so far durable now, whatever the policy,
 * and save the experiments' exposure counts (which are otherwise saved at
 * each training and at cx_close).  CX_OK without a data directory. */
CX_API int cx_sync(cx_engine *e);

/*
 * FOLD-IN.  After training, a customer with signals the model has not
 * seen (a known customer's new signals, or a customer new since training)
 * gets a vector by the exact ALS least-squares solve of their whole row
 * against the current item vectors:
 *     x = (Y'Y + lambda I + sum_i (c_i - 1) y_i y_i')^-1  sum_{p_i = 1} c_i y_i
 * with Y'Y + lambda I computed once per model, the confidences c_i from
 * the convention of cx_ingest (with the options and time reference of the
 * model), and a double-precision Cholesky factorisation: O(n k^2 + k^3)
 * for n distinct items; about 20 us for 20 items at k = 64 (see the
 * README's benchmarks).  A customer whose signals are all negative has no
 * vector and gets popular items.
 *   CX_FOLD_LAZY  (default) cx_ingest only appends; the next read for that
 *                 customer solves once and caches the vector, however many
 *                 signals arrived in between.  Cheapest when customers
 *                 send several signals per page they are served.
 *   CX_FOLD_EAGER cx_ingest solves every customer of the batch before it
 *                 returns (writers pay, reads stay flat).
 *   CX_FOLD_OFF   customers keep their trained vectors until the next
 *                 training; customers new since training get popular items.
 * Items new since training (or without signals at training time) are
 * folded in the same way against the customer vectors, eagerly, in every
 * mode but CX_FOLD_OFF.
 */
enum cx_fold { CX_FOLD_OFF = 0, CX_FOLD_LAZY = 1, CX_FOLD_EAGER = 2 };

CX_API int cx_set_option(cx_engine *e, int key, double value);
CX_API int cx_get_option(const cx_engine *e, int key, double *value);

/* ===================================================================== */
/* Catalogue                                                             */
/* ===================================================================== */

/* Insert or update n items, column by column.  ids[] is required; every
 * other column may be NULL, meaning "keep the current value" for an
 * existing item and the default for a new one (category "", price 0,
 * in stock, created_at 0, no tags).  tags[i] is a comma-separated list of
 * at most CX_MAX_TAGS tags.  Prices must be finite and >= 0.  The batch is
 * validated first: on failure nothing is applied and the message names the
 * offending row.  Items that appear in signals before the catalogue knows
 * them exist with the defaults. */
#define CX_MAX_TAGS 8
CX_API int cx_items_upsert(cx_engine *e, size_t n, const char *const *ids,
                           const char *const *categories,
                           const double *prices, const int *in_stock,
                           const int64_t *created_at,
                           const char *const *tags);

/* Remove an item from the catalogue: it is never recommended again, and its
 * signals stay in the history.  Upserting it again brings it back.
 * CX_ENOTFOUND for an unknown id. */
CX_API int cx_item_remove(cx_engine *e, const char *id);

/* Catalogue facts of one item.  Any out-pointer may be NULL.  *category
 * points into the engine. */
CX_API int cx_item_get(cx_engine *e, const char *id, const char **category,
                       double *price, int *in_stock, int64_t *created_at);

/* ===================================================================== */
/* Signals                                                               */
/* ===================================================================== */

/* Built-in signal types.  Types CX_SIGNAL_CUSTOM..CX_MAX_SIGNAL_TYPES-1 are
 * free for cx_signal_type_define. */
enum cx_signal_type {
    CX_VIEW = 0,
    CX_CLICK = 1,
    CX_ADD_TO_CART = 2,
    CX_PURCHASE = 3,
    CX_RATING = 4,
    CX_RETURN = 5,
    CX_DISLIKE = 6,
    CX_SIGNAL_CUSTOM = 8,
    CX_MAX_SIGNAL_TYPES = 32
};

/* Bit of a signal type in the exclusion masks below. */
#define CX_TYPE_BIT(t) (1u << (t))

/* Define a custom signal type by name with a confidence weight (may be
 * negative: a negative signal).  Returns its number in *type.  Defining an
 * existing name returns its number and updates the weight. */
CX_API int cx_signal_type_define(cx_engine *e, const char *name,
                                 double weight, int *type);
/* Number of a signal type by name ("view", "add_to_cart"...). */
CX_API int cx_signal_type_lookup(const cx_engine *e, const char *name,
                                 int *type);
/* Name of a signal type, or NULL if undefined. */
CX_API const char *cx_signal_type_name(const cx_engine *e, int type);

/*
 * Ingest n signals, column by column: customers[i] did types[i] on items[i]
 * with values[i] at timestamps[i] (seconds since the epoch) through
 * channels[i].  values may be NULL (all 1), timestamps NULL (all the time
 * of the call), channels NULL (all "web").
 *
 * Values: a count or quantity (> 0) for every type except CX_RATING, whose
 * value is a rating in [0, 5] (3 is neutral).  The batch is validated
 * first: on failure nothing is applied and the message names the row.
 *
 * CONFIDENCE CONVENTION.  Every (customer, item) pair accumulates
 *     r = sum over its signals of  weight[type] * v * decay
 * where v is the value (for ratings, (rating - 3) / 2, so 5 stars = +1 and
 * 1 star = -1), and decay = 0.5 ^ (age / half_life) with age measured from
 * the newest signal in the engine (1 without a half-life).  Training then
 * uses, as in Hu et al., preference p = 1 and confidence c = 1 + alpha * r
 * when r > 0, and p = 0 with c = 1 + alpha * |r| when r < 0 (a confident
 * "no").  Pairs with r = 0 and all unseen pairs have p = 0, c = 1.
 * Default weights: view 1, click 2, add_to_cart 5, purchase 10,
 * rating 5 (per unit above), return -15, dislike -10.
 *
 * Items with a return or dislike signal from a customer are never
 * recommended to that customer again, whatever the exclusion mask.
 */
CX_API int cx_ingest(cx_engine *e, size_t n, const char *const *customers,
                     const char *const *items, const int *types,
                     const float *values, const int64_t *timestamps,
                     const char *const *channels);

/* ===================================================================== */
/* Training                                                              */
/* ===================================================================== */

/* Called after each ALS iteration with the loss (the Hu et al. objective
 * divided by the total confidence, as the implicit library reports it).
 * Return non-zero to stop: cx_train then returns CX_ECANCELED and the
 * previous model stays in place. */
typedef int (*cx_progress_fn)(void *user, int iteration, int iterations,
                              double loss);

/* Train ALS on every signal ingested so far with the current options.
 * Reproducible: the same signals, options and seed give the same factors
 * for any thread count.  Runs in the calling thread plus CX_OPT_THREADS-1
 * workers, while other threads keep serving and ingesting (see THREADS).
 * CX_EINVAL when there are no signals. */
CX_API int cx_train(cx_engine *e, cx_progress_fn progress, void *user);

/* cx_train in a background thread of the library: returns at once.  The
 * progress callback (may be NULL) runs in that thread.  CX_EBUSY if a
 * background training started by cx_train_start has not been waited for.
 * cx_close cancels a running one and waits for it. */
CX_API int cx_train_start(cx_engine *e, cx_progress_fn progress, void *user);

/* Wait for the background training to end and return its status (with
 * its message in cx_errmsg).  CX_EINVAL if none was started, CX_EBUSY if
 * another thread is already waiting for it.  The background thread
 * computes at idle priority (SCHED_IDLE): serving threads always get the
 * CPU first, so on a saturated machine training takes longer. */
CX_API int cx_train_wait(cx_engine *e);

/* ===================================================================== */
/* Serving                                                               */
/* ===================================================================== */

/* Why an item was chosen. */
enum cx_reason {
    CX_REASON_PERSONAL = 1, /* the customer's vector scored it */
    CX_REASON_POPULAR = 2,  /* popularity fallback (unknown/new customer) */
    CX_REASON_SIMILAR = 3,  /* similar to the given item (cosine) */
    CX_REASON_CATEGORY = 4, /* popular in the given item's category */
    CX_REASON_TRENDING = 5, /* trending now (cx_trending) */
    CX_REASON_NEW = 6,      /* a new arrival (cx_new_arrivals) */
    CX_REASON_CONTINUE = 7, /* viewed or carted, not bought (layouts) */
    CX_REASON_BOUGHT_TOGETHER = 8, /* bought with the seed item (layouts) */
    /* A blended score (see BLEND) carries its largest component:
     * PERSONAL for the ALS score, or one of these. */
    CX_REASON_REPEAT = 9,     /* bought before, and usually bought again */
    CX_REASON_ALSO_BOUGHT = 10, /* bought with what the customer bought */
    CX_REASON_BESTSELLER = 11 /* the popularity prior */
};
/* "personal", "popular", ... "bestseller", or NULL. */
CX_API const char *cx_reason_name(int reason);

/* Business rules for the ranking calls.  Initialise with
 * cx_rec_opts_init(); NULL options mean the defaults. */
typedef struct cx_rec_opts {
    size_t size;          /* sizeof(cx_rec_opts), set by cx_rec_opts_init */
    unsigned exclude;     /* drop items the customer has a signal of these
                             types for (CX_TYPE_BIT mask); default: view,
                             click, add_to_cart, purchase, rating */
    const char *category; /* only items of this category; NULL = any;
                             a category the engine has never seen makes
                             every ranking call fail with CX_ENOTFOUND */
    int in_stock_only;    /* default 1 */
    const char *const *allow; /* only these items (NULL = all) */
    size_t n_allow;
    const char *const *deny;  /* never these items */
    size_t n_deny;
    int exact;            /* 0 (default): scan a 4-bit copy of the item
                             vectors, re-rank the CX_OPT_CANDIDATES * k
                             best (at least k + 32) exactly, with the same
                             arithmetic as the exact scan; 1: exact fp32
                             scan fused with top-k selection (and under a
                             blend, every item a candidate: see BLEND) */
    /* Diversity (a struct from cx_rec_opts_init has these fields; a
     * shorter struct, by its size, gets the defaults).  The category cap
     * applies to every ranking call and list; the MMR trade-off to lists
     * scored by vectors (personal, session, similar).  Both pick from the
     * max(4k, k + 50) most relevant items. */
    size_t max_per_category; /* at most this many items of one category;
                                0 (default) = no cap */
    double diversity;     /* MMR trade-off, >= 0: items are picked in turn
                             by relevance - diversity * (highest cosine
                             similarity to an item already picked) * the
                             list's score scale; 0 (default) = pure
                             relevance */
} cx_rec_opts;

#define CX_EXCLUDE_SEEN                                                   \
    (CX_TYPE_BIT(CX_VIEW) | CX_TYPE_BIT(CX_CLICK) |                       \
     CX_TYPE_BIT(CX_ADD_TO_CART) | CX_TYPE_BIT(CX_PURCHASE) |             \
     CX_TYPE_BIT(CX_RATING))

CX_API void cx_rec_opts_init(cx_rec_opts *opts);

/* BLEND.  For a customer known to the model, cx_recommend and
 * cx_recommend_batch rank by
 *     w_als * x'y + w_pop * pop(i) + w_rep * rep(u, i) + w_co * co(u, i)
 * with the weights CX_OPT_BLEND_ALS, _POPULAR, _REPEAT, _COBOUGHT
 * (defaults 1, 0.2, 1, 0.1), every component on a 0..1 scale:
 *   x'y       the ALS score (it predicts a preference in {0, 1});
 *   pop(i)    customers with a positive signal on the item in the model's
 *             training signals, over the most popular item's count;
 *   rep(u, i) 1 - (1 - rebuy(i))^buys(u, i): rebuy(i) is the share of the
 *             item's buyers who bought it again (shrunk towards the
 *             shop's share with a prior of 5 buyers);
 *   co(u, i)  the cosine of buyer sets between the item and the
 *             customer's 32 newest basket items (purchases, carts),
 *             summed and capped at 1.
 * An item with rebuy(i) >= CX_OPT_CONSUMABLE is consumable: opts->exclude
 * does not hide it, so staples come back; returned or disliked items
 * stay hidden.  Each result's reason is its largest contribution (PERSONAL,
 * BESTSELLER, REPEAT, ALSO_BOUGHT).  With weights 1, 0, 0, 0 the lists
 * are exactly plain ALS's.  Candidates are the ALS and popular tops of
 * max(4k, k + 50) under the rules, the co-bought items of the customer's
 * baskets and their consumables; opts->exact = 1 makes every item a
 * candidate (slow; for checking).  The item statistics are built when a
 * model is trained or loaded with the blend on (else by the first blended
 * request).  Sessions, similar items and layouts do not blend.  cx_tune
 * chooses the weights on the shop's own data. */

/* Top-k items for a customer, best first, into caller arrays of k
 * entries: items[] (ids pointing into the engine), scores[] and reasons[]
 * (either may be NULL).  *n receives the count, which is smaller than k
 * when fewer items pass the rules.  A customer unknown to the model, or
 * an untrained engine, gets popular items (CX_REASON_POPULAR), never an
 * error.  CX_EINVAL for k = 0 or k > CX_MAX_K. */
CX_API int cx_recommend(cx_engine *e, const char *customer, size_t k,
                        const cx_rec_opts *opts, const char **items,
                        float *scores, int *reasons, size_t *n);

/* cx_recommend for m customers at once (level-3 BLAS).  Row j of the
 * m x k arrays receives customer j's results, counts[j] their number.
 * The call is one read: writers wait for it, so keep batches to about a
 * thousand customers on an engine that is ingesting. */
CX_API int cx_recommend_batch(cx_engine *e, size_t m,
                              const char *const *customers, size_t k,
                              const cx_rec_opts *opts, const char **items,
                              float *scores, int *reasons, size_t *counts);

/* Recommendations for an anonymous visitor from the signals of their
 * session: n_signals (item, type, value) triples, values NULL = all 1.  A
 * stateless fold-in (see CX_OPT_FOLD_IN): nothing is stored, and the
 * result equals cx_recommend for a stored customer who has exactly these
 * signals and no vector from training.  Items unknown to the engine are
 * ignored; the session's items are excluded as a customer's would be.
 * With no usable signal, or before training, popular items.  n_signals
 * may be 0 (then sig_items and sig_types may be NULL); at most 10000. */
CX_API int cx_recommend_session(cx_engine *e, size_t n_signals,
                                const char *const *sig_items,
                                const int *sig_types, const float *sig_values,
                                size_t k, const cx_rec_opts *opts,
                                const char **items, float *scores,
                                int *reasons, size_t *n);

/* Items most similar to `item` by cosine of the item vectors, excluding
 * the item itself.  opts->exclude is ignored (there is no customer).  An
 * item without a vector (added after training) gets the popular items of
 * its category (CX_REASON_CATEGORY).  CX_ENOTFOUND for an unknown item,
 * CX_ENOTTRAINED before the first training.  The first call for an item
 * (and the first layout with it as a "because" seed) keeps its 64
 * nearest items with the model (up to 16,384 items' lists, about 8.5 MB);
 * later calls with k <= 64 and no exact, allow, category or diversity
 * rule filter that list instead of scanning the catalogue. */
CX_API int cx_similar_items(cx_engine *e, const char *item, size_t k,
                            const cx_rec_opts *opts, const char **items,
                            float *scores, int *reasons, size_t *n);

/* Lists that need no customer.  They apply the rules of opts (category,
 * in stock, allow, deny; exclude is ignored) and work before training.
 *   cx_trending     items by time-decayed signal strength, half-life
 *                   CX_OPT_TRENDING_HALF_LIFE; scores are that strength
 *                   at the time of the newest signal.  CX_REASON_TRENDING.
 *   cx_popular      the same with CX_OPT_POPULAR_HALF_LIFE: the list that
 *                   unknown customers get.  CX_REASON_POPULAR.
 *   cx_new_arrivals catalogued items by created_at, newest first (items
 *                   without a created_at are left out); scores are the
 *                   age in days at the time of the newest signal or
 *                   creation.  CX_REASON_NEW.
 * Both decayed scores are updated in O(1) per signal, on the signals'
 * own timestamps; only positive signal strengths count. */
CX_API int cx_trending(cx_engine *e, size_t k, const cx_rec_opts *opts,
                       const char **items, float *scores, int *reasons,
                       size_t *n);
CX_API int cx_popular(cx_engine *e, size_t k, const cx_rec_opts *opts,
                      const char **items, float *scores, int *reasons,
                      size_t *n);
CX_API int cx_new_arrivals(cx_engine *e, size_t k, const cx_rec_opts *opts,
                           const char **items, float *scores, int *reasons,
                           size_t *n);

/* ===================================================================== */
/* Customers: profile, journey stage, explanations                       */
/* ===================================================================== */

/* Journey stages, decided by the first rule that applies:
 *   CX_STAGE_NEW          no signal at all (an unknown id)
 *   CX_STAGE_LAPSED       the newest signal is more than
 *                         CX_OPT_LAPSED_AFTER seconds before `now`
 *   CX_STAGE_LOYAL        at least CX_OPT_LOYAL_PURCHASES purchase signals
 *   CX_STAGE_PURCHASED    at least one purchase signal
 *   CX_STAGE_CONSIDERING  at least one add_to_cart signal
 *   CX_STAGE_BROWSING     anything else (views, clicks, ratings...) */
enum cx_stage {
    CX_STAGE_NEW = 0,
    CX_STAGE_BROWSING = 1,
    CX_STAGE_CONSIDERING = 2,
    CX_STAGE_PURCHASED = 3,
    CX_STAGE_LOYAL = 4,
    CX_STAGE_LAPSED = 5
};
/* "new", "browsing", ... or NULL for an unknown stage. */
CX_API const char *cx_stage_name(int stage);

#define CX_PROFILE_TOP 8

typedef struct cx_profile {
    size_t size;              /* sizeof(cx_profile), set by the caller */
    int stage;                /* enum cx_stage */
    int64_t first_seen, last_seen; /* signal times; 0 without signals */
    uint64_t signals;         /* all signals of the customer */
    uint64_t by_type[CX_MAX_SIGNAL_TYPES]; /* signals per type */
    size_t n_channels;        /* channels used, most used first */
    const char *channel[CX_PROFILE_TOP];  /* point into the engine */
    uint64_t by_channel[CX_PROFILE_TOP];
    size_t n_categories;      /* top categories by positive strength */
    const char *category[CX_PROFILE_TOP];
    double category_share[CX_PROFILE_TOP]; /* share of the customer's
                                              positive strength, 0..1 */
    double avg_price;         /* mean catalogue price of the distinct items
                                 with a positive signal; 0 if none */
    double price_level;       /* avg_price / the catalogue's mean price of
                                 priced items; 0 if either is unknown */
} cx_profile;

/* The profile of a customer as of `now` (seconds; 0 = the newest signal
 * in the engine).  An unknown customer gets CX_OK with stage
 * CX_STAGE_NEW and zero counts.  out->size must be set. */
CX_API int cx_profile_get(cx_engine *e, const char *customer, int64_t now,
                          cx_profile *out);

/* Why a customer's model likes an item: the customer's past items that
 * contribute most to its score, by the exact decomposition of the ALS
 * solution (Hu, Koren & Volinsky 2008, section 5): with
 * W = (Y'Y + lambda I + sum (c_j - 1) y_j y_j')^-1, the score is
 *     y_i' W b = sum over the customer's positive pairs j of c_j y_i'W y_j
 * so contribution j is c_j y_i' W y_j.  *score receives that exact score
 * (a folded-in vector scores the item the same; a trained CG vector, to
 * its few-step precision).  Up to n contributions, largest first, into
 * items[] / contrib[]; *count their number.  CX_ENOTFOUND for an unknown
 * customer or item, or a customer without positive signals;
 * CX_ENOTTRAINED before training. */
CX_API int cx_explain(cx_engine *e, const char *customer, const char *item,
                      size_t n, const char **items, float *contrib,
                      size_t *count, float *score);

/* ===================================================================== */
/* Home-page layouts                                                     */
/* ===================================================================== */

/* Row kinds, and the reason and seed their items carry:
 *   CX_ROW_FOR_YOU         the core recommendations (PERSONAL)
 *   CX_ROW_BECAUSE         similar to one recent item of the customer,
 *                          the row's seed (SIMILAR)
 *   CX_ROW_CONTINUE        viewed or carted but not bought, most recent
 *                          first (CONTINUE)
 *   CX_ROW_BOUGHT_TOGETHER bought or carted by the customers who bought
 *                          or carted the seed, the customer's last
 *                          purchase (or cart) (BOUGHT_TOGETHER)
 *   CX_ROW_TRENDING        trending overall, or in the seed category, one
 *                          the customer favours (TRENDING)
 *   CX_ROW_NEW             new arrivals in the seed category (or overall
 *                          for a new visitor) (NEW)
 *   CX_ROW_CATEGORY        the seed category, one the customer favours
 *                          (or a popular one for a new visitor), ranked by
 *                          the customer's vector when there is one
 *                          (CATEGORY) */
enum cx_row_kind {
    CX_ROW_FOR_YOU = 0,
    CX_ROW_BECAUSE = 1,
    CX_ROW_CONTINUE = 2,
    CX_ROW_BOUGHT_TOGETHER = 3,
    CX_ROW_TRENDING = 4,
    CX_ROW_NEW = 5,
    CX_ROW_CATEGORY = 6,
    CX_ROW_KINDS = 7
};
#define CX_ROW_BIT(kind) (1u << (kind))

typedef struct cx_layout_spec {
    size_t size;          /* sizeof(cx_layout_spec), set by _init */
    unsigned kinds;       /* CX_ROW_BIT mask of the kinds allowed; all */
    size_t max_rows;      /* rows on the page, default 8 (<= 64) */
    size_t items_per_row; /* default 12 (<= 100) */
    size_t min_row;       /* shorter rows are dropped, default 4 */
    size_t per_kind[CX_ROW_KINDS]; /* most rows of each kind: default 1,
                             except BECAUSE 2, TRENDING 2, NEW 2,
                             CATEGORY 3 */
    const char *channel;  /* context: recent items seen on this channel
                             seed the BECAUSE rows first; NULL = any */
    int64_t now;          /* context time for the journey stage; 0 = the
                             newest signal */
    cx_rec_opts rules;    /* applied to every row: in stock, deny, allow,
                             exclusions, category cap, diversity (the
                             rows' own category wins over rules.category) */
} cx_layout_spec;

CX_API void cx_layout_spec_init(cx_layout_spec *spec);

/* One item on the page. */
typedef struct cx_layout_item {
    const char *item;     /* id, points into the engine */
    float score;          /* the row's own score (relevance, trend, age in
                             days for NEW, co-buyers for BOUGHT_TOGETHER,
                             recency rank for CONTINUE) */
    int reason;           /* enum cx_reason */
} cx_layout_item;

/* One row: items[first .. first + count) of the item array. */
typedef struct cx_layout_row {
    int kind;             /* enum cx_row_kind */
    const char *seed;     /* the seed item (BECAUSE, BOUGHT_TOGETHER) or
                             category (TRENDING, NEW, CATEGORY), else NULL;
                             points into the engine */
    float fit;            /* how well the row fits the customer; rows come
                             best first */
    size_t first, count;
} cx_layout_row;

/*
 * The home page for a customer (an unknown id is a new visitor): up to
 * spec->max_rows rows of spec->items_per_row items.  Every allowed kind
 * is filled, each row is scored by fit = weight(journey stage, kind) x
 * (1 + affinity) / 2, affinity in [0, 1] being the mean relevance of the
 * row's items to the customer (their vector's scores relative to their
 * best, or, without a vector, their categories' shares of the customer's
 * signals), and rows are placed by fit, best first.  An item appears
 * once on the page (in the best-fitting row that has it); rows left
 * shorter than spec->min_row are dropped (unless that would leave the
 * page empty: then shorter rows are kept); the rules apply to every row.
 * A new visitor gets trending, new arrivals and popular categories.  The
 * page is never empty while the spec allows trending rows and the
 * catalogue has an item the rules allow (a last resort is a trending row
 * of the whole catalogue); the kinds mask always wins.  Stage weights are
 * documented in the README.
 *
 * rows[] has room for max_rows rows, items[] for max_items items
 * (max_rows * items_per_row is always enough); *n_rows receives the row
 * count.  CX_EINVAL for bad arguments; reads like cx_recommend.
 */
CX_API int cx_layout(cx_engine *e, const char *customer,
                     const cx_layout_spec *spec, cx_layout_row *rows,
                     size_t max_rows, cx_layout_item *items,
                     size_t max_items, size_t *n_rows);
/* "for_you", "because", ... or NULL. */
CX_API const char *cx_row_kind_name(int kind);

/*
 * items[0..n) (a row of a page: items + rows[r].first, rows[r].count) as
 * a JSON array, [{"item":"..","score":..,"reason":".."},...], for a
 * server that answers with JSON.  Ids are JSON strings: quote, backslash,
 * control bytes and DEL escaped, other bytes as they are (the shop's).
 * Scores have 9 significant digits, which read back as the same float;
 * NaN and infinities are written null, as is an unknown reason.  Writes
 * at most cap bytes into buf, no NUL, and returns the length of the whole
 * text, as snprintf does: call again with a larger buffer if it is more
 * than cap.  buf may be NULL with cap 0 (the length alone).
 */
CX_API size_t cx_layout_items_json(const cx_layout_item *items, size_t n,
                                   char *buf, size_t cap);

/* ===================================================================== */
/* Experiments                                                           */
/* ===================================================================== */

/* Define (or redefine) an experiment: n variants (1..64) with traffic
 * shares (> 0; normalised to their sum).  Redefining keeps the exposure
 * counts of variants whose names remain.  Names: 1..64 bytes. */
CX_API int cx_experiment_define(cx_engine *e, const char *experiment,
                                size_t n, const char *const *variants,
                                const double *shares);

/* Set an override a variant carries: a double by key (CX_OVERRIDE_*, a
 * CX_OPT_* key such as a signal weight, or a key of the application's
 * own).  Serving calls do not apply it by themselves: the application
 * reads it with cx_variant_get and applies it (a layout spec, k, rules).
 * cx_evaluate's replay of the variant applies the CX_OPT_* and
 * CX_OVERRIDE_* ones (see cx_eval_opts). */
#define CX_OVERRIDE_K          100001 /* items per list */
#define CX_OVERRIDE_DIVERSITY  100002 /* cx_rec_opts.diversity */
#define CX_OVERRIDE_CATEGORY_CAP 100003 /* cx_rec_opts.max_per_category */
CX_API int cx_variant_set(cx_engine *e, const char *experiment,
                          const char *variant, int key, double value);
/* CX_ENOTFOUND when the variant carries no such override. */
CX_API int cx_variant_get(cx_engine *e, const char *experiment,
                          const char *variant, int key, double *value);

/*
 * The variant of a customer: deterministic in every process, language and
 * restart.  h = FNV-1a 64-bit over the bytes of the experiment name, one
 * zero byte, and the customer id (offset basis 14695981039346656037,
 * prime 1099511628211), then murmur3's fmix64 finaliser (h ^= h >> 33;
 * h *= 0xff51afd7ed558ccd; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53;
 * h ^= h >> 33; all mod 2^64); u = (h >> 11) * 2^-53, in [0, 1); the
 * variant is the first whose cumulative normalised share exceeds u (the
 * last one if rounding leaves u above every sum).  Counts one exposure
 * for that variant unless count_exposure is 0.  *variant points into the
 * engine until the experiment is redefined.
 */
CX_API int cx_variant(cx_engine *e, const char *experiment,
                      const char *customer, int count_exposure,
                      const char **variant);
/* Exposures counted for a variant since the experiment was defined. */
CX_API int cx_exposures(cx_engine *e, const char *experiment,
                        const char *variant, int64_t *count);

/* ===================================================================== */
/* Introspection                                                         */
/* ===================================================================== */

enum cx_stat {
    CX_STAT_CUSTOMERS = 1,  /* customers known (ids ever seen) */
    CX_STAT_ITEMS = 2,      /* items known, removed ones included */
    CX_STAT_SIGNALS = 3,    /* signals ingested */
    CX_STAT_GENERATION = 4, /* trainings completed; 0 = untrained */
    CX_STAT_FACTORS = 5,    /* factors of the current model */
    CX_STAT_MODEL_CUSTOMERS = 6, /* rows of the customer factor matrix */
    CX_STAT_MODEL_ITEMS = 7,     /* rows of the item factor matrix */
    CX_STAT_MEMORY = 8,     /* bytes held by the engine (approximate) */
    CX_STAT_FOLDED_CUSTOMERS = 9, /* fold-ins computed since the model was
                                     published (customers re-solved) */
    CX_STAT_FOLDED_ITEMS = 10,    /* items with a fold-in vector now */
    CX_STAT_TRAINING = 11   /* 1 while a training runs, else 0 */
};
CX_API int cx_stat(cx_engine *e, int key, int64_t *value);

/* The factor matrices of the current model, row-major float32:
 * which = 0 for customers, 1 for items.  Row i belongs to the id
 * cx_customer_id(e, i) / cx_item_id(e, i).  These are the trained
 * factors (fold-in vectors are not included).  The pointer stays valid
 * until the next model is published (a training ends) or cx_close. */
CX_API int cx_factors(cx_engine *e, int which, const float **data,
                      size_t *rows, size_t *cols);
/* The vector serving uses now for a customer / an item: k floats into
 * x[0..cap) (cap >= CX_STAT_FACTORS).  *source (may be NULL) receives 0
 * for a trained vector and 1 for a fold-in (computed now if stale, as
 * cx_recommend would).  CX_ENOTFOUND for an unknown id or one without a
 * vector (no positive signal, or CX_FOLD_OFF), CX_ENOTTRAINED before
 * training, CX_EINVAL if cap is too small. */
CX_API int cx_customer_vector(cx_engine *e, const char *customer, float *x,
                              size_t cap, int *source);
CX_API int cx_item_vector(cx_engine *e, const char *item, float *x,
                          size_t cap, int *source);

/* Id of the customer / item with dense index i, or NULL. */
CX_API const char *cx_customer_id(cx_engine *e, size_t i);
CX_API const char *cx_item_id(cx_engine *e, size_t i);

/* ===================================================================== */
/* Files                                                                 */
/* ===================================================================== */

/* Save the whole engine state (options, catalogue, signals, model) to one
 * file, atomically (written to path.tmp, synced, renamed). */
CX_API int cx_save(cx_engine *e, const char *path);

/* Open a new engine from a file written by cx_save.  A truncated or
 * corrupted file is refused with CX_ECORRUPT, a file from an unknown
 * format version with CX_EVERSION. */
CX_API int cx_load(cx_engine **out, const char *path);

/* Write customer_factors.npy, item_factors.npy (float32, C order) and
 * customer_ids.txt, item_ids.txt (one id per line, row order) into the
 * existing directory `dir`.  numpy.load() reads them without this
 * library. */
CX_API int cx_export_npy(cx_engine *e, const char *dir);

/* Training elsewhere (Apache Spark MLlib ALS, for data beyond one
 * machine).  cx_export_signals writes every signal as CSV with the header
 *   customer_idx,item_idx,strength,customer,item,type,value,ts,channel
 * where the *_idx columns are the engine's dense indexes (Spark's ALS
 * needs integer ids) and strength the signal's signed weight (see
 * cx_ingest), ready for ALS(implicitPrefs=True, userCol="customer_idx",
 * itemCol="item_idx", ratingCol="strength").  Written to path.tmp, synced
 * and renamed.
 *
 * cx_import_factors reads model.userFactors and model.itemFactors as
 * Spark writes them, `.write.json(dir)` (JSON lines {"id":..,
 * "features":[..]}) or CSV (id,f1,..,fk or id,"[f1,..,fk]"); each path is
 * one file or a directory of part files.  With CX_IMPORT_BY_INDEX the ids
 * are the engine's dense indexes (as exported above), otherwise the
 * customer and item ids.  The factors become the engine's model for the
 * signals it holds now, published like a training (and written as a
 * snapshot generation in a data directory); customers absent from the
 * file get no vector.  Nothing changes on failure: CX_EFORMAT (with the
 * file and line), CX_ENOTFOUND for an unknown id, CX_EIO. */
#define CX_IMPORT_BY_INDEX 1u
CX_API int cx_export_signals(cx_engine *e, const char *path);
CX_API int cx_import_factors(cx_engine *e, const char *customers,
                             const char *items, unsigned flags);

/* ===================================================================== */
/* Offline evaluation                                                    */
/* ===================================================================== */

/* Metrics, indexes into the arrays filled by cx_evaluate. */
enum cx_metric {
    CX_METRIC_PRECISION = 0, /* precision@k */
    CX_METRIC_RECALL = 1,    /* recall@k (relevant capped at k) */
    CX_METRIC_NDCG = 2,      /* NDCG@k, binary relevance */
    CX_METRIC_MAP = 3,       /* MAP@k */
    CX_METRIC_HIT_RATE = 4,  /* share of customers with >= 1 hit */
    CX_METRIC_COVERAGE = 5,  /* share of the catalogue ever recommended */
    CX_METRIC_USERS = 6,     /* customers evaluated */
    CX_METRIC_COUNT = 7
};

typedef struct cx_eval_opts {
    size_t size;            /* sizeof(cx_eval_opts) */
    size_t k;               /* cut-off, default 10 */
    double test_fraction;   /* newest share of each customer's distinct
                               items held out, default 0.2 */
    size_t min_items;       /* customers with fewer distinct items are
                               kept whole in training, default 3 */
    unsigned relevant;      /* signal types that make a held-out item
                               relevant; default all positive built-ins */
    /* Offline replay of an experiment's variant: only the customers
     * cx_variant assigns to `variant` of `experiment` are scored (both
     * NULL: everyone; no exposure is counted), and the model's lists get
     * these rules (see cx_rec_opts; defaults 0).  The overrides the
     * variant carries win: CX_OPT_* keys (signal weights included) set
     * its training's options, CX_OVERRIDE_K / _DIVERSITY / _CATEGORY_CAP
     * its k and rules.  Relevance is judged with the engine's own
     * weights, so every variant is scored on the same held-out truth. */
    const char *experiment;
    const char *variant;
    size_t max_per_category;
    double diversity;
    /* Added later (a shorter struct gets the defaults). */
    int split;              /* CX_SPLIT_ITEMS (default) or _EVENTS */
    size_t bootstrap;       /* resamples of the customers for the
                               intervals of cx_evaluate_ci, default 200,
                               at most 100000; 0 = none */
    uint64_t seed;          /* of the resampling, default 1 */
    int untuned;            /* 1: the model is trained and blended with
                               the library's defaults for every option
                               cx_tune sets (the engine "with tuning
                               off"); default 0: the engine's options */
} cx_eval_opts;

/*
 * SPLITS.  Both hold out, per customer, the newest test_fraction of their
 * history; customers with fewer than min_items are kept whole.
 *   CX_SPLIT_ITEMS   the newest distinct items (by their first signal):
 *                    every held-out item is new to the customer, and the
 *                    lists exclude everything the customer has.
 *   CX_SPLIT_EVENTS  the newest signals (by time): a held-out item may be
 *                    one the customer had before (a re-buy), and the
 *                    lists follow the engine's rule for consumables (see
 *                    BLEND).  The popularity baseline then follows the
 *                    same rule.  Use it for shops with repeat purchases.
 * A held-out item is relevant if its held-out signals include one of the
 * `relevant` types and sum to a positive strength.
 */
enum cx_split { CX_SPLIT_ITEMS = 0, CX_SPLIT_EVENTS = 1 };

CX_API void cx_eval_opts_init(cx_eval_opts *opts);

/* Time-based split per customer (see SPLITS): a model is trained on the
 * rest with the engine's options (or the defaults, see `untuned`), and it
 * is scored with its blend on the held-out items against a popularity
 * baseline trained on the same data.  The engine's own model is not
 * changed.  model[] and baseline[] receive CX_METRIC_COUNT values each
 * (baseline may be NULL). */
CX_API int cx_evaluate(cx_engine *e, const cx_eval_opts *opts,
                       double *model, double *baseline);

/* Confidence intervals, indexes into ci[] by CX_CI_* x CX_METRIC_COUNT +
 * metric: the percentile bootstrap over customers (opts->bootstrap
 * resamples with opts->seed) at 95%, of the model's and the baseline's
 * mean metrics and of their paired difference (model - baseline).  A
 * difference interval above 0 is a gain that is not noise.  Coverage and
 * customers are not resampled (lo = hi = the value). */
enum cx_ci {
    CX_CI_MODEL_LO = 0, CX_CI_MODEL_HI = 1,
    CX_CI_BASELINE_LO = 2, CX_CI_BASELINE_HI = 3,
    CX_CI_DIFF_LO = 4, CX_CI_DIFF_HI = 5,
    CX_CI_COUNT = 6
};

/* cx_evaluate, plus ci[] (CX_CI_COUNT * CX_METRIC_COUNT values; may be
 * NULL).  CX_EINVAL for bootstrap 0 with ci set. */
CX_API int cx_evaluate_ci(cx_engine *e, const cx_eval_opts *opts,
                          double *model, double *baseline, double *ci);

/* ===================================================================== */
/* Tuning                                                                */
/* ===================================================================== */

/* What cx_tune searches (bits of cx_tune_opts.params). */
#define CX_TUNE_FACTORS        1u  /* CX_OPT_FACTORS */
#define CX_TUNE_REGULARIZATION 2u  /* CX_OPT_REGULARIZATION */
#define CX_TUNE_ALPHA          4u  /* CX_OPT_ALPHA */
#define CX_TUNE_WEIGHTS        8u  /* weights of view, click, add_to_cart,
                                      purchase and rating */
#define CX_TUNE_HALF_LIFE     16u  /* CX_OPT_HALF_LIFE */
#define CX_TUNE_BLEND         32u  /* CX_OPT_BLEND_* and CX_OPT_CONSUMABLE */
#define CX_TUNE_ALL           63u

typedef struct cx_tune_opts {
    size_t size;            /* sizeof(cx_tune_opts), set by _init */
    double seconds;         /* budget in seconds, default 60; 0 = none */
    size_t trials;          /* budget in trials, default 0 = none; at
                               least one budget must be set */
    uint64_t seed;          /* of the search, default 1 */
    unsigned params;        /* CX_TUNE_* bits, default CX_TUNE_ALL */
    size_t k;               /* the search maximises NDCG@k, default 10 */
    /* The test part cx_evaluate holds out with the same split, fraction
     * and min_items is never read: the validation part is carved, by the
     * same rule, from what is left.  test_fraction 0 tunes on all data
     * (then cx_evaluate's figures after tuning are optimistic). */
    int split;              /* CX_SPLIT_EVENTS (default) or _ITEMS */
    double test_fraction;   /* default 0.2, in [0, 1) */
    size_t min_items;       /* default 3 */
    double validation_fraction; /* default 0.2, in (0, 1) */
    size_t max_customers;   /* validation customers scored per trial (a
                               fixed sample), default 5000; 0 = all */
    int apply;              /* 1 (default): set the best trial's options
                               (cx_set_option: a data directory keeps
                               them) and train the engine with them */
} cx_tune_opts;

CX_API void cx_tune_opts_init(cx_tune_opts *opts);

/* One trial: a model trained with these options on the training part,
 * scored with this blend on the validation part. */
typedef struct cx_tune_trial {
    int model;              /* trials of one model share its training */
    int factors;
    double regularization, alpha, half_life;
    double weight[CX_SIGNAL_CUSTOM]; /* built-in signal types' weights */
    double blend_als, blend_popular, blend_repeat, blend_cobought;
    double consumable;
    double ndcg;            /* validation NDCG@k */
    double seconds;         /* since cx_tune started, when scored */
    int best;               /* 1 for the trial chosen */
} cx_tune_trial;

/*
 * Search the training options and the blend for the best validation
 * NDCG@k, within the budget.  The signals are split once (see
 * cx_tune_opts) and every trial reuses the split: the first model is
 * trained with the engine's options and the second with the defaults,
 * then models are drawn at random (log-uniform regularization and alpha,
 * factors 16..128, weights scaled 1/4..4, half-life none..60 days), half
 * of them near the best so far.  Each model is scored under several
 * blends at once (the plain ALS score among them) without training
 * again.  The budget is checked before each training: a training that
 * would overrun the seconds left is not started.  With opts->apply the
 * best options are set and the engine trained (CX_STAT_GENERATION moves
 * on); else the engine is left as it was.
 *
 * trials[0 .. max_trials) receive the trials in order (trials may be
 * NULL when max_trials is 0); *n_trials the number run (which may
 * exceed max_trials).  CX_EINVAL for bad options or no signals; holds
 * the writer mutex while it copies the signals, like cx_evaluate, and
 * trains like cx_train when applying.
 */
CX_API int cx_tune(cx_engine *e, const cx_tune_opts *opts,
                   cx_tune_trial *trials, size_t max_trials,
                   size_t *n_trials);

#ifdef __cplusplus
}
#endif
#endif /* CXENGINE_H */
