/* db.h -- the data directory (db.c: SQLite; snapshot.c: model files).
 * Private to the library. */
#ifndef CX_DB_H
#define CX_DB_H

#include "internal.h"

/* ===================================================================== */
/* db.c                                                                  */
/* ===================================================================== */

/* Open (creating) the directory's database, take its lock, and replay it
 * into the new engine e, then load the newest valid snapshot.  e->db is
 * set even on failure, for cx_close to release. */
int cx__db_open(cx_engine *e, const char *dir, unsigned flags);
/* Catch up with the directory: a read-only engine brings in what the
 * others committed since (ids, catalogue, signals, options, signal types,
 * experiments, forgets) and a newer snapshot generation; the writer the
 * signals readers appended (CX_OPEN_SIGNALS) and the ids they added. */
int cx__db_follow(cx_engine *e);
/* The data part of cx__db_follow (ids, catalogue rows, signals), with the
 * writer mutex held: the writer calls it before it trains or forgets.
 * CX_OK without a directory. */
int cx__db_catch_up(cx_engine *e);
int cx__db_readonly(const cx_engine *e);
/* Is this thread replaying or following the directory (and so holding the
 * engine, or its writer mutex, to itself)? */
int cx__db_replaying(const cx_engine *e);
/* Erase customers idx[0..n): their signals, and their ids (rows kept,
 * id NULL), then checkpoint and truncate the log (writer mutex held). */
int cx__db_forget(cx_engine *e, const uint32_t *idx, size_t n);
void cx__db_close(cx_engine *e);
const char *cx__db_dir(const cx_engine *e);
/* A whole regular file of at most `limit` bytes, NUL-terminated (not
 * counted in *len), malloc'ed; NULL if it cannot be read (snapshot.c).
 * st, if not NULL, receives what fstat said of the file read. */
struct stat;
char *cx__read_file(const char *path, size_t *len, size_t limit,
                    struct stat *st);

/* A batch of signals with the indexes it will have once published: the
 * ids new to the engine are listed in the order they will be added
 * (new_* may be NULL when there are none). */
typedef struct cx__db_batch {
    size_t n;
    const uint32_t *cust, *item;
    const int *type;
    const float *value;
    const int64_t *ts;
    const uint8_t *channel;
    const cx__idmap *new_customers, *new_items, *new_channels;
} cx__db_batch;

/* Items as they will be once published: one row per distinct item. */
typedef struct cx__db_items_batch {
    size_t n;
    const uint32_t *idx;
    const char *const *id;
    const uint32_t *cat, *tags;
    const double *price;
    const uint8_t *flags;
    const int64_t *created;
    const cx__idmap *new_categories, *new_tagsets;
} cx__db_items_batch;

typedef struct cx__db_variant {
    const char *name;
    double weight;
    size_t n_over;
    const int *key;
    const double *value;
} cx__db_variant;

/* Open the write transaction of a batch that may add ids (the writer
 * mutex held), and catch up inside it with what other processes
 * committed, before the caller resolves the batch's ids: a new id gets
 * the next idx of its table in every process.  cx__db_signals and
 * cx__db_items then write and commit it; a caller that gives up calls
 * cx__db_rollback.  CX_EREADONLY for a reader, except cx_ingest on one
 * opened with CX_OPEN_SIGNALS. */
int cx__db_claim(cx_engine *e, const char *what);

/* Writers (the writer mutex held): each commits one transaction before
 * it returns CX_OK; on failure nothing was written. */
int cx__db_signals(cx_engine *e, const cx__db_batch *b);
int cx__db_items(cx_engine *e, const cx__db_items_batch *b);
int cx__db_item_remove(cx_engine *e, uint32_t item);
int cx__db_option(cx_engine *e, int key, double value);
int cx__db_type(cx_engine *e, int type, const char *name, double weight);
/* Replace experiment `name`'s definition (no-op while the directory is
 * being replayed). */
int cx__db_experiment(cx_engine *e, const char *name, size_t n,
                      const cx__db_variant *v);
/* Add `delta` exposures (inside a transaction the caller opened). */
int cx__db_exposure(cx_engine *e, const char *experiment,
                    const char *variant, int64_t delta);
/* Save the exposure counts not yet saved (experiment.c). */
int cx__db_exposures(cx_engine *e);
/* Replay: set a variant's exposure count (experiment.c). */
void cx__experiment_exposed(cx_engine *e, const char *experiment,
                            const char *variant, int64_t n);
