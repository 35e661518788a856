/* tallyctl migrate — applies the migrations directory (see access/migrate.h). */
#include "ctl.h"

#include "access/migrate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef TALLY_MIGRATIONS_DIR_DEFAULT
#define TALLY_MIGRATIONS_DIR_DEFAULT "migrations"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tallyctl migrate [--status] [--dir DIR]\n"
            "\n"
            "Applies the pending migrations (DIR/*.sql, in name order, each in its own\n"
            "transaction) and records them in tally_schema_migrations. Running it again is a\n"
            "no-op; an applied file that was edited is refused; concurrent runs wait for\n"
            "each other.\n"
            "\n"
            "  --status    list applied and pending migrations, change nothing\n"
            "  --dir DIR   the migrations directory (default: ./migrations if it exists,\n"
            "              else %s)\n"
            "  -h, --help  this text\n"
            "\n"
            "Connects with MIGRATION_DATABASE_URL, else DATABASE_URL: a role that owns the\n"
            "database and may create roles.\n"
            "Exit status: 0 ok, 1 failure, 2 usage.\n",
            TALLY_MIGRATIONS_DIR_DEFAULT);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ctl_migrate(int argc, char **argv)
{
    bool status = false;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--status") == 0) {
            status = true;
        } else if (strcmp(a, "--dir") == 0) {
            if (i + 1 >= argc)
                return ctl_usage_error("migrate", "--dir needs a directory");
            dir = argv[++i];
        } else if (strncmp(a, "--dir=", 6) == 0) {
            dir = a + 6;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CTL_OK;
        } else {
            return ctl_usage_error("migrate", "unknown argument '%s'", a);
        }
    }
    if (dir != NULL && dir[0] == '\0')
        return ctl_usage_error("migrate", "--dir needs a directory");
    if (dir == NULL)
        dir = is_dir("migrations") ? "migrations" : TALLY_MIGRATIONS_DIR_DEFAULT;

    const char *url = getenv("MIGRATION_DATABASE_URL");
    if (url == NULL || url[0] == '\0')
        url = getenv("DATABASE_URL");
    if (url == NULL || url[0] == '\0')
        return ctl_usage_error("migrate", "set MIGRATION_DATABASE_URL or DATABASE_URL");

    char err[1024];
    int rc = status ? access_migrate_status(url, dir, stdout, err, sizeof(err))
                    : access_migrate_apply(url, dir, stdout, err, sizeof(err));
    fflush(stdout);
    if (rc != 0) {
        fprintf(stderr, "tallyctl migrate: error: %s\n", err);
        return CTL_FAILED;
    }
    return CTL_OK;
}
