/* src/notify/notify.c: the notify policy, the message about a run, and queueing it. */
#include "notify/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/base64.h> /* not libcrypto: 1.4 MiB of RSS in eph and its daemon */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "rundir/logrec.h"
#include "rundir/rundir.h"
#include "rundir/runprofile.h"
#include "source/source.h"
#include "store/outbox.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

#define NOTIFY_CHART_WIDTH 60
#define NOTIFY_MAX_LINE    998 /* RFC 5322 2.1.1, without CRLF */
#define NOTIFY_GIT_MS      5000

bool
notify_state_unsuccessful(enum store_state st)
{
	switch (st) {
	case STORE_FAILED:
	case STORE_OOM:
	case STORE_TIMEOUT:
	case STORE_KILLED:
	case STORE_LOST:
		return true;
	default:
		return false;
	}
}

enum notify_event
notify_decide(const struct conf_notify *n, const struct store_run *r, const struct store_run *prev,
              bool will_retry)
{
	unsigned on = n->on;

	if (n->email.n == 0 || !store_state_terminal(r->state) || r->state == STORE_SKIPPED)
		return NOTIFY_NONE;
	if (r->state == STORE_SUCCEEDED) {
		if ((on & CONF_NOTIFY_RECOVERED) && prev != NULL &&
		    notify_state_unsuccessful(prev->state))
			return NOTIFY_RECOVERED;
		return (on & (CONF_NOTIFY_SUCCESS | CONF_NOTIFY_ALWAYS)) ? NOTIFY_OUTCOME
		                                                         : NOTIFY_NONE;
	}
	if (r->state == STORE_CANCELLED)
		return (on & CONF_NOTIFY_ALWAYS) ? NOTIFY_OUTCOME : NOTIFY_NONE;
	/* unsuccessful */
	if (will_retry && !n->on_each_attempt)
		return NOTIFY_NONE;
	if (on & (CONF_NOTIFY_FAILURE | CONF_NOTIFY_ALWAYS))
		return NOTIFY_OUTCOME;
	if ((r->state == STORE_OOM && (on & CONF_NOTIFY_OOM)) ||
	    (r->state == STORE_TIMEOUT && (on & CONF_NOTIFY_TIMEOUT)) ||
	    (r->state == STORE_LOST && (on & CONF_NOTIFY_LOST)))
		return NOTIFY_OUTCOME;
	return NOTIFY_NONE;
}

bool
notify_prev_counts(const struct store_run *r, const struct store_run *p, int *chain,
                   bool on_each_attempt)
{
	if (!store_state_terminal(p->state))
		return false;
	if (*chain >= 1 && p->attempt == *chain) {
		/* an earlier attempt of R's own retries: its failure was not mailed */
		(*chain)--;
		if (!on_each_attempt)
			return false;
	} else {
		*chain = 0;
	}
	(void)r;
	return p->state != STORE_SKIPPED && p->state != STORE_CANCELLED;
}

/* "exit 3", "SIGKILL"... the short why of an unsuccessful run, into OUT. */
static void
short_why(const struct store_run *r, char *out, size_t n)
{
	out[0] = '\0';
	if (r->state == STORE_FAILED && r->exit_code >= 0)
		snprintf(out, n, "exit %d", r->exit_code);
	else if (r->signal > 0 && r->state != STORE_OOM && r->state != STORE_TIMEOUT)
		snprintf(out, n, "signal %d", r->signal);
}

static double
run_duration(const struct store_run *r)
{
	return r->ended_at > 0 && r->started_at > 0 ? r->ended_at - r->started_at : 0;
}

/* Replaces every control byte of S (a value from the store) by a space, so that nothing we
 * put in a header or a one-line field can break a line. */
