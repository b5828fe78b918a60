/* src/exec/exec_ssh_int.h: what the ssh executor's two files share (exec_ssh.c: a run;
 * exec_ssh_host.c: the hosts). */
#ifndef EPH_EXEC_EXEC_SSH_INT_H
#define EPH_EXEC_EXEC_SSH_INT_H
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/conf.h"
#include "exec/exec.h"
#include "remote/remote.h"
#include "remote/remote_op.h"
#include "rundir/rundir.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define SSH_STATUS_MS   (20 * 1000)      /* one status or fetch ssh at most */
#define SSH_HELLO_MS    (30 * 1000)      /* the contact */
#define SSH_SHIP_MS     (30 * 60 * 1000) /* one file shipped */
#define SSH_START_MS    (60 * 1000)      /* the start of the agent */
#define SSH_BACKOFF_MAX (30 * 1000)      /* ms between tries to reach a host, at most */
#define SSH_PACK_OUT    (1u << 20)       /* eph pack's answer */
#define SSH_DOWN_TELL_S 30               /* a host is told down once it failed this long */
#define SSH_FILES_DAYS  "14" /* shipped files unused this long are removed at a contact */

struct ssh_exec;

/* A run lost on a host that did not answer: its memory stays reserved there until the host
 * answers again, then its agent is stopped and its directory removed. */
struct ssh_lost {
	int64_t id;
	uint64_t memory;
	char *rdir, *agent;
	struct ssh_lost *next;
};

enum host_st { H_NONE, H_HELLO, H_UP };

struct ssh_host {
	struct ssh_exec *se;
	char *key; /* remote_host_str: how it is named in handles and messages */
	struct remote_host rh;
	uint64_t memory, used; /* used: reserved by the runs placed here, lost ones too */
	bool configured;       /* in the current settings: new runs may be placed here */
	enum host_st st;
	char *abs;    /* DIR/<instance> on the host, absolute (the contact) */
	char *python; /* its python3's "X.Y", or NULL */
	double clock_offset;
	double down_since; /* UTC s of the first failure of this outage; 0: answering */
	bool down_told;
	char *down_why;
	int fails;
	int64_t next_try_ms;     /* monotonic: no contact before */
	struct ssh_run *waiters; /* runs waiting for the contact */
	struct ssh_lost *lost;
	uv_timer_t retry; /* tries the contact again while runs wait or lost ones are held */
	bool retry_open;
	/* a machine a cloud executor made for one run (exec_do.c): its own login key and pinned
	 * host key (own_ssh, its strings owned here), multiplexed in the run's own directory (an
	 * address may come back as another machine: no master is shared between two); nothing of
	 * it is removed or swept, the machine goes whole */
	bool cloud;
	struct remote_ssh own_ssh;
};

struct ssh_exec {
	struct executor *ex; /* NULL once destroyed: host ops in flight end quietly */
	struct conf_ssh set; /* owned copies */
	struct remote_ssh ssh;
	char *control_dir;
	struct ssh_host **hosts;
	size_t nhosts;
	int nops; /* host ops in flight, and open retry timers */
	bool dead;
	bool stopping; /* ssh_stop: no contact any more */
	/* a digitalocean executor's own state (exec_do.c), NULL for ssh; and what it adds to a
	 * run's handle */
	void *cloud;
	void (*handle_extra)(struct ssh_run *s, json_t *o);
};

enum run_step { S_PLACED, S_CONTACT, S_PACK, S_SHIP, S_START, S_RUNNING };

struct ssh_run {
	struct exec_run *r;
	struct ssh_host *h;
	uint64_t memory; /* reserved on H */
	enum run_step step;
	exec_provisioned_fn *prov_done;
	char *rdir, *agent; /* the remote run directory and agent, absolute */
	struct ssh_run *wnext;
	/* pack */
	uv_process_t pack;
	uv_pipe_t pack_out;
	struct buf pack_buf;
	int pack_open;
	bool pack_exited, pack_eof;
	int64_t pack_status;
	char **ship_local, **ship_remote, **ship_name; /* [0] agent, [1] archive, then wheels */
	size_t nship, ship_i;
	bool has_wheels;
	double prov_t0;
	/* the secrets' blob (exec_secrets_read), read right before the start: the spec goes in
	 * one ssh, then the blob in the stdin of a second that starts the agent; wiped once
	 * handed to that ssh */
	char *sblob;
	size_t slen;
	bool spec_sent; /* the first ssh is done: the next start_cb is the agent's */
	/* following */
	struct remote_op *op;  /* the one op of the run in flight, at most */
	struct remote_op *cop; /* a cancel in flight */
	bool stream_end;       /* the follower said "x": everything is here */
	int stream_err;        /* what went wrong on our side of the stream */
	int64_t last_ok_ms;    /* monotonic: the host last answered for this run */
	int64_t next_try_ms;
	int fails;
	bool cancel_wanted;
	bool lost;        /* recorded lost as unreachable: its memory stays reserved */
	bool torn;        /* teardown: nothing new starts; freed once nothing is in flight */
	bool freed;       /* reported closed */
	uv_timer_t retry; /* the last pull, tried again */
	bool retry_open;
	void *cloud; /* a digitalocean run's machine (exec_do.c), or NULL */
};

static inline int64_t
mono_ms(void)
{
	return (int64_t)(uv_hrtime() / 1000000u);
}

static inline struct ssh_exec *
sexec(const struct executor *ex)
{
	return ex->state;
}

/* The ssh settings of H: its own (a cloud machine's), else its executor's. */
static inline const struct remote_ssh *
ssh_of_host(const struct ssh_host *h)
{
	return h->cloud ? &h->own_ssh : &h->se->ssh;
}

/* exec_ssh_host.c: the executor's hosts */
struct ssh_host *ssh_host_add(struct ssh_exec *se, const struct remote_host *rh);
/* Removes cloud host H (its machine is gone, its run torn down) from SE and frees it, unless a
 * contact or its retry timer still holds it (then it stays, unused, until SE is freed). */
void ssh_host_forget(struct ssh_exec *se, struct ssh_host *h);
struct ssh_run *ssh_run_new(struct exec_run *r, struct ssh_host *h, uint64_t need);
bool ssh_fail_is_down(enum remote_fail f);
void ssh_host_answered(struct ssh_host *h);
void ssh_host_failed(struct ssh_host *h, const char *why);
void ssh_host_contact(struct ssh_host *h);
void ssh_host_remove(struct ssh_host *h, int64_t id, const char *rdir, const char *agent,
                     bool lost);
char *ssh_reason(const struct remote_result *res);
int ssh_configure(struct executor *ex, const struct conf *c, const struct conf_executor *ce,
                  struct diag *d);
void ssh_destroy(struct executor *ex);
void ssh_stop(struct executor *ex);
bool ssh_fits(struct executor *ex, uint64_t memory);
void ssh_reserve(struct executor *ex, struct exec_run *r, uint64_t memory);
void ssh_release(struct executor *ex, struct exec_run *r, uint64_t memory);

/* exec_ssh.c: a run */
struct remote_req ssh_run_req(struct ssh_run *s, int64_t timeout_ms, remote_cb cb);
/* S's backend is freed once it is torn down and nothing of it is in flight. */
void ssh_run_maybe_free(struct ssh_run *s);
int ssh_run_send_cancel(struct ssh_run *s);
/* exec_ssh_stream.c: following a run */
void ssh_stream_start(struct ssh_run *s);
void ssh_run_retry_closed(uv_handle_t *t);
void ssh_run_contacted(struct ssh_run *s, int rc, const char *why);

#endif
