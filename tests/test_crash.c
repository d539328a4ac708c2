/* test_crash.c -- kill -9 at random moments loses nothing acknowledged.
 *
 * A child process opens the data directory, ingests batches (and now and
 * then trains, so kills also land inside snapshot writes) and, after each
 * batch is acknowledged, writes the batch's number to a pipe.  The parent
 * kills it with SIGKILL after a random delay (from the fork, or from the
 * first acknowledged batch), 200 times over; after each kill it reopens
 * the directory and checks that every acknowledged batch is there whole,
 * that SQLite's integrity check passes and that the engine serves. */
#include "testutil.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>

#define KILLS 200
#define BATCH 16          /* signals per batch */
#define MAX_BATCHES 400   /* per child: bounds a child the kill misses */

/* Customer of batch b of round r: every signal of a batch has it. */
static void batch_customer(char *buf, size_t n, int r, int b)
{
    snprintf(buf, n, "r%03d_b%04d", r, b);
}

static void child(const char *dir, int round, int wfd)
{
    cx_engine *e = NULL;
    if (cx_open(&e, dir, 0))
        _exit(3);
    cx_set_option(e, CX_OPT_THREADS, 1);
    cx_set_option(e, CX_OPT_FACTORS, 4);
    cx_set_option(e, CX_OPT_ITERATIONS, 2);
    /* Rounds alternate the policies that survive a killed process. */
    cx_set_option(e, CX_OPT_SYNC, round % 3 == 1 ? CX_SYNC_NORMAL
                                                 : CX_SYNC_FULL);
    char cust[32], items[BATCH][16];
    const char *c[BATCH], *it[BATCH];
    int ty[BATCH];
    for (int b = 0; b < MAX_BATCHES; b++) {
        batch_customer(cust, sizeof cust, round, b);
        for (int j = 0; j < BATCH; j++) {
            snprintf(items[j], sizeof items[j], "i%d", (b * 7 + j) % 97);
            c[j] = cust;
            it[j] = items[j];
            ty[j] = j % 5 == 0 ? CX_PURCHASE : CX_VIEW;
        }
        if (cx_ingest(e, BATCH, c, it, ty, NULL, NULL, NULL) != CX_OK)
            _exit(4);
        int32_t id = b;
        if (write(wfd, &id, sizeof id) != sizeof id)
            _exit(5);
        if (round % 4 == 2 && b % 10 == 5)
            cx_train(e, NULL, NULL);
    }
    cx_close(e);
    _exit(0);
}

/* Signals of customer cust; -1 when the schema is not there yet (a child
 * killed before its first commit). */
static int count_signals(sqlite3 *db, const char *cust)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM signals JOIN customers"
                           " ON customers.idx = signals.customer WHERE "
                           "customers.id = ?1", -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, cust, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return n;
}

static void test_kill_nine(void **state)
{
    (void)state;
    char dir[256], db_path[300];
    tu_mkdtemp(dir, sizeof dir, "crash");
    snprintf(db_path, sizeof db_path, "%s/cx.db", dir);
    uint64_t seed = 0x5eed;
    int64_t acked_total = 0, trained = 0, rounds_acked = 0;
    for (int round = 0; round < KILLS; round++) {
        int fd[2];
        assert_int_equal(pipe(fd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fd[0]);
            child(dir, round, fd[1]);
        }
        close(fd[1]);
        /* 0..40 ms, so kills land in open, replay, ingest and training;
         * from the fork in odd rounds, from the first acknowledged batch
         * in even ones (an open slowed by sanitizers or a busy machine
         * must not leave ingest and training untested). */
        int32_t id, acked = 0;
        if (round % 2 == 0 && read(fd[0], &id, sizeof id) == sizeof id) {
            assert_int_equal(id, 0);
            acked = 1;
            rounds_acked++;
        }
        long us = (long)(cx__mix64(&seed) % 40000);
        struct timespec t = {0, us * 1000};
        nanosleep(&t, NULL);
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0))) {
            print_error("round %d: child exited with %d\n", round,
                        WEXITSTATUS(st));
            fail();
        }
        while (read(fd[0], &id, sizeof id) == sizeof id) {
            assert_int_equal(id, acked);
            acked++;
        }
        close(fd[0]);
        acked_total += acked;

        /* Every acknowledged batch is there, whole. */
        sqlite3 *db;
        assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY,
                                         NULL), SQLITE_OK);
        char cust[32];
        /* No schema is only possible while nothing was ever acknowledged
         * (the first children may die before creating it). */
        if (count_signals(db, "none") < 0) {
            assert_int_equal(acked_total, 0);
            sqlite3_close(db);
            continue;
        }
        for (int b = 0; b < acked; b++) {
            batch_customer(cust, sizeof cust, round, b);
            assert_int_equal(count_signals(db, cust), BATCH);
        }
        /* The batch in flight is all or nothing. */
        batch_customer(cust, sizeof cust, round, acked);
        int inflight = count_signals(db, cust);
        assert_true(inflight == 0 || inflight == BATCH);
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check",
                                            -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
        sqlite3_finalize(s);
        sqlite3_close(db);

        /* The engine reopens with all of it and serves. */
        cx_engine *e = NULL;
        int rc = cx_open(&e, dir, 0);
        if (rc)
            print_error("round %d: reopen -> %d: %s\n", round, rc,
                        cx_errmsg(NULL));
        assert_int_equal(rc, CX_OK);
        if (acked) {
            /* The customer saw BATCH distinct items, so with more known
             * there is something left for them; a new visitor gets a full
             * list of popular items. */
            long long items = tu_stat(e, CX_STAT_ITEMS);
            assert_true(items >= BATCH);
            batch_customer(cust, sizeof cust, round, acked - 1);
            result r;
            TU_OK(e, rec(e, cust, 5, NULL, &r));
            if (items > BATCH && r.n == 0)
                print_error("round %d: no recommendations for %s (acked %d, "
                            "generation %lld, items %lld)\n", round, cust,
                            acked, (long long)tu_stat(e, CX_STAT_GENERATION),
                            items);
            assert_true(items == BATCH || r.n > 0);
            TU_OK(e, rec(e, "a new visitor", 5, NULL, &r));
            assert_int_equal(r.n, 5);
        }
        trained += tu_stat(e, CX_STAT_GENERATION) > 0;
        cx_close(e);
    }
    printf("crash: %d kills, %lld batches acknowledged, %lld reopens with "
           "a model\n", KILLS, (long long)acked_total, (long long)trained);
    /* Every even round's child had its first batch acknowledged. */
    assert_true(rounds_acked == KILLS / 2);
    assert_true(acked_total >= KILLS / 2);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_nine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
