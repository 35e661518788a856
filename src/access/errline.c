/* errline — see errline.h. */
#include "errline.h"

#include "common/log.h"

#include <stdio.h>
#include <string.h>

int access_verrline(char *err, size_t errlen, const char *fmt, va_list ap)
{
    char raw[1024];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    for (char *p = raw; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    size_t len = strlen(raw);
    while (len > 0 && raw[len - 1] == ' ')
        raw[--len] = '\0';
    if (err != NULL)
        log_redact(raw, err, errlen);
    return -1;
}

int access_errline(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    access_verrline(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}
