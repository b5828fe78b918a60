/* src/exec/exec_do_proc.h: a child process on the loop, for the digitalocean executor's
 * helpers (eph-cloud, ssh-keygen): its stdin given at once, its stdout kept up to a cap, its
 * stderr where ours goes; one callback once it has exited and its pipes are closed. Never
 * blocks the loop. */
#ifndef EPH_EXEC_EXEC_DO_PROC_H
#define EPH_EXEC_EXEC_DO_PROC_H
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/attr.h"

struct do_proc;

/* P has ended: STATUS its exit status (or -signal), OUT[0..LEN) its stdout (NUL-terminated;
 * borrowed until the callback returns). P is freed once the callback returns. */
typedef void do_proc_cb(struct do_proc *p, int64_t status, const char *out, size_t len, void *data);

/* Spawns ARGV[0] (a path) with ARGV, IN[0..IN_LEN) on its stdin (copied; NULL: nothing),
 * keeping CAP bytes of its stdout. 0 and *OUT (may be NULL) the process: CB is called exactly
 * once, later, from the loop; or -errno (CB never called). */
EPH_MUST_CHECK int do_proc_start(uv_loop_t *loop, char *const argv[], const char *in, size_t in_len,
                                 size_t cap, do_proc_cb *cb, void *data, struct do_proc **out);
/* Asks P to end (SIGTERM); its callback still comes. */
void do_proc_kill(struct do_proc *p);
/* P's callback will not be called: it ends on its own, and is freed then. */
void do_proc_abandon(struct do_proc *p);

#endif
