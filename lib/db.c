/* db.c -- the data directory's database: durable signals, catalogue, ids,
 * options and experiments in SQLite, written through before a call
 * returns CX_OK and replayed into memory when the directory is opened.
 *
 * Memory is a function of the database: every dense index the engine
 * hands out (customer, item, category, channel, tag set) is the row's
 * idx in its table, and signals are replayed in seq order.  A writer
 * computes the indexes a batch will get before it writes (db_resolve in
 * the callers), commits, and only then publishes the batch in memory, so
 * a failed commit leaves memory as it was. */
#include "internal.h"
#include "db.h"
#include "quality.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DB_FORMAT 1

enum {
    Q_CUSTOMER, Q_ITEM, Q_CATEGORY, Q_CHANNEL, Q_TAGSET, Q_SIGNAL,
    Q_OPTION, Q_TYPE, Q_REMOVE, Q_EXP_DEL, Q_EXP, Q_EXPOSE, Q_REV, Q_FLOOR,
    Q_COUNT
};

static const char *const sql_text[Q_COUNT] = {
    "INSERT INTO customers(idx, id) VALUES (?1, ?2)",
    "INSERT OR REPLACE INTO items(idx, id, category, price, in_stock, "
    "created_at, tags, catalogued, removed, rev) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    "INSERT INTO categories(idx, name) VALUES (?1, ?2)",
    "INSERT INTO channels(idx, name) VALUES (?1, ?2)",
    "INSERT INTO tagsets(idx, tags) VALUES (?1, ?2)",
    "INSERT INTO signals(customer, item, type, value, ts, channel, seq) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "INSERT OR REPLACE INTO options(key, value) VALUES (?1, ?2)",
    "INSERT OR REPLACE INTO signal_types(type, name) VALUES (?1, ?2)",
    "UPDATE items SET removed = 1, rev = ?2 WHERE idx = ?1",
    "DELETE FROM experiments WHERE name = ?1",
    "INSERT INTO experiments(name, position, variant, weight, key, value) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "INSERT INTO exposures(experiment, variant, n) VALUES (?1, ?2, ?3) "
    "ON CONFLICT(experiment, variant) DO UPDATE SET n = n + excluded.n",
    "UPDATE meta SET value = ?2 WHERE key = ?1",
    "SELECT coalesce(max(value), 0) FROM meta WHERE key = 'seq_floor'",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) "
    "WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS options(key INTEGER PRIMARY KEY, "
    "value REAL NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS signal_types(type INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE IF NOT EXISTS categories(idx INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE IF NOT EXISTS channels(idx INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE IF NOT EXISTS tagsets(idx INTEGER PRIMARY KEY, "
    "tags TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE IF NOT EXISTS customers(idx INTEGER PRIMARY KEY, "
    "id TEXT UNIQUE, forgotten INTEGER);\n"
    "CREATE TABLE IF NOT EXISTS items(idx INTEGER PRIMARY KEY, "
    "id TEXT NOT NULL UNIQUE, category INTEGER NOT NULL, "
    "price REAL NOT NULL, in_stock INTEGER NOT NULL, "
    "created_at INTEGER NOT NULL, tags INTEGER, "
    "catalogued INTEGER NOT NULL, removed INTEGER NOT NULL, "
    "rev INTEGER NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS items_by_rev ON items(rev);\n"
    "CREATE TABLE IF NOT EXISTS signals(seq INTEGER PRIMARY KEY, "
    "customer INTEGER NOT NULL, item INTEGER NOT NULL, "
    "type INTEGER NOT NULL, value REAL NOT NULL, ts INTEGER NOT NULL, "
    "channel INTEGER NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS experiments(name TEXT NOT NULL, "
    "position INTEGER NOT NULL, variant TEXT NOT NULL, weight REAL, "
    "key INTEGER, value REAL);\n"
    "CREATE INDEX IF NOT EXISTS experiments_by_name "
    "ON experiments(name);\n"
    "CREATE TABLE IF NOT EXISTS exposures(experiment TEXT NOT NULL, "
    "variant TEXT NOT NULL, n INTEGER NOT NULL, "
    "PRIMARY KEY(experiment, variant)) WITHOUT ROWID;\n"
    "CREATE VIEW IF NOT EXISTS signals_v AS SELECT s.seq, "
    "c.id AS customer, i.id AS item, t.name AS type, s.value, s.ts, "
    "ch.name AS channel FROM signals s "
    "JOIN customers c ON c.idx = s.customer "
    "JOIN items i ON i.idx = s.item "
    "LEFT JOIN signal_types t ON t.type = s.type "
    "JOIN channels ch ON ch.idx = s.channel;\n"
    "CREATE VIEW IF NOT EXISTS catalog AS SELECT i.id, "
    "c.name AS category, i.price, i.in_stock, i.created_at, "
    "g.tags, i.removed FROM items i "
    "JOIN categories c ON c.idx = i.category "
    "LEFT JOIN tagsets g ON g.idx = i.tags WHERE i.catalogued;\n";

typedef struct cx__db cx__db;
struct cx__db {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    char *dir;
    int lock_fd;             /* LOCK, held exclusively while open */
    int wal_fd;              /* for the flusher's fdatasync, or -1 */
    int64_t last_seq;        /* newest signal in memory */
    /* The normal policy's flusher: a thread that syncs the WAL at most
     * `interval` ms after a commit. */
    pthread_t flusher;
    int flusher_on;
    pthread_mutex_t fmu;
    pthread_cond_t fcv;
    int dirty, stop;
    int in_tx;
    int loading;             /* thread `loader` replays: its writes are */
    pthread_t loader;        /* skipped */
    /* Change counters (meta rows): items rows carry the catalog_rev of
     * the transaction that last changed them; config_rev counts changes
     * to options, signal types and experiments.  A read-only engine
     * follows the database by them (see cx__db_follow). */
    int64_t catalog_rev, config_rev, forget_rev;
    int readonly;            /* CX_OPEN_READONLY */
    int verify;              /* CX_OPEN_VERIFY: ignore VERIFIED stamps */
    int signals;             /* CX_OPEN_SIGNALS: a reader that ingests */
    /* PRAGMA data_version when this engine last caught up with what other
     * connections committed (-1: never); it moves only when another
     * process commits, so an unchanged value means nothing to follow. */
    int64_t data_version;
    int64_t seen_version;    /* the data_version the last catch-up read */
    int64_t skip_gen;        /* a generation that failed its checks */
    int64_t *ev_seq;         /* readers: seq of each event in memory */
    size_t ev_seq_cap;
    /* The follower thread: cx_refresh every interval (every engine of a
     * directory: the writer follows the signals readers append). */
    pthread_t follower;
    int follower_on;
    pthread_cond_t rcv;      /* the follower sleeps on it (fmu) */
};

/* ===================================================================== */
/* Helpers                                                               */
/* ===================================================================== */

static int db_err(const cx_engine *e, sqlite3 *db, const char *what)
{
    int code = db ? sqlite3_errcode(db) : SQLITE_ERROR;
    int rc = code == SQLITE_BUSY || code == SQLITE_LOCKED ? CX_EBUSY
             : code == SQLITE_NOMEM                       ? CX_ENOMEM
             : code == SQLITE_CORRUPT || code == SQLITE_NOTADB
                 ? CX_ECORRUPT
                 : CX_EIO;
    return cx__fail(e, rc, "%s: %s", what,
                    db ? sqlite3_errmsg(db) : "no database");
}

static int exec(const cx_engine *e, sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = db_err(e, db, "database");
        if (msg)
            cx__fail(e, rc, "database: %s (in: %.60s)", msg, sql);
        sqlite3_free(msg);
        return rc;
    }
    return CX_OK;
}

/* Run a prepared statement to completion and reset it. */
static int step(const cx_engine *e, cx__db *d, sqlite3_stmt *s)
{
    int r = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return r == SQLITE_DONE ? CX_OK : db_err(e, d->db, "database write");
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* ===================================================================== */
/* Transactions and the sync policy                                      */
/* ===================================================================== */

int cx__db_begin(cx_engine *e)
{
    cx__db *d = e->db;
    int rc = exec(e, d->db, "BEGIN IMMEDIATE");
    d->in_tx = rc == CX_OK;
    return rc;
}

void cx__db_rollback(cx_engine *e)
{
    cx__db *d = e->db;
    if (d->in_tx)
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    d->in_tx = 0;
}

int cx__db_commit(cx_engine *e)
{
    cx__db *d = e->db;
    int rc = exec(e, d->db, "COMMIT");
    if (rc) {
        cx__db_rollback(e);
        return rc;
    }
    d->in_tx = 0;
    if (e->opt.sync == CX_SYNC_NORMAL && d->flusher_on) {
        pthread_mutex_lock(&d->fmu);
        if (!d->dirty) {
            d->dirty = 1;
            pthread_cond_signal(&d->fcv);
        }
        pthread_mutex_unlock(&d->fmu);
    }
    return CX_OK;
}

/* Make what is committed durable now: sync the WAL. */
static int sync_wal(cx__db *d)
{
    if (d->wal_fd < 0) {
        char *p = path_join(d->dir, "cx.db-wal");
        if (!p)
            return -1;
        d->wal_fd = open(p, O_RDONLY | O_CLOEXEC);
        free(p);
        if (d->wal_fd < 0)
            return errno == ENOENT ? 0 : -1;
    }
    return fdatasync(d->wal_fd);
}

static void *follower_main(void *arg);

static void *flusher_main(void *arg)
{
    cx_engine *e = arg;
    cx__db *d = e->db;
    pthread_mutex_lock(&d->fmu);
    while (!d->stop) {
        if (!d->dirty) {
            pthread_cond_wait(&d->fcv, &d->fmu);
            continue;
        }
        /* Wait out the interval (or close), then sync what is there. */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        int ms = e->opt.sync_interval;
        t.tv_sec += ms / 1000;
        t.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        while (!d->stop &&
               pthread_cond_timedwait(&d->fcv, &d->fmu, &t) != ETIMEDOUT)
            ;
        d->dirty = 0;
        pthread_mutex_unlock(&d->fmu);
        sync_wal(d);
        pthread_mutex_lock(&d->fmu);
    }
    pthread_mutex_unlock(&d->fmu);
    return NULL;
}

static const char *sync_pragma(int policy)
{
    return policy == CX_SYNC_FULL     ? "PRAGMA synchronous = FULL"
           : policy == CX_SYNC_NORMAL ? "PRAGMA synchronous = NORMAL"
                                      : "PRAGMA synchronous = OFF";
}

int cx__db_set_sync(cx_engine *e, int policy)
{
    return exec(e, e->db->db, sync_pragma(policy));
}

CX_API int cx_sync(cx_engine *e)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_sync: engine is NULL");
    if (!e->db)
        return CX_OK;
    pthread_mutex_lock(&e->wmu);
    int rc = cx__db_exposures(e);
    if (rc == CX_OK && sync_wal(e->db))
        rc = cx__fail(e, CX_EIO, "cx_sync: syncing the log failed: %s",
                      strerror(errno));
    pthread_mutex_unlock(&e->wmu);
    return rc;
}