static void
flatten(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

char *
notify_subject(const struct notify_info *in)
{
	const struct store_run *r = in->run;
	char dur[32], peak[32], lim[32], why[48];
	struct buf b;
	bool paren = false;

	buf_init(&b, BUF_MAX_MSG);
	units_format_duration(run_duration(r), dur, sizeof(dur));
	short_why(r, why, sizeof(why));
	if (buf_printf(&b, "[eph] %s: ", r->job != NULL ? r->job : "?") < 0)
		goto out;
	if (in->event == NOTIFY_RECOVERED) {
		if (buf_printf(&b, "recovered, succeeded after %s", dur) < 0)
			goto out;
	} else if (r->state == STORE_LOST || r->state == STORE_CANCELLED || run_duration(r) <= 0) {
		if (buf_puts(&b, store_state_name(r->state)) < 0)
			goto out;
	} else if (buf_printf(&b, "%s after %s", store_state_name(r->state), dur) < 0) {
		goto out;
	}
	if (why[0] != '\0') {
		if (buf_printf(&b, " (%s", why) < 0)
			goto out;
		paren = true;
	}
	if (r->peak_bytes >= 0) {
		units_format_size((uint64_t)r->peak_bytes, peak, sizeof(peak));
		if (buf_printf(&b, "%speak %s", paren ? "; " : " (", peak) < 0)
			goto out;
		paren = true;
		if (r->memory_limit > 0) {
			units_format_size((uint64_t)r->memory_limit, lim, sizeof(lim));
			if (buf_printf(&b, " / limit %s", lim) < 0)
				goto out;
		}
	}
	if (paren && buf_putc(&b, ')') < 0)
		goto out;
out:;
	char *s = buf_steal(&b);

	if (s == NULL)
		s = xstrdup("[eph]");
	flatten(s);
	buf_free(&b);
	return s;
}

static void
fmt_time(double t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(out, n, "-");
	else
		strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int
notify_chart(const struct store_sample *s, size_t n, size_t width, struct buf *out)
{
	static const char *const bars[] = { "\u2581", "\u2582", "\u2583", "\u2584",
		                            "\u2585", "\u2586", "\u2587", "\u2588" };
	double t0, t1;
	int64_t max = 0;
	int rc;

	if (n == 0 || width == 0)
		return -ENOENT;
	t0 = s[0].t;
	t1 = s[n - 1].t;
	for (size_t i = 0; i < n; i++)
		if (s[i].bytes > max)
			max = s[i].bytes;
	if (n < width)
		width = n;
	for (size_t c = 0; c < width; c++) {
		int64_t hi = -1;

		for (size_t i = 0; i < n; i++) {
			size_t col = t1 > t0 ? (size_t)((s[i].t - t0) / (t1 - t0) * (double)width)
			                     : i * width / n;

			if (col >= width)
				col = width - 1;
			if (col == c && s[i].bytes > hi)
				hi = s[i].bytes;
		}
		if (hi < 0) {
			rc = buf_putc(out, ' ');
		} else {
			size_t k = max > 0 ? (size_t)((double)hi / (double)max * 7.0 + 0.5) : 0;

			rc = buf_puts(out, bars[k > 7 ? 7 : k]);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
notify_body(const struct notify_info *in, struct buf *b)
{
	const struct store_run *r = in->run;
	char t[64], dur[32], peak[32], lim[32], *prof;
	int rc;

	units_format_duration(run_duration(r), dur, sizeof(dur));
	if (in->event == NOTIFY_RECOVERED &&
	    (rc = buf_puts(b, "The job succeeded again after unsuccessful runs.\n\n")) < 0)
		return rc;
	if ((rc = buf_printf(b, "Job:        %s\n", r->job != NULL ? r->job : "?")) < 0 ||
	    (rc = buf_printf(b, "Outcome:    %s", store_state_name(r->state))) < 0)
		return rc;
	if (r->reason != NULL && (rc = buf_printf(b, ": %s", r->reason)) < 0)
		return rc;
	if ((rc = buf_printf(b, "\nTrigger:    %s\nAttempt:    %d\n",
	                     store_trigger_name(r->trigger), r->attempt)) < 0)
		return rc;
	fmt_time((double)r->scheduled_at, t, sizeof(t));
	if ((rc = buf_printf(b, "Scheduled:  %s\n", t)) < 0)
		return rc;
	fmt_time(r->started_at, t, sizeof(t));
	if ((rc = buf_printf(b, "Started:    %s\nDuration:   %s\n", t, dur)) < 0)
		return rc;
	if (r->peak_bytes >= 0) {
		units_format_size((uint64_t)r->peak_bytes, peak, sizeof(peak));
		if ((rc = buf_printf(b, "Memory:     peak %s", peak)) < 0)
			return rc;
		if (r->memory_limit > 0) {
			units_format_size((uint64_t)r->memory_limit, lim, sizeof(lim));
			if ((rc = buf_printf(b, " / limit %s (%.0f%%)", lim,
			                     100.0 * (double)r->peak_bytes /
			                             (double)r->memory_limit)) < 0)
				return rc;
		}
		if (r->enforced != NULL && (rc = buf_printf(b, ", %s", r->enforced)) < 0)
			return rc;
		if ((rc = buf_putc(b, '\n')) < 0)
			return rc;
	}
	if (r->commit_id != NULL) {
		if ((rc = buf_printf(b, "Commit:     %s", r->commit_id)) < 0)
			return rc;
		if (in->commit_subject != NULL &&
		    (rc = buf_printf(b, " %s", in->commit_subject)) < 0)
			return rc;
		if ((rc = buf_putc(b, '\n')) < 0)
			return rc;
	}
	if ((rc = buf_printf(b, "Host:       %s (executor %s)\n", in->host != NULL ? in->host : "?",
	                     r->executor != NULL ? r->executor : "local")) < 0)
		return rc;
	if (r->warning != NULL && (rc = buf_printf(b, "Warning:    %s\n", r->warning)) < 0)
		return rc;
	if ((prof = runprofile_text(r->run_dir, r->peak_bytes > 0 ? (uint64_t)r->peak_bytes : 0,
	                            "  ")) != NULL) {
		rc = buf_printf(b, "\nWhere the memory went (tracemalloc, highest snapshot):\n%s",
		                prof);
		free(prof);
		if (rc < 0)
			return rc;
	}
	if (in->nsamples > 0) {
		units_format_size((uint64_t)(r->peak_bytes > 0 ? r->peak_bytes : 0), peak,
		                  sizeof(peak));
		if ((rc = buf_printf(b, "\nMemory over time (%zu samples, top = %s):\n  ",
		                     in->nsamples, peak)) < 0 ||
		    (rc = notify_chart(in->samples, in->nsamples, NOTIFY_CHART_WIDTH, b)) < 0 ||
		    (rc = buf_putc(b, '\n')) < 0)
			return rc;
	}
	if (in->log_tail != NULL && in->log_tail[0] != '\0') {
		if ((rc = buf_printf(b, "\nThe last lines of the log (at most %d):\n\n",
		                     NOTIFY_LOG_LINES)) < 0 ||
		    (rc = buf_puts(b, in->log_tail)) < 0)
			return rc;
		if (b->len > 0 && b->data[b->len - 1] != '\n' && (rc = buf_putc(b, '\n')) < 0)
			return rc;
	}
	return buf_printf(b, "\nThe whole run: eph show %lld\nIts log:       eph logs %lld\n",
	                  (long long)r->id, (long long)r->id);
}

/* notify_log_tail's lines so far: their text, joined (a record that no newline followed is
 * continued by the next one), and where each begins. */
struct log_tail {
	struct buf all;
	size_t *starts, nlines, cap;
	bool open_line;
};

static int
tail_record(const struct logrec *r, void *arg)
{
	struct log_tail *t = arg;
	char *text = xmalloc(r->len + 1);

	if (!t->open_line) {
		if (t->nlines == t->cap) {
			t->cap = t->cap != 0 ? t->cap * 2 : 64;
			t->starts = xreallocarray(t->starts, t->cap, sizeof(*t->starts));
		}
		t->starts[t->nlines++] = t->all.len;
	}
	/* "\\" decoded, other escapes kept: no byte of the output reaches the mail raw */
	if (buf_append(&t->all, text, logrec_unescape(r->text, r->len, false, text)) < 0 ||
	    (!r->more && buf_putc(&t->all, '\n') < 0))
		abort(); /* BUF_MAX_UNLIMITED */
	free(text);
	t->open_line = r->more;
	return 0;
}

char *
notify_log_tail(const char *log, size_t len, size_t max_lines, bool from_middle)
{
	const char *p = log, *end = log + len;
	struct log_tail t = { 0 };
	struct buf out;
	char *res;

	buf_init(&t.all, BUF_MAX_UNLIMITED);
	if (from_middle) {
		const char *nl = memchr(p, '\n', len);

		p = nl != NULL ? nl + 1 : end;
	}
	(void)logrec_foreach(p, (size_t)(end - p), tail_record, &t, NULL, NULL);
	buf_init(&out, BUF_MAX_UNLIMITED);
	if (t.nlines > 0) {
		size_t first = t.nlines > max_lines ? t.nlines - max_lines : 0;

		if (buf_append(&out, t.all.data + t.starts[first], t.all.len - t.starts[first]) < 0)
			abort();
		if (t.open_line && buf_putc(&out, '\n') < 0)
			abort();
	}
	res = out.len > 0 ? buf_steal(&out) : xstrdup("");
	buf_free(&out);
	buf_free(&t.all);
	free(t.starts);
	return res;
}

/* true when S holds a byte that may not stand in a header value. */
static bool
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Appends SUBJECT as RFC 2047 encoded-words (UTF-8, B), each at most 75 characters, folded
 * onto continuation lines, never splitting a UTF-8 sequence. */
static int
put_encoded_subject(struct buf *b, const char *s)
{
	size_t len = strlen(s), i = 0;
	bool first = true;
	int rc;

	while (i < len) {
		/* 45 bytes of text make 60 base64 characters: "=?UTF-8?B?" + 60 + "?=" = 72 */
		size_t n = len - i > 45 ? 45 : len - i;
		char enc[BASE64_ENCODE_RAW_LENGTH(45) + 1];

		while (i + n < len && n > 0 && ((unsigned char)s[i + n] & 0xc0) == 0x80)
			n--; /* do not end inside a sequence */
		if (n == 0)
			n = len - i > 45 ? 45 : len - i;
		base64_encode_raw(enc, n, (const uint8_t *)s + i);
		enc[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
		if ((rc = buf_printf(b, "%s=?UTF-8?B?%s?=", first ? "" : "\r\n ", enc)) < 0)
			return rc;
		first = false;
		i += n;
	}
	return 0;
}

/* Appends body text as quoted-printable (RFC 2045 6.7) with CRLF line ends; LINES are
 * LF-separated. */
static int
put_qp(struct buf *b, const char *body)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	int rc;

	for (const char *p = body; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		char enc[4];
		size_t n;

		if (c == '\n') {
			if ((rc = buf_puts(b, "\r\n")) < 0)
				return rc;
			col = 0;
			continue;
		}
		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && p[1] != '\n' && p[1] != '\0')) {
			enc[0] = (char)c;
			n = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			n = 3;
		}
		if (col + n > 75) {
			if ((rc = buf_puts(b, "=\r\n")) < 0)
				return rc;
			col = 0;
		}
		if ((rc = buf_append(b, enc, n)) < 0)
			return rc;
		col += n;
	}
	return 0;
}

int
notify_message(const struct notify_hdr *h, const char *body, struct buf *b)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char *norm;
	size_t nlen = 0, line = 0, longest = 0;
	struct tm tm;
	int rc;

	if (h->from == NULL || h->subject == NULL || h->msgid == NULL || h->nto == 0 ||
	    has_ctl(h->from) || has_ctl(h->subject) || has_ctl(h->msgid))
		return -EINVAL;
	for (size_t i = 0; i < h->nto; i++)
		if (has_ctl(h->to[i]))
			return -EINVAL;
	if (gmtime_r(&h->date, &tm) == NULL)
		return -EINVAL;
	/* the body with CR, LF and CRLF all made LF (put as CRLF below) */
	norm = xmalloc(strlen(body) + 1);
	for (const char *p = body; *p != '\0'; p++) {
		if (*p == '\r') {
			if (p[1] == '\n')
				p++;
			norm[nlen++] = '\n';
		} else {
			norm[nlen++] = *p;
		}
		if (norm[nlen - 1] == '\n')
			line = 0;
		else if (++line > longest)
			longest = line;
	}
	norm[nlen] = '\0';
	rc = buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
	                tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	                tm.tm_sec);
	if (rc < 0 ||
	    (rc = buf_printf(b, "Message-ID: %s\r\nFrom: %s\r\nTo: ", h->msgid, h->from)) < 0)
		goto out;
	for (size_t i = 0; i < h->nto; i++)
		if ((rc = buf_printf(b, "%s%s", i > 0 ? ",\r\n " : "", h->to[i])) < 0)
			goto out;
	if ((rc = buf_puts(b, "\r\nSubject: ")) < 0)
		goto out;
	if (is_ascii(h->subject) && strlen(h->subject) < 900)
		rc = buf_puts(b, h->subject);
	else
		rc = put_encoded_subject(b, h->subject);
	if (rc < 0)
		goto out;
	rc = buf_printf(b,
	                "\r\nMIME-Version: 1.0\r\n"
	                "Content-Type: text/plain; charset=UTF-8\r\n"
	                "Content-Transfer-Encoding: %s\r\n"
	                "Auto-Submitted: auto-generated\r\n"
	                "X-Mailer: ephemeron " EPH_VERSION "\r\n\r\n",
	                longest > NOTIFY_MAX_LINE ? "quoted-printable" : "8bit");
	if (rc < 0)
		goto out;
	if (longest > NOTIFY_MAX_LINE) {
		rc = put_qp(b, norm);
	} else {
		for (const char *p = norm; *p != '\0' && rc == 0; p++)
			rc = *p == '\n' ? buf_puts(b, "\r\n") : buf_putc(b, *p);
	}
	if (rc == 0 && nlen > 0 && norm[nlen - 1] != '\n')
		rc = buf_puts(b, "\r\n");
out:
	free(norm);
	return rc;
}

char *
notify_msgid(const char *host, time_t now)
{
	unsigned char r[12];
	char hex[25];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		/* no entropy source: the pid and a clock still make it unique here */
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(hex, sizeof(hex), "%08x%016llx", (unsigned)getpid(),
		         (unsigned long long)ts.tv_nsec);
	} else {
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(hex + 2 * i, 3, "%02x", r[i]);
	}
	return xasprintf("<eph.%lld.%s@%s>", (long long)now, hex, host);
}

