/* schema_tool — the payload schemas from the C side, for tests/schemas.
 *
 *   schema_tool generate DIR         writes DIR/<type>.json for every job type
 *   schema_tool validate TYPE FILE   runs handler_validate over FILE (a JSON
 *                                    array of payloads) and prints one JSON
 *                                    line per payload: {"valid": bool,
 *                                    "field": …, "message": …}
 *   schema_tool docs TEMPLATE OUT    fills TEMPLATE (docs/JOB_TYPES.md.in)
 *                                    into OUT (docs/JOB_TYPES.md)
 *   schema_tool check-docs TEMPLATE FILE
 *                                    exits 1, naming the first line that
 *                                    differs, when FILE is not what docs
 *                                    would write
 *
 * In the template, a line "{{type NAME}}" becomes the job type's section
 * (handler_doc_markdown: heading, summary, the payload's table), and
 * "{{name}}" anywhere becomes one of the constants below; every job type
 * must be placed exactly once, and an unknown name is an error. A leading
 * "<!-- template" comment is replaced by a note that the file is generated.
 *
 * Regenerate the committed schemas and docs/JOB_TYPES.md with
 * `cmake --build build --target tally-schemas-update`. */
#include "../../src/handlers/handler_internal.h"
#include "../../src/handlers/schema_doc.h"
#include "access/codes.h"
#include "access/settings.h"
#include "handlers/currency.h"
#include "handlers/handler.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int generate(const char *dir)
{
    for (size_t i = 0; i < handler_count(); i++) {
        const handler_t *h = handler_at(i);
        json_t *schema = handler_json_schema(h);
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.json", dir, handler_name(h));
        char *text = schema != NULL ? json_dumps(schema, JSON_INDENT(2)) : NULL;
        json_decref(schema);
        FILE *f = text != NULL ? fopen(path, "w") : NULL;
        bool ok = f != NULL && fprintf(f, "%s\n", text) > 0;
        if (f != NULL && fclose(f) != 0)
            ok = false;
        free(text);
        if (!ok) {
            fprintf(stderr, "schema_tool: cannot write %s\n", path);
            return 1;
        }
    }
    return 0;
}

static int validate(const char *type, const char *file)
{
    const handler_t *h = handler_find(type);
    if (h == NULL) {
        fprintf(stderr, "schema_tool: unknown job type %s\n", type);
        return 2;
    }
    json_error_t jerr;
    /* JSON_ALLOW_NUL: let "\u0000" through so that the validator judges it. */
    json_t *examples = json_load_file(file, JSON_ALLOW_NUL, &jerr);
    if (!json_is_array(examples)) {
        fprintf(stderr, "schema_tool: %s: not a JSON array (%s)\n", file, jerr.text);
        json_decref(examples);
        return 2;
    }
    for (size_t i = 0; i < json_array_size(examples); i++) {
        const json_t *payload = json_array_get(examples, i);
        handler_error_t err;
        bool valid = handler_validate(h, payload, &err);
        json_t *line = valid ? json_pack("{s:b}", "valid", 1)
                             : json_pack("{s:b, s:s, s:s}", "valid", 0, "field", err.field,
                                         "message", err.message);
        char *text = line != NULL ? json_dumps(line, JSON_COMPACT) : NULL;
        printf("%s\n", text != NULL ? text : "{\"valid\": null}");
        free(text);
        json_decref(line);
    }
    json_decref(examples);
    return 0;
}

/* ---- docs/JOB_TYPES.md ------------------------------------------------------ */

#define GENERATED_NOTE                                                                             \
    "<!-- Generated from docs/JOB_TYPES.md.in and the job types' schema tables\n"                  \
    "     (src/handlers/*.c) by `cmake --build build --target tally-schemas-update`:\n"            \
    "     edit those, not this file (schemas.job_types fails when it is not current). -->\n"

/* The value of {{name}} into out; false when there is no such constant. */
static bool constant(const char *name, size_t len, char *out, size_t size)
{
    size_t currencies = 0;
    while (currency_code(currencies) != NULL)
        currencies++;
    const struct {
        const char *name;
        long long value; /* used when text is NULL */
        const char *text;
    } table[] = {
        {"count", (long long)handler_count(), NULL},
        {"amount_max", SCHEMA_AMOUNT_MAX, NULL},
        {"id_max", SCHEMA_ID_MAX, NULL},
        {"list_limit_max", HANDLER_LIST_LIMIT_MAX, NULL},
        {"list_limit_default", HANDLER_LIST_LIMIT_DEFAULT, NULL},
        {"list_page_reserve_kib", (HANDLER_RESULT_MAX_BYTES - HANDLER_LIST_PAGE_MAX_BYTES) / 1024,
         NULL},
        {"currency_count", (long long)currencies, NULL},
        {"metadata_keys", SCHEMA_METADATA_KEYS, NULL},
        {"metadata_key_max", SCHEMA_METADATA_KEY_MAX, NULL},
        {"metadata_value_max", SCHEMA_METADATA_VAL_MAX, NULL},
        {"code_recent", ACCESS_CODE_RECENT, NULL},
        {"settings_default_currency", 0, ACCESS_SETTINGS_DEFAULT_CURRENCY},
        {"settings_default_schedule", 0, ACCESS_SETTINGS_DEFAULT_SCHEDULE},
        {"settings_default_min_payout", ACCESS_SETTINGS_DEFAULT_MIN_PAYOUT, NULL},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strlen(table[i].name) != len || strncmp(table[i].name, name, len) != 0)
            continue;
        if (table[i].text != NULL)
            snprintf(out, size, "%s", table[i].text);
        else
            schema_doc_int(table[i].value, out, size);
        return true;
    }
    return false;
}