/* ===================================================================== */
/* Writes                                                                */
/* ===================================================================== */

static int put_names(cx_engine *e, sqlite3_stmt *s, const cx__idmap *m,
                     uint32_t base)
{
    for (uint32_t j = 0; m && j < m->n; j++) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)base + j);
        sqlite3_bind_text(s, 2, m->str[j], -1, SQLITE_STATIC);
        int rc = step(e, e->db, s);
        if (rc)
            return rc;
    }
    return CX_OK;
}

/* One row of the items table, as the item will be in memory. */
static int put_item(cx_engine *e, uint32_t idx, const char *id, uint32_t cat,
                    double price, uint8_t flags, int64_t created,
                    uint32_t tags, int64_t rev)
{
    sqlite3_stmt *s = e->db->q[Q_ITEM];
    sqlite3_bind_int64(s, 1, idx);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, cat);
    sqlite3_bind_double(s, 4, price);
    sqlite3_bind_int(s, 5, !!(flags & CX__ITEM_IN_STOCK));
    sqlite3_bind_int64(s, 6, created);
    if (tags == CX_NONE)
        sqlite3_bind_null(s, 7);
    else
        sqlite3_bind_int64(s, 7, tags);
    sqlite3_bind_int(s, 8, !!(flags & CX__ITEM_CATALOGUED));
    sqlite3_bind_int(s, 9, !!(flags & CX__ITEM_REMOVED));
    sqlite3_bind_int64(s, 10, rev);
    return step(e, e->db, s);
}

/* A change counter's new value (inside the caller's transaction). */
static int set_rev(cx_engine *e, const char *key, int64_t value)
{
    sqlite3_stmt *s = e->db->q[Q_REV];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    return step(e, e->db, s);
}

/* Writes are refused by a read-only engine (but not while it replays). */
static int replaying(const cx__db *d)
{
    return d->loading && pthread_equal(d->loader, pthread_self());
}

int cx__db_replaying(const cx_engine *e)
{
    return e->db && replaying(e->db);
}

static int writable(cx_engine *e, const char *what)
{
    if (e->db->readonly && !replaying(e->db))
        return cx__fail(e, CX_EREADONLY, "%s: the engine is open read-only "
                        "(the directory's writer makes changes)", what);
    return CX_OK;
}

static int catch_up(cx_engine *e, int in_tx, int64_t *config_rev);

/* Several processes may add rows to the id tables (the writer, and
 * readers opened with CX_OPEN_SIGNALS): a new id's index is the next free
 * idx of its table, so it is decided inside the write transaction that
 * inserts it, after catching up with what the others committed.  Taking
 * the write lock first (BEGIN IMMEDIATE) means nobody commits between
 * the catch-up and our insert: memory then holds every row of the
 * database, the batch's indexes are the ones every process will give it,
 * and its signals get the seqs right after the last one we hold. */
int cx__db_claim(cx_engine *e, const char *what)
{
    cx__db *d = e->db;
    int rc = (d->signals && !strcmp(what, "cx_ingest"))
                 ? CX_OK
                 : writable(e, what);
    if (rc || (rc = cx__db_begin(e)))
        return rc;
    int64_t config_rev = d->config_rev;
    if ((rc = catch_up(e, 1, &config_rev))) {
        cx__db_rollback(e);
        return rc;
    }
    return CX_OK;
}

/* The seq of the batch's first signal: after every seq this engine holds
 * and every seq a forget deleted (seqs are never reused: followers read
 * "seq > the last one I have"). */
static int first_seq(cx_engine *e, int64_t *seq)
{
    cx__db *d = e->db;
    sqlite3_stmt *s = d->q[Q_FLOOR];
    int r = sqlite3_step(s);
    int64_t floor = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (r != SQLITE_ROW)
        return db_err(e, d->db, "cx_ingest: reading the database");
    *seq = (floor > d->last_seq ? floor : d->last_seq) + 1;
    return CX_OK;
}

int cx__db_signals(cx_engine *e, const cx__db_batch *b)
{
    cx__db *d = e->db;
    int rc;
    int64_t seq = 0;
    if (!d->in_tx) /* the caller claims before it resolves the ids */
        return cx__fail(e, CX_EINVAL, "cx_ingest: no transaction claimed");
    if ((rc = first_seq(e, &seq)))
        goto fail;
    /* A reader maps its events to seqs (for forgets and generations). */
    if (d->readonly && e->n_ev + b->n > d->ev_seq_cap &&
        cx__grow((void **)&d->ev_seq, &d->ev_seq_cap, e->n_ev + b->n,
                 sizeof *d->ev_seq)) {
        rc = cx__fail(e, CX_ENOMEM, "cx_ingest: out of memory");
        goto fail;
    }
    if ((rc = put_names(e, d->q[Q_CUSTOMER], b->new_customers,
                        e->customers.n)) ||
        (rc = put_names(e, d->q[Q_CHANNEL], b->new_channels,
                        e->channels.n)))
        goto fail;
    for (uint32_t j = 0; b->new_items && j < b->new_items->n; j++)
        if ((rc = put_item(e, e->items.n + j, b->new_items->str[j], 0, 0,
                           CX__ITEM_IN_STOCK, 0, CX_NONE, d->catalog_rev)))
            goto fail;
    sqlite3_stmt *s = d->q[Q_SIGNAL];
    for (size_t i = 0; i < b->n; i++) {
        sqlite3_bind_int64(s, 1, b->cust[i]);
        sqlite3_bind_int64(s, 2, b->item[i]);
        sqlite3_bind_int(s, 3, b->type[i]);
        sqlite3_bind_double(s, 4, b->value[i]);
        sqlite3_bind_int64(s, 5, b->ts[i]);
        sqlite3_bind_int(s, 6, b->channel[i]);
        sqlite3_bind_int64(s, 7, seq + (int64_t)i);
        if ((rc = step(e, d, s)))
            goto fail;
    }
    if ((rc = cx__db_commit(e)))
        return rc;
    /* Our rows are seq .. seq + n - 1, the events about to be published
     * at e->n_ev .. (the writer mutex is held from the claim on). */
    if (d->readonly)
        for (size_t i = 0; i < b->n; i++)
            d->ev_seq[e->n_ev + i] = seq + (int64_t)i;
    d->last_seq = seq + (int64_t)b->n - 1;
    return CX_OK;
fail:
    cx__db_rollback(e);
    return rc;
}

int cx__db_items(cx_engine *e, const cx__db_items_batch *b)
{
    cx__db *d = e->db;
    int64_t rev = d->catalog_rev + 1;
    int rc;
    if (!d->in_tx)
        return cx__fail(e, CX_EINVAL, "cx_items_upsert: no transaction "
                        "claimed");
    if ((rc = put_names(e, d->q[Q_CATEGORY], b->new_categories,
                        e->categories.n)) ||
        (rc = put_names(e, d->q[Q_TAGSET], b->new_tagsets, e->tagsets.n)))
        goto fail;
    for (size_t j = 0; j < b->n; j++)
        if ((rc = put_item(e, b->idx[j], b->id[j], b->cat[j], b->price[j],
                           b->flags[j], b->created[j], b->tags[j], rev)))
            goto fail;
    if ((rc = set_rev(e, "catalog_rev", rev)) || (rc = cx__db_commit(e)))
        goto fail;
    d->catalog_rev = rev;
    return CX_OK;
fail:
    cx__db_rollback(e);
    return rc;
}

/* Statements st[0..n), bound by the caller, then a change counter's new
 * value (key NULL: none), as one transaction. */
static int run_tx(cx_engine *e, const char *what, sqlite3_stmt **st,
                  int n, const char *key, int64_t rev)
{
    int rc = writable(e, what);
    if (rc == CX_OK)
        rc = cx__db_begin(e);
    for (int j = 0; rc == CX_OK && j < n; j++)
        rc = step(e, e->db, st[j]);
    if (rc == CX_OK && key)
        rc = set_rev(e, key, rev);
    if (rc == CX_OK && (rc = cx__db_commit(e)) == CX_OK)
        return CX_OK;
    cx__db_rollback(e);
    for (int j = 0; j < n; j++) { /* not stepped if BEGIN failed */
        sqlite3_reset(st[j]);
        sqlite3_clear_bindings(st[j]);
    }
    return rc;
}

int cx__db_item_remove(cx_engine *e, uint32_t item)
{
    cx__db *d = e->db;
    sqlite3_stmt *s = d->q[Q_REMOVE];
    sqlite3_bind_int64(s, 1, item);
    sqlite3_bind_int64(s, 2, d->catalog_rev + 1);
    int rc = run_tx(e, "cx_item_remove", &s, 1, "catalog_rev",
                    d->catalog_rev + 1);
    if (rc == CX_OK)
        d->catalog_rev++;
    return rc;
}