char *
notify_hostname(void)
{
	char name[256];

	if (gethostname(name, sizeof(name)) != 0 || name[0] == '\0')
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	for (char *p = name; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == '>' || *p == '<' || *p == '@' || *p == 0x7f)
			*p = '-';
	return xstrdup(name);
}

/* The job's previous run that counts for `recovered`, into *PREV; false if none. */
static bool
find_prev(struct store *s, const struct store_run *r, bool on_each_attempt, struct store_run *prev)
{
	struct store_run *runs = NULL;
	size_t n = 0;
	int chain = r->attempt - 1;
	bool found = false;

	/* newest first; a job's last 200 runs are plenty to find the one before */
	if (store_runs_list(s, r->job, 200, &runs, &n) < 0)
		return false;
	for (size_t i = 0; i < n && !found; i++) {
		if (runs[i].id >= r->id)
			continue;
		if (notify_prev_counts(r, &runs[i], &chain, on_each_attempt)) {
			*prev = runs[i];
			store_run_init(&runs[i]);
			found = true;
		}
	}
	store_runs_free(runs, n);
	return found;
}

/* The commit's subject line for a mail: SUBJECT when the caller has it, else read from the
 * job's mirror in STATE_DIR with git (none without STATE_DIR); at most 200 bytes, on one line.
 * NULL when there is none. */
