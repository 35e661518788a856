/* pgb — see pgb.h. The statements below are Tally's own (src/access/
 * session.c, outcome.c, payments.c, logs.c) with every bound parameter
 * replaced by an expression of pgbench variables. */
#include "pgb.h"

#include "th_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void request(FILE *f, int k)
{
    /* SQL expressions for the values Tally binds: the account, the request's
     * unique key (run, client, transaction, position) and its payload. */
    char acct[32], key[96], payload[192];
    snprintf(acct, sizeof(acct), "'pgb_' || :a%d", k);
    snprintf(key, sizeof(key), "'' || :run || '_' || :client_id || '_' || :i || '_%d'", k);
    snprintf(payload, sizeof(payload),
             "'{\"amount\":1999,\"currency\":\"usd\",\"external_id\":\"pi_' || %s || '\"}'", key);

    /* access_tx_begin: SAVEPOINT and the tenant setting (one pipeline in Tally). */
    fprintf(f, "SAVEPOINT tally_tx;\n");
    fprintf(f,
            "SELECT set_config('app.account_id', %s, true), set_config('enable_seqscan', 'off', "
            "true);\n",
            acct);
    /* access_outcome_probe */
    fprintf(f,
            "SELECT type = 'payment.record' AND payload_sha256 = sha256(convert_to(%s, 'UTF8')), "
            "response FROM tally_request_outcomes WHERE account_id = %s AND request_id = 'req_' "
            "|| %s;\n",
            payload, acct, key);
    /* access_payments_record (the balance trigger fires) */
    fprintf(f,
            "INSERT INTO stripe_payments AS p"
            " (account_id, id, external_id, amount, currency, status, description, metadata)"
            " VALUES (%s, 'pay_' || %s, 'pi_' || %s, 1999::bigint, 'usd', 'succeeded', NULL,"
            " coalesce(NULL::json, '{}'))"
            " RETURNING p.id, p.external_id, p.amount, p.currency, p.status, p.amount_refunded,"
            " p.allocated_at IS NOT NULL AS allocated, p.description, p.metadata::text AS metadata,"
            " tally_epoch_ms(p.created_at) AS created_ms, tally_epoch_ms(p.updated_at) AS "
            "updated_ms;\n",
            acct, key, key);
    /* access_outcome_store, with a response as long as Tally's */
    fprintf(f,
            "INSERT INTO tally_request_outcomes AS o "
            "(account_id, request_id, type, payload_sha256, response) "
            "VALUES (%s, 'req_' || %s, 'payment.record', sha256(convert_to(%s, 'UTF8')), "
            "'{\"status\":\"ok\",\"result\":{\"payment\":{\"id\":\"pay_' || %s || "
            "'\",\"external_id\":\"pi_' || %s || '\",\"amount\":1999,\"currency\":\"usd\","
            "\"status\":\"succeeded\",\"amount_refunded\":0,\"description\": null,"
            "\"metadata\":{},\"created_at\":\"2026-11-22T10:00:00.123Z\","
            "\"updated_at\":\"2026-11-22T10:00:00.123Z\"}}}') "
            "ON CONFLICT (account_id, request_id) DO UPDATE SET response = EXCLUDED.response "
            "WHERE o.account_id = %s AND o.response IS NULL AND o.type = EXCLUDED.type "
            "AND o.payload_sha256 = EXCLUDED.payload_sha256 RETURNING true;\n",
            acct, key, payload, key, key, acct);
    /* access_logs_insert */
    fprintf(f,
            "INSERT INTO payment_system_logs (account_id, id, request_id, type, status, "
            "error_code, replayed, at, duration_ms, worker, partition, \"offset\") "
            "VALUES (%s, 'log_' || %s, 'req_' || %s, 'payment.record', 'ok', NULL, "
            "false::boolean, tally_from_epoch_ms(1795341600123::bigint), "
            "1.234::double precision, 'pgbench', 0::integer, :i::bigint);\n",
            acct, key, key);
}