int cx__db_option(cx_engine *e, int key, double value)
{
    cx__db *d = e->db;
    sqlite3_stmt *s = d->q[Q_OPTION];
    sqlite3_bind_int(s, 1, key);
    sqlite3_bind_double(s, 2, value);
    int rc = run_tx(e, "cx_set_option", &s, 1, "config_rev",
                    d->config_rev + 1);
    if (rc == CX_OK)
        d->config_rev++;
    return rc;
}

int cx__db_type(cx_engine *e, int type, const char *name, double weight)
{
    cx__db *d = e->db;
    sqlite3_stmt *st[2] = {d->q[Q_TYPE], d->q[Q_OPTION]};
    sqlite3_bind_int(st[0], 1, type);
    sqlite3_bind_text(st[0], 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st[1], 1, CX_OPT_WEIGHT + type);
    sqlite3_bind_double(st[1], 2, weight);
    int rc = run_tx(e, "cx_signal_type_define", st, 2, "config_rev",
                    d->config_rev + 1);
    if (rc == CX_OK)
        d->config_rev++;
    return rc;
}

int cx__db_experiment(cx_engine *e, const char *name, size_t n,
                      const cx__db_variant *v)
{
    cx__db *d = e->db;
    int rc;
    if (replaying(d))
        return CX_OK;
    if ((rc = writable(e, "cx_experiment_define")) ||
        (rc = cx__db_begin(e)))
        return rc;
    sqlite3_bind_text(d->q[Q_EXP_DEL], 1, name, -1, SQLITE_STATIC);
    if ((rc = step(e, d, d->q[Q_EXP_DEL])))
        goto fail;
    sqlite3_stmt *s = d->q[Q_EXP];
    for (size_t j = 0; j < n; j++) {
        /* One row for the variant, then one per override. */
        for (size_t o = 0; o <= v[j].n_over; o++) {
            sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, (sqlite3_int64)j);
            sqlite3_bind_text(s, 3, v[j].name, -1, SQLITE_STATIC);
            if (o == 0) {
                sqlite3_bind_double(s, 4, v[j].weight);
            } else {
                sqlite3_bind_int(s, 5, v[j].key[o - 1]);
                sqlite3_bind_double(s, 6, v[j].value[o - 1]);
            }
            if ((rc = step(e, d, s)))
                goto fail;
        }
    }
    if ((rc = set_rev(e, "config_rev", d->config_rev + 1)) ||
        (rc = cx__db_commit(e)))
        goto fail;
    d->config_rev++;
    return CX_OK;
fail:
    cx__db_rollback(e);
    return rc;
}

int cx__db_exposure(cx_engine *e, const char *experiment,
                    const char *variant, int64_t delta)
{
    cx__db *d = e->db;
    sqlite3_stmt *s = d->q[Q_EXPOSE];
    sqlite3_bind_text(s, 1, experiment, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, variant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, delta);
    return step(e, d, s);
}

/* A JSON array of indexes, for json_each (SQLite's JSON1 is built in). */
static char *json_list(const uint32_t *idx, size_t n)
{
    char *s = malloc(n * 11 + 3), *p = s;
    if (!s)
        return NULL;
    *p++ = '[';
    for (size_t j = 0; j < n; j++)
        p += sprintf(p, j ? ",%u" : "%u", idx[j]);
    *p++ = ']';
    *p = 0;
    return s;
}

int cx__db_forget(cx_engine *e, const uint32_t *idx, size_t n)
{
    cx__db *d = e->db;
    char *list = json_list(idx, n);
    if (!list)
        return cx__fail(e, CX_ENOMEM, "cx_forget: out of memory");
    /* The highest seq is kept first: a deleted newest signal must not
     * have its seq reused (see first_seq). */
    static const char *const sql[3] = {
        "INSERT INTO meta(key, value) SELECT 'seq_floor', "
        "coalesce(max(seq), 0) FROM signals WHERE 1 ON CONFLICT(key) "
        "DO UPDATE SET value = max(value, excluded.value)",
        "DELETE FROM signals WHERE customer IN "
        "(SELECT value FROM json_each(?1))",
        "UPDATE customers SET id = NULL, forgotten = ?2 WHERE idx IN "
        "(SELECT value FROM json_each(?1))"};
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    int rc = writable(e, "cx_forget");
    for (int j = 0; rc == CX_OK && j < 3; j++) {
        if (sqlite3_prepare_v2(d->db, sql[j], -1, &st[j], NULL) != SQLITE_OK)
            rc = db_err(e, d->db, "cx_forget");
        else if (j)
            sqlite3_bind_text(st[j], 1, list, -1, SQLITE_STATIC);
    }
    int64_t rev = d->forget_rev + 1;
    if (rc == CX_OK) {
        sqlite3_bind_int64(st[2], 2, rev);
        rc = run_tx(e, "cx_forget", st, 3, "forget_rev", rev);
    }
    for (int j = 0; j < 3; j++)
        sqlite3_finalize(st[j]);
    free(list);
    if (rc)
        return rc;
    d->forget_rev = rev;
    /* The log still holds the pages as they were: copy them into the
     * database (whose freed bytes secure_delete zeroed) and empty it.
     * Readers inside a transaction can hold it up; it is retried at
     * every later forget and at close. */
    sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                              NULL);
    return CX_OK;
}

int64_t cx__db_last_seq(const cx_engine *e)
{
    return e->db ? e->db->last_seq : 0;
}

void cx__db_image_revs(const cx_engine *e, int64_t *last_seq,
                       int64_t *catalog_rev, int64_t *forget_rev)
{
    *last_seq = e->db->last_seq;
    *catalog_rev = e->db->catalog_rev;
    *forget_rev = e->db->forget_rev;
}

int cx__db_event_seqs(cx_engine *e, int64_t last_seq, size_t n,
                      int64_t *seq)
{
    cx__db *d = e->db;
    char *p = path_join(d->dir, "cx.db");
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    if (!p)
        return cx__fail(e, CX_ENOMEM, "out of memory");
    int rc = CX_OK, r = sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY |
                                                    SQLITE_OPEN_NOMUTEX,
                                        NULL);
    free(p);
    if (r == SQLITE_OK) {
        sqlite3_busy_timeout(db, 10000);
        r = sqlite3_prepare_v2(db, "SELECT seq FROM signals WHERE seq <= ?1 "
                               "ORDER BY seq", -1, &s, NULL);
    }
    if (r != SQLITE_OK)
        rc = db_err(e, db, "reading the signals' seq");
    size_t i = 0;
    if (rc == CX_OK) {
        sqlite3_bind_int64(s, 1, last_seq);
        while ((r = sqlite3_step(s)) == SQLITE_ROW && i < n)
            seq[i++] = sqlite3_column_int64(s, 0);
        if (r != SQLITE_DONE && r != SQLITE_ROW)
            rc = db_err(e, db, "reading the signals' seq");
        else if (i < n || r == SQLITE_ROW)
            rc = cx__fail(e, CX_ECORRUPT, "the database's signals up to "
                          "seq %lld are not the %zu in memory",
                          (long long)last_seq, n);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}

/* ===================================================================== */
/* Replay                                                                */
/* ===================================================================== */

typedef struct reader {
    cx_engine *e;
    cx__db *d;
    sqlite3_stmt *s;
} reader;

static int prep(reader *r, const char *sql)
{
    sqlite3_finalize(r->s);
    r->s = NULL;
    if (sqlite3_prepare_v2(r->d->db, sql, -1, &r->s, NULL) != SQLITE_OK)
        return db_err(NULL, r->d->db, "cx_open: reading the database");
    return CX_OK;
}

static int64_t scalar(reader *r, const char *sql, int *rc)
{
    int64_t v = 0;
    if ((*rc = prep(r, sql)))
        return 0;
    if (sqlite3_step(r->s) == SQLITE_ROW)
        v = sqlite3_column_int64(r->s, 0);
    else
        *rc = db_err(NULL, r->d->db, "cx_open: reading the database");
    return v;
}

static int corrupt(const char *dir, const char *what)
{
    return cx__fail(NULL, CX_ECORRUPT, "cx_open: %s/cx.db: %s", dir, what);
}

/* An id table (idx, text) into map m, which must end up dense. */
static int load_names(reader *r, const char *table, const char *col,
                      cx__idmap *m)
{
    char sql[160];
    int rc;
    snprintf(sql, sizeof sql, "SELECT count(*), "
             "coalesce(sum(length(CAST(%s AS BLOB))), 0) FROM %s",
             col, table);
    if ((rc = prep(r, sql)))
        return rc;
    if (sqlite3_step(r->s) != SQLITE_ROW)
        return db_err(NULL, r->d->db, "cx_open: reading the database");
    int64_t n = sqlite3_column_int64(r->s, 0);
    int64_t bytes = sqlite3_column_int64(r->s, 1) + n;
    if (n < 0 || n >= CX_NONE / 2)
        return corrupt(r->d->dir, "too many rows in an id table");
    if (cx__idmap_reserve(m, (size_t)n, (size_t)bytes))
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    snprintf(sql, sizeof sql, "SELECT idx, %s FROM %s ORDER BY idx", col,
             table);
    if ((rc = prep(r, sql)))
        return rc;
    int s;
    int dead_ok = strcmp(table, "customers") == 0;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        int64_t idx = sqlite3_column_int64(r->s, 0);
        const char *name = (const char *)sqlite3_column_text(r->s, 1);
        int added = 0;
        if (!name && dead_ok && idx == (int64_t)m->n) {
            cx__idmap_add_dead(m); /* forgotten */
            continue;
        }
        if (!name || idx != (int64_t)m->n ||
            (strlen(name) > CX_MAX_ID_LEN * 4) ||
            (cx__idmap_add(m, name, &added), !added)) {
            char msg[128];
            snprintf(msg, sizeof msg, "table %s: row idx %lld is not the "
                     "next index %u or repeats a name", table,
                     (long long)idx, m->n);
            return corrupt(r->d->dir, msg);
        }
    }
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, r->d->db, "cx_open: reading");
}

