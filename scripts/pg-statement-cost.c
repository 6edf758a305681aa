/*
 * PostgreSQL's own CPU time for one statement, with no server in between.
 *
 *   pg-statement-cost CONNINFO EXECUTIONS SQL [PARAM...]
 *
 * Prepares SQL once, then runs it EXECUTIONS times in libpq's pipeline mode
 * (batches of 100, binary results, as diesel asks for them), so the backend
 * never waits for the client, and prints the rows of the last execution and
 * the backend's user + system CPU per execution, read from /proc. What it
 * leaves out is exactly what every statement pays alike: the wake-ups and
 * socket calls of a round trip. Part of scripts/bench.sh; no project code
 * uses it.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 100

/* User + system clock ticks of process `pid`. */
static long cpu_ticks(int pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        fprintf(stderr, "cannot read %s (is PostgreSQL on this machine?)\n", path);
        exit(1);
    }
    fclose(f);
    /* Fields after the command name, which may hold spaces: state is 3rd,
     * utime the 14th and stime the 15th of the whole line. */
    char *p = strrchr(buf, ')');
    long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2) {
        fprintf(stderr, "unexpected %s\n", path);
        exit(1);
    }
    return utime + stime;
}

static int last_rows;

static void run_batch(PGconn *conn, int params, const char *const *values) {
    for (int i = 0; i < BATCH; i++) {
        if (!PQsendQueryPrepared(conn, "s", params, values, NULL, NULL, 1)) {
            fprintf(stderr, "%s", PQerrorMessage(conn));
            exit(1);
        }
    }
    if (!PQpipelineSync(conn)) {
        fprintf(stderr, "%s", PQerrorMessage(conn));
        exit(1);
    }
    for (;;) {
        PGresult *res = PQgetResult(conn);
        if (!res)
            continue; /* between two statements' results */
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            return;
        }
        if (status == PGRES_TUPLES_OK) {
            last_rows = PQntuples(res);
        } else if (status != PGRES_COMMAND_OK) {
            fprintf(stderr, "%s", PQresultErrorMessage(res));
            exit(1);
        }
        PQclear(res);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s CONNINFO EXECUTIONS SQL [PARAM...]\n", argv[0]);
        return 2;
    }
    PGconn *conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "%s", PQerrorMessage(conn));
        return 1;
    }
    int executions = atoi(argv[2]);
    int params = argc - 4;
    const char *const *values = (const char *const *)(argv + 4);
    PGresult *res = PQprepare(conn, "s", argv[3], 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s", PQerrorMessage(conn));
        return 1;
    }
    PQclear(res);
    if (!PQenterPipelineMode(conn)) {
        fprintf(stderr, "%s", PQerrorMessage(conn));
        return 1;
    }
    int backend = PQbackendPID(conn);
    for (int i = 0; i < 5; i++) /* warm caches and the plan */
        run_batch(conn, params, values);
    long before = cpu_ticks(backend);
    for (int i = 0; i < executions / BATCH; i++)
        run_batch(conn, params, values);
    long after = cpu_ticks(backend);
    double us = (double)(after - before) * 1e6 / (double)sysconf(_SC_CLK_TCK) /
                (double)(executions / BATCH * BATCH);
    printf("%d %.1f\n", last_rows, us);
    PQfinish(conn);
    return 0;
}
