/* src/daemon/dlog.h: the daemon's own log, on stderr, one line per event, so that journald
 * and docker-style collectors take it as it is:
 *   2026-11-25T12:00:00.003Z info run 12 fetch-prices started (schedule 12:00:00)
 * or, with --log-json, one JSON object a line:
 *   {"t":"2026-11-25T12:00:00.003Z","level":"info","run":12,"job":"fetch-prices","msg":"..."} */
#ifndef EPH_DAEMON_DLOG_H
#define EPH_DAEMON_DLOG_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/attr.h"

enum dlog_level { DLOG_INFO, DLOG_WARN, DLOG_ERROR };

/* Where the log goes (stderr by default) and in which form. */
void dlog_setup(FILE *f, bool json);
/* Logs one event: RUN (0 = none) and JOB (NULL = none) identify what it is about. */
void dlog(enum dlog_level lvl, int64_t run, const char *job, const char *fmt, ...) EPH_PRINTF(4, 5);
/* Writes instant T (UTC milliseconds) as "2026-11-25T12:00:00.003Z" into OUT (>= 32 bytes). */
void dlog_format_time(int64_t t_ms, char *out, size_t n);

#endif