static int load_config(reader *r)
{
    cx_engine *e = r->e;
    int rc, s;
    if ((rc = prep(r, "SELECT key, value FROM options")))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        int key = sqlite3_column_int(r->s, 0);
        double v = sqlite3_column_double(r->s, 1);
        if (!cx__option_key_valid(key) || cx__option_check(NULL, key, v))
            return corrupt(r->d->dir, "an option out of range");
        cx__option_put(&e->opt, key, v);
    }
    if (s != SQLITE_DONE)
        return db_err(NULL, r->d->db, "cx_open: reading options");
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT type, name FROM signal_types WHERE "
             "type >= %d", CX_SIGNAL_CUSTOM);
    if ((rc = prep(r, sql)))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        int t = sqlite3_column_int(r->s, 0);
        const char *name = (const char *)sqlite3_column_text(r->s, 1);
        if (t < CX_SIGNAL_CUSTOM || t >= CX_MAX_SIGNAL_TYPES || !name ||
            !*name || strlen(name) > 64 || e->type_name[t])
            return corrupt(r->d->dir, "a bad custom signal type");
        if (!(e->type_name[t] = strdup(name)))
            return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    }
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, r->d->db, "cx_open: reading");
}

/* An items row (idx, category, price, in_stock, created_at, tags,
 * catalogued, removed) checked against the table sizes; -1 if out of
 * range. */
typedef struct frow {
    uint32_t idx, cat, tags;
    double price;
    uint8_t flags;
    int64_t created;
} frow;

static int item_row(sqlite3_stmt *s, uint32_t n_items, uint32_t n_cats,
                    uint32_t n_tags, frow *w)
{
    int64_t i = sqlite3_column_int64(s, 0);
    int64_t cat = sqlite3_column_int64(s, 1);
    double price = sqlite3_column_double(s, 2);
    int64_t created = sqlite3_column_int64(s, 4);
    int null_tags = sqlite3_column_type(s, 5) == SQLITE_NULL;
    int64_t tags = sqlite3_column_int64(s, 5);
    if (i < 0 || i >= (int64_t)n_items || cat < 0 ||
        cat >= (int64_t)n_cats || !isfinite(price) || price < 0 ||
        created < 0 ||
        (!null_tags && (tags < 0 || tags >= (int64_t)n_tags)))
        return -1;
    w->idx = (uint32_t)i;
    w->cat = (uint32_t)cat;
    w->tags = null_tags ? CX_NONE : (uint32_t)tags;
    w->price = price;
    w->created = created;
    w->flags = (uint8_t)((sqlite3_column_int(s, 3) ? CX__ITEM_IN_STOCK : 0) |
                         (sqlite3_column_int(s, 6) ? CX__ITEM_CATALOGUED : 0) |
                         (sqlite3_column_int(s, 7) ? CX__ITEM_REMOVED : 0));
    return 0;
}

static int load_items(reader *r)
{
    cx_engine *e = r->e;
    int rc, s;
    if ((rc = load_names(r, "items", "id", &e->items)))
        return rc;
    if (cx__reserve_items(e, 0))
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    if ((rc = prep(r, "SELECT idx, category, price, in_stock, created_at, "
                      "tags, catalogued, removed FROM items ORDER BY idx")))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        frow w;
        if (item_row(r->s, e->items.n, e->categories.n, e->tagsets.n, &w))
            return corrupt(r->d->dir, "an item row out of range");
        uint32_t i = w.idx;
        cx__item_init(e, i);
        e->item_cat[i] = w.cat;
        e->item_price[i] = w.price;
        e->item_created[i] = w.created;
        e->item_tags[i] = w.tags;
        e->item_flags[i] = w.flags;
        if (w.created > e->created_max && (w.flags & CX__ITEM_CATALOGUED))
            e->created_max = w.created;
    }
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, r->d->db, "cx_open: reading");
}

static int load_signals(reader *r, int64_t seq_end, size_t *n_before)
{
    cx_engine *e = r->e;
    int rc, s;
    int64_t n = scalar(r, "SELECT count(*) FROM signals", &rc);
    if (rc)
        return rc;
    if (n < 0 || n >= CX_NONE)
        return corrupt(r->d->dir, "too many signals");
    size_t cap = 0;
    if (cx__grow((void **)&e->ev, &cap, (size_t)n + 1, sizeof *e->ev))
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    cap = 0;
    if (cx__grow((void **)&e->ev_prev, &cap, (size_t)n + 1,
                 sizeof *e->ev_prev))
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    cap = 0;
    if (cx__grow((void **)&e->ev_iprev, &cap, (size_t)n + 1,
                 sizeof *e->ev_iprev))
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    e->ev_cap = cap;
    if (r->d->readonly &&
        cx__grow((void **)&r->d->ev_seq, &r->d->ev_seq_cap, (size_t)n + 1,
                 sizeof *r->d->ev_seq))
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    if (cx__reserve_customers(e, 0))
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    if ((rc = prep(r, "SELECT seq, customer, item, type, value, ts, "
                      "channel FROM signals ORDER BY seq")))
        return rc;
    size_t i = 0;
    *n_before = 0;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(r->s, 0);
        int64_t c = sqlite3_column_int64(r->s, 1);
        int64_t it = sqlite3_column_int64(r->s, 2);
        int t = sqlite3_column_int(r->s, 3);
        double v = sqlite3_column_double(r->s, 4);
        int64_t ts = sqlite3_column_int64(r->s, 5);
        int64_t ch = sqlite3_column_int64(r->s, 6);
        if ((int64_t)i >= n || c < 0 || c >= (int64_t)e->customers.n ||
            it < 0 || it >= (int64_t)e->items.n || t < 0 ||
            t >= CX_MAX_SIGNAL_TYPES || !cx_signal_type_name(e, t) ||
            !isfinite(v) || ts < 0 || ch < 0 ||
            ch >= (int64_t)e->channels.n)
            return corrupt(r->d->dir, "a signal row out of range");
        cx__event *ev = &e->ev[i];
        ev->cust = (uint32_t)c;
        ev->item = (uint32_t)it;
        ev->ts = ts;
        ev->value = (float)v;
        ev->type = (uint8_t)t;
        ev->channel = (uint8_t)ch;
        ev->pad = 0;
        e->ev_prev[i] = e->cust_last[c];
        e->cust_last[c] = (uint32_t)i;
        e->ev_iprev[i] = e->item_last[it];
        e->item_last[it] = (uint32_t)i;
        if (ts > e->ts_max)
            e->ts_max = ts;
        if (seq < seq_end)
            *n_before = i + 1;
        if (r->d->readonly)
            r->d->ev_seq[i] = seq;
        r->d->last_seq = seq;
        i++;
    }
    e->n_ev = i;
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, r->d->db, "cx_open: reading");
}

/* Experiment definitions, and with `exposures` their saved counts. */
static int load_experiments(reader *r, int exposures)
{
    int rc, s;
    if ((rc = prep(r, "SELECT name, position, variant, weight, key, value "
                      "FROM experiments ORDER BY name, position, "
                      "key IS NOT NULL, rowid")))
        return rc;
    /* Rows of one experiment arrive together; define it at the next name
     * (or the end), then set its overrides. */
    enum { MAXV = 64 };
    char name[128] = "";
    const char *vn[MAXV];
    char vbuf[MAXV][72];
    double w[MAXV];
    size_t nv = 0;
    typedef struct ov { int v; int key; double value; } ov;
    ov *over = NULL;
    size_t nov = 0, capov = 0;
    rc = CX_OK;
    for (;;) {
        s = sqlite3_step(r->s);
        const char *en = s == SQLITE_ROW
                             ? (const char *)sqlite3_column_text(r->s, 0)
                             : NULL;
        if (nv && (!en || strcmp(en, name) != 0)) {
            rc = cx_experiment_define(r->e, name, nv, vn, w);
            for (size_t j = 0; rc == CX_OK && j < nov; j++)
                rc = cx_variant_set(r->e, name, vn[over[j].v], over[j].key,
                                    over[j].value);
            if (rc) {
                rc = corrupt(r->d->dir, "an experiment that does not "
                                        "define");
                break;
            }
            nv = nov = 0;
        }
        if (s != SQLITE_ROW)
            break;
        const char *var = (const char *)sqlite3_column_text(r->s, 2);
        if (!en || !var || strlen(en) >= sizeof name ||
            strlen(var) >= sizeof vbuf[0]) {
            rc = corrupt(r->d->dir, "a bad experiment row");
            break;
        }
        if (!nv)
            snprintf(name, sizeof name, "%s", en);
        if (sqlite3_column_type(r->s, 4) == SQLITE_NULL) {
            if (nv == MAXV) {
                rc = corrupt(r->d->dir, "too many variants");
                break;
            }
            snprintf(vbuf[nv], sizeof vbuf[nv], "%s", var);
            vn[nv] = vbuf[nv];
            w[nv] = sqlite3_column_double(r->s, 3);
            nv++;
        } else {
            if (!nv || strcmp(vn[nv - 1], var) != 0) {
                rc = corrupt(r->d->dir, "an override before its variant");
                break;
            }
            if (nov == capov) {
                capov = capov ? 2 * capov : 16;
                ov *q = realloc(over, capov * sizeof *q);
                if (!q) {
                    rc = cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
                    break;
                }
                over = q;
            }
            over[nov].v = (int)nv - 1;
            over[nov].key = sqlite3_column_int(r->s, 4);
            over[nov].value = sqlite3_column_double(r->s, 5);
            nov++;
        }
    }
    free(over);
    if (rc == CX_OK && s != SQLITE_DONE)
        rc = db_err(NULL, r->d->db, "cx_open: reading experiments");
    if (rc || !exposures)
        return rc;
    if ((rc = prep(r, "SELECT experiment, variant, n FROM exposures")))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW)
        cx__experiment_exposed(r->e,
                               (const char *)sqlite3_column_text(r->s, 0),
                               (const char *)sqlite3_column_text(r->s, 1),
                               sqlite3_column_int64(r->s, 2));
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, r->d->db, "cx_open: reading");
}

