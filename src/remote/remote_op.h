/* src/remote/remote_op.h: operations on a host over ssh, on the caller's libuv loop, never
 * blocking it: run a command, ship a file by its content hash, fetch a file's bytes from an
 * offset, measure the host's clock, and ssh's own control commands (-O check/exit). Each runs
 * OpenSSH's `ssh` with an argv (remote_argv) and an environment without an agent
 * (remote_env), in a session of its own, and ends with one call of its callback.
 * The process must ignore SIGPIPE (the daemon does): a host that hangs up while we write its
 * stdin is reported, not fatal. */
#ifndef EPH_REMOTE_REMOTE_OP_H
#define EPH_REMOTE_REMOTE_OP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "remote/remote.h"
#include "util/attr.h"

#define REMOTE_MAX_ERR       (16u << 10) /* stderr kept for messages; the rest is drained */
#define REMOTE_MAX_OUT       (1u << 20)  /* stdout kept by default (remote_run's OUT_CAP 0) */
#define REMOTE_MAX_FETCH     (4u << 20)  /* bytes one remote_fetch brings at most */
#define REMOTE_DRAIN_MS      1000        /* after ssh exited, how long its pipes may stay open */
#define REMOTE_FETCH_MISSING 44          /* remote_fetch's remote exit status for "no such file" */

struct remote_op; /* opaque; owned by the module from start to the end of its callback */

/* What an operation ended with; borrowed for the duration of the callback. */
struct remote_result {
	enum remote_fail fail;
	int status;              /* ssh's exit status (the command's, unless 255); -1 if killed */
	int signal;              /* the signal that ended ssh, else 0 */
	const char *why;         /* one line for a person (remote_why); NULL when REMOTE_OK */
	const char *fingerprint; /* REMOTE_HOST_KEY: the key the host offered, when ssh said it */
	const char *out;         /* stdout (NUL-terminated), at most the op's cap */
	size_t out_len;
	bool out_truncated; /* stdout went past the cap; the rest was drained */
	const char *err;    /* stderr, at most REMOTE_MAX_ERR */
	double elapsed_ms;  /* from the start to ssh's exit (the last ssh's, for remote_ship) */
	/* remote_ship */
	const char *remote_path; /* DIR/<sha256 of the file> */
	bool shipped;            /* false: it was there already, nothing was sent */
	/* remote_fetch */
	int64_t offset; /* the offset to fetch from next: the old one plus out_len */
	bool missing;   /* the file does not exist (yet): out is empty, offset unchanged */
	/* remote_clock: remote - local, in seconds, within +- clock_bound (half the round trip,
	 * plus a second when the host's date cannot print fractions) */
	double clock_offset, clock_bound;
};

typedef void (*remote_cb)(struct remote_op *op, const struct remote_result *r, void *data);
/* remote_stream's: LEN bytes of the command's stdout, as they come. */
typedef void (*remote_out_cb)(struct remote_op *op, const char *p, size_t len, void *data);

/* What every operation needs; SSH and HOST are copied into the op's argv at its start. */
struct remote_req {
	uv_loop_t *loop;
	const struct remote_ssh *ssh;
	const struct remote_host *host;
	int64_t timeout_ms; /* the whole operation; 0: none beyond ssh's own timeouts */
	remote_cb cb;
	void *data;
};

/* Each starter returns 0 and sets *OUT (may be NULL) to the op, whose callback is then called
 * exactly once, later, from the loop (never from within the starter); or -errno (the callback
 * is never called; *OUT NULL). The op is freed when its callback returns. */

/* Runs COMMAND (one line for the login user's shell: quote with remote_quote) with IN[0..IN_LEN)
 * on its stdin (IN NULL: /dev/null), keeping OUT_CAP bytes of stdout (0: REMOTE_MAX_OUT). */
EPH_MUST_CHECK int remote_run(const struct remote_req *q, const char *command, const void *in,
                              size_t in_len, size_t out_cap, struct remote_op **out);
/* Ships the local file LOCAL to DIR/<sha256 of its bytes> on the host unless a file is there
 * already: one ssh asks, and only when it is absent a second one uploads it to a temporary
 * name in DIR (made as needed), checks its size, gives it LOCAL's mode and moves it into place
 * (no fsync: a host crash may lose it, and the next ship sends it again). DIR may start with
 * "~/". LOCAL is read and hashed off the loop (libuv's thread pool). */
EPH_MUST_CHECK int remote_ship(const struct remote_req *q, const char *local, const char *dir,
                               struct remote_op **out);
/* As remote_run without stdin, for a command that runs as long as it has something to say:
 * its stdout goes to ON_OUT as it comes (the result's out is then empty), from the loop. */
EPH_MUST_CHECK int remote_stream(const struct remote_req *q, const char *command,
                                 remote_out_cb on_out, struct remote_op **out);
/* Fetches at most MAX (0 or past REMOTE_MAX_FETCH: REMOTE_MAX_FETCH) bytes of the remote
 * file PATH from byte OFFSET. Bytes are kept only when ssh succeeded, so that a dropped
 * connection loses nothing and, fetched again from the same offset, doubles nothing. */
EPH_MUST_CHECK int remote_fetch(const struct remote_req *q, const char *path, int64_t offset,
                                size_t max, struct remote_op **out);
/* Measures the host's clock: `date +%s.%N` there, against the local real-time clock read
 * just before ssh starts and when it exits; offset = remote - midpoint. */
EPH_MUST_CHECK int remote_clock(const struct remote_req *q, struct remote_op **out);
/* `ssh -O CTL`: "check" (is a master connection up: REMOTE_OK) or "exit" (end it). */
EPH_MUST_CHECK int remote_ctl(const struct remote_req *q, const char *ctl, struct remote_op **out);

/* The pid of the ssh the op is running now, or 0 (between its steps). */
pid_t remote_op_pid(const struct remote_op *op);
/* Ends OP: its ssh gets SIGTERM (by its pid) and the callback says REMOTE_CANCELED. Calling it
 * again, or after the ssh exited, changes nothing but the verdict. */
void remote_op_cancel(struct remote_op *op);

#endif
