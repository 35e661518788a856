/* lean — see lean.h. */
#include "lean.h"

#include "th_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *lean_read(const char *path, char *err, size_t errsize)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while (m != NULL && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    if (m == NULL || fclose(m) != 0) {
        snprintf(err, errsize, "%s: cannot read", path);
        free(buf);
        return NULL;
    }
    return buf;
}

void lean_apply(const th_pg_t *pg, const char *text)
{
    th_pg_exec(pg, "tally_owner", text);
}

/* Appends the request: the lines of section 2 after its first bare "--",
 * each without its "-- ", ACCOUNTS replaced. Returns the lines written. */
static int request(FILE *out, const char *text, int accounts)
{
    const char *p = strstr(text, "\n-- 2.");
    bool body = false;
    int lines = 0;
    while (p != NULL && *p != '\0') {
        p += *p == '\n';
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (body && len > 3 && strncmp(p, "-- ", 3) == 0) {
            const char *line = p + 3, *stop = p + len;
            for (const char *a; (a = memmem(line, (size_t)(stop - line), "ACCOUNTS", 8)) != NULL;
                 line = a + 8)
                fprintf(out, "%.*s%d", (int)(a - line), line, accounts);
            fprintf(out, "%.*s\n", (int)(stop - line), line);
            lines++;
        } else if (len == 2 && strncmp(p, "--", 2) == 0) {
            body = true;
        }
        p = end;
    }
    return lines;
}

char *lean_script(const char *text, int per_tx, int accounts)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fprintf(f, "-- the lean limit (bench/lean-limit.sql): %d request(s) per transaction\n", per_tx);
    fprintf(f, "BEGIN;\n");
    int lines = 0;
    for (int k = 0; k < per_tx; k++) {
        fprintf(f, "SAVEPOINT req;\n");
        lines = request(f, text, accounts);
        fprintf(f, "RELEASE SAVEPOINT req;\n");
    }
    fprintf(f, "COMMIT;\n");
    if (fclose(f) != 0 || lines == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
