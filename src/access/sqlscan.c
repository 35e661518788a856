/* sqlscan — see access/sqlscan.h. A small lexer after the server's own
 * (scan.l) and psql's statement splitter (psqlscan.l), reduced to what
 * finding a statement's first words needs. */
#include "access/sqlscan.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

typedef struct scanner {
    const char *p;
    int line;
} scanner_t;

static bool ident_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static bool ident_char(unsigned char c)
{
    return ident_start(c) || isdigit(c) || c == '$';
}

/* Moves past one character, counting lines. */
static void step(scanner_t *s)
{
    if (*s->p == '\n')
        s->line++;
    s->p++;
}

/* From an opening quote to just past its closing one; a doubled quote is
 * part of the text, and with backslash (E'…') a backslash escapes the next
 * character. */
static void skip_quoted(scanner_t *s, char quote, bool backslash)
{
    s->p++;
    while (*s->p != '\0') {
        if (backslash && *s->p == '\\' && s->p[1] != '\0') {
            step(s);
            step(s);
        } else if (*s->p == quote && s->p[1] == quote) {
            s->p += 2;
        } else if (*s->p == quote) {
            s->p++;
            return;
        } else {
            step(s);
        }
    }
}

/* From a block comment's opening to just past its matching end (they nest). */
static void skip_block_comment(scanner_t *s)
{
    int depth = 0;
    while (*s->p != '\0') {
        if (s->p[0] == '/' && s->p[1] == '*') {
            depth++;
            s->p += 2;
        } else if (s->p[0] == '*' && s->p[1] == '/') {
            s->p += 2;
            if (--depth == 0)
                return;
        } else {
            step(s);
        }
    }
}

/* At a '$': skips a dollar-quoted body ($$…$$, $tag$…$tag$) and returns
 * true, or returns false having moved nothing ($1, a lone $). */
static bool skip_dollar_quote(scanner_t *s)
{
    const char *q = s->p + 1;
    if (*q != '$' && !ident_start((unsigned char)*q))
        return false;
    while (*q != '$') {
        if (*q == '\0' || !(ident_start((unsigned char)*q) || isdigit((unsigned char)*q)))
            return false;
        q++;
    }
    size_t taglen = (size_t)(q - s->p) + 1;
    const char *tag = s->p;
    s->p = q + 1;
    while (*s->p != '\0' && strncmp(s->p, tag, taglen) != 0)
        step(s);
    if (*s->p != '\0')
        s->p += taglen;
    return true;
}

/* Reads a word (lower-cased, cut to size - 1) and moves past all of it. */
static void read_word(scanner_t *s, char *w, size_t size)
{
    size_t n = 0;
    while (ident_char((unsigned char)*s->p)) {
        if (n + 1 < size)
            w[n++] = (char)tolower((unsigned char)*s->p);
        s->p++;
    }
    w[n] = '\0';
}

static bool begins_or_ends_a_transaction(const char *w)
{
    static const char *const words[] = {"begin", "start",    "commit",  "end",
                                        "abort", "rollback", "release", "savepoint"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcmp(w, words[i]) == 0)
            return true;
    }
    return false;
}

static bool found(access_sqlscan_hit_t *hit, int line, const char *w, const char *then)
{
    char up[32];
    size_t n = 0;
    for (; w[n] != '\0' && n + 1 < sizeof(up); n++)
        up[n] = (char)toupper((unsigned char)w[n]);
    up[n] = '\0';
    hit->line = line;
    snprintf(hit->what, sizeof(hit->what), "%s%s", up, then);
    return true;
}

bool access_sqlscan_txn_control(const char *sql, access_sqlscan_hit_t *hit)
{
    scanner_t s = {.p = sql, .line = 1};
    /* The statement being read: its tokens so far, its first word and line,
     * whether it creates a function or procedure, and the nesting that
     * keeps a semicolon from ending it. */
    int tokens = 0, line = 1, parens = 0, atomic = 0;
    char first[32] = "";
    bool routine = false;
    while (*s.p != '\0') {
        unsigned char c = (unsigned char)*s.p;
        if (isspace(c)) {
            step(&s);
        } else if (c == '-' && s.p[1] == '-') {
            while (*s.p != '\0' && *s.p != '\n')
                s.p++;
        } else if (c == '/' && s.p[1] == '*') {
            skip_block_comment(&s);
        } else if (c == ';' && parens == 0 && atomic == 0) {
            s.p++;
            tokens = 0;
            routine = false;
        } else if (c == '\'' || c == '"') {
            skip_quoted(&s, (char)c, false);
            tokens++;
        } else if (c == '$' && skip_dollar_quote(&s)) {
            tokens++;
        } else if (ident_start(c) || isdigit(c)) {
            int at = s.line;
            char w[32];
            read_word(&s, w, sizeof(w));
            if (strcmp(w, "e") == 0 && *s.p == '\'') {
                skip_quoted(&s, '\'', true);
            } else if (tokens == 0) {
                if (begins_or_ends_a_transaction(w))
                    return found(hit, at, w, strcmp(w, "start") == 0 ? " TRANSACTION" : "");
                snprintf(first, sizeof(first), "%s", w);
                line = at;
            } else if (tokens == 1 && strcmp(first, "prepare") == 0 &&
                       strcmp(w, "transaction") == 0) {
                return found(hit, line, first, " TRANSACTION");
            } else if (tokens <= 3 && strcmp(first, "create") == 0 &&
                       (strcmp(w, "function") == 0 || strcmp(w, "procedure") == 0)) {
                routine = true;
            } else if (routine && (strcmp(w, "begin") == 0 || strcmp(w, "case") == 0)) {
                atomic++;
            } else if (routine && atomic > 0 && strcmp(w, "end") == 0) {
                atomic--;
            }
            tokens++;
        } else {
            if (c == '(')
                parens++;
            else if (c == ')' && parens > 0)
                parens--;
            s.p++;
            tokens++;
        }
    }
    return false;
}