int cx__db_begin(cx_engine *e);
int cx__db_commit(cx_engine *e);
void cx__db_rollback(cx_engine *e);
int cx__db_set_sync(cx_engine *e, int policy);
/* seq of the newest signal in memory (0: none). */
int64_t cx__db_last_seq(const cx_engine *e);
/* What memory covers, for an engine image (writer mutex held): the
 * newest signal, the catalogue and forget revisions. */
void cx__db_image_revs(const cx_engine *e, int64_t *last_seq,
                       int64_t *catalog_rev, int64_t *forget_rev);
/* The seq of the database's signals up to last_seq, in order, which
 * must be exactly n (the events in memory); read on a connection of its
 * own (no engine lock needed). */
int cx__db_event_seqs(cx_engine *e, int64_t last_seq, size_t n,
                      int64_t *seq);

/* ===================================================================== */
/* stamp.c                                                               */
/* ===================================================================== */

/* A generation's VERIFIED stamp: the files this machine verified in full
 * and what stat(2) said of each then; see stamp.c. */
#define CX__STAMP_FILES 48
typedef struct cx__stamp {
    int64_t generation;
    int64_t t0;              /* when verification began (ns; not saved) */
    int ranges;              /* the image's range checks passed against */
    uint32_t n_cats, n_chans, n_tags, types; /* these (types: a bit mask) */
    int n;
    struct cx__stamp_file {
        char name[48];
        uint64_t dev, ino, size;
        int64_t mtime, ctime;    /* ns */
    } f[CX__STAMP_FILES];
} cx__stamp;

/* Generation dir's stamp if it is whole and for `generation`, else an
 * empty one (n = 0, ranges = 0). */
void cx__stamp_read(const char *dir, int64_t generation, cx__stamp *s);
/* Does s list file `name` with exactly these stat figures? */
int cx__stamp_holds(const cx__stamp *s, const char *name,
                    const struct stat *st);
/* Add file `name` as st (taken after s->t0) describes it; 0, or -1 if
 * there is no room, or if its ctime or mtime is too close to s->t0 for a
 * later write to be sure to change it (the file goes unstamped). */
int cx__stamp_add(cx__stamp *s, const char *name, const struct stat *st);
/* The time now (CLOCK_REALTIME, ns), for t0. */
int64_t cx__stamp_now(void);
/* Wait until the files written so far can be stamped (a writer). */
void cx__stamp_wait(void);
/* Add dir/name as it stats now; 0, or -1. */
int cx__stamp_add_path(cx__stamp *s, const char *dir, const char *name);
/* Write s as dir/VERIFIED (temporary file, fsync, rename); 0 or -1. */
int cx__stamp_write(const char *dir, const cx__stamp *s);
/* Parse and verify a VERIFIED text (fuzzing, tests). */
int cx__stamp_parse(const char *text, size_t len, void *out, char *why,
                    size_t whylen);
size_t cx__stamp_size(void);

/* What verification this process has done (tests): files checksummed,
 * models and images range-checked. */
typedef struct cx__verify_counts {
    _Atomic uint64_t checksums, model_checks, image_checks;
} cx__verify_counts;
extern cx__verify_counts cx__verified;

/* ===================================================================== */
/* snapshot.c                                                            */
/* ===================================================================== */

/* The newest generation whose manifest verifies. */
typedef struct cx__snapshot_info {
    int found;
    int64_t generation;
    int64_t seq_end;         /* signals with seq < seq_end were trained */
    char *dir;               /* its directory */
    char *manifest;          /* its manifest text */
    void *data[12];          /* its verified arrays, until loaded */
    void *map[12];           /* their mappings (see cx__model) */
    size_t map_len[12];
    cx__stamp stamp;         /* its VERIFIED stamp (empty if unusable) */
    cx__stamp seen;          /* its files as verified now (for a stamp) */
    int stamped;             /* every model file matched the stamp */
} cx__snapshot_info;

/* Find the newest valid generation in dir/snapshots (found = 0 if none);
 * generations that fail to verify are skipped with a message on stderr
 * and in cx_errmsg(NULL).  Files its VERIFIED stamp vouches for are not
 * checksummed again unless verify (CX_OPEN_VERIFY). */
int cx__snapshot_find(cx_engine *e, const char *dir, int verify,
                      cx__snapshot_info *s);
void cx__snapshot_info_free(cx__snapshot_info *s);
/* The model of generation s (its arrays mapped, not copied; s keeps
 * nothing); n_events = the signals in memory it was trained on. */
