/* tests/unit/test_conf_executors.c: the executors mapping (a name to a type and the type's
 * keys) and a job's "executor:", which must name one of them; the keys of an ssh executor and
 * their checks, against real known_hosts and identity files in a temporary directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "tmpfx.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

/* Loads TEXT as if it stood in DIR, which must succeed. */
static struct conf *
load_ok_in(const char *dir, const char *text)
{
	struct conf *c = NULL;
	struct diag d;
	int rc;

	diag_init(&d);
	rc = conf_load_mem("t.yaml", dir, text, strlen(text), &c, &d);
	if (rc != 0) {
		diag_print(&d, stderr);
		fail_msg("conf_load_mem failed: %d", rc);
	}
	assert_non_null(c);
	diag_free(&d);
	return c;
}

static struct conf *
load_ok(const char *text)
{
	return load_ok_in("/srv/repo", text);
}

/* Loads TEXT as if it stood in DIR, which must fail; returns every problem as "LINE:COL: msg"
 * lines, with DIR written "$D". */
static char *
load_err_in(const char *dir, const char *text)
{
	struct conf *c = NULL;
	struct diag d;
	char *out = xstrdup("");
	int rc;

	diag_init(&d);
	rc = conf_load_mem("t.yaml", dir, text, strlen(text), &c, &d);
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	diag_sort(&d);
	for (size_t i = 0; i < d.n; i++) {
		char *s = xasprintf("%s%d:%d: %s\n", out, d.items[i].line, d.items[i].col,
		                    d.items[i].msg);

		free(out);
		out = s;
	}
	diag_free(&d);
	for (char *at; (at = strstr(out, dir)) != NULL;) {
		char *s = xasprintf("%.*s$D%s", (int)(at - out), out, at + strlen(dir));

		free(out);
		out = s;
	}
	return out;
}

static char *
load_err(const char *text)
{
	return load_err_in("/srv/repo", text);
}

static void
local_is_built_in_and_jobs_point_at_it(void **state)
{
	struct conf *c = load_ok("jobs:\n"
	                         "  a: {schedule: '@daily', run: 'true'}\n"
	                         "  b: {schedule: '@daily', run: 'true', executor: local}\n");

	(void)state;
	assert_int_equal(c->nexecutors, 1);
	assert_string_equal(c->executors[0].name, "local");
	assert_int_equal(c->executors[0].type, CONF_EXEC_LOCAL);
	assert_ptr_equal(c->executors[0].keys, &c->local);
	assert_int_equal(c->executors[0].line, 0);
	for (size_t i = 0; i < c->njobs; i++) {
		assert_int_equal(c->jobs[i].executor_ix, 0);
		/* the executor's own name, not a copy */
		assert_ptr_equal(c->jobs[i].executor, c->executors[0].name);
	}
	assert_ptr_equal(conf_executor_find(c, "local"), &c->executors[0]);
	assert_null(conf_executor_find(c, "pool"));
	conf_free(c);
}

static void
local_takes_its_keys_and_an_optional_type(void **state)
{
	struct conf *c = load_ok("executors:\n"
	                         "  local:\n"
	                         "    type: local\n"
	                         "    memory_budget: 3GiB\n"
	                         "jobs:\n"
	                         "  a: {schedule: '@daily', run: 'true', memory: 2GiB}\n");

	(void)state;
	assert_int_equal(c->local.memory_budget, UINT64_C(3) << 30);
	assert_int_equal(c->executors[0].line, 2);
	assert_int_equal(c->executors[0].col, 3);
	conf_free(c);
}

/* ---- ssh: each test's state is a directory holding known_hosts and an identity file ---- */

#define KEY " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOr1n0Vh0Xq2vEw4Qf3pZ0eWc9b6k1m2n3o4p5q6r7s8\n"

/* DIR/NAME holds TEXT, with MODE. */
static void
put(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, name);

	assert_int_equal(fsio_write_atomic(path, text, strlen(text), mode, 0), 0);
	assert_int_equal(chmod(path, mode), 0);
	free(path);
}

