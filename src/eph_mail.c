/* src/eph_mail.c: `eph-mail`, the process that sends mail (internal: eph and the daemon run
 * it; see docs/mail.md).
 *
 *   eph-mail send [--all] [--state DIR] [--deadline SECONDS]
 *   eph-mail test ADDRESS
 *
 * Both read the jobs file's mail section, already validated, as one JSON object on stdin
 * (notify/mailproc.h): nothing secret is ever in argv, and the password is read here, from
 * mail.password_file or mail.password_env. It is the only program of ephemeron linked with
 * libcurl, whose ~25 libraries (TLS, Kerberos, LDAP, ssh2...) cost every process that maps
 * them 4.3 MiB of RSS: the daemon runs this for a few seconds instead of carrying them.
 *
 * send: one pass over the outbox of the state directory (--state, else $EPH_STATE): the
 *   messages due now, every queued one with --all, none started after --deadline seconds;
 *   one JSON line per attempt on stdout, then a last line with the counts. Exit 0 whatever
 *   the server said (the outbox records it), 1 when it could not work at all (a JSON line
 *   {"error": ...} says why), 2 for bad input.
 * test: one test message to ADDRESS, not through the outbox; what `eph mail test` prints,
 *   and its exit status (0 sent, 1 not sent, 2 bad settings). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "conf/conf.h"
#include "notify/mailproc.h"
#include "notify/notify.h"
#include "notify/sender.h"
#include "notify/smtp.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define EXIT_BROKEN 1
#define EXIT_INPUT  2

static const char usage[] = "usage: eph-mail send [--all] [--state DIR] [--deadline SECONDS]\n"
                            "       eph-mail test ADDRESS\n";

/* Prints LINE (taken) and a line end on stdout, at once: the reader acts on each line. */
static void
put_line(char *line)
{
	printf("%s\n", line);
	fflush(stdout);
	free(line);
}

static void
event(void *arg, bool warn, int64_t run, const char *msg)
{
	(void)arg;
	put_line(mailproc_event_line(warn, run, msg));
}

static void
put_error(const struct diag *d, const char *fallback)
{
	char *msg = diag_joined(d, fallback);

	put_line(mailproc_error_line(msg));
	free(msg);
}

/* Reads stdin whole and parses the settings into *M. */
static int
read_conf(struct conf_mail *m, struct diag *d)
{
	struct buf in;
	int rc;

	memset(m, 0, sizeof(*m));
	buf_init(&in, BUF_MAX_CONF);
	if ((rc = fsio_read_fd(STDIN_FILENO, &in)) == -E2BIG)
		diag_error(d, (struct diag_pos){ 0 }, "mail settings: more than %zu bytes",
		           in.limit);
	else if (rc < 0)
		diag_error(d, (struct diag_pos){ 0 }, "mail settings: cannot read stdin: %s",
		           strerror(-rc));
	if (rc == 0)
		rc = mailproc_conf_parse(in.data != NULL ? in.data : "", in.len, m, d);
	buf_free(&in);
	return rc;
}

static int
mail_send(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "state", required_argument, NULL, 's' },
		{ "deadline", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *state = getenv("EPH_STATE");
	double deadline = 3600; /* each message is bounded by mail.timeout; a long queue... */
	struct notify_send_result res = { 0 };
	struct conf_mail m;
	struct store *st = NULL;
	struct diag d;
	char *db = NULL, *end;
	bool all = false;
	int c, rc, ret = EXIT_BROKEN;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a') {
			all = true;
		} else if (c == 's') {
			state = optarg;
		} else if (c == 'd') {
			errno = 0;
			deadline = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' || !(deadline >= 0)) {
				fprintf(stderr,
				        "eph-mail: --deadline: not a number of seconds: %s\n",
				        optarg);
				return EXIT_INPUT;
			}
		} else {
			fputs(usage, stderr);
			return EXIT_INPUT;
		}
	}
	if (optind != argc || state == NULL || *state == '\0') {
		fputs(optind != argc ? usage
		                     : "eph-mail: no state directory (--state or EPH_STATE)\n",
		      stderr);
		return EXIT_INPUT;
	}
	diag_init(&d);
	if (read_conf(&m, &d) < 0) {
		put_error(&d, "bad mail settings");
		diag_free(&d);
		return EXIT_INPUT;
	}
	db = xasprintf("%s/eph.db", state);
	if ((rc = fsio_mkdirs(state, 0700)) < 0) {
		diag_error(&d, (struct diag_pos){ 0 }, "cannot create %s: %s", state,
		           strerror(-rc));
		put_error(&d, "cannot create the state directory");
	} else if (store_open(db, &st, &d) < 0) {
		put_error(&d, "cannot open the store");
	} else if (notify_send_pass(st, &m, (double)time(NULL) + deadline, all, event, NULL, &res,
	                            &d) < 0) {
		put_error(&d, "the outbox failed");
	} else {
		put_line(mailproc_result_line(res.sent, res.retried, res.given_up, res.last_error));
		ret = 0;
	}
	notify_send_result_clear(&res);
	store_close(st);
	free(db);
	diag_free(&d);
	mailproc_conf_clear(&m);
	curl_global_cleanup();
	return ret;
}