static char *
commit_subject(const struct conf *c, const char *state_dir, const char *commit, const char *subject)
{
	char *url = NULL, *key, *mirror, *res = NULL;

	if (subject != NULL) {
		res = xstrdup(subject);
	} else if (c->source.repo != NULL && commit != NULL && state_dir != NULL &&
	           source_repo_url(c->source.repo, c->dir, &url) == 0) {
		key = source_mirror_key(url);
		mirror = xasprintf("%s/mirrors/%s.git", state_dir, key);
		res = source_commit_subject(mirror, commit, NOTIFY_GIT_MS);
		free(mirror);
		free(key);
	}
	free(url); /* an error, or a directory run in place: no mirror */
	if (res != NULL) {
		res[strcspn(res, "\n")] = '\0';
		if (strlen(res) > 200)
			res[200] = '\0';
		flatten(res);
	}
	return res;
}

/* The last NOTIFY_LOG_LINES lines of the run's output.log, or NULL. */
static char *
read_log_tail(const struct store_run *r)
{
	char *path = r->log_path != NULL  ? xstrdup(r->log_path)
	             : r->run_dir != NULL ? xasprintf("%s/%s", r->run_dir, RUNDIR_OUTPUT)
	                                  : NULL;
	char *data = NULL, *res = NULL;
	struct stat sb;
	off_t off = 0;
	size_t len = 0;
	int fd;

	if (path == NULL)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &sb) != 0)
		goto out;
	if (sb.st_size > (off_t)NOTIFY_LOG_READ)
		off = sb.st_size - (off_t)NOTIFY_LOG_READ;
	data = xmalloc(NOTIFY_LOG_READ + 1);
	while (len < NOTIFY_LOG_READ) {
		ssize_t k = pread(fd, data + len, NOTIFY_LOG_READ - len, off + (off_t)len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	res = notify_log_tail(data, len, NOTIFY_LOG_LINES, off > 0);
out:
	free(data);
	close(fd);
	return res;
}

int
notify_run_finished(struct store *s, const struct conf *c, const char *state_dir, int64_t run_id,
                    bool will_retry, const char *commit_subj, struct diag *d)
{
	struct store_run r, prev;
	const struct conf_job *j;
	struct notify_info in = { 0 };
	struct store_sample *samples = NULL;
	struct outbox_msg m;
	struct buf body, msg;
	char *host = NULL, *subject = NULL, *csub = NULL, *tail = NULL, *msgid = NULL;
	bool have_prev;
	time_t now = time(NULL);
	size_t nsamples = 0;
	int rc;

	store_run_init(&r);
	store_run_init(&prev);
	outbox_msg_init(&m);
	buf_init(&body, BUF_MAX_MSG);
	buf_init(&msg, 2 * BUF_MAX_MSG);
	if ((rc = store_run_get(s, run_id, &r)) < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "mail: cannot read run %lld: %s",
		           (long long)run_id, strerror(-rc));
		goto out;
	}
	j = conf_job_find(c, r.job);
	if (j == NULL || c->mail.smtp == NULL) {
		rc = 0;
		goto out;
	}
	have_prev = find_prev(s, &r, j->notify.on_each_attempt, &prev);
	in.event = notify_decide(&j->notify, &r, have_prev ? &prev : NULL, will_retry);
	if (in.event == NOTIFY_NONE) {
		rc = 0;
		goto out;
	}
	if (store_samples_get(s, run_id, &samples, &nsamples) < 0)
		nsamples = 0;
	host = notify_hostname();
	csub = commit_subject(c, state_dir, r.commit_id, commit_subj);
	tail = read_log_tail(&r);
	in.run = &r;
	in.samples = samples;
	in.nsamples = nsamples;
	in.log_tail = tail;
	in.commit_subject = csub;
	in.host = host;
	subject = notify_subject(&in);
	msgid = notify_msgid(host, now);
	if ((rc = notify_body(&in, &body)) < 0 ||
	    (rc = notify_message(&(struct notify_hdr){ c->mail.from, j->notify.email.v,
	                                               j->notify.email.n, subject, now, msgid },
	                         buf_cstr(&body), &msg)) < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "mail about run %lld: cannot build it: %s",
		           (long long)run_id, strerror(-rc));
		goto out;
	}
	{
		struct buf rc_list;

		buf_init(&rc_list, BUF_MAX_MSG);
		for (size_t i = 0; i < j->notify.email.n; i++)
			if (buf_printf(&rc_list, "%s\n", j->notify.email.v[i]) < 0)
				break;
		m.rcpt = buf_steal(&rc_list);
		buf_free(&rc_list);
	}
	m.dedup = xasprintf("run:%lld", (long long)run_id);
	m.run_id = run_id;
	m.from = xstrdup(c->mail.from);
	m.subject = xstrdup(subject);
	m.len = msg.len;
	m.data = buf_steal(&msg);
	rc = store_outbox_add(s, &m, NULL);
	if (rc == -EEXIST) {
		rc = 0; /* queued by an earlier call */
	} else if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "mail about run %lld: cannot queue it: %s",
		           (long long)run_id, store_errmsg(s));
	} else {
		rc = 1;
	}