static int
ssh_setup(void **state)
{
	char *dir = tmpfx_dir(tmpfx_name());

	put(dir, "known_hosts", "# pinned by hand\n10.0.0.5" KEY "[fd00::5]:2222" KEY, 0644);
	put(dir, "id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0600);
	*state = dir;
	return 0;
}

static int
ssh_teardown(void **state)
{
	conf_exec_allow_unfinished(false);
	conf_assume_from_repo(false);
	return tmpfx_teardown(state);
}

static void
ssh_keys_are_read_with_their_defaults(void **state)
{
	const char *dir = *state;
	struct conf *c;
	const struct conf_ssh *s;
	char *p;

	conf_exec_allow_unfinished(true);
	c = load_ok_in(dir,
	               "source: {repo: 'https://example.com/jobs.git'}\n"
	               "executors:\n"
	               "  pool:\n"
	               "    type: ssh\n"
	               "    hosts:\n"
	               "      - { host: eph@10.0.0.5, memory: 4GiB }\n"
	               "      - { host: \"eph@[fd00::5]:2222\", memory: 16GiB }\n"
	               "    identity_file: id_ed25519\n"
	               "    known_hosts: known_hosts\n"
	               "jobs:\n"
	               "  a: {schedule: '@daily', run: 'true', executor: pool, memory: 12GiB}\n"
	               "  b: {schedule: '@daily', run: 'true', executor: pool}\n"
	               "  c: {schedule: '@daily', run: 'true'}\n");
	assert_int_equal(c->nexecutors, 2);
	assert_int_equal(c->executors[1].type, CONF_EXEC_SSH);
	assert_null(conf_executor_ssh(&c->executors[0]));
	s = conf_executor_ssh(conf_executor_find(c, "pool"));
	assert_non_null(s);
	assert_ptr_equal(s, c->executors[1].keys);
	assert_int_equal(s->nhosts, 2);
	assert_string_equal(s->hosts[0].text, "eph@10.0.0.5");
	assert_string_equal(s->hosts[0].host.user, "eph");
	assert_string_equal(s->hosts[0].host.addr, "10.0.0.5");
	assert_int_equal(s->hosts[0].host.port, 22);
	assert_int_equal(s->hosts[0].memory, UINT64_C(4) << 30);
	assert_int_equal(s->hosts[0].line, 6);
	assert_int_equal(s->hosts[0].col, 17);
	assert_string_equal(s->hosts[1].text, "eph@[fd00::5]:2222");
	assert_string_equal(s->hosts[1].host.addr, "fd00::5");
	assert_int_equal(s->hosts[1].host.port, 2222);
	assert_int_equal(s->hosts[1].memory, UINT64_C(16) << 30);
	assert_int_equal(s->hosts[1].line, 7);
	assert_int_equal(s->hosts[1].col, 18); /* inside the quotes: its first byte */
	/* relative paths start from the jobs file's directory */
	p = xasprintf("%s/id_ed25519", dir);
	assert_string_equal(s->identity_file, p);
	free(p);
	p = xasprintf("%s/known_hosts", dir);
	assert_string_equal(s->known_hosts, p);
	free(p);
	assert_string_equal(s->dir, "~/.ephemeron");
	assert_int_equal(s->default_memory, UINT64_C(1) << 30);
	assert_int_equal(s->lost_after, 600);
	assert_int_equal(s->max_wait, 3600);
	assert_int_equal(s->connect_timeout, 10);
	assert_int_equal(c->jobs[0].executor_ix, 1);
	assert_int_equal(c->jobs[1].executor_ix, 1);
	assert_int_equal(c->jobs[2].executor_ix, 0);
	conf_free(c);
}

static void
ssh_keys_take_their_values(void **state)
{
	const char *dir = *state;
	char *text, *kh = xasprintf("%s/known_hosts", dir);
	struct conf *c;
	const struct conf_ssh *s;

	conf_exec_allow_unfinished(true);
	text = xasprintf("executors:\n"
	                 "  pool:\n"
	                 "    type: ssh\n"
	                 "    hosts: [{host: 10.0.0.5, memory: 2GiB}]\n"
	                 "    known_hosts: %s\n"
	                 "    dir: /srv/ephemeron/\n"
	                 "    default_memory: 512MiB\n"
	                 "    lost_after: 5m\n"
	                 "    max_wait: 2h\n"
	                 "    connect_timeout: 3s\n"
	                 "  other:\n"
	                 "    type: ssh\n"
	                 "    hosts: [{host: eph@10.0.0.5, memory: 1GiB}]\n"
	                 "    known_hosts: %s\n"
	                 "    dir: ~/eph/runs\n"
	                 "jobs:\n"
	                 "  a: {schedule: '@daily', run: 'true', executor: pool}\n",
	                 kh, kh);
	/* with --from-repo, the jobs' code is the repository's commit: no source needed */
	conf_assume_from_repo(true);
	c = load_ok_in(dir, text);
	s = conf_executor_ssh(conf_executor_find(c, "pool"));
	assert_null(s->hosts[0].host.user);
	assert_null(s->identity_file);
	assert_string_equal(s->known_hosts, kh);
	assert_string_equal(s->dir, "/srv/ephemeron");
	assert_int_equal(s->default_memory, UINT64_C(512) << 20);
	assert_int_equal(s->lost_after, 300);
	assert_int_equal(s->max_wait, 7200);
	assert_int_equal(s->connect_timeout, 3);
	s = conf_executor_ssh(conf_executor_find(c, "other"));
	assert_string_equal(s->dir, "~/eph/runs");
	conf_free(c);
	free(text);
	free(kh);
}

/* price_monthly (eph cost): local's, the ssh executor's, and a host's own, which only a host
 * that writes it has (price_set); 0 by default. */
static void
prices_are_read_where_written(void **state)
{
	const char *dir = *state;
	const struct conf_ssh *s;
	struct conf *c;

	conf_exec_allow_unfinished(true);
	c = load_ok_in(
	        dir,
	        "source: {repo: 'https://example.com/jobs.git'}\n"
	        "executors:\n"
	        "  local: {price_monthly: 24.5}\n"
	        "  pool:\n"
	        "    type: ssh\n"
	        "    price_monthly: 48\n"
	        "    hosts:\n"
	        "      - { host: eph@10.0.0.5, memory: 4GiB }\n"
	        "      - { host: \"eph@[fd00::5]:2222\", memory: 16GiB, price_monthly: 0.0125 }\n"
	        "    known_hosts: known_hosts\n"
	        "jobs:\n"
	        "  a: {schedule: '@daily', run: 'true'}\n");
	assert_float_equal(c->local.price_monthly, 24.5, 1e-12);
	s = conf_executor_ssh(conf_executor_find(c, "pool"));
	assert_float_equal(s->price_monthly, 48, 1e-12);
	assert_false(s->hosts[0].price_set);
	assert_true(s->hosts[1].price_set);
	assert_float_equal(s->hosts[1].price_monthly, 0.0125, 1e-12);
	conf_free(c);
	c = load_ok("jobs:\n  a: {schedule: '@daily', run: 'true'}\n");
	assert_float_equal(c->local.price_monthly, 0, 0);
	conf_free(c);
}

static void
ssh_is_accepted_or_every_fault_reported(void **state)
{
	const char *dir = *state;
	const char *ok = "source: {repo: /srv/jobs.git}\n"
	                 "executors:\n"
	                 "  pool:\n"
	                 "    type: ssh\n"
	                 "    hosts: [{host: eph@10.0.0.5, memory: 4GiB}]\n"
	                 "    known_hosts: known_hosts\n"
	                 "jobs:\n"
	                 "  a: {schedule: '@daily', run: 'true', executor: pool}\n";
	const char *bad = "executors:\n"
	                  "  pool:\n"
	                  "    type: ssh\n"
	                  "    hosts: [{host: eph@10.0.0.7, memory: 4GiB}]\n"
	                  "    known_hosts: known_hosts\n"
	                  "    memory_budget: 8GiB\n"
	                  "jobs:\n"
	                  "  a: {schedule: '@daily', run: 'true', executor: pool}\n";
	char *e;

	/* valid keys: accepted */
	conf_free(load_ok_in(dir, ok));
	/* faulty keys: every fault at once */
	e = load_err_in(dir, bad);
	assert_string_equal(
	        e,
	        "4:20: host eph@10.0.0.7 has no entry in known_hosts $D/known_hosts: add its key "
	        "(ssh-keyscan -p 22 10.0.0.7) and check its fingerprint out of band; keys are never "
	        "learned\n"
	        "6:5: unknown key \"memory_budget\"\n"
	        "8:50: job \"a\" runs on executor \"pool\" (ssh): its code travels as a commit, so "
	        "the file needs a \"source:\" section (or run the daemon with --from-repo)\n");
	free(e);
}

static void
ssh_hosts_are_checked_each(void **state)
{
	const char *dir = *state;
	char *e;

	conf_exec_allow_unfinished(true);
	e = load_err_in(dir,
	                "source: {repo: /srv/jobs.git}\n"
	                "executors:\n"
	                "  pool:\n"
	                "    type: ssh\n"
	                "    hosts:\n"
	                "      - eph@10.0.0.5\n"
	                "      - { host: eph@10.0.0.5 }\n"
	                "      - { memory: 4GiB }\n"
	                "      - { host: \"eph@[fd00::5\", memory: 4GiB }\n"
	                "      - { host: eph@10.0.0.5, memroy: 4GiB }\n"
	                "      - { host: 'e ph@10.0.0.5:99999', memory: 4GiB }\n"
	                "      - { host: eph@10.0.0.5, memory: 100 }\n"
	                "      - { host: eph@10.0.0.5, memory: 4GiB }\n"
	                "      - { host: eph@10.0.0.5:22, memory: 8GiB }\n"
	                "      - { host: \"eph@[fd00:0::5]:2222\", memory: 1GiB }\n"
	                "      - { host: \"eph@[fd00::5]:2222\", memory: 1GiB }\n"
	                "    known_host: known_hosts\n"
	                "  empty: {type: ssh, hosts: [], known_hosts: known_hosts}\n"
	                "  scalar: {type: ssh, hosts: eph@10.0.0.5, known_hosts: known_hosts}\n"
	                "jobs:\n"
	                "  a: {schedule: '@daily', run: 'true', executor: pool}\n");
	assert_string_equal(
	        e,
	        "3:3: executor \"pool\" needs \"known_hosts\": the hosts' keys are pinned, never "
	        "learned\n"
	        "6:9: each item of \"hosts\" must be a mapping {host: [user@]addr[:port], memory: "
	        "SIZE}, not a scalar\n"
	        "7:11: a host needs \"memory\": what the runs on it may use together (4GiB)\n"
	        "8:11: a host needs \"host\": [user@]addr[:port]\n"
	        "9:22: host \"eph@[fd00::5\": no ']' after '['\n"
	        "10:11: a host needs \"memory\": what the runs on it may use together (4GiB)\n"
	        "10:31: unknown key \"memroy\" (did you mean \"memory\"?)\n"
	        "11:18: host \"e ph@10.0.0.5:99999\": the user name may hold only letters, digits, "
	        "'.', '_' and '-', and not start with '-'\n"
	        "11:32: host \"e ph@10.0.0.5:99999\": the port must be a number from 1 to 65535\n"
	        "12:39: \"memory\" is \"100\" (100 B), less than the least allowed, 1.00 MiB (a bare "
	        "number is bytes: write 512MiB)\n"
	        "14:17: host \"eph@10.0.0.5:22\" is listed twice (first on line 13)\n"
	        "16:18: host \"eph@[fd00::5]:2222\" is listed twice (first on line 15)\n"
	        "17:5: unknown key \"known_host\" (did you mean \"known_hosts\"?)\n"
	        "18:22: \"hosts\" is an empty list: an ssh executor needs at least one host\n"
	        "19:30: \"hosts\" must be a list of {host: [user@]addr[:port], memory: SIZE}, not a "
	        "scalar\n");
	free(e);
}

static void
ssh_files_are_checked_at_their_keys(void **state)
{
	const char *dir = *state;
	char *e, *kh = xasprintf("%s/known_hosts", dir), *id = xasprintf("%s/id_ed25519", dir);

	conf_exec_allow_unfinished(true);
	assert_int_equal(chmod(kh, 0664), 0);
	assert_int_equal(chmod(id, 0640), 0);
	e = load_err_in(dir, "source: {repo: /srv/jobs.git}\n"
	                     "executors:\n"
	                     "  pool:\n"
	                     "    type: ssh\n"
	                     "    hosts: [{host: eph@10.0.0.5, memory: 4GiB}]\n"
	                     "    known_hosts: known_hosts\n"
	                     "    identity_file: id_ed25519\n"
	                     "  gone:\n"
	                     "    type: ssh\n"
	                     "    hosts: [{host: eph@10.0.0.5, memory: 4GiB}]\n"
	                     "    known_hosts: nowhere/known_hosts\n"
	                     "    identity_file: ~/.ssh/id_ed25519\n"
	                     "  nohosts:\n"
	                     "    type: ssh\n"
	                     "    known_hosts: .\n"
	                     "    identity_file: /\n"
	                     "jobs:\n"
	                     "  a: {schedule: '@daily', run: 'true', executor: pool}\n");
	assert_string_equal(
	        e,
	        "6:18: known_hosts $D/known_hosts can be written by others (mode 0664): anyone who "
	        "can write it can pin their own host key; chmod go-w it\n"
	        "7:20: identity_file $D/id_ed25519 can be read or written by others (mode 0640): a "
	        "private key is a secret; chmod 600 it\n"
	        "11:18: known_hosts $D/nowhere/known_hosts: No such file or directory\n"
	        "12:20: \"identity_file\" is a file of this machine: write it absolute, or relative "
	        "to the jobs file's directory (\"~\" is not expanded)\n"
	        "13:3: executor \"nohosts\" needs \"hosts\": a list of {host: [user@]addr[:port], "
	        "memory: SIZE}\n"
	        "15:18: known_hosts $D/. is not a file\n"
	        "16:20: identity_file / is not a file\n");
	free(e);
	free(kh);
	free(id);
}

static void
ssh_dir_is_a_plain_remote_path(void **state)
{
	const char *dir = *state;
	char *e;

	conf_exec_allow_unfinished(true);
	e = load_err_in(dir, "source: {repo: /srv/jobs.git}\n"
	                     "x-ssh: &ssh\n"
	                     "  type: ssh\n"
	                     "  hosts: [{host: eph@10.0.0.5, memory: 4GiB}]\n"
	                     "  known_hosts: known_hosts\n"
	                     "executors:\n"
	                     "  a: {<<: *ssh, dir: relative/dir}\n"
	                     "  b: {<<: *ssh, dir: ~eph/x}\n"
	                     "  c: {<<: *ssh, dir: /srv/../etc}\n"
	                     "  d: {<<: *ssh, dir: '~/'}\n"
	                     "  e: {<<: *ssh, dir: '/srv/my runs'}\n"
	                     "  f: {<<: *ssh, dir: \"/srv/a\\nb\"}\n"
	                     "  g: {<<: *ssh, dir: /}\n"
	                     "  h: {<<: *ssh, dir: /srv//x}\n"
	                     "jobs:\n"
	                     "  j: {schedule: '@daily', run: 'true'}\n");
	assert_string_equal(
	        e,
	        "7:22: \"dir\" must be absolute (/srv/ephemeron) or start with \"~/\" (the login "
	        "user's home), not \"relative/dir\"\n"
	        "8:22: \"dir\" must be absolute (/srv/ephemeron) or start with \"~/\" (the login "
	        "user's home), not \"~eph/x\"\n"
	        "9:22: \"dir\" must be a plain path, without \"//\", \".\" or \"..\": "
	        "\"/srv/../etc\"\n"
	        "10:23: \"dir\" must be a directory of its own, not \"~/\"\n"
	        "11:23: \"dir\" may not hold whitespace or control characters: \"/srv/my runs\"\n"
	        "12:23: \"dir\" may not hold whitespace or control characters: \"/srv/a\\x0ab\"\n"
	        "13:22: \"dir\" must be a directory of its own, not \"/\"\n"
	        "14:22: \"dir\" must be a plain path, without \"//\", \".\" or \"..\": "
	        "\"/srv//x\"\n");
	free(e);
}

static void
ssh_times_have_bounds(void **state)
{
	const char *dir = *state;
	char *e;

	conf_exec_allow_unfinished(true);
	e = load_err_in(dir, "source: {repo: /srv/jobs.git}\n"
	                     "executors:\n"
	                     "  pool:\n"
	                     "    type: ssh\n"
	                     "    hosts: [{host: eph@10.0.0.5, memory: 4GiB}]\n"
	                     "    known_hosts: known_hosts\n"
	                     "    lost_after: 0\n"
	                     "    connect_timeout: 2h\n"
	                     "    max_wait: soon\n"
	                     "    default_memory: 0\n"
	                     "jobs:\n"
	                     "  j: {schedule: '@daily', run: 'true'}\n");
	assert_string_equal(
	        e,
	        "7:17: \"lost_after\" must be from 1.0s to 87840h00m, not \"0\"\n"
	        "8:22: \"connect_timeout\" must be from 1.0s to 1h00m, not \"2h\"\n"
	        "9:15: \"max_wait\": bad duration \"soon\": expected a number followed by a unit, as 90s, 10m, 2h or 1d\n"
	        "10:21: \"default_memory\" is \"0\" (0 B), less than the least allowed, 1.00 MiB "
	        "(a bare number is bytes: write 512MiB)\n");
	free(e);
}

static void
a_job_on_ssh_needs_a_commit_and_a_host_that_holds_it(void **state)
{
	const char *dir = *state;
	const char *text = "executors:\n"
	                   "  pool:\n"
	                   "    type: ssh\n"
	                   "    hosts:\n"
	                   "      - { host: eph@10.0.0.5, memory: 4GiB }\n"
	                   "      - { host: \"eph@[fd00::5]:2222\", memory: 8GiB }\n"
	                   "    known_hosts: known_hosts\n"
	                   "  big:\n"
	                   "    type: ssh\n"
	                   "    hosts: [{host: eph@10.0.0.5, memory: 4GiB}]\n"
	                   "    known_hosts: known_hosts\n"
	                   "    default_memory: 6GiB\n"
	                   "defaults: {executor: pool}\n"
	                   "jobs:\n"
	                   "  fits: {schedule: '@daily', run: 'true', memory: 8GiB}\n"
	                   "  huge: {schedule: '@daily', run: 'true', memory: 12GiB}\n"
	                   "  dflt: {schedule: '@daily', run: 'true', executor: big}\n"
	                   "  here: {schedule: '@daily', run: 'true', executor: local}\n";
	char *e;

	conf_exec_allow_unfinished(true);
	e = load_err_in(dir, text);
	assert_string_equal(
	        e,
	        "13:22: job \"fits\" runs on executor \"pool\" (ssh): its code travels as a commit, "
	        "so the file needs a \"source:\" section (or run the daemon with --from-repo)\n"
	        "13:22: job \"huge\" runs on executor \"pool\" (ssh): its code travels as a commit, "
	        "so the file needs a \"source:\" section (or run the daemon with --from-repo)\n"
	        "16:51: job \"huge\" needs 12.00 GiB but the largest host of executor \"pool\" has "
	        "8.00 GiB\n"
	        "17:53: job \"dflt\" runs on executor \"big\" (ssh): its code travels as a commit, "
	        "so the file needs a \"source:\" section (or run the daemon with --from-repo)\n"
	        "17:53: job \"dflt\" needs 6.00 GiB (the default_memory of executor \"big\", as it "
	        "has no \"memory\") but its largest host has 4.00 GiB\n");
	free(e);
	/* --from-repo: the commit is the file's own */
	conf_assume_from_repo(true);
	e = load_err_in(dir, text);
	assert_null(strstr(e, "source:"));
	assert_non_null(strstr(e, "16:51: job \"huge\" needs"));
	free(e);
}

static void
a_faulty_executor_does_not_judge_its_jobs_memory(void **state)
{
	const char *dir = *state;
	char *e;

	conf_exec_allow_unfinished(true);
	/* the 16GiB host is faulty, so "largest host" would be a lie */
	e = load_err_in(dir,
	                "source: {repo: /srv/jobs.git}\n"
	                "executors:\n"
	                "  pool:\n"
	                "    type: ssh\n"
	                "    hosts:\n"
	                "      - { host: eph@10.0.0.5, memory: 4GiB }\n"
	                "      - { host: 'eph@10.0.0.5:', memory: 16GiB }\n"
	                "    known_hosts: known_hosts\n"
	                "jobs:\n"
	                "  a: {schedule: '@daily', run: 'true', executor: pool, memory: 12GiB}\n");
	assert_string_equal(e, "7:31: host \"eph@10.0.0.5:\": the port must be a number "
	                       "from 1 to 65535\n");
	free(e);
}

static void
a_named_executor_needs_a_type_other_than_local(void **state)
{
	char *e = load_err("executors:\n"
	                   "  droplet: {size: big}\n"
	                   "  mine: {type: local}\n"
	                   "  local: {type: ssh}\n"
	                   "jobs:\n"
	                   "  a: {schedule: '@daily', run: 'true'}\n");

	(void)state;
	assert_string_equal(
	        e, "2:3: executor \"droplet\" needs a \"type\": ssh, digitalocean or slurm\n"
	           "3:16: only the executor \"local\" is of type \"local\": it is this machine\n"
	           "4:17: executor \"local\" is this machine, of type \"local\": give the ssh "
	           "executor another name\n");
	free(e);
}

static void
a_job_must_name_a_defined_executor(void **state)
{
	char *e = load_err("defaults: {executor: lokal}\n"
	                   "jobs:\n"
	                   "  a: {schedule: '@daily', run: 'true', executor: droplet}\n"
	                   "  b: {schedule: '@daily', run: 'true'}\n");

	(void)state;
	assert_string_equal(e, "1:22: unknown executor \"lokal\" (did you mean \"local\"?)\n"
	                       "3:50: unknown executor \"droplet\" (the executors are: local)\n");
	free(e);
}

static void
type_names_match_the_enum(void **state)
{
	(void)state;
	assert_string_equal(conf_exec_type_name(CONF_EXEC_LOCAL), "local");
	assert_string_equal(conf_exec_type_name(CONF_EXEC_SSH), "ssh");
	assert_string_equal(conf_exec_type_name(CONF_EXEC_DIGITALOCEAN), "digitalocean");
	assert_string_equal(conf_exec_type_name(CONF_EXEC_SLURM), "slurm");
	assert_string_equal(conf_exec_type_name((enum conf_exec_type)99), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(local_is_built_in_and_jobs_point_at_it),
		cmocka_unit_test(local_takes_its_keys_and_an_optional_type),
		cmocka_unit_test(a_named_executor_needs_a_type_other_than_local),
		cmocka_unit_test(a_job_must_name_a_defined_executor),
		cmocka_unit_test(type_names_match_the_enum),
		cmocka_unit_test_setup_teardown(ssh_keys_are_read_with_their_defaults, ssh_setup,
		                                ssh_teardown),
		cmocka_unit_test_setup_teardown(ssh_keys_take_their_values, ssh_setup,
		                                ssh_teardown),
		cmocka_unit_test_setup_teardown(prices_are_read_where_written, ssh_setup,
		                                ssh_teardown),
		cmocka_unit_test_setup_teardown(ssh_is_accepted_or_every_fault_reported, ssh_setup,
		                                ssh_teardown),
		cmocka_unit_test_setup_teardown(ssh_hosts_are_checked_each, ssh_setup,
		                                ssh_teardown),
		cmocka_unit_test_setup_teardown(ssh_files_are_checked_at_their_keys, ssh_setup,
		                                ssh_teardown),
		cmocka_unit_test_setup_teardown(ssh_dir_is_a_plain_remote_path, ssh_setup,
		                                ssh_teardown),
		cmocka_unit_test_setup_teardown(ssh_times_have_bounds, ssh_setup, ssh_teardown),
		cmocka_unit_test_setup_teardown(
		        a_job_on_ssh_needs_a_commit_and_a_host_that_holds_it, ssh_setup,
		        ssh_teardown),
		cmocka_unit_test_setup_teardown(a_faulty_executor_does_not_judge_its_jobs_memory,
		                                ssh_setup, ssh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
