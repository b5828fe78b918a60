/* src/util/instance.h: this scheduler's instance id, made once and kept in its state
 * directory (STATE/instance): 16 lowercase hex digits from getrandom(2). Remote run
 * directories are DIR/<instance>/runs/<id>, so two schedulers never collide on a host. */
#ifndef EPH_UTIL_INSTANCE_H
#define EPH_UTIL_INSTANCE_H
#include "util/attr.h"

struct diag;

#define INSTANCE_ID_LEN 16
#define INSTANCE_FILE   "instance" /* in the state directory */

/* Reads the id of the scheduler whose state directory is STATE into ID. 0; -ENOENT when none
 * was made yet; otherwise -errno (or -EINVAL for a file that does not hold an id), described
 * in D. */
EPH_MUST_CHECK int instance_read(const char *state, char id[INSTANCE_ID_LEN + 1], struct diag *d);
/* As instance_read, but makes the id (and STATE, mode 0700) when there is none yet. Of
 * processes that make it at the same time, one's id is kept and all of them return it. */
EPH_MUST_CHECK int instance_get(const char *state, char id[INSTANCE_ID_LEN + 1], struct diag *d);
/* Whether S is an id: INSTANCE_ID_LEN lowercase hex digits, then NUL. */
int instance_id_ok(const char *s);

#endif
