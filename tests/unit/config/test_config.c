/* test_config.c - settings table, value parsers, the INI-style file and the
 * command line (precedence, bool flags, messages). */
#include <check.h>

#include "ck_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/cli.h"
#include "config/config.h"

static const char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/smoke-config-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(test_defaults)
{
	struct config c;
	config_init(&c);
	ck_assert_str_eq(c.server.host, "127.0.0.1");
	ck_assert_int_eq(c.server.port, 8080);
	ck_assert_int_eq(c.server.n_api_keys, 0);
	ck_assert_int_eq(c.runtime.cache_policy, CONFIG_POLICY_PREDICTIVE);
	ck_assert(c.runtime.async_prefetch);
	ck_assert_int_eq(c.memory.default_dtype, CONFIG_DTYPE_AUTO);
	ck_assert_int_eq(c.memory.weights_in_ram, CONFIG_LOAD_AUTO);
	ck_assert_uint_eq(c.limits.max_body, 1u << 20);
	ck_assert_uint_eq(c.limits.kv_budget, 1u << 30);
	ck_assert_uint_eq(c.limits.prompt_cache, 256u << 20);
	ck_assert(c.limits.connection_timeout == 30.0);
	ck_assert_int_eq(config_validate(&c, NULL), 0);
}
END_TEST