static int
mail_test(const char *addr)
{
	char *host = notify_hostname(), *msgid = NULL, *subject = NULL, *body = NULL;
	char *password = NULL, *to[1];
	struct smtp_xfer x = { 0 };
	struct conf_mail m;
	struct buf msg;
	struct diag d;
	int rc, ret = EXIT_BROKEN;
	time_t now = time(NULL);
	CURLcode cres;

	buf_init(&msg, BUF_MAX_MSG);
	diag_init(&d);
	if (read_conf(&m, &d) < 0 || m.smtp == NULL || m.from == NULL) {
		if (d.n == 0)
			diag_error(&d, (struct diag_pos){ 0 },
			           "mail settings: no mail.smtp or mail.from");
		diag_print(&d, stderr);
		ret = EXIT_INPUT;
		goto out;
	}
	to[0] = (char *)addr;
	msgid = notify_msgid(host, now);
	subject = xasprintf("[eph] test message from %s", host);
	body = xasprintf("This is a test message from ephemeron (eph mail test) on %s.\n\n"
	                 "Server: %s\nFrom:   %s\n\n"
	                 "If you read this, mail about runs will reach you.\n",
	                 host, m.smtp, m.from);
	rc = notify_message(&(struct notify_hdr){ m.from, to, 1, subject, now, msgid }, body, &msg);
	if (rc < 0) {
		fprintf(stderr, "eph mail test: cannot build the message: %s\n", strerror(-rc));
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "eph mail test: libcurl could not be initialised\n");
		goto out;
	}
	if (smtp_password(&m, &password, &d) < 0 ||
	    smtp_xfer_init(&x, &m, password, m.from, addr, msg.data, msg.len, &d) < 0) {
		diag_print(&d, stderr);
		ret = EXIT_INPUT;
		goto out;
	}
	cres = curl_easy_perform(x.easy);
	if (cres == CURLE_OK) {
		printf("sent a test message to %s through %s\n", addr, m.smtp);
		ret = 0;
	} else {
		char *why = smtp_xfer_error(&x, cres);

		fprintf(stderr, "eph mail test: not sent to %s through %s: %s\n", addr, m.smtp,
		        why);
		free(why);
	}
out:
	smtp_xfer_cleanup(&x);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	mailproc_conf_clear(&m);
	diag_free(&d);
	buf_free(&msg);
	free(host);
	free(msgid);
	free(subject);
	free(body);
	curl_global_cleanup();
	return ret;
}

static void
mail_stop(int sig)
{
	(void)sig;
	notify_send_stop();
}

int
main(int argc, char **argv)
{
	struct sigaction sa;

	/* whoever reads our stdout may be gone (a daemon killed): writes fail, we go on */
	signal(SIGPIPE, SIG_IGN);
	/* a stop (the daemon's) starts no further attempt, but lets those going on end: a
	 * message the server accepted is recorded sent, not sent again after its lease */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mail_stop;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("%s\nSends ephemeron's mail; eph and its daemon run it (see docs/mail.md).\n"
		       "The mail settings come as one JSON object on stdin.\n",
		       usage);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "send") == 0)
		return mail_send(argc - 1, argv + 1);
	if (argc == 3 && strcmp(argv[1], "test") == 0 && argv[2][0] != '-')
		return mail_test(argv[2]);
	fputs(usage, stderr);
	return EXIT_INPUT;
}
