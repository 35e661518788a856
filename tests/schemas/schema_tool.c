/* schema_tool — the payload schemas from the C side, for tests/schemas/check_schemas.py.
 *
 *   schema_tool generate DIR         writes DIR/<type>.json for every job type
 *   schema_tool validate TYPE FILE   runs handler_validate over FILE (a JSON
 *                                    array of payloads) and prints one JSON
 *                                    line per payload: {"valid": bool,
 *                                    "field": …, "message": …}
 *
 * Regenerate the committed schemas with
 * `cmake --build build --target tally-schemas-update`. */
#include "handlers/handler.h"

#include <jansson.h>
#include <stdio.h>
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

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "generate") == 0)
        return generate(argv[2]);
    if (argc == 4 && strcmp(argv[1], "validate") == 0)
        return validate(argv[2], argv[3]);
    fprintf(stderr, "usage: schema_tool generate DIR | schema_tool validate TYPE FILE\n");
    return 2;
}