/* ===================================================================== */
/* Open and close                                                        */
/* ===================================================================== */

static int create_schema(cx__db *d)
{
    int rc;
    if ((rc = exec(NULL, d->db, "BEGIN IMMEDIATE")))
        return rc;
    if ((rc = exec(NULL, d->db, schema)))
        goto fail;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key = "
                                  "'format'", -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(NULL, d->db, "cx_open");
        goto fail;
    }
    int have = sqlite3_step(s) == SQLITE_ROW;
    int64_t format = have ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    if (have && format != DB_FORMAT) {
        rc = cx__fail(NULL, CX_EVERSION, "cx_open: %s/cx.db has format %lld;"
                      " this library reads format %d", d->dir,
                      (long long)format, DB_FORMAT);
        goto fail;
    }
    if (!have) {
        char sql[1024];
        int n = snprintf(sql, sizeof sql,
                         "INSERT INTO meta VALUES ('format', %d);"
                         "INSERT INTO meta VALUES ('catalog_rev', 0);"
                         "INSERT INTO meta VALUES ('config_rev', 0);"
                         "INSERT INTO meta VALUES ('forget_rev', 0);"
                         "INSERT INTO categories VALUES (0, '');"
                         "INSERT INTO channels VALUES (0, 'web');",
                         DB_FORMAT);
        for (int t = 0; t < CX_SIGNAL_CUSTOM && n < (int)sizeof sql - 80;
             t++)
            if (cx_signal_type_name(NULL, t))
                n += snprintf(sql + n, sizeof sql - (size_t)n,
                          "INSERT INTO signal_types VALUES (%d, '%s');", t,
                          cx_signal_type_name(NULL, t));
        if ((rc = exec(NULL, d->db, sql)))
            goto fail;
    }
    return exec(NULL, d->db, "COMMIT");
fail:
    sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int lock_dir(cx__db *d)
{
    char *p = path_join(d->dir, "LOCK");
    if (!p)
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    d->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(p);
    if (d->lock_fd < 0)
        return cx__fail(NULL, CX_EIO, "cx_open: cannot create %s/LOCK: %s",
                        d->dir, strerror(errno));
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB)) {
        int busy = errno == EWOULDBLOCK;
        return cx__fail(NULL, busy ? CX_EBUSY : CX_EIO,
                        "cx_open: %s is open read-write by another process%s"
                        "%s", d->dir, busy ? "" : ": ",
                        busy ? "" : strerror(errno));
    }
    return CX_OK;
}

/* Check a directory a read-only engine opens: it must exist and hold a
 * database of this format. */
static int check_existing(cx__db *d)
{
    reader r = {NULL, d, NULL};
    int rc;
    int64_t format = scalar(&r, "SELECT value FROM meta WHERE key = "
                                "'format'", &rc);
    sqlite3_finalize(r.s);
    if (rc)
        return cx__fail(NULL, rc == CX_EIO ? CX_ENOTFOUND : rc,
                        "cx_open: %s is not a data directory: %s", d->dir,
                        cx_errmsg(NULL));
    if (format != DB_FORMAT)
        return cx__fail(NULL, CX_EVERSION, "cx_open: %s/cx.db has format "
                        "%lld; this library reads format %d", d->dir,
                        (long long)format, DB_FORMAT);
    return CX_OK;
}

/* SQLite's lock is held by another connection: try again soon.  Several
 * processes may write (the writer, readers with CX_OPEN_SIGNALS), and
 * SQLite's own busy timeout backs off to 100 ms sleeps: a writer
 * committing back to back then starves a one-signal call for seconds.
 * Polling every 0.1 ms, then every 1 ms, catches the gaps between its
 * transactions; the call gives up (CX_EBUSY) after about 10 s. */
static int busy_wait(void *arg, int count)
{
    (void)arg;
    if (count >= 10000)
        return 0;
    struct timespec t = {0, count < 100 ? 100000L : 1000000L};
    nanosleep(&t, NULL);
    return 1;
}

/* Map generation snap's engine image into e; 0 when there is none or it
 * is unusable (said on stderr and in cx_errmsg(NULL)): replay then. */
static int open_image(cx_engine *e, cx__snapshot_info *snap,
                      int *pop_current, int *stamped)
{
    cx__db *d = e->db;
    cx__image_state st;
    char why[256] = "";
    int rc = cx__image_load(e, snap->dir, snap->generation, e->categories.n,
                            e->channels.n, e->tagsets.n, &snap->stamp,
                            &snap->seen, &st, why, sizeof why);
    if (rc == CX_ENOTFOUND)
        return 0;
    if (rc) {
        fprintf(stderr, "cxengine: %s: the engine image of snapshot "
                "generation %" PRId64 " is unusable (%s); replaying the "
                "database\n", d->dir, snap->generation, why);
        cx__fail(NULL, rc, "the engine image of snapshot generation %"
                 PRId64 " of %s is unusable (%s); the database was "
                 "replayed", snap->generation, d->dir, why);
        return 0;
    }
    d->ev_seq = st.ev_seq;
    d->ev_seq_cap = st.ev_seq_cap;
    d->last_seq = st.last_seq;
    d->catalog_rev = st.catalog_rev;
    d->forget_rev = st.forget_rev;
    *pop_current = st.pop_current;
    *stamped = st.stamped;
    return 1;
}

static int image_catch_up(cx_engine *e, int64_t seq_end,
                          size_t *n_before);

int cx__db_open(cx_engine *e, const char *dir, unsigned flags)
{
    int readonly = (flags & CX_OPEN_READONLY) != 0;
    cx__db *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(dir))) {
        free(d);
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    }
    d->lock_fd = d->wal_fd = -1;
    d->readonly = readonly;
    d->verify = (flags & CX_OPEN_VERIFY) != 0;
    d->signals = readonly && (flags & CX_OPEN_SIGNALS);
    d->data_version = -1;
    pthread_mutex_init(&d->fmu, NULL);
    pthread_cond_init(&d->fcv, NULL);
    pthread_cond_init(&d->rcv, NULL);
    e->db = d;
    int rc;
    if (strlen(dir) > 3000)
        return cx__fail(NULL, CX_EINVAL, "cx_open: the path is longer than "
                        "3000 bytes");
    if (!readonly && mkdir(dir, 0755) && errno != EEXIST)
        return cx__fail(NULL, CX_EIO, "cx_open: cannot create directory "
                        "%s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return cx__fail(NULL, readonly ? CX_ENOTFOUND : CX_EIO,
                        "cx_open: %s is not a directory", dir);
    /* Readers take no lock: they never write what the writer owns. */
    if (!readonly && (rc = lock_dir(d)))
        return rc;
    char *p = path_join(dir, "cx.db");
    if (!p)
        return cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    /* A reader's connection is read-write too: it adds its exposure
     * counts, and SQLite's WAL readers need the shared-memory file. */
    int r = sqlite3_open_v2(p, &d->db, SQLITE_OPEN_READWRITE |
                                           (readonly ? 0
                                                     : SQLITE_OPEN_CREATE) |
                                           SQLITE_OPEN_NOMUTEX, NULL);
    free(p);
    if (r != SQLITE_OK)
        return readonly ? cx__fail(NULL, CX_ENOTFOUND, "cx_open: %s has no "
                                   "database: %s", dir,
                                   sqlite3_errmsg(d->db))
                        : db_err(NULL, d->db, "cx_open: opening cx.db");
    sqlite3_busy_handler(d->db, busy_wait, NULL);
    if (readonly)
        rc = check_existing(d);
    else if ((rc = exec(NULL, d->db, "PRAGMA journal_mode = WAL")) == CX_OK &&
             (rc = exec(NULL, d->db, "PRAGMA wal_autocheckpoint = 10000")) ==
                 CX_OK)
        rc = create_schema(d);
    if (rc || (rc = exec(NULL, d->db, "PRAGMA secure_delete = ON")) ||
        (rc = exec(NULL, d->db, "PRAGMA cache_size = -16384")))
        return rc;
    /* Replay, then the snapshot: memory as the database says.  The
     * snapshot is listed first and the tables read in one transaction,
     * so a reader sees every signal the snapshot was trained on. */
    reader rd = {e, d, NULL};
    d->loader = pthread_self();
    d->loading = 1;
    cx__idmap_free(&e->categories);
    cx__idmap_free(&e->channels);
    cx__snapshot_info snap;
    rc = cx__snapshot_find(e, dir, d->verify, &snap);
    int in_read = rc == CX_OK && (rc = exec(NULL, d->db, "BEGIN")) == CX_OK;
    if (rc == CX_OK)
        d->catalog_rev = scalar(&rd, "SELECT value FROM meta WHERE key = "
                                     "'catalog_rev'", &rc);
    if (rc == CX_OK)
        d->config_rev = scalar(&rd, "SELECT value FROM meta WHERE key = "
                                    "'config_rev'", &rc);
    if (rc == CX_OK)
        d->forget_rev = scalar(&rd, "SELECT value FROM meta WHERE key = "
                                    "'forget_rev'", &rc);
    /* With the generation's engine image, customers, items and signals
     * come from it, and only what the database gained since is read
     * (catch_up, after this transaction); without one, or if it does not
     * verify, everything is replayed. */
    int image = 0, pop_current = 0, image_stamped = 0;
    size_t n_before = 0;
    if (rc == CX_OK &&
        !(rc = load_config(&rd)) &&
        !(rc = load_names(&rd, "categories", "name", &e->categories)) &&
        !(rc = load_names(&rd, "channels", "name", &e->channels)) &&
        !(rc = load_names(&rd, "tagsets", "tags", &e->tagsets)) &&
        !(snap.found &&
          (image = open_image(e, &snap, &pop_current, &image_stamped))) &&
        !(rc = load_names(&rd, "customers", "id", &e->customers)) &&
        !(rc = load_items(&rd)))
        rc = load_signals(&rd, snap.found ? snap.seq_end : 0, &n_before);
    if (rc == CX_OK && (e->categories.n == 0 || e->channels.n == 0))
        rc = corrupt(dir, "no default category or channel");
    if (rc == CX_OK)
        rc = load_experiments(&rd, 1);
    sqlite3_finalize(rd.s);
    if (in_read)
        sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
    if (rc == CX_OK && image)
        rc = image_catch_up(e, snap.found ? snap.seq_end : 0, &n_before);
    if (rc == CX_OK && snap.found &&
        (rc = cx__snapshot_model(e, &snap, n_before, &e->model)) == CX_OK) {
        e->generation = snap.generation;
        /* Verified in full just now (a copied directory, a stamp lost or
         * stale, CX_OPEN_VERIFY): stamp it, so that the next open on
         * this machine need not.  A stamp not written (a reader without
         * write permission) costs only that. */
        if (image ? !(snap.stamped && image_stamped) : !snap.stamped)
            cx__stamp_write(snap.dir, &snap.seen);
        /* The blend's statistics: a writer builds them now; a reader's
         * follower thread does first thing, so the open stays short. */
        if (!d->readonly)
            cx__hstats_attach(&e->opt, e->model, e->ev, n_before);
    }
    if (rc && snap.found)
        cx__fail(NULL, rc, "cx_open: %s", cx_errmsg(NULL));
    cx__snapshot_info_free(&snap);
    d->loading = 0;
    if (rc)
        return rc;
    if (!d->readonly) { /* writers keep no seq per event */
        cx__free_array(d->ev_seq);
        d->ev_seq = NULL;
        d->ev_seq_cap = 0;
    }
    if (!(image && pop_current) && (rc = cx__pop_rebuild(e)))
        return cx__fail(NULL, rc, "cx_open: out of memory");
    pthread_mutex_lock(&e->wmu);
    e->top[CX__LIST_NEW].valid = 0;
    cx__top_refresh(e);
    cx__catidx_refresh(e);
    /* Signals since the snapshot's training: fold in as ingest did. */
    if (e->model && cx__fold_after_ingest(e, e->model->n_events))
        rc = cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
    pthread_mutex_unlock(&e->wmu);
    if (rc)
        return rc;
    for (int q = 0; q < Q_COUNT; q++)
        if (sqlite3_prepare_v3(d->db, sql_text[q], -1,
                               SQLITE_PREPARE_PERSISTENT, &d->q[q],
                               NULL) != SQLITE_OK)
            return db_err(NULL, d->db, "cx_open: preparing statements");
    if ((rc = exec(NULL, d->db, sync_pragma(e->opt.sync))))
        return rc;
    /* Every engine follows (the writer: the signals readers append);
     * every engine that commits signals syncs them by the policy. */
    if (pthread_create(&d->follower, NULL, follower_main, e) == 0)
        d->follower_on = 1;
    if ((!readonly || d->signals) &&
        pthread_create(&d->flusher, NULL, flusher_main, e) == 0)
        d->flusher_on = 1;
    return CX_OK;
}