START_TEST(test_sizes)
{
	uint64_t v;
	ck_assert_int_eq(config_parse_size("7.8GB", &v), 0);
	ck_assert_uint_eq(v, 7800000000ull);
	ck_assert_int_eq(config_parse_size("512MiB", &v), 0);
	ck_assert_uint_eq(v, 512ull * 1024 * 1024);
	ck_assert_int_eq(config_parse_size("1.5 gib", &v), 0);
	ck_assert_uint_eq(v, 1610612736ull);
	ck_assert_int_eq(config_parse_size("100", &v), 0);
	ck_assert_uint_eq(v, 100);
	ck_assert_int_eq(config_parse_size("2kB", &v), 0);
	ck_assert_uint_eq(v, 2000);
	ck_assert_int_eq(config_parse_size("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	const char *bad[] = { "", "-1", "1e9", "GB", "1.2.3", "5XB", "0x10", " 5", "inf", "nan",
			      "99999999999TiB", "1,5GB", "5 G B" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(config_parse_size(bad[i], &v) != 0, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_bools_seconds)
{
	bool b;
	double d;
	ck_assert_int_eq(config_parse_bool("FALSE", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(config_parse_bool("on", &b), 0);
	ck_assert(b);
	ck_assert_int_ne(config_parse_bool("maybe", &b), 0);
	ck_assert_int_ne(config_parse_bool("", &b), 0);
	ck_assert_int_eq(config_parse_seconds("5m", &d), 0);
	ck_assert(d == 300.0);
	ck_assert_int_eq(config_parse_seconds("250ms", &d), 0);
	ck_assert(d > 0.2499 && d < 0.2501);
	ck_assert_int_eq(config_parse_seconds("30", &d), 0);
	ck_assert(d == 30.0);
	ck_assert_int_ne(config_parse_seconds("-3", &d), 0);
	ck_assert_int_ne(config_parse_seconds("3 days", &d), 0);
}
END_TEST

START_TEST(test_file)
{
	const char *text =
		"\xEF\xBB\xBF# smoked settings\r\n"
		"[server]\r\n"
		"host = 0.0.0.0   # all interfaces\n"
		"port=9000\n"
		"api_key = \"k#1\\\"x\"\n"
		"api_key = second\n"
		"\n"
		"; another comment\n"
		"[memory]\n"
		"gpu_memory = 7.8GB\n"
		"ram_cache = 512MiB\n"
		"default_dtype = bfloat16\n"
		"weights_in_ram = copy\n"
		"enable_cpu_offload = no\n"
		"[runtime]\n"
		"cache_policy = lru\n"
		"async_prefetch = false\n"
		"device.num_gpus = 2\n"
		"[limits]\n"
		"request_timeout = 2m\n";
	struct config c;
	struct smk_err err = { 0 };
	config_init(&c);
	ck_assert_msg(config_load_text(&c, text, strlen(text), "t.conf", &err) == 0, "%s", err.msg);
	ck_assert_str_eq(c.server.host, "0.0.0.0");
	ck_assert_int_eq(c.server.port, 9000);
	ck_assert_int_eq(c.server.n_api_keys, 2);
	ck_assert_str_eq(c.server.api_keys[0], "k#1\"x");
	ck_assert_str_eq(c.server.api_keys[1], "second");
	ck_assert_uint_eq(c.memory.gpu_memory, 7800000000ull);
	ck_assert_uint_eq(c.memory.ram_cache, 512ull << 20);
	ck_assert_int_eq(c.memory.default_dtype, CONFIG_DTYPE_BFLOAT16);
	ck_assert_int_eq(c.memory.weights_in_ram, CONFIG_LOAD_COPY);
	ck_assert(!c.memory.enable_cpu_offload);
	ck_assert_int_eq(c.runtime.cache_policy, CONFIG_POLICY_LRU);
	ck_assert(!c.runtime.async_prefetch);
	ck_assert_int_eq(c.device.num_gpus, 2);
	ck_assert(c.limits.request_timeout == 120.0);
}
END_TEST

/* Each bad file fails and the message contains every listed fragment. */
START_TEST(test_file_errors)
{
	static const struct { const char *text; const char *want[4]; } cases[] = {
		{ "[runtime]\ncache_policy = random\n",
		  { "t.conf:2", "runtime.cache_policy", "'random'", "lru|lfu|fifo|predictive" } },
		{ "[memory]\n\ngpu_memory = lots\n", { "t.conf:3", "memory.gpu_memory", "'lots'", "7.8GB" } },
		{ "[memory]\ndefault_dtype = int8\n", { "memory.default_dtype", "auto|float32|float16|bfloat16|q8_0" } },
		{ "[memory]\nweights_in_ram = yes\n", { "memory.weights_in_ram", "'yes'", "auto|map|copy" } },
		{ "[server]\nport = 70000\n", { "server.port", "'70000'", "0..65535" } },
		{ "[sever]\nport = 1\n", { "t.conf:1", "unknown section [sever]" } },
		{ "[server]\nprot = 1\n", { "t.conf:2", "unknown setting 'server.prot'" } },
		{ "port = 1\n", { "t.conf:1", "before any [section]" } },
		{ "[server]\nhost\n", { "t.conf:2", "key = value" } },
		{ "[server]\nhost = \"abc\n", { "unterminated" } },
		{ "[server\n", { "without ']'" } },
		{ "[runtime]\nasync_prefetch = sometimes\n", { "runtime.async_prefetch", "true or false" } },
		{ "[server]\napi_key = \"a b\"\n", { "space or control" } },
		{ "[device]\ngpu_id = 1.5\n", { "device.gpu_id", "'1.5'", "whole number" } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		struct smk_err err = { 0 };
		config_init(&c);
		int rc = config_load_text(&c, cases[i].text, strlen(cases[i].text), "t.conf", &err);
		ck_assert_msg(rc != 0, "case %zu accepted", i);
		for (int j = 0; j < 4 && cases[i].want[j]; j++)
			ck_assert_msg(strstr(err.msg, cases[i].want[j]), "case %zu: '%s' lacks '%s'",
				      i, err.msg, cases[i].want[j]);
	}
}
END_TEST

START_TEST(test_cli_precedence)
{
	const char *path = write_tmp("[server]\nport = 9000\nhost = ::1\n[runtime]\nprefetch_layers = 7\n");
	char p[64];
	snprintf(p, sizeof(p), "%s", path);
	/* The flag comes before --config and still wins over the file. */
	char *argv[] = { "smoked", "--port", "9100", "--config", p, "--async-prefetch=false",
			 "--enable-cpu-offload", "--gpu-memory", "2GiB", "--set", "limits.queue=3",
			 "--cache-policy", "fifo", NULL };
	struct cli c;
	struct smk_err err = { 0 };
	ck_assert_msg(cli_parse(&c, 13, argv, &err) == 0, "%s", err.msg);
	unlink(p);
	ck_assert_int_eq(c.mode, CLI_SERVE);
	ck_assert_int_eq(c.cfg.server.port, 9100);
	ck_assert_str_eq(c.cfg.server.host, "::1");
	ck_assert_int_eq(c.cfg.runtime.prefetch_layers, 7);
	ck_assert(!c.cfg.runtime.async_prefetch);
	ck_assert(c.cfg.memory.enable_cpu_offload);
	ck_assert_uint_eq(c.cfg.memory.gpu_memory, 2ull << 30);
	ck_assert_int_eq(c.cfg.limits.queue, 3);
	ck_assert_int_eq(c.cfg.runtime.cache_policy, CONFIG_POLICY_FIFO);
}
END_TEST

START_TEST(test_cli_offline)
{
	char *argv[] = { "smoked", "-m", "/x.gguf", "--prompt", "Hello", "-n", "5", "--temp", "0",
			 "--seed", "7", "--threads", "2", "--ctx", "512", NULL };
	struct cli c;
	struct smk_err err = { 0 };
	ck_assert_msg(cli_parse(&c, 15, argv, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(c.mode, CLI_PROMPT);
	ck_assert_str_eq(c.cfg.model.path, "/x.gguf");
	ck_assert_str_eq(c.prompt, "Hello");
	ck_assert_int_eq(c.n_predict, 5);
	ck_assert(c.sp.temperature == 0.0f);
	ck_assert_uint_eq(c.sp.seed, 7);
	ck_assert_int_eq(c.cfg.model.threads, 2);
	ck_assert_int_eq(c.cfg.model.context, 512);
}
END_TEST

/* limits.drain_delay: off by default, seconds from the file, the flag wins,
 * the range is checked and named. */
START_TEST(test_drain_delay)
{
	struct config c;
	struct smk_err err = { 0 };
	config_init(&c);
	ck_assert(c.limits.drain_delay == 0.0);
	const char *text = "[limits]\ndrain_delay = 5s\nshutdown_grace = 20\n";
	ck_assert_msg(config_load_text(&c, text, strlen(text), "t.conf", &err) == 0, "%s", err.msg);
	ck_assert(c.limits.drain_delay == 5.0);
	ck_assert(c.limits.shutdown_grace == 20.0);

	const char *path = write_tmp("[limits]\ndrain_delay = 1m\n");
	char p[64];
	snprintf(p, sizeof(p), "%s", path);
	char *argv[] = { "smoked", "--drain-delay", "2500ms", "--config", p, NULL };
	struct cli cl;
	ck_assert_msg(cli_parse(&cl, 5, argv, &err) == 0, "%s", err.msg);
	unlink(p);
	ck_assert(cl.cfg.limits.drain_delay == 2.5);

	static const char *bad[] = { "[limits]\ndrain_delay = -1\n", "[limits]\ndrain_delay = 2h\n",
				     "[limits]\ndrain_delay = soon\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		config_init(&c);
		ck_assert_msg(config_load_text(&c, bad[i], strlen(bad[i]), "t.conf", &err) != 0, "case %zu accepted", i);
		ck_assert_msg(strstr(err.msg, "limits.drain_delay"), "case %zu: '%s'", i, err.msg);
		ck_assert_msg(strstr(err.msg, "--drain-delay"), "case %zu: '%s'", i, err.msg);
	}
}
END_TEST

START_TEST(test_cli_errors)
{
	static const struct { const char *arg[3]; const char *want[3]; } cases[] = {
		{ { "--cache-policy", "random" }, { "--cache-policy", "'random'", "lru|lfu|fifo|predictive" } },
		{ { "--async-prefetch=perhaps" }, { "runtime.async_prefetch", "'perhaps'" } },
		{ { "--ram-cache", "-5GB" }, { "memory.ram_cache", "'-5GB'" } },
		{ { "--num-gpus", "x" }, { "device.num_gpus", "'x'" } },
		{ { "--no-such-flag" }, { "--no-such-flag" } },
		{ { "--set", "memory.nope=1" }, { "unknown setting 'memory.nope'" } },
		{ { "--set", "novalue" }, { "KEY=VALUE" } },
		{ { "--prompt", "x", "--dump" }, { "exclude" } },
		{ { "--config", "/nonexistent/smoked.conf" }, { "/nonexistent/smoked.conf" } },
		{ { "--set", "limits.max_tokens=10" }, { "default_max_tokens" } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[5] = { "smoked" };
		int argc = 1;
		for (int j = 0; j < 3 && cases[i].arg[j]; j++)
			argv[argc++] = (char *)cases[i].arg[j];
		struct cli c;
		struct smk_err err = { 0 };
		ck_assert_msg(cli_parse(&c, argc, argv, &err) != 0, "case %zu accepted", i);
		for (int j = 0; j < 3 && cases[i].want[j]; j++)
			ck_assert_msg(strstr(err.msg, cases[i].want[j]), "case %zu: '%s' lacks '%s'",
				      i, err.msg, cases[i].want[j]);
	}
}
END_TEST

START_TEST(test_key_file)
{
	const char *path = write_tmp("# keys\nalpha\r\n\nbeta  \n");
	char p[64], arg[96];
	snprintf(p, sizeof(p), "%s", path);
	snprintf(arg, sizeof(arg), "--api-key-file=%s", p);
	char *argv[] = { "smoked", "--api-key", "first", arg, NULL };
	struct cli c;
	struct smk_err err = { 0 };
	ck_assert_msg(cli_parse(&c, 4, argv, &err) == 0, "%s", err.msg);
	unlink(p);
	ck_assert_int_eq(c.cfg.server.n_api_keys, 3);
	ck_assert_str_eq(c.cfg.server.api_keys[0], "first");
	ck_assert_str_eq(c.cfg.server.api_keys[1], "alpha");
	ck_assert_str_eq(c.cfg.server.api_keys[2], "beta");
}
END_TEST

/* A key file that yields no key refuses to start (issue 17 a): asked for
 * authentication, never silently none. */
START_TEST(test_key_file_empty)
{
	static const char *const texts[] = { "", "# a comment\n\n   \n# another\n" };
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		const char *path = write_tmp(texts[i]);
		char p[64], arg[96];
		snprintf(p, sizeof(p), "%s", path);
		snprintf(arg, sizeof(arg), "--api-key-file=%s", p);
		char *argv[] = { "smoked", arg, NULL };
		struct cli c;
		struct smk_err err = { 0 };
		int rc = cli_parse(&c, 2, argv, &err);
		unlink(p);
		ck_assert_msg(rc != 0, "case %zu: an empty key file was accepted", i);
		ck_assert_msg(strstr(err.msg, "holds no key"), "case %zu: '%s'", i, err.msg);
	}
}
END_TEST

/* What config_print writes reads back to the same settings. */
START_TEST(test_print_roundtrip)
{
	struct config a, b;
	config_init(&a);
	ck_assert_int_eq(config_set(&a, "memory.ram_cache", "3GB", "t", NULL), 0);
	ck_assert_int_eq(config_set(&a, "model.path", "/m/x y.gguf", "t", NULL), 0);
	ck_assert_int_eq(config_set(&a, "runtime.cache_policy", "lfu", "t", NULL), 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	config_print(&a, f);
	fclose(f);
	config_init(&b);
	struct smk_err err = { 0 };
	ck_assert_msg(config_load_text(&b, buf, len, "printed", &err) == 0, "%s\n%s", err.msg, buf);
	free(buf);
	ck_assert_uint_eq(b.memory.ram_cache, 3000000000ull);
	ck_assert_str_eq(b.model.path, "/m/x y.gguf");
	ck_assert_int_eq(b.runtime.cache_policy, CONFIG_POLICY_LFU);
	ck_assert(b.limits.connection_timeout == a.limits.connection_timeout);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_bools_seconds);
	tcase_add_test(tc, test_file);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_cli_precedence);
	tcase_add_test(tc, test_cli_offline);
	tcase_add_test(tc, test_cli_errors);
	tcase_add_test(tc, test_drain_delay);
	tcase_add_test(tc, test_key_file);
	tcase_add_test(tc, test_key_file_empty);
	tcase_add_test(tc, test_print_roundtrip);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
