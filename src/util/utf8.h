/* src/util/utf8.h: strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), as
 * output.log's writer escapes it and its reader checks it. */
#ifndef EPH_UTIL_UTF8_H
#define EPH_UTIL_UTF8_H
#include <stdbool.h>
#include <stddef.h>

/* The length of the UTF-8 sequence starting at P[0] (N > 0 bytes available): L > 0 if valid,
 * 0 if invalid, -K if the K bytes up to the end are a valid but incomplete prefix. */
int utf8_seq(const unsigned char *p, size_t n);
/* Whether P[0..N) is valid UTF-8 as a whole. */
bool utf8_valid(const void *p, size_t n);

#endif