out:
	outbox_msg_clear(&m);
	buf_free(&body);
	buf_free(&msg);
	free(samples);
	free(host);
	free(subject);
	free(csub);
	free(tail);
	free(msgid);
	store_run_clear(&prev);
	store_run_clear(&r);
	return rc;
}

int
notify_queue(struct store *s, const struct conf *c, const struct conf_strv *to, int64_t run_id,
             const char *dedup, const char *subject, const char *text, const char *what,
             struct diag *d)
{
	char *host, *msgid, *subj;
	struct outbox_msg m;
	struct buf msg, rb;
	time_t now = time(NULL);
	int rc;

	if (c->mail.smtp == NULL || to->n == 0)
		return 0;
	host = notify_hostname();
	msgid = notify_msgid(host, now);
	subj = xasprintf("[eph] %s", subject);
	flatten(subj);
	buf_init(&msg, 2 * BUF_MAX_MSG);
	buf_init(&rb, BUF_MAX_MSG);
	rc = notify_message(&(struct notify_hdr){ c->mail.from, to->v, to->n, subj, now, msgid },
	                    text, &msg);
	for (size_t i = 0; rc == 0 && i < to->n; i++)
		rc = buf_printf(&rb, "%s\n", to->v[i]);
	if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "%s: cannot build it: %s", what,
		           strerror(-rc));
		goto out;
	}
	outbox_msg_init(&m);
	m.dedup = (char *)dedup;
	m.run_id = run_id;
	m.from = c->mail.from;
	m.rcpt = rb.data;
	m.subject = subj;
	m.len = msg.len;
	m.data = msg.data;
	rc = store_outbox_add(s, &m, NULL);
	if (rc == -EEXIST) {
		rc = 0;
	} else if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "%s: cannot queue it: %s", what,
		           store_errmsg(s));
	} else {
		rc = 1;
	}
