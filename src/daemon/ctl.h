/* src/daemon/ctl.h: the daemon's control socket, STATE/eph.sock (mode 0600), from the
 * client's side. The protocol is line-delimited JSON, one request a line, one reply a line:
 *   {"cmd":"run","job":"NAME"}     -> {"ok":true,"run":ID}
 *   {"cmd":"status"}               -> {"ok":true,"pid":N,"conf":PATH,"jobs":[...]}
 *   {"cmd":"cancel","run":ID}      -> {"ok":true,"run":ID}
 * and {"ok":false,"error":"..."} for anything that failed. */
#ifndef EPH_DAEMON_CTL_H
#define EPH_DAEMON_CTL_H
#include <sys/types.h>

#include <jansson.h>

#include "util/attr.h"

#define CTL_SOCKET "eph.sock"
#define CTL_LOCK   "eph.lock"

/* The socket's path in STATE_DIR (caller frees), or NULL when it would not fit in a
 * sockaddr_un. */
char *ctl_socket_path(const char *state_dir);
/* Sends REQ to the daemon of STATE_DIR and waits (at most 30 s) for its reply: 0 and *RESP
 * (json_decref). -ENOENT or -ECONNREFUSED when no daemon is running there, -ENAMETOOLONG,
 * -ETIMEDOUT, -EPROTO for a reply that is not JSON, or another -errno. */
EPH_MUST_CHECK int ctl_request(const char *state_dir, json_t *req, json_t **resp);
/* Whether a daemon holds STATE_DIR's lock: 1 and *PID (0 if unreadable), 0 if none, -errno. */
EPH_MUST_CHECK int ctl_lock_holder(const char *state_dir, pid_t *pid);

#endif
