/* src/util/buf.h: a growable byte buffer with a cap, as curl's dynbuf. No fixed-size buffer
 * meets user input. The caps several components share are named here; a cap only one module
 * uses is named in that module (SMTP_MAX_REPLY in notify/smtp.h, GITRUN_MAX_OUT in
 * source/gitrun.h, EXEC_MAX_PENDING in exec/exec.c, VENV_VERSION_MAX in agent/venv.c, ...). */
#ifndef EPH_UTIL_BUF_H
#define EPH_UTIL_BUF_H
#include <stdarg.h>
#include <stddef.h>

#include "util/attr.h"

#define BUF_MAX_CONF      (4u << 20)   /* a jobs file: 4 MiB is far beyond any real one */
#define BUF_MAX_JSON      (16u << 20)  /* spec.json, result.json, a control message */
#define BUF_MAX_LINE      (64u << 10)  /* one output line before it is split */
#define BUF_MAX_MSG       (1u << 20)   /* a message, a diagnostic, a rendered table row */
#define BUF_MAX_INSTANCE  64u          /* STATE/instance: an id and a newline */
#define BUF_MAX_UNLIMITED ((size_t)-1) /* only for data whose size we produce ourselves */

struct buf {
	char *data; /* NUL-terminated when len > 0 or after buf_cstr() */
	size_t len;
	size_t cap;   /* allocated */
	size_t limit; /* most bytes it may ever hold */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);  /* releases the storage; the buf may be reused after buf_init */
void buf_reset(struct buf *b); /* len = 0, storage kept */
/* Appends N bytes; -E2BIG (and nothing appended) past the limit. */
EPH_MUST_CHECK int buf_append(struct buf *b, const void *p, size_t n);
EPH_MUST_CHECK int buf_puts(struct buf *b, const char *s);
EPH_MUST_CHECK int buf_putc(struct buf *b, char c);
EPH_MUST_CHECK int buf_printf(struct buf *b, const char *fmt, ...) EPH_PRINTF(2, 3);
EPH_MUST_CHECK int buf_vprintf(struct buf *b, const char *fmt, va_list ap) EPH_PRINTF(2, 0);
const char *buf_cstr(struct buf *b); /* borrowed; "" when empty */
char *buf_steal(struct buf *b);      /* caller frees; the buf is left empty */

#endif
