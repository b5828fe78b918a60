/* src/util/xalloc.h: allocation that aborts on exhaustion (as tmux, redis and git do), so no
 * caller carries an out-of-memory branch that no test can reach. */
#ifndef EPH_UTIL_XALLOC_H
#define EPH_UTIL_XALLOC_H
#include <stddef.h>

#include "util/attr.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array of NMEMB elements of SIZE bytes, checking the multiplication. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);            /* caller frees */
char *xstrndup(const char *s, size_t n); /* caller frees */
/* Formats into a new string that the caller frees. */
char *xasprintf(const char *fmt, ...) EPH_PRINTF(1, 2);

#endif
