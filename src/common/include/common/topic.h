/* topic — what a Kafka topic name may be, for every place that takes one
 * (settings, a request's reply_to, tallyctl's flags).
 *
 * Kafka's own rule: 1-249 characters of [A-Za-z0-9._-], neither "." nor "..". */
#ifndef TALLY_COMMON_TOPIC_H
#define TALLY_COMMON_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_NAME_MAX 249

/* The rule in words, for messages: "... is not a Kafka topic name (" TOPIC_NAME_RULE ")". */
#define TOPIC_NAME_RULE "1-249 chars of [A-Za-z0-9._-]"

/* Whether s[0..len) is a legal topic name. */
bool topic_name_valid(const char *s, size_t len);

#endif