void cx__db_close(cx_engine *e)
{
    cx__db *d = e->db;
    if (!d)
        return;
    if (d->db && d->q[0])
        cx__db_exposures(e);
    if (d->flusher_on || d->follower_on) {
        pthread_mutex_lock(&d->fmu);
        d->stop = 1;
        pthread_cond_broadcast(&d->fcv);
        pthread_cond_broadcast(&d->rcv);
        pthread_mutex_unlock(&d->fmu);
        if (d->flusher_on)
            pthread_join(d->flusher, NULL);
        if (d->follower_on)
            pthread_join(d->follower, NULL);
    }
    if (d->dirty || e->opt.sync != CX_SYNC_FULL)
        sync_wal(d);
    for (int q = 0; q < Q_COUNT; q++)
        sqlite3_finalize(d->q[q]);
    if (d->wal_fd >= 0)
        close(d->wal_fd);
    sqlite3_close(d->db);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    pthread_mutex_destroy(&d->fmu);
    pthread_cond_destroy(&d->fcv);
    pthread_cond_destroy(&d->rcv);
    cx__free_array(d->ev_seq);
    free(d->dir);
    free(d);
    e->db = NULL;
}

const char *cx__db_dir(const cx_engine *e)
{
    return e->db ? e->db->dir : NULL;
}

/* ===================================================================== */
/* Following the directory (a read-only engine)                          */
/* ===================================================================== */

/* What the writer committed since this engine last looked, read in one
 * read transaction (a consistent view), then published in memory the way
 * the writer's own calls publish it: same indexes, same columns. */
typedef struct follow {
    /* New rows of the id tables, in idx order. */
    cx__idmap fresh[5];
    size_t bytes[5];
    frow *items;             /* item rows new or changed since catalog_rev */
    size_t n_items;
    int64_t catalog_rev, config_rev, forget_rev;
    uint8_t *gone;           /* customers forgotten since forget_rev */
    /* Signals since last_seq. */
    cx__event *ev;
    int64_t *seq;
    size_t n_ev;
    int64_t ts_max;
    int64_t data_version;    /* of the state read */
} follow;

enum { N_CAT, N_CHAN, N_TAG, N_CUST, N_ITEM };
static const struct {
    const char *table, *col;
    size_t off;
} name_tables[5] = {
    {"categories", "name", offsetof(cx_engine, categories)},
    {"channels", "name", offsetof(cx_engine, channels)},
    {"tagsets", "tags", offsetof(cx_engine, tagsets)},
    {"customers", "id", offsetof(cx_engine, customers)},
    {"items", "id", offsetof(cx_engine, items)},
};

static cx__idmap *name_map(cx_engine *e, int t)
{
    return (cx__idmap *)((char *)e + name_tables[t].off);
}

static void follow_free(follow *f)
{
    for (int t = 0; t < 5; t++)
        cx__idmap_free(&f->fresh[t]);
    free(f->items);
    free(f->gone);
    free(f->ev);
    free(f->seq);
    memset(f, 0, sizeof *f);
}

static int follow_names(reader *r, follow *f, int t)
{
    cx__idmap *m = name_map(r->e, t), *fr = &f->fresh[t];
    char sql[200];
    int rc, s;
    snprintf(sql, sizeof sql, "SELECT count(*), coalesce(sum(length(CAST("
             "%s AS BLOB))), 0) FROM %s WHERE idx >= %u", name_tables[t].col,
             name_tables[t].table, m->n);
    if ((rc = prep(r, sql)))
        return rc;
    if (sqlite3_step(r->s) != SQLITE_ROW)
        return db_err(NULL, r->d->db, "cx_refresh: reading the database");
    int64_t n = sqlite3_column_int64(r->s, 0);
    int64_t bytes = sqlite3_column_int64(r->s, 1) + n;
    if (n < 0 || (int64_t)m->n + n >= CX_NONE / 2)
        return corrupt(r->d->dir, "too many rows in an id table");
    if (n == 0)
        return CX_OK;
    if (cx__idmap_reserve(fr, (size_t)n, (size_t)bytes))
        return cx__fail(NULL, CX_ENOMEM, "cx_refresh: out of memory");
    f->bytes[t] = (size_t)bytes;
    snprintf(sql, sizeof sql, "SELECT idx, %s FROM %s WHERE idx >= %u "
             "ORDER BY idx", name_tables[t].col, name_tables[t].table, m->n);
    if ((rc = prep(r, sql)))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        int64_t idx = sqlite3_column_int64(r->s, 0);
        const char *name = (const char *)sqlite3_column_text(r->s, 1);
        /* An id forgotten in this same read may come back as new. */
        int added = 0;
        if (!name && t == N_CUST && idx == (int64_t)m->n + fr->n &&
            fr->n < n) {
            cx__idmap_add_dead(fr); /* forgotten before we saw it */
            continue;
        }
        /* A forgotten customer's id may be back as a new customer. */
        uint32_t had = name ? cx__idmap_find(m, name) : CX_NONE;
        if (!name || idx != (int64_t)m->n + fr->n || fr->n >= n ||
            strlen(name) > CX_MAX_ID_LEN * 4 ||
            (had != CX_NONE && !(t == N_CUST && f->gone && f->gone[had])) ||
            (cx__idmap_add(fr, name, &added), !added))
            return corrupt(r->d->dir, "an id table is not dense");
    }
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, r->d->db, "cx_refresh: reading");
}

static int follow_items(reader *r, follow *f)
{
    cx_engine *e = r->e;
    cx__db *d = r->d;
    uint32_t n_items = e->items.n + f->fresh[N_ITEM].n;
    uint32_t n_cats = e->categories.n + f->fresh[N_CAT].n;
    uint32_t n_tags = e->tagsets.n + f->fresh[N_TAG].n;
    char where[160], sql[400];
    int rc, s;
    /* Rows new by idx or changed by rev: an IN of the two index searches
     * (an OR with ORDER BY idx scans the whole table). */
    snprintf(where, sizeof where, "idx IN (SELECT idx FROM items WHERE idx "
             ">= %u UNION ALL SELECT idx FROM items WHERE rev > %lld)",
             e->items.n, (long long)d->catalog_rev);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM items WHERE %s", where);
    int64_t n = scalar(r, sql, &rc);
    if (rc)
        return rc;
    if (n < 0 || n > (int64_t)n_items)
        return corrupt(d->dir, "too many item rows");
    if (n && !(f->items = malloc((size_t)n * sizeof *f->items)))
        return cx__fail(NULL, CX_ENOMEM, "cx_refresh: out of memory");
    snprintf(sql, sizeof sql, "SELECT idx, category, price, in_stock, "
             "created_at, tags, catalogued, removed FROM items WHERE %s "
             "ORDER BY idx", where);
    if ((rc = prep(r, sql)))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW)
        if (f->n_items >= (size_t)n ||
            item_row(r->s, n_items, n_cats, n_tags, &f->items[f->n_items++]))
            return corrupt(d->dir, "an item row out of range");
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, d->db, "cx_refresh: reading");
}

