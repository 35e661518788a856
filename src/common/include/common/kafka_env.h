/* kafka_env — how an environment variable names a librdkafka property
 * (CONTRACT.md §7): KAFKA_<PROPERTY>, the property upper-cased with dots as
 * underscores, so KAFKA_SESSION_TIMEOUT_MS sets session.timeout.ms.
 *
 * Both directions, for the worker's configuration and tallyctl's. Pure
 * string mapping: no librdkafka here, which judges the property itself. */
#ifndef TALLY_COMMON_KAFKA_ENV_H
#define TALLY_COMMON_KAFKA_ENV_H

#include <stdbool.h>
#include <stddef.h>

#define KAFKA_ENV_PREFIX       "KAFKA_"
#define KAFKA_ENV_PROPERTY_MAX 256 /* a property name's buffer, with the NUL */

/* Whether entry, an environ string "NAME=value", is a KAFKA_<PROPERTY>
 * variable. If so, writes the property ("session.timeout.ms") into key
 * (keysize bytes), points *value at the value and sets *name_len to the
 * length of NAME. False for any other variable, an empty property, or one
 * that does not fit key. */
bool kafka_env_property(const char *entry, char *key, size_t keysize, const char **value,
                        size_t *name_len);

/* Writes the variable that sets property ("KAFKA_SESSION_TIMEOUT_MS") into
 * out (size bytes). False when it does not fit. */
bool kafka_env_name(const char *property, char *out, size_t size);

#endif
