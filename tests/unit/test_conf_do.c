/* tests/unit/test_conf_do.c: the keys of a digitalocean executor and their checks, against
 * real token files in a temporary directory; the type is accepted, its executor being built. */
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

#define SRC "source: {repo: 'https://example.org/r.git'}\n"

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
setup(void **state)
{
	char *dir = tmpfx_dir(tmpfx_name());

	put(dir, "token", "dop_v1_secret\n", 0600);
	put(dir, "open-token", "dop_v1_secret\n", 0644);
	conf_exec_allow_unfinished(true);
	*state = dir;
	return 0;
}

static int
teardown(void **state)
{
	conf_exec_allow_unfinished(false);
	return tmpfx_teardown(state);
}

static struct conf *
load_ok(const char *dir, const char *text)
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
	diag_free(&d);
	return c;
}

/* Every problem of TEXT (which must fail) as "LINE:COL: msg" lines, DIR written "$D". */
static char *
load_err(const char *dir, const char *text)
{
	struct conf *c = NULL;
	struct diag d;
	char *out = xstrdup("");

	diag_init(&d);
	assert_int_equal(conf_load_mem("t.yaml", dir, text, strlen(text), &c, &d), -EINVAL);
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

static void
keys_are_read_with_their_defaults(void **state)
{
	const char *dir = *state;
	char *text =
	        xasprintf(SRC "executors:\n"
	                      "  cloud: {type: digitalocean, token_file: token, region: fra1}\n"
	                      "jobs:\n"
	                      "  a: {schedule: '@daily', run: 'true', executor: cloud}\n");
	struct conf *c = load_ok(dir, text);
	const struct conf_do *s;
	char *tf = xasprintf("%s/token", dir);

	s = conf_executor_do(conf_executor_find(c, "cloud"));
	assert_non_null(s);
	assert_null(conf_executor_ssh(conf_executor_find(c, "cloud")));
	assert_string_equal(s->token_file, tf);
	assert_null(s->token_env);
	assert_string_equal(s->region, "fra1");
	assert_string_equal(s->image, "debian-12-x64");
	assert_int_equal(s->sizes.n, 0); /* auto */
	assert_int_equal(s->max_machines, 5);
	assert_int_equal(s->boot_timeout, 300);
	assert_int_equal(s->reserve, UINT64_C(256) << 20);
	assert_int_equal(s->default_memory, UINT64_C(1) << 30);
	assert_string_equal(s->api_url, "https://api.digitalocean.com");
	assert_int_equal(s->api_line, 0);
	assert_string_equal(s->user, "root");
	assert_true(s->max_spend == 0);
	assert_null(s->vpc_uuid);
	assert_null(s->firewall);
	free(tf);
	free(text);
	conf_free(c);
}

static void
keys_take_their_values(void **state)
{
	const char *dir = *state;
	struct conf *c =
	        load_ok(dir, SRC "executors:\n"
	                         "  cloud:\n"
	                         "    type: digitalocean\n"
	                         "    token_env: DIGITALOCEAN_TOKEN\n"
	                         "    region: nyc3\n"
	                         "    image: '123456'\n"
	                         "    sizes: [s-1vcpu-1gb, s-2vcpu-4gb]\n"
	                         "    max_machines: 2\n"
	                         "    boot_timeout: 90s\n"
	                         "    reserve: 300MiB\n"
	                         "    vpc_uuid: 5a4981aa-9653-4bd1-bef5-d6bff52042e4\n"
	                         "    ssh_keys: ['3b:16:bf:e4:8b', '512189']\n"
	                         "    tags: [team:ml, nightly_run]\n"
	                         "    firewall: bb4b2611-3d72-467b-8602-280330ecd65c\n"
	                         "    api_url: http://127.0.0.1:8080/\n"
	                         "    max_spend: {usd: 50.5, per: month}\n"
	                         "jobs:\n"
	                         "  a: {schedule: '@daily', run: 'true', executor: cloud}\n");
	const struct conf_do *s = conf_executor_do(conf_executor_find(c, "cloud"));

	(void)state;
	assert_non_null(s);
	assert_null(s->token_file);
	assert_string_equal(s->token_env, "DIGITALOCEAN_TOKEN");
	assert_string_equal(s->region, "nyc3");
	assert_string_equal(s->image, "123456");
	assert_int_equal(s->sizes.n, 2);
	assert_string_equal(s->sizes.v[1], "s-2vcpu-4gb");
	assert_int_equal(s->max_machines, 2);
	assert_int_equal(s->boot_timeout, 90);
	assert_int_equal(s->reserve, UINT64_C(300) << 20);
	assert_int_equal(s->ssh_keys.n, 2);
	assert_int_equal(s->tags.n, 2);
	assert_string_equal(s->tags.v[0], "team:ml");
	assert_string_equal(s->api_url, "http://127.0.0.1:8080"); /* its trailing / dropped */
	assert_int_equal(s->api_line, 16);
	assert_int_equal(s->api_col, 14);
	assert_true(s->max_spend > 50.49 && s->max_spend < 50.51);
	conf_free(c);
}

static void
a_token_others_can_read_is_refused(void **state)
{
	const char *dir = *state;
	char *e = load_err(dir, SRC
	                   "executors:\n"
	                   "  cloud: {type: digitalocean, token_file: open-token, region: fra1}\n"
	                   "  c2: {type: digitalocean, token_file: /nonexistent/t, region: fra1}\n"
	                   "jobs:\n"
	                   "  a: {schedule: '@daily', run: 'true', executor: cloud}\n");

	assert_string_equal(
	        e,
	        "3:43: token_file $D/open-token can be read by group or others (mode 0644); refusing to use it: chmod 600 $D/open-token\n"
	        "4:40: token_file /nonexistent/t cannot be read: No such file or directory\n");
	free(e);
}

static void
every_fault_is_reported_at_its_place(void **state)
{
	const char *dir = *state;
	char *e = load_err(dir, "executors:\n"
	                        "  cloud:\n"
	                        "    type: digitalocean\n"
	                        "    sizes: []\n"
	                        "    max_machines: 0\n"
	                        "    tags: ['a b']\n"
	                        "    api_url: ftp://x/v2\n"
	                        "    max_spend: {usd: 0}\n"
	                        "    regoin: fra1\n"
	                        "  two:\n"
	                        "    type: digitalocean\n"
	                        "    token_env: T\n"
	                        "    token_file: token\n"
	                        "    region: 'fra 1'\n"
	                        "    sizes: [s-1, s-1]\n"
	                        "    api_url: https://u:p@h\n"
	                        "    max_spend: {usd: 5, per: week}\n"
	                        "jobs:\n"
	                        "  a: {schedule: '@daily', run: 'true', executor: cloud}\n");

	assert_string_equal(
	        e,
	        "2:3: executor \"cloud\" needs \"token_file\" (a file only its owner can read) or \"token_env\": the API token\n"
	        "2:3: executor \"cloud\" needs \"region\": the region's slug, e.g. fra1\n"
	        "4:5: \"sizes\" is an empty list\n"
	        "5:19: \"max_machines\" must be a whole number from 1 to 1000, not \"0\"\n"
	        "6:13: bad item \"a b\" of \"tags\": at most 255 letters, digits and \"_:-\"\n"
	        "7:14: \"api_url\" must start with https:// (or http://), not \"ftp://x/v2\"\n"
	        "8:17: \"max_spend\" of 0 would make no machine: leave it out for no cap\n"
	        "9:5: unknown key \"regoin\" (did you mean \"region\"?)\n"
	        "12:16: executor \"two\" has both \"token_file\" and \"token_env\": keep one\n"
	        "14:14: \"region\" may hold only letters, digits and \"-\", not \"fra 1\"\n"
	        "15:13: size \"s-1\" is listed twice in \"sizes\"\n"
	        "16:14: \"api_url\" may not hold a user or password: the token is given by token_file or token_env\n"
	        "17:30: \"per\" must be one of month, not \"week\"\n"
	        "19:50: job \"a\" runs on executor \"cloud\" (digitalocean): its code travels as a commit, so the file needs a \"source:\" section (or run the daemon with --from-repo)\n");
	free(e);
}

static void
the_type_is_available(void **state)
{
	const char *dir = *state;
	struct conf *c;

	conf_exec_allow_unfinished(false);
	c = load_ok(dir, SRC "executors:\n"
	                     "  cloud: {type: digitalocean, token_env: T, region: fra1}\n"
	                     "jobs:\n"
	                     "  a: {schedule: '@daily', run: 'true', executor: cloud}\n");
	assert_non_null(conf_executor_do(conf_executor_find(c, "cloud")));
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(keys_are_read_with_their_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(keys_take_their_values, setup, teardown),
		cmocka_unit_test_setup_teardown(a_token_others_can_read_is_refused, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(every_fault_is_reported_at_its_place, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(the_type_is_available, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