static int follow_signals(reader *r, follow *f)
{
    cx_engine *e = r->e;
    cx__db *d = r->d;
    uint32_t n_cust = e->customers.n + f->fresh[N_CUST].n;
    uint32_t n_items = e->items.n + f->fresh[N_ITEM].n;
    uint32_t n_chan = e->channels.n + f->fresh[N_CHAN].n;
    char sql[200];
    int rc, s;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM signals WHERE seq > "
             "%lld", (long long)d->last_seq);
    int64_t n = scalar(r, sql, &rc);
    if (rc)
        return rc;
    if (n < 0 || (int64_t)e->n_ev + n >= CX_NONE)
        return corrupt(d->dir, "too many signals");
    if (n == 0)
        return CX_OK;
    f->ev = malloc((size_t)n * sizeof *f->ev);
    f->seq = malloc((size_t)n * sizeof *f->seq);
    if (!f->ev || !f->seq)
        return cx__fail(NULL, CX_ENOMEM, "cx_refresh: out of memory");
    snprintf(sql, sizeof sql, "SELECT seq, customer, item, type, value, ts, "
             "channel FROM signals WHERE seq > %lld ORDER BY seq",
             (long long)d->last_seq);
    if ((rc = prep(r, sql)))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        int64_t c = sqlite3_column_int64(r->s, 1);
        int64_t it = sqlite3_column_int64(r->s, 2);
        int t = sqlite3_column_int(r->s, 3);
        double v = sqlite3_column_double(r->s, 4);
        int64_t ts = sqlite3_column_int64(r->s, 5);
        int64_t ch = sqlite3_column_int64(r->s, 6);
        if (f->n_ev >= (size_t)n || c < 0 || c >= (int64_t)n_cust ||
            it < 0 || it >= (int64_t)n_items || t < 0 ||
            t >= CX_MAX_SIGNAL_TYPES || !isfinite(v) || ts < 0 || ch < 0 ||
            ch >= (int64_t)n_chan)
            return corrupt(d->dir, "a signal row out of range");
        cx__event *ev = &f->ev[f->n_ev];
        ev->cust = (uint32_t)c;
        ev->item = (uint32_t)it;
        ev->ts = ts;
        ev->value = (float)v;
        ev->type = (uint8_t)t;
        ev->channel = (uint8_t)ch;
        ev->pad = 0;
        f->seq[f->n_ev++] = sqlite3_column_int64(r->s, 0);
        if (ts > f->ts_max)
            f->ts_max = ts;
    }
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, d->db, "cx_refresh: reading");
}

/* Customers the writer forgot since this engine last looked. */
static int follow_forgets(reader *r, follow *f)
{
    cx_engine *e = r->e;
    char sql[160];
    int rc, s;
    if (!(f->gone = calloc(e->customers.n + 1, 1)))
        return cx__fail(NULL, CX_ENOMEM, "cx_refresh: out of memory");
    snprintf(sql, sizeof sql, "SELECT idx FROM customers WHERE forgotten > "
             "%lld AND idx < %u", (long long)r->d->forget_rev,
             e->customers.n);
    if ((rc = prep(r, sql)))
        return rc;
    while ((s = sqlite3_step(r->s)) == SQLITE_ROW) {
        int64_t u = sqlite3_column_int64(r->s, 0);
        if (u >= 0 && u < (int64_t)e->customers.n)
            f->gone[u] = 1;
    }
    return s == SQLITE_DONE ? CX_OK
                            : db_err(NULL, r->d->db, "cx_refresh: reading");
}

/* Read everything new in one read transaction (in_tx: in the caller's
 * write transaction). */
static int follow_read(cx_engine *e, follow *f, int in_tx)
{
    cx__db *d = e->db;
    reader r = {e, d, NULL};
    int rc = in_tx ? CX_OK : exec(NULL, d->db, "BEGIN");
    if (rc)
        return rc;
    f->data_version = scalar(&r, "PRAGMA data_version", &rc);
    if (rc == CX_OK)
        f->catalog_rev = scalar(&r, "SELECT value FROM meta WHERE key = "
                                    "'catalog_rev'", &rc);
    if (rc == CX_OK)
        f->config_rev = scalar(&r, "SELECT value FROM meta WHERE key = "
                                   "'config_rev'", &rc);
    if (rc == CX_OK)
        f->forget_rev = scalar(&r, "SELECT value FROM meta WHERE key = "
                                   "'forget_rev'", &rc);
    if (rc == CX_OK && f->forget_rev != d->forget_rev)
        rc = follow_forgets(&r, f);
    for (int t = 0; t < 5 && rc == CX_OK; t++)
        rc = follow_names(&r, f, t);
    if (rc == CX_OK)
        rc = follow_items(&r, f);
    if (rc == CX_OK)
        rc = follow_signals(&r, f);
    sqlite3_finalize(r.s);
    if (!in_tx)
        sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

/* Item row w into the columns (write lock held), as cx_items_upsert and
 * load_items leave them. */
static void follow_item(cx_engine *e, const frow *w)
{
    uint32_t i = w->idx;
    int64_t was = (e->item_flags[i] & CX__ITEM_CATALOGUED)
                      ? e->item_created[i] : 0;
    if (e->item_cat[i] != w->cat)
        cx__catidx_set(e, i, w->cat);
    e->item_price[i] = w->price;
    e->item_flags[i] = w->flags;
    e->item_created[i] = w->created;
    e->item_tags[i] = w->tags;
    int64_t now = (w->flags & CX__ITEM_CATALOGUED) ? w->created : 0;
    if (now > e->created_max)
        e->created_max = now;
    if (now > was)
        cx__top_bump(e, CX__LIST_NEW, i);
    else if (now < was)
        cx__top_drop(e, CX__LIST_NEW, i);
}

/* Publish f (the writer mutex held). */
static int follow_apply(cx_engine *e, follow *f)
{
    cx__db *d = e->db;
    cx__plan p;
    memset(&p, 0, sizeof p);
    int64_t t0[2] = {e->pop_t0, e->trend_t0};
    size_t from = e->n_ev;
    int rc = CX_OK;
    for (int t = 0; t < 5 && rc == CX_OK; t++)
        rc = cx__idmap_plan(name_map(e, t), f->fresh[t].n, f->bytes[t], &p);
    if (rc == CX_OK)
        rc = cx__plan_items(e, f->fresh[N_ITEM].n, &p);
    if (rc == CX_OK)
        rc = cx__plan_customers(e, f->fresh[N_CUST].n, &p);
    if (rc == CX_OK)
        rc = cx__plan_events(e, f->n_ev, &p);
    if (rc == CX_OK && f->n_ev)
        rc = cx__pop_plan(e, f->ts_max, &p, &t0[0], &t0[1]);
    /* Readers keep each event's seq; so does a writer while it opens
     * from an engine image (the snapshot's events are counted by seq). */
    int keep_seq = d->readonly || d->ev_seq;
    if (rc == CX_OK && keep_seq && f->n_ev &&
        e->n_ev + f->n_ev > d->ev_seq_cap &&
        cx__grow((void **)&d->ev_seq, &d->ev_seq_cap, e->n_ev + f->n_ev,
                 sizeof *d->ev_seq))
        rc = CX_ENOMEM;
    if (rc) {
        cx__plan_release(&p, 0);
        return cx__fail(e, rc, "cx_refresh: %s", cx_strerror(rc));
    }
    cx__wrlock(e);
    cx__plan_commit(&p);
    cx__pop_set_t0(e, t0);
    for (int t = 0; t < 5; t++)
        for (uint32_t j = 0; j < f->fresh[t].n; j++) {
            const char *id = f->fresh[t].str[j];
            uint32_t at = *id ? cx__idmap_add(name_map(e, t), id, NULL)
                              : cx__idmap_add_dead(name_map(e, t));
            if (t == N_ITEM)
                cx__item_init(e, at);
        }
    for (size_t j = 0; j < f->n_items; j++)
        follow_item(e, &f->items[j]);
    for (size_t j = 0; j < f->n_ev; j++) {
        uint32_t at = (uint32_t)e->n_ev;
        const cx__event *ev = &f->ev[j];
        e->ev[at] = *ev;
        e->ev_prev[at] = e->cust_last[ev->cust];
        e->cust_last[ev->cust] = at;
        e->ev_iprev[at] = e->item_last[ev->item];
        e->item_last[ev->item] = at;
        e->n_ev++;
        if (ev->ts > e->ts_max)
            e->ts_max = ev->ts;
        cx__pop_add(e, ev->item, cx__signal_strength(&e->opt, ev), ev->ts);
        if (keep_seq)
            d->ev_seq[at] = f->seq[j];
    }
    cx__wrunlock(e);
    cx__plan_release_e(e, &p, 1);
    if (f->n_ev)
        d->last_seq = f->seq[f->n_ev - 1];
    d->catalog_rev = f->catalog_rev;
    cx__catidx_refresh(e);
    cx__top_refresh(e);
    if (cx__fold_after_ingest(e, from))
        cx__fail(e, CX_ENOMEM, "cx_refresh: fold-in skipped: out of memory");
    return CX_OK;
}

/* Options and custom signal types as the database has them now (the
 * writer mutex held). */
static int follow_config(cx_engine *e)
{
    cx__db *d = e->db;
    reader r = {e, d, NULL};
    cx__options o = e->opt;
    char *names[CX_MAX_SIGNAL_TYPES] = {0};
    int rc, s;
    if ((rc = prep(&r, "SELECT key, value FROM options")))
        return rc;
    while ((s = sqlite3_step(r.s)) == SQLITE_ROW) {
        int key = sqlite3_column_int(r.s, 0);
        double v = sqlite3_column_double(r.s, 1);
        if (!cx__option_key_valid(key) || cx__option_check(NULL, key, v)) {
            rc = corrupt(d->dir, "an option out of range");
            break;
        }
        cx__option_put(&o, key, v);
    }
    if (rc == CX_OK && s != SQLITE_DONE)
        rc = db_err(e, d->db, "cx_refresh: reading options");
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT type, name FROM signal_types WHERE "
             "type >= %d", CX_SIGNAL_CUSTOM);
    if (rc == CX_OK && (rc = prep(&r, sql)) == CX_OK) {
        while ((s = sqlite3_step(r.s)) == SQLITE_ROW) {
            int t = sqlite3_column_int(r.s, 0);
            const char *name = (const char *)sqlite3_column_text(r.s, 1);
            if (t < CX_SIGNAL_CUSTOM || t >= CX_MAX_SIGNAL_TYPES || !name ||
                !*name || strlen(name) > 64) {
                rc = corrupt(d->dir, "a bad custom signal type");
                break;
            }
            if (!e->type_name[t] && !(names[t] = strdup(name))) {
                rc = cx__fail(e, CX_ENOMEM, "cx_refresh: out of memory");
                break;
            }
        }
        if (rc == CX_OK && s != SQLITE_DONE)
            rc = db_err(e, d->db, "cx_refresh: reading signal types");
    }
    sqlite3_finalize(r.s);
    if (rc) {
        for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
            free(names[t]);
        return rc;
    }
    int reweight = memcmp(o.weight, e->opt.weight, sizeof o.weight) ||
                   o.pop_half_life != e->opt.pop_half_life ||
                   o.trend_half_life != e->opt.trend_half_life;
    /* A reader that commits signals syncs them as the directory says. */
    if (d->signals && o.sync != e->opt.sync)
        cx__db_set_sync(e, o.sync);
    cx__wrlock(e);
    e->opt = o;
    for (int t = 0; t < CX_MAX_SIGNAL_TYPES; t++)
        if (names[t])
            e->type_name[t] = names[t];
    cx__wrunlock(e);
    return reweight ? cx__pop_rebuild(e) : CX_OK;
}

