/* schema_json — a payload schema (schema.h) as JSON Schema (draft 2020-12),
 * for producers: docs/schemas/<type>.json, which the TypeScript client's
 * types and the fuzz target's seeds come from, is this module's output for
 * each job type (handler_json_schema).
 *
 * Every rule the validator checks that JSON Schema can express is in the
 * output; the others (a check hook, unique item fields) are stated in the
 * descriptions. Pure. */
#ifndef TALLY_HANDLERS_SCHEMA_JSON_H
#define TALLY_HANDLERS_SCHEMA_JSON_H

#include "schema.h"

#include <jansson.h>

/* The JSON Schema of s as a new object, or NULL on allocation failure.
 * title and description go to the top level; check_doc and unique rules are
 * appended to the descriptions they concern. */
json_t *schema_json_generate(const schema_object_t *s, const char *title, const char *description);

#endif
