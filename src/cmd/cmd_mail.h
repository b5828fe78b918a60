/* src/cmd/cmd_mail.h: mail from foreground commands (no daemon running). */
#ifndef EPH_CMD_CMD_MAIL_H
#define EPH_CMD_CMD_MAIL_H
#include <stdbool.h>
#include <stdint.h>

struct cmd_ctx;
struct store;

/* After a foreground run ID has been recorded terminal (ST open for writing, ctx->conf
 * loaded): queues the run's mail in the outbox if its job's notify policy says so, then tries
 * every queued message once (at most mail.timeout in all; what fails stays queued, for the
 * next foreground command or the daemon). Prints what went wrong on stderr; never changes
 * the command's exit status. Nothing happens when ST is NULL or ID is 0. WILL_RETRY: another
 * attempt of the run follows at once (retry_on_oom: grow). */
void cmd_mail_after_run(struct cmd_ctx *ctx, struct store *st, int64_t id, bool will_retry);

#endif
