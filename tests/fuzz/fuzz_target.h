/* fuzz_target — the libFuzzer entry points of fuzz_envelope.c, declared for
 * replay_main.c, which runs saved inputs through the same code without
 * libFuzzer (in the ordinary test build, under ASan or valgrind).
 *
 * Input format: a Kafka message value, optionally preceded by its key as
 * "\x01KEY\x01" (a JSON text never starts with \x01). Without a key the
 * target also decodes the value with key = its account_id and with a wrong
 * key, and checks that only the key rule changes the outcome. */
#ifndef TALLY_FUZZ_TARGET_H
#define TALLY_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
