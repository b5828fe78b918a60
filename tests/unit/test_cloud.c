/* tests/unit/test_cloud.c: eph-cloud's pure parts: when a request is tried again (backoff with
 * jitter, the 429 headers, never sooner than they say) and DigitalOcean's shapes read into the
 * contract's (cloud/provider_do.h). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cloud/backoff.h"
#include "cloud/provider_do.h"

#define EPS 1e-9

static void
backoff_doubles_from_half_a_second_up_to_its_cap(void **state)
{
	(void)state;
	/* the whole wait with rand01 just under 1; half of it with 0 */
	assert_float_equal(backoff_delay(1, 0.999999999), 0.5, 1e-6);
	assert_float_equal(backoff_delay(1, 0), 0.25, EPS);
	assert_float_equal(backoff_delay(2, 0), 0.5, EPS);
	assert_float_equal(backoff_delay(3, 0), 1.0, EPS);
	assert_float_equal(backoff_delay(7, 0), 15.0, EPS);
	assert_float_equal(backoff_delay(8, 0), BACKOFF_CAP_S / 2, EPS);
	assert_float_equal(backoff_delay(1000, 0.5), BACKOFF_CAP_S * 0.75, EPS);
	assert_float_equal(backoff_delay(0, 0), 0.25, EPS); /* as the first */
}

static void
backoff_jitter_stays_within_half_and_all_of_the_wait(void **state)
{
	(void)state;
	for (int a = 1; a < 12; a++) {
		double full = backoff_delay(a, 0) * 2;

		for (double r = 0; r < 1; r += 0.125) {
			double d = backoff_delay(a, r);

			assert_true(d >= full / 2 - EPS && d <= full + EPS);
		}
	}
	/* randomness out of range never makes a wait shorter or longer than the rule */
	assert_float_equal(backoff_delay(2, -1), 1.0, EPS);
	assert_float_equal(backoff_delay(2, 7), 1.0, EPS);
	assert_float_equal(backoff_delay(2, NAN), 1.0, EPS);
}

static void
ratelimit_reset_is_an_epoch_second(void **state)
{
	double u = 0;

	(void)state;
	assert_int_equal(backoff_parse_reset("1444931833", &u), 0);
	assert_float_equal(u, 1444931833.0, EPS);
	assert_int_equal(backoff_parse_reset(" 1444931833\r\n", &u), 0);
	assert_int_equal(backoff_parse_reset("", &u), -EINVAL);
	assert_int_equal(backoff_parse_reset("-5", &u), -EINVAL);
	assert_int_equal(backoff_parse_reset("12s", &u), -EINVAL);
	assert_int_equal(backoff_parse_reset("99999999999999999999999", &u), -EINVAL);
}

static void
retry_after_is_seconds_or_an_http_date(void **state)
{
	double u = 0;

	(void)state;
	assert_int_equal(backoff_parse_retry_after("120", 1000.5, &u), 0);
	assert_float_equal(u, 1120.5, EPS);
	assert_int_equal(backoff_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0, &u), 0);
	assert_float_equal(u, 1445412480.0, EPS);
	assert_int_equal(backoff_parse_retry_after("Wed, 21 Oct 2015 07:28:00", 0, &u), -EINVAL);
	assert_int_equal(backoff_parse_retry_after("soon", 0, &u), -EINVAL);
	assert_int_equal(backoff_parse_retry_after("1.5", 0, &u), -EINVAL);
}

static void
a_429_waits_for_the_later_of_its_headers(void **state)
{
	double u = 0;

	(void)state;
	assert_true(backoff_429_until("2000", NULL, 1990, &u));
	assert_float_equal(u, 2000, EPS);
	assert_true(backoff_429_until(NULL, "5", 1990, &u));
	assert_float_equal(u, 1995, EPS);
	assert_true(backoff_429_until("2000", "30", 1990, &u)); /* retry-after is later */
	assert_float_equal(u, 2020, EPS);
	assert_true(backoff_429_until("2000", "3", 1990, &u)); /* the reset is later */
	assert_float_equal(u, 2000, EPS);
	assert_true(backoff_429_until("junk", "3", 1990, &u)); /* the readable one */
	assert_float_equal(u, 1993, EPS);
	assert_false(backoff_429_until("junk", "later", 1990, &u));
	assert_false(backoff_429_until(NULL, NULL, 1990, &u));
}