/* The first event whose seq is at least seq (read-only engines). */
static size_t events_before(const cx_engine *e, int64_t seq)
{
    const int64_t *v = e->db->ev_seq;
    size_t lo = 0, hi = e->n_ev;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A newer snapshot generation than the one serving, if one verifies
 * (train_mu held). */
static int follow_model(cx_engine *e, int64_t newest)
{
    cx__db *d = e->db;
    if (newest <= e->generation || newest == d->skip_gen)
        return CX_OK;
    cx__snapshot_info snap;
    int rc = cx__snapshot_find(e, d->dir, d->verify, &snap);
    cx__model *mo = NULL;
    if (rc == CX_OK && snap.found && snap.generation < newest)
        d->skip_gen = newest; /* it failed its checks: do not retry it */
    if (rc == CX_OK && snap.found && snap.generation > e->generation &&
        snap.seq_end <= d->last_seq + 1) {
        size_t n = events_before(e, snap.seq_end);
        if ((rc = cx__snapshot_model(e, &snap, n, &mo)) == CX_OK) {
            int64_t g = snap.generation;
            rc = cx__model_publish(e, mo, n, g);
        }
    }
    cx__snapshot_info_free(&snap);
    return rc ? cx__fail(e, rc, "cx_refresh: %s", cx_errmsg(NULL)) : CX_OK;
}

/* An engine opened from an image reads what the database gained since
 * the image, as a reader follows the writer; *n_before = the events in
 * memory with seq < seq_end (the snapshot's training). */
static int image_catch_up(cx_engine *e, int64_t seq_end,
                          size_t *n_before)
{
    cx__db *d = e->db;
    follow f;
    memset(&f, 0, sizeof f);
    int rc = follow_read(e, &f, 0);
    pthread_mutex_lock(&e->wmu);
    size_t n_trained;
    if (rc == CX_OK && f.gone) {
        if (cx__forget_memory(e, f.gone, d->ev_seq, &n_trained))
            rc = cx__fail(NULL, CX_ENOMEM, "cx_open: out of memory");
        else
            d->forget_rev = f.forget_rev;
    }
    if (rc == CX_OK)
        rc = follow_apply(e, &f);
    pthread_mutex_unlock(&e->wmu);
    follow_free(&f);
    *n_before = events_before(e, seq_end);
    return rc;
}

/* Bring in what other processes committed since this engine last
 * looked: forgets (readers), ids, catalogue rows and signals, published
 * as the writer's own calls publish them (the writer mutex held; in_tx:
 * inside the caller's write transaction).  *config_rev receives the
 * database's config_rev: while it differs from ours (a reader has options
 * or experiments to follow, see cx__db_follow) data_version stays unset,
 * so that the next look reads again. */
static int catch_up(cx_engine *e, int in_tx, int64_t *config_rev)
{
    cx__db *d = e->db;
    int rc;
    *config_rev = d->config_rev;
    if (d->data_version >= 0) {
        reader r = {e, d, NULL};
        int64_t v = scalar(&r, "PRAGMA data_version", &rc);
        sqlite3_finalize(r.s);
        if (rc || v == d->data_version)
            return rc;
    }
    follow f;
    memset(&f, 0, sizeof f);
    if ((rc = follow_read(e, &f, in_tx)))
        cx__fail(e, rc, "cx_refresh: %s", cx_errmsg(NULL));
    size_t n_trained;
    if (rc == CX_OK && f.gone) {
        if (cx__forget_memory(e, f.gone, d->ev_seq, &n_trained))
            rc = cx__fail(e, CX_ENOMEM, "cx_refresh: out of memory");
        else
            d->forget_rev = f.forget_rev;
    }
    if (rc == CX_OK)
        rc = follow_apply(e, &f);
    if (rc == CX_OK) {
        *config_rev = f.config_rev;
        /* Options not followed yet: look again next time. */
        d->data_version = f.config_rev == d->config_rev ? f.data_version
                                                        : -1;
        d->seen_version = f.data_version;
    }
    follow_free(&f);
    return rc;
}

int cx__db_catch_up(cx_engine *e)
{
    int64_t config_rev;
    return e->db ? catch_up(e, 0, &config_rev) : CX_OK;
}

int cx__db_follow(cx_engine *e)
{
    cx__db *d = e->db;
    int64_t config_rev;
    if (!d)
        return CX_OK;
    if (!d->readonly) {
        /* The writer owns everything but the signals readers append (and
         * the ids they bring). */
        pthread_mutex_lock(&e->wmu);
        int rc = catch_up(e, 0, &config_rev);
        pthread_mutex_unlock(&e->wmu);
        return rc;
    }
    pthread_mutex_lock(&e->train_mu);
    /* Listed before reading: a generation seen here was trained on
     * signals the read below sees. */
    int64_t newest = cx__snapshot_newest(d->dir);
    pthread_mutex_lock(&e->wmu);
    int rc = catch_up(e, 0, &config_rev);
    if (rc == CX_OK && config_rev != d->config_rev) {
        int64_t version = d->seen_version;
        rc = follow_config(e);
        if (rc == CX_OK) {
            /* Experiment calls do not take the writer mutex while this
             * thread replays (we hold it). */
            reader r = {e, d, NULL};
            d->loader = pthread_self();
            d->loading = 1;
            rc = load_experiments(&r, 0);
            d->loading = 0;
            sqlite3_finalize(r.s);
        }
        if (rc == CX_OK) {
            d->config_rev = config_rev;
            d->data_version = version;
        }
    }
    pthread_mutex_unlock(&e->wmu);
    if (rc == CX_OK)
        rc = follow_model(e, newest);
    pthread_mutex_unlock(&e->train_mu);
    return rc;
}

CX_API int cx_refresh(cx_engine *e)
{
    if (!e)
        return cx__fail(NULL, CX_EINVAL, "cx_refresh: engine is NULL");
    return cx__db_follow(e);
}

int cx__db_readonly(const cx_engine *e)
{
    return e->db && e->db->readonly;
}

/* The current refresh interval (options change under the engine lock). */
static int refresh_interval(cx_engine *e)
{
    cx__rdlock(e);
    int ms = e->opt.refresh_interval;
    cx__rdunlock(e);
    return ms;
}

static void *follower_main(void *arg)
{
    cx_engine *e = arg;
    cx__db *d = e->db;
    int failing = 0, ms = refresh_interval(e);
    /* First, the blend's statistics of the model opened with (cx_open
     * leaves them to this thread); events cannot move under wmu. */
    pthread_mutex_lock(&e->wmu);
    if (e->model)
        cx__hstats_attach(&e->opt, e->model, e->ev, e->model->n_events);
    pthread_mutex_unlock(&e->wmu);
    pthread_mutex_lock(&d->fmu);
    while (!d->stop) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        ms = ms > 0 ? ms : 1000; /* off: look again whether it still is */
        t.tv_sec += ms / 1000;
        t.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        while (!d->stop &&
               pthread_cond_timedwait(&d->rcv, &d->fmu, &t) != ETIMEDOUT)
            ;
        if (d->stop)
            continue;
        pthread_mutex_unlock(&d->fmu);
        int rc = (ms = refresh_interval(e)) ? cx__db_follow(e) : CX_OK;
        /* Said once per run of failures: there is no caller to tell. */
        if (rc && !failing)
            fprintf(stderr, "cxengine: %s: following the directory failed: "
                    "%s\n", d->dir, cx_errmsg(e));
        failing = rc != CX_OK;
        pthread_mutex_lock(&d->fmu);
    }
    pthread_mutex_unlock(&d->fmu);
    return NULL;
}
