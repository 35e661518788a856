/* errline — the error line of the tenant-free functions that open a
 * connection of their own from an operator's conninfo (holds, migrate,
 * schedule): one line, no trailing blanks, and no password even when a
 * server message quotes the connection string. Private to src/access. */
#ifndef TALLY_ACCESS_ERRLINE_H
#define TALLY_ACCESS_ERRLINE_H

#include <stdarg.h>
#include <stddef.h>

/* Formats fmt into err (errlen bytes) as that line. err may be NULL
 * (nothing written). Returns -1, for `return access_errline(...)`.
 * @thread any */
int access_errline(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int access_verrline(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
