/* src/util/diag.h: problems a person must read, collected (never printed by modules) and
 * printed all at once in file order, as "FILE:LINE:COL: message". */
#ifndef EPH_UTIL_DIAG_H
#define EPH_UTIL_DIAG_H
#include <stddef.h>
#include <stdio.h>

#include "util/attr.h"

struct diag_pos {
	const char *file; /* borrowed: must outlive the diag */
	int line, col;    /* 1-based; 0 = unknown */
};

struct diag_item {
	char *file; /* owned copy, NULL if none */
	int line, col;
	char *msg;
	size_t seq; /* order of arrival, to keep the sort stable */
};

struct diag {
	struct diag_item *items;
	size_t n, cap;
	size_t max; /* most items kept; further ones are counted in dropped */
	size_t dropped;
};

#define DIAG_MAX_DEFAULT 1000

void diag_init(struct diag *d);
void diag_free(struct diag *d);
void diag_error(struct diag *d, struct diag_pos at, const char *fmt, ...) EPH_PRINTF(3, 4);
size_t diag_nerrors(const struct diag *d);
/* Sorts the items by file, line, column; arrival order among equals. */
void diag_sort(struct diag *d);
/* Sorts, then prints one a line:
 * "FILE:LINE:COL: msg", "FILE: msg" when the line is unknown, or "eph: msg" without a file. */
void diag_print(struct diag *d, FILE *f);
/* Formats item I as diag_print would, without a newline; caller frees. */
char *diag_format(const struct diag *d, size_t i);
/* The messages of D (without their positions) joined by "; ", or FALLBACK when D has none;
 * at most BUF_MAX_MSG bytes. Caller frees. */
char *diag_joined(const struct diag *d, const char *fallback);

#endif
