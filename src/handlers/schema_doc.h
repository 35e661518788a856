/* schema_doc — a payload schema (schema.h) as the Markdown table of
 * docs/JOB_TYPES.md, so that the producers' reference states the fields,
 * bounds, defaults and enums the validator reads, from the same table.
 *
 * tests/schemas/schema_tool fills docs/JOB_TYPES.md.in with these tables
 * (handler_doc_markdown); schemas.job_types fails when the committed file is
 * not current. Pure; allocates through common/mem.h. */
#ifndef TALLY_HANDLERS_SCHEMA_DOC_H
#define TALLY_HANDLERS_SCHEMA_DOC_H

#include "schema.h"

#include <stddef.h>
#include <stdint.h>

/* The table of s's fields (one row each, an array's item fields as
 * `name[].field` rows after it) and a line for every rule a check hook adds,
 * or "No fields: the payload is `{}`." when s has none. The caller frees it. */
char *schema_doc_markdown(const schema_object_t *s);

/* v as the docs write numbers: 10^k for a power of ten from 10^6 up,
 * digits otherwise. */
void schema_doc_int(int64_t v, char *out, size_t size);

#endif