/* Writes line (without its newline) with its {{name}}s replaced; false
 * (with a message) on an unknown name. */
static bool fill_line(FILE *out, const char *line, long no)
{
    const char *p = line;
    for (const char *open; (open = strstr(p, "{{")) != NULL;) {
        const char *close = strstr(open, "}}");
        char value[64];
        if (close == NULL ||
            !constant(open + 2, (size_t)(close - open - 2), value, sizeof(value))) {
            fprintf(stderr, "schema_tool: template line %ld: unknown placeholder %.40s\n", no,
                    open);
            return false;
        }
        fprintf(out, "%.*s%s", (int)(open - p), p, value);
        p = close + 2;
    }
    fprintf(out, "%s\n", p);
    return true;
}

/* The filled template as a new string, or NULL (with a message). */
static char *fill(const char *template_path)
{
    FILE *in = fopen(template_path, "r");
    if (in == NULL) {
        fprintf(stderr, "schema_tool: cannot read %s\n", template_path);
        return NULL;
    }
    char *text = NULL;
    size_t text_len = 0;
    FILE *out = open_memstream(&text, &text_len);
    size_t n_types = handler_count();
    int *placed = calloc(n_types, sizeof(int));
    bool ok = out != NULL && placed != NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long no = 0;
    bool in_note = false;
    while (ok && (len = getline(&line, &cap, in)) >= 0) {
        no++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (no == 1 && strncmp(line, "<!-- template", 13) == 0) {
            fputs(GENERATED_NOTE, out);
            in_note = true;
        }
        if (in_note) {
            in_note = strstr(line, "-->") == NULL;
            continue;
        }
        char name[160];
        if (sscanf(line, "{{type %159[^}]}}", name) == 1) {
            const handler_t *h = handler_find(name);
            if (h == NULL) {
                fprintf(stderr, "schema_tool: template line %ld: no job type %s\n", no, name);
                ok = false;
                break;
            }
            for (size_t i = 0; i < n_types; i++)
                placed[i] += handler_at(i) == h;
            char *section = handler_doc_markdown(h);
            fputs(section, out);
            free(section);
            continue;
        }
        ok = fill_line(out, line, no);
    }
    for (size_t i = 0; ok && i < n_types; i++) {
        if (placed[i] != 1) {
            fprintf(stderr, "schema_tool: %s is placed %d times in %s (once, as {{type %s}})\n",
                    handler_name(handler_at(i)), placed[i], template_path,
                    handler_name(handler_at(i)));
            ok = false;
        }
    }
    free(line);
    free(placed);
    fclose(in);
    if (out != NULL)
        fclose(out);
    if (!ok) {
        free(text);
        return NULL;
    }
    return text;
}

static int docs(const char *template_path, const char *out_path)
{
    char *text = fill(template_path);
    if (text == NULL)
        return 1;
    FILE *f = fopen(out_path, "w");
    bool ok = f != NULL && fputs(text, f) >= 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    free(text);
    if (!ok)
        fprintf(stderr, "schema_tool: cannot write %s\n", out_path);
    return ok ? 0 : 1;
}

static int check_docs(const char *template_path, const char *committed_path)
{
    char *want = fill(template_path);
    if (want == NULL)
        return 1;
    FILE *f = fopen(committed_path, "r");
    char *have = NULL;
    size_t have_len = 0;
    if (f != NULL) {
        FILE *m = open_memstream(&have, &have_len);
        int c;
        while (m != NULL && (c = fgetc(f)) != EOF)
            fputc(c, m);
        if (m != NULL)
            fclose(m);
        fclose(f);
    }
    int rc = 0;
    if (have == NULL || strcmp(have, want) != 0) {
        long line = 1;
        size_t i = 0;
        for (; have != NULL && have[i] != '\0' && have[i] == want[i]; i++)
            line += have[i] == '\n';
        fprintf(stderr,
                "schema_tool: %s is not current (first difference at line %ld): regenerate it "
                "with `cmake --build build --target tally-schemas-update`\n",
                committed_path, line);
        rc = 1;
    }
    free(have);
    free(want);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "generate") == 0)
        return generate(argv[2]);
    if (argc == 4 && strcmp(argv[1], "validate") == 0)
        return validate(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "docs") == 0)
        return docs(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "check-docs") == 0)
        return check_docs(argv[2], argv[3]);
    fprintf(stderr, "usage: schema_tool generate DIR | validate TYPE FILE | docs TEMPLATE OUT |"
                    " check-docs TEMPLATE FILE\n");
    return 2;
}
