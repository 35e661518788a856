#include "common/ids.h"

#include "common/clock.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Monotonic within a process: the same millisecond increments the random part,
 * so ids sort in creation order even when created in a burst. */
static pthread_mutex_t ids_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static uint8_t last_rand[10];

int ids_new(const char *prefix, char *out, size_t size)
{
    size_t plen = strlen(prefix);
    if (size < plen + 1 + IDS_BODY_LEN + 1)
        return -1;

    uint8_t bytes[16];
    pthread_mutex_lock(&ids_lock);
    uint64_t ms = (uint64_t)clock_wall_ms();
    if (ms <= last_ms) {
        ms = last_ms;
        for (int i = 9; i >= 0 && ++last_rand[i] == 0; i--)
            ;
    } else {
        last_ms = ms;
        if (getrandom(last_rand, sizeof(last_rand), 0) != (ssize_t)sizeof(last_rand)) {
            /* getrandom on Linux does not fail for 10 bytes once the pool is
             * initialised; fall back to the clock rather than abort. */
            uint64_t ns = (uint64_t)clock_mono_ns();
            memcpy(last_rand, &ns, 8);
        }
    }
    for (int i = 0; i < 6; i++)
        bytes[i] = (uint8_t)(ms >> (40 - 8 * i));
    memcpy(bytes + 6, last_rand, 10);
    pthread_mutex_unlock(&ids_lock);

    memcpy(out, prefix, plen);
    out[plen] = '_';
    char *body = out + plen + 1;
    /* 128 bits → 26 base32 digits, most significant first (top digit holds 3 bits). */
    for (int i = 0; i < IDS_BODY_LEN; i++) {
        int bit = 128 - 5 * (IDS_BODY_LEN - i); /* may be negative for the first digit */
        unsigned v = 0;
        for (int b = 0; b < 5; b++) {
            int pos = bit + b;
            if (pos < 0)
                continue;
            v = (v << 1) | ((bytes[pos / 8] >> (7 - pos % 8)) & 1u);
        }
        body[i] = alphabet[v & 31];
    }
    body[IDS_BODY_LEN] = '\0';
    return 0;
}