static json_t *
load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	assert_non_null(j);
	return j;
}

static void
a_documented_size_reads_into_the_contracts_shape(void **state)
{
	/* the example of the API's description (sizes/responses/all_sizes.yml) */
	json_t *in =
	        load("{\"slug\": \"s-1vcpu-1gb\", \"memory\": 1024, \"vcpus\": 1, \"disk\": 25,"
	             " \"transfer\": 1.0, \"price_monthly\": 5.0, \"price_hourly\": "
	             "0.00743999984115362, \"regions\": [\"ams2\", \"fra1\"], \"available\": "
	             "true, \"description\": \"Basic\", \"disk_info\": []}");
	json_t *out = provider_do_size(in), *want;

	(void)state;
	assert_non_null(out);
	want = load("{\"slug\": \"s-1vcpu-1gb\", \"memory_mib\": 1024, \"vcpus\": 1, \"disk_gb\": "
	            "25, \"price_hourly\": 0.00743999984115362, \"price_monthly\": 5.0, "
	            "\"regions\": [\"ams2\", \"fra1\"], \"available\": true}");
	assert_true(json_equal(out, want));
	json_decref(want);
	json_decref(out);
	json_decref(in);
}

static void
a_size_missing_or_mistyped_fields_is_refused(void **state)
{
	static const char *const bad[] = {
		"{\"memory\": 1024, \"vcpus\": 1, \"disk\": 25, \"price_monthly\": 5, "
		"\"price_hourly\": 0.007, \"regions\": [], \"available\": true}",
		"{\"slug\": \"a\", \"memory\": \"1024\", \"vcpus\": 1, \"disk\": 25, "
		"\"price_monthly\": 5, \"price_hourly\": 0.007, \"regions\": [], \"available\": true}",
		"{\"slug\": \"a\", \"memory\": 0, \"vcpus\": 1, \"disk\": 25, "
		"\"price_monthly\": 5, \"price_hourly\": 0.007, \"regions\": [], \"available\": true}",
		"{\"slug\": \"a\", \"memory\": 1024, \"vcpus\": 1, \"disk\": 25, "
		"\"price_monthly\": 5, \"price_hourly\": 0.007, \"regions\": [1], \"available\": true}",
		"{\"slug\": \"a\", \"memory\": 1024, \"vcpus\": 1, \"disk\": 25, "
		"\"price_monthly\": 5, \"price_hourly\": 0.007, \"regions\": []}",
		"[]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *in = load(bad[i]);

		assert_null(provider_do_size(in));
		json_decref(in);
	}
	/* an integer price is a number too */
	json_t *in = load("{\"slug\": \"a\", \"memory\": 512, \"vcpus\": 1, \"disk\": 10, "
	                  "\"price_monthly\": 4, \"price_hourly\": 0.00595, \"regions\": [], "
	                  "\"available\": false}");
	json_t *out = provider_do_size(in);

	assert_non_null(out);
	assert_float_equal(json_number_value(json_object_get(out, "price_monthly")), 4.0, EPS);
	assert_true(json_is_false(json_object_get(out, "available")));
	json_decref(out);
	json_decref(in);
}

