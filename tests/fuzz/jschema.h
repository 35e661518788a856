/* jschema — a small JSON Schema (draft 2020-12) checker, the fuzzer's second
 * opinion on payloads.
 *
 * It knows exactly the keywords that schema_json_generate and
 * docs/schemas/envelope.json use (type, properties, required,
 * additionalProperties, minLength, maxLength, pattern, minimum, maximum, enum,
 * const, anyOf, minItems, maxItems, items, maxProperties, propertyNames) and treats the annotations
 * ($schema, title, description, default, format) as such. Patterns run as POSIX extended regexes
 * after the generator's "$(?!\n)" ending becomes "$"; the "no NUL" pattern is checked directly.
 * Like Tally (and unlike the draft), "integer" means a JSON number written without fraction or
 * exponent.
 *
 * Test code only: regexes are cached in file-static state, so not thread-safe. */
#ifndef TALLY_FUZZ_JSCHEMA_H
#define TALLY_FUZZ_JSCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Whether instance satisfies schema. On false, why (size bytes) says where
 * and which keyword. A keyword it does not know is written to unknown (once
 * per call) and otherwise ignored. */
bool jschema_accepts(const json_t *schema, const json_t *instance, char *why, size_t size,
                     char *unknown, size_t unknown_size);

#endif