out:
	buf_free(&msg);
	buf_free(&rb);
	free(host);
	free(msgid);
	free(subj);
	return rc;
}

int
notify_admin(struct store *s, const struct conf *c, const char *key, const char *subject,
             const char *text, struct diag *d)
{
	char *dedup = xasprintf("admin:%s", key);
	int rc = notify_queue(s, c, &c->mail.admin, 0, dedup, subject, text, "mail to the admins",
	                      d);

	free(dedup);
	return rc;
}

int
notify_source_alarm(struct store *s, const struct conf *c, const struct source_health *h,
                    double now, struct diag *d)
{
	char key[160], dur[32], since[40], last[40], fetched[40], *subject, *text, *repo;
	const char *branch = h->branch != NULL ? h->branch : "(the remote's default branch)";
	const char *used = c->source.commit != NULL ? c->source.commit : h->commit;
	struct buf b;
	int rc;

	if (!h->fetched || !h->failing || h->failing_since <= 0 || h->key == NULL ||
	    c->mail.source_alarm <= 0 || now - h->failing_since < (double)c->mail.source_alarm)
		return 0;
	if (c->mail.smtp == NULL || c->mail.admin.n == 0)
		return 0;
	snprintf(key, sizeof(key), "source:%.32s:%.3f", h->key, h->failing_since);
	units_format_duration(now - h->failing_since, dur, sizeof(dur));
	fmt_time(h->failing_since, since, sizeof(since));
	fmt_time(h->attempt_at, last, sizeof(last));
	fmt_time(h->fetched_at, fetched, sizeof(fetched));
	repo = xstrdup(h->repo != NULL ? h->repo : "?");
	flatten(repo);
	subject = xasprintf("source unreachable for %s: %s", dur, repo);
	buf_init(&b, BUF_MAX_MSG);
	rc = buf_printf(&b,
	                "Every fetch of the source repository of %s has failed for %s "
	                "(mail.source_alarm is %llds).\n\n"
	                "Repository:    %s\n"
	                "Branch:        %s\n"
	                "Failing since: %s\n"
	                "Last attempt:  %s\n"
	                "Last fetched:  %s\n"
	                "Runs now use:  %s\n\n"
	                "The last error (git's words):\n\n%s\n\n",
	                c->path != NULL ? c->path : "the jobs file", dur,
	                (long long)c->mail.source_alarm, repo, branch, since, last,
	                h->fetched_at > 0 ? fetched : "never",
	                used != NULL ? used : "(no commit known)",
	                h->error != NULL ? h->error : "unknown error");
	if (rc == 0 && c->source.on_fetch_error == CONF_FETCH_FAIL)
		rc = buf_printf(&b, "What it means: source.on_fetch_error is fail, so every run "
		                    "fails (reason source) until a fetch succeeds.\n");
	else if (rc == 0)
		rc = buf_printf(&b,
		                "What it means: source.on_fetch_error is use_last, so runs go "
		                "on with %s, the last fetched commit, and each records the "
		                "failed fetch as its warning; what was pushed since is not run "
		                "until a fetch succeeds.\n",
		                used != NULL ? used : "the last fetched commit");
	if (rc == 0)
		rc = buf_printf(&b,
		                "\nThis is the only message about this outage: a fetch that "
		                "succeeds ends it, and a later outage is mailed again. To see "
		                "what git sees, run `git ls-remote %s` as the user the daemon "
		                "runs as.\n",
		                repo);
	if (rc < 0) { /* past BUF_MAX_MSG: git's error is capped well below, but say it */
		buf_reset(&b);
		if (buf_printf(&b, "The source %s has not been fetched for %s.\n", repo, dur) < 0)
			buf_reset(&b);
	}
	text = buf_steal(&b);
	buf_free(&b);
	rc = notify_admin(s, c, key, subject, text != NULL ? text : "", d);
	free(text);
	free(subject);
	free(repo);
	return rc;
}