static void
a_droplet_reads_with_its_addresses_once_given(void **state)
{
	json_t *in = load(
	        "{\"id\": 3164444, \"name\": \"eph-a-1\", \"status\": \"active\", \"created_at\": "
	        "\"2020-07-21T18:37:44Z\", \"size_slug\": \"s-1vcpu-1gb\", \"region\": {\"slug\": "
	        "\"nyc3\", \"name\": \"New York 3\"}, \"tags\": [\"web\", \"env:prod\"], "
	        "\"networks\": {\"v4\": [{\"ip_address\": \"10.128.192.124\", \"type\": \"private\"}, "
	        "{\"ip_address\": \"192.241.165.154\", \"type\": \"public\"}], \"v6\": []}}");
	json_t *out = provider_do_droplet(in), *fresh;

	(void)state;
	assert_non_null(out);
	assert_int_equal(json_integer_value(json_object_get(out, "id")), 3164444);
	assert_string_equal(json_string_value(json_object_get(out, "ipv4_public")),
	                    "192.241.165.154");
	assert_string_equal(json_string_value(json_object_get(out, "ipv4_private")),
	                    "10.128.192.124");
	assert_string_equal(json_string_value(json_object_get(out, "region")), "nyc3");
	assert_string_equal(json_string_value(json_object_get(out, "size")), "s-1vcpu-1gb");
	assert_int_equal(json_array_size(json_object_get(out, "tags")), 2);
	json_decref(out);
	json_decref(in);
	/* a new droplet: no networks yet; the size from the size object */
	in = load(
	        "{\"id\": 5, \"name\": \"n\", \"status\": \"new\", \"size\": {\"slug\": \"c-2\"}, "
	        "\"networks\": {\"v4\": [], \"v6\": []}, \"tags\": []}");
	fresh = provider_do_droplet(in);
	assert_non_null(fresh);
	assert_true(json_is_null(json_object_get(fresh, "ipv4_public")));
	assert_string_equal(json_string_value(json_object_get(fresh, "size")), "c-2");
	json_decref(fresh);
	json_decref(in);
	in = load("{\"name\": \"no id\", \"status\": \"new\"}");
	assert_null(provider_do_droplet(in));
	json_decref(in);
}

static void
error_bodies_give_the_providers_words(void **state)
{
	static const char body[] = "{\"id\": \"unprocessable_entity\", \"message\": \"Size is not "
	                           "available in this region.\", \"request_id\": \"4851a473\"}";
	char *w = provider_do_error_words(body, strlen(body));

	(void)state;
	assert_string_equal(w, "Size is not available in this region. (unprocessable_entity)");
	free(w);
	assert_null(provider_do_error_words("<html>bad gateway</html>", 24));
	assert_null(provider_do_error_words(NULL, 0));
}

static void
pagination_links_stay_on_the_api(void **state)
{
	(void)state;
	assert_true(provider_do_same_api("https://api.digitalocean.com",
	                                 "https://api.digitalocean.com/v2/sizes?page=2"));
	assert_false(provider_do_same_api("https://api.digitalocean.com",
	                                  "https://api.digitalocean.com.evil.example/v2/sizes"));
	assert_false(provider_do_same_api("http://127.0.0.1:80", "http://127.0.0.1:8080/v2/x"));
	assert_false(provider_do_same_api("https://api.digitalocean.com",
	                                  "http://api.digitalocean.com/v2/sizes"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff_doubles_from_half_a_second_up_to_its_cap),
		cmocka_unit_test(backoff_jitter_stays_within_half_and_all_of_the_wait),
		cmocka_unit_test(ratelimit_reset_is_an_epoch_second),
		cmocka_unit_test(retry_after_is_seconds_or_an_http_date),
		cmocka_unit_test(a_429_waits_for_the_later_of_its_headers),
		cmocka_unit_test(a_documented_size_reads_into_the_contracts_shape),
		cmocka_unit_test(a_size_missing_or_mistyped_fields_is_refused),
		cmocka_unit_test(a_droplet_reads_with_its_addresses_once_given),
		cmocka_unit_test(error_bodies_give_the_providers_words),
		cmocka_unit_test(pagination_links_stay_on_the_api),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
