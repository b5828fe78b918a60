/* src/cmd/cmd_mail.h: mail from foreground commands (no daemon running). */
#ifndef EPH_CMD_CMD_MAIL_H
#define EPH_CMD_CMD_MAIL_H
#include <stdbool.h>
#include <stdint.h>

struct buf;
struct cmd_ctx;
struct store;
struct store_run;

/* Runs the helper NAME (eph-mail, eph-upload) at PATH (taken; NULL when eph's own path is
 * unknown) as `PATH ARGS[1]...` (ARGS[0] is set here to PATH), with INPUT (taken) on its
 * stdin, and waits for it. With OUT, its stdout is read into OUT; else it writes to eph's
 * own. Its stderr is eph's. Returns its exit status, or -1 after saying why on stderr
 * (WHO: ...) when it could not be run or died of a signal. */
int cmd_helper_run(const char *who, const char *name, char *path, char *input, char **args,
                   struct buf *out);
/* After a foreground run ID has been recorded terminal (ST open for writing, ctx->conf
 * loaded), before its mail: queues the upload of its results when the configuration has a
 * results_store, and runs eph-upload for it once; says on stderr what became of it (uploaded,
 * to be retried, refused: then a mail about it is queued). Never changes the exit status. */
void cmd_upload_after_run(struct cmd_ctx *ctx, struct store *st, int64_t id);
/* `eph results RUN --upload` (ctx->conf loaded, with a results_store; ST open for writing): run
 * R's upload queued again (a refused one as new, to the current url) and eph-upload run for it
 * once. EPH_EXIT_OK when it is uploaded (or was already), EPH_EXIT_FAIL otherwise. */
int cmd_upload_again(struct cmd_ctx *ctx, struct store *st, const struct store_run *r);

/* After a foreground run ID has been recorded terminal (ST open for writing, ctx->conf
 * loaded): queues the run's mail in the outbox if its job's notify policy says so, then tries
 * every queued message once (at most mail.timeout in all; what fails stays queued, for the
 * next foreground command or the daemon). Prints what went wrong on stderr; never changes
 * the command's exit status. Nothing happens when ST is NULL or ID is 0. WILL_RETRY: another
 * attempt of the run follows at once (retry_on_oom: grow). */
void cmd_mail_after_run(struct cmd_ctx *ctx, struct store *st, int64_t id, bool will_retry);

#endif
