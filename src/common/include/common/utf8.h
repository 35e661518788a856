/* utf8 — the UTF-8 rules every layer shares: what is well-formed, how
 * characters are counted, and where a byte string may be cut.
 *
 * Lengths in the contract count characters (code points). Well-formed means
 * RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. Pure
 * and thread-safe. */
#ifndef TALLY_COMMON_UTF8_H
#define TALLY_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (2-4) of the well-formed multi-byte sequence at p (p[0] >= 0x80)
 * within its avail bytes, or 0 when there is none. Reads no further than the
 * first byte that is not a continuation byte, so for a NUL-terminated string
 * avail may be SIZE_MAX. */
size_t utf8_seq_len(const unsigned char *p, size_t avail);

/* Whether s[0..len) is well-formed UTF-8. On failure *bad (may be NULL) is
 * the offset of the first byte that starts no well-formed character. */
bool utf8_valid(const void *s, size_t len, size_t *bad);

/* Characters (code points) of well-formed UTF-8: the bytes that are not
 * continuation bytes. */
size_t utf8_chars(const char *s, size_t len);

/* The longest prefix of s[0..len) that fits in room bytes without cutting
 * a character: min(len, room), moved back to a character boundary. */
size_t utf8_cut(const char *s, size_t len, size_t room);

/* Copies the NUL-terminated src into dst (size > 0 bytes), cut with
 * utf8_cut so that the copy of valid UTF-8 stays valid. */
void utf8_copy(char *dst, size_t size, const char *src);

#endif