int cx__snapshot_model(cx_engine *e, cx__snapshot_info *s, size_t n_events,
                       cx__model **out);
/* The newest generation number in dir/snapshots, verified or not (0: none). */
int64_t cx__snapshot_newest(const char *dir);
/* Parse and verify a MANIFEST's text into a private struct (fuzzing). */
int cx__manifest_parse(const char *text, size_t len, void *out, char *why,
                       size_t whylen);
size_t cx__manifest_size(void);
/* Write model m of engine e (with data directory) as generation
 * e->generation, then prune old generations.  No engine lock needed:
 * the model is immutable and the caller holds train_mu. */
int cx__snapshot_write(cx_engine *e, const cx__model *m);
/* Delete all but the newest `keep` generations. */
int cx__snapshot_prune(cx_engine *e, size_t keep);
/* Write dir/name: hdr then data, fsync'ed.  0, or -1 with errno. */
int cx__write_file(const char *dir, const char *name, const char *hdr,
                   size_t hl, const void *data, size_t bytes);
/* The framing and checksum line of a manifest-style text (what: its
 * name in messages); *body = the bytes before the checksum line.  CX_OK,
 * or CX_ECORRUPT with a reason in why. */
int cx__manifest_verify(const char *text, size_t len, const char *what,
                        size_t *body, char *why, size_t whylen);
/* One line of a manifest-style text's body (every line of which ends in
 * a newline, as cx__manifest_verify checked): the line, its first word
 * and the rest after it. */
typedef struct cx__mline {
    char line[512], word[32];
    const char *rest;
} cx__mline;
/* The line at *at of text's body (body bytes) into *l, *at moved past
 * it; CX_ECORRUPT with a reason in why for a line that is too long, holds
 * a NUL byte or is blank (what: the text's name in messages). */
int cx__manifest_line(const char *text, size_t body, size_t *at,
                      const char *what, cx__mline *l, char *why,
                      size_t whylen);
/* End a manifest's text b (n bytes of cap) with its checksum line; NULL
 * (b freed) if bad or out of memory, else b with *len its length. */
char *cx__manifest_seal(char *b, size_t n, size_t cap, int bad, size_t *len);
/* printf a line onto a growing buffer; -1 when out of memory. */
int cx__put_line(char **buf, size_t *n, size_t *cap, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ===================================================================== */
/* image.c                                                               */
/* ===================================================================== */

/* Write the engine image of e into generation directory dir (not yet
 * committed) for generation `generation`: a consistent copy of memory
 * taken under the writer mutex.  The caller holds train_mu.  On failure
 * no image file is left behind.  If the image passes the checks an open
 * makes, stamp->ranges is set to the names they were made against. */
int cx__image_write(cx_engine *e, const char *dir, int64_t generation,
                    cx__stamp *stamp);

/* What an image covers, for following the database from there. */
typedef struct cx__image_state {
    int64_t *ev_seq;         /* seq of each event (inside the image) */
    size_t ev_seq_cap;
    int64_t last_seq, catalog_rev, forget_rev;
    int pop_current;         /* popularity counted with e's options */
    int stamped;             /* the stamp vouched for every file */
} cx__image_state;

/* Map generation dir's image into the new engine e (its options, signal
 * types and small name tables already loaded: n_cats categories, n_chans
 * channels, n_tags tag sets), verifying sizes, headers, checksums and
 * ranges (not the checksums of the files stamp vouches for, nor the
 * ranges if it vouches for them all).  The files as verified, and the
 * ranges, are added to seen.  CX_ENOTFOUND when the generation has no
 * image; another code with a reason in why when it is unusable (e and
 * seen are then unchanged). */
int cx__image_load(cx_engine *e, const char *dir, int64_t generation,
                   uint32_t n_cats, uint32_t n_chans, uint32_t n_tags,
                   const cx__stamp *stamp, cx__stamp *seen,
                   cx__image_state *out, char *why, size_t whylen);
/* The names of an image's files: "IMAGE" for i = 0, then its arrays;
 * NULL past the last. */
const char *cx__image_file(int i);
/* Unmap an image (after the engine's arrays are freed). */
void cx__image_free(struct cx__image *m);
/* Parse and verify an IMAGE's text (fuzzing, tests). */
int cx__image_manifest_parse(const char *text, size_t len, void *out,
                             char *why, size_t whylen);
size_t cx__image_manifest_size(void);

#endif /* CX_DB_H */