char *pgb_script(int per_tx, int slice)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fprintf(f, "-- %d payment.record request(s) per transaction, as Tally runs them\n", per_tx);
    fprintf(f, "\\set i :i + 1\n\\set r random(0, %d)\n", slice - 1);
    for (int k = 1; k <= per_tx; k++)
        fprintf(f, "\\set a%d :client_id * %d + (:r + %d) %% %d + 1\n", k, slice, k - 1, slice);
    fprintf(f, "BEGIN;\n");
    for (int k = 1; k <= per_tx; k++) {
        request(f, k);
        /* Tally releases a savepoint along with the next one; COMMIT releases the last. */
        if (k < per_tx)
            fprintf(f, "RELEASE SAVEPOINT tally_tx;\n");
    }
    fprintf(f, "COMMIT;\n");
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static double field_after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p != NULL ? strtod(p + strlen(label), NULL) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *n = realloc(buf, cap);
            if (n == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = n;
        }
        size_t r = fread(buf + len, 1, 4096, f);
        len += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

char *pgb_tally_script(int per_tx, int clients, int accounts)
{
    int slice = accounts / clients;
    if (slice < per_tx)
        slice = per_tx; /* distinct accounts inside one transaction */
    return pgb_script(per_tx, slice);
}

int pgb_run(const th_pg_t *pg, const char *name, const char *script, int per_tx, int clients,
            int seconds, int64_t run_tag, pgb_result_t *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    out->per_tx = per_tx;
    out->clients = clients;
    out->seconds = seconds;
    char *script_path = th_strdupf("%s/pgbench-%s-%d.sql", th_tmpdir(), name, per_tx);
    char *out_path = th_strdupf("%s/pgbench-%s-%d.out", th_tmpdir(), name, per_tx);
    int rc = -1;
    FILE *f = script != NULL ? fopen(script_path, "w") : NULL;
    if (f == NULL || fputs(script, f) < 0 || fclose(f) != 0) {
        snprintf(err, errsize, "cannot write %s", script_path);
        goto out;
    }

    const char *bindir = getenv("TALLY_PG_BINDIR");
    char *tool =
        th_strdupf("%s/pgbench", bindir != NULL && *bindir ? bindir : "/usr/lib/postgresql/15/bin");
    char port[16], c[16], t[16], run[48];
    snprintf(port, sizeof(port), "%d", th_pg_port(pg));
    snprintf(c, sizeof(c), "%d", clients);
    snprintf(t, sizeof(t), "%d", seconds);
    snprintf(run, sizeof(run), "run=%lld", (long long)run_tag);
    char *argv[] = {tool, "-n",           "-M", "prepared", "-h", "127.0.0.1", "-p",    port,
                    "-U", "tally_worker", "-c", c,          "-j", "1",         "-T",    t,
                    "-D", "i=0",          "-D", run,        "-f", script_path, "tally", NULL};
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errsize, "open %s: %s", out_path, strerror(errno));
        free(tool);
        goto out;
    }
    th_spawn_t s = {.path = tool, .argv = argv, .stdin_fd = -1, .stdout_fd = fd, .stderr_fd = fd};
    pid_t pid = th_spawn(&s, err, errsize);
    close(fd);
    free(tool);
    if (pid < 0)
        goto out;
    /* pgbench's own CPU comes exact with its exit status (wait4). */
    int status = 0;
    struct rusage ru;
    pid_t w;
    int64_t deadline = th_now_ms() + (int64_t)(seconds + 120) * 1000;
    while ((w = wait4(pid, &status, WNOHANG, &ru)) == 0 && th_now_ms() < deadline)
        th_sleep_ms(50);
    if (w != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        snprintf(err, errsize, "pgbench did not finish in time");
        goto out;
    }
    char *text = slurp(out_path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || text == NULL) {
        snprintf(err, errsize, "pgbench failed (output in %s): %.300s", out_path,
                 text != NULL ? text : "");
        free(text);
        goto out;
    }
    out->tps = field_after(text, "tps = ");
    out->latency_ms = field_after(text, "latency average = ");
    out->transactions = (int64_t)field_after(text, "number of transactions actually processed: ");
    out->failed = (int64_t)field_after(text, "number of failed transactions: ");
    free(text);
    if (out->tps <= 0 || out->transactions <= 0) {
        snprintf(err, errsize, "pgbench printed no tps (output in %s)", out_path);
        goto out;
    }
    out->req_per_s = out->tps * per_tx;
    out->pgbench_cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    rc = 0;
out:
    free(script_path);
    free(out_path);
    return rc;
}
