/* config.c - the settings table, its parsers and the INI-style file reader. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum key_type { K_STR, K_INT, K_BOOL, K_SIZE, K_ENUM, K_SECONDS, K_KEY, K_KEYFILE };

struct key {
	const char *name;          /* section.key */
	const char *flag;          /* without the dashes; NULL: derived from the name */
	enum key_type type;
	size_t off;                /* offset in struct config */
	size_t size;               /* K_STR: buffer size */
	int64_t lo, hi;            /* K_INT, K_SIZE; K_SECONDS (whole seconds) */
	const char *const *names;  /* K_ENUM, NULL-terminated */
	const char *def;           /* default, parsed like any value; NULL: none */
	const char *help;
};

/* Same order as enum config_dtype (and enum convert_dtype). */
static const char *const dtype_names[] = { "auto", "float32", "float16", "bfloat16", "q8_0", NULL };
static const char *const policy_names[] = { "lru", "lfu", "fifo", "predictive", NULL };
static const char *const xpredict_names[] = { "merged", "router", "history", "off", NULL };
static const char *const load_names[] = { "auto", "map", "copy", NULL };
static const char *const level_names[] = { "error", "warn", "info", "debug", NULL };

#define OFF(f) offsetof(struct config, f)
#define STR(f) OFF(f), sizeof(((struct config *)0)->f)

static const struct key keys[] = {
	{ "server.host", NULL, K_STR, STR(server.host), 0, 0, NULL, "127.0.0.1",
	  "address to listen on (IPv4 or IPv6 literal, or a host name)" },
	{ "server.port", NULL, K_INT, OFF(server.port), 0, 0, 65535, NULL, "8080",
	  "TCP port; 0 picks a free one (logged)" },
	{ "server.api_key", NULL, K_KEY, OFF(server.api_keys), 0, 0, 0, NULL, NULL,
	  "accepted Bearer key; repeat for several (none: no authentication)" },
	{ "server.api_key_file", NULL, K_KEYFILE, OFF(server.api_keys), 0, 0, 0, NULL, NULL,
	  "file with one accepted key per line (e.g. a systemd credential)" },
	{ "server.allowed_hosts", NULL, K_STR, STR(server.allowed_hosts), 0, 0, NULL, "",
	  "comma-separated host names accepted in Host and Origin headers, * for any "
	  "(empty: the listen address's names; any host when listening on all addresses)" },
	{ "server.health_need_key", NULL, K_BOOL, OFF(server.health_need_key), 0, 0, 0, NULL, "false",
	  "whether GET /health needs a key" },
	{ "server.metrics_need_key", NULL, K_BOOL, OFF(server.metrics_need_key), 0, 0, 0, NULL, "false",
	  "whether GET /metrics needs a key" },
	{ "server.http_threads", NULL, K_INT, OFF(server.http_threads), 0, 1, 64, NULL, "2",
	  "libmicrohttpd event-loop threads" },
	{ "server.log_level", NULL, K_ENUM, OFF(server.log_level), 0, 0, 0, level_names, "info",
	  "least important log level printed" },
	{ "model.path", "model", K_STR, STR(model.path), 0, 0, NULL, "",
	  "GGUF model file (empty: $SMOKE_MODEL or the default model)" },
	{ "model.id", "model-id", K_STR, STR(model.id), 0, 0, NULL, "",
	  "model name in the API (empty: the file name without .gguf)" },
	{ "model.context", "ctx", K_INT, OFF(model.context), 0, 0, 1 << 20, NULL, "0",
	  "context positions per sequence (0: 4096, capped by the model)" },
	{ "model.batch", "batch", K_INT, OFF(model.batch), 0, 0, 4096, NULL, "0",
	  "prefill chunk in tokens (0: 256)" },
	{ "model.threads", "threads", K_INT, OFF(model.threads), 0, 0, 256, NULL, "0",
	  "compute threads (0: all CPUs)" },
	{ "limits.max_body", NULL, K_SIZE, OFF(limits.max_body), 0, 1024, 1 << 30, NULL, "1MiB",
	  "largest request body accepted (larger: 413)" },
	{ "limits.max_tokens", NULL, K_INT, OFF(limits.max_tokens), 0, 1, 1 << 20, NULL, "4096",
	  "largest max_tokens a request may ask for" },
	{ "limits.default_max_tokens", NULL, K_INT, OFF(limits.default_max_tokens), 0, 1, 1 << 20, NULL, "256",
	  "max_tokens of a request that gives none" },
	{ "limits.concurrency", NULL, K_INT, OFF(limits.concurrency), 0, 1, 256, NULL, "4",
	  "sequences generating at the same time" },
	{ "limits.queue", NULL, K_INT, OFF(limits.queue), 0, 0, 65536, NULL, "64",
	  "requests waiting for a sequence slot (more: 503 + Retry-After)" },
	{ "limits.request_timeout", NULL, K_SECONDS, OFF(limits.request_timeout), 0, 0, 86400, NULL, "600",
	  "seconds from arrival after which a request is cancelled (0: never)" },
	{ "limits.connection_timeout", NULL, K_SECONDS, OFF(limits.connection_timeout), 0, 1, 3600, NULL, "30",
	  "idle seconds after which a connection is closed; a request body must also arrive within it" },
	{ "limits.max_connections", NULL, K_INT, OFF(limits.max_connections), 0, 1, 65536, NULL, "256",
	  "open connections in all" },
	{ "limits.max_connections_per_ip", NULL, K_INT, OFF(limits.max_connections_per_ip), 0, 0, 65536, NULL, "32",
	  "open connections per client address (0: no limit)" },
	{ "limits.connection_memory", NULL, K_SIZE, OFF(limits.connection_memory), 0, 8192, 16 << 20, NULL, "64KiB",
	  "libmicrohttpd memory pool per connection (headers and buffers)" },
	{ "limits.kv_budget", NULL, K_SIZE, OFF(limits.kv_budget), 0, 1 << 20, INT64_C(1) << 50, NULL, "1GiB",
	  "KV-cache bytes over all sequences; a request that does not fit waits" },
	{ "limits.prompt_cache", NULL, K_SIZE, OFF(limits.prompt_cache), 0, 0, INT64_C(1) << 50, NULL, "256MiB",
	  "RAM bytes keeping finished sequences' KV by token prefix for later prompts (0: off)" },
	{ "limits.shutdown_grace", NULL, K_SECONDS, OFF(limits.shutdown_grace), 0, 0, 3600, NULL, "10",
	  "seconds in-flight requests may finish after SIGTERM before they are cancelled" },
	{ "limits.drain_delay", NULL, K_SECONDS, OFF(limits.drain_delay), 0, 0, 3600, NULL, "0",
	  "seconds after SIGTERM during which /health says 503 draining and requests are still served, "
	  "before the grace begins (0: none)" },
	{ "memory.gpu_memory", NULL, K_SIZE, OFF(memory.gpu_memory), 0, 0, INT64_C(1) << 62, NULL, "0",
	  "device-tier budget, KV cache and scratch included (0: no limit)" },
	{ "memory.ram_cache", NULL, K_SIZE, OFF(memory.ram_cache), 0, 0, INT64_C(1) << 62, NULL, "0",
	  "pinned RAM-tier budget (0: no limit)" },
	{ "memory.weights_in_ram", NULL, K_ENUM, OFF(memory.weights_in_ram), 0, 0, 0, load_names, "auto",
	  "without memory.ram_cache / memory.gpu_memory: copy the weights into memory at load (copy: "
	  "decode reads them faster than from the file mapping's pages), compute from the file mapping "
	  "(map), or copy when they take at most half of the memory available (auto)" },
	{ "memory.default_dtype", NULL, K_ENUM, OFF(memory.default_dtype), 0, 0, 0, dtype_names, "auto",
	  "what float weights (F32/F16/BF16 matrices) are converted to at load; auto keeps the file's" },
	{ "memory.enable_cpu_offload", NULL, K_BOOL, OFF(memory.enable_cpu_offload), 0, 0, 0, NULL, "true",
	  "allow weights that miss the device budget to live in RAM" },
	{ "memory.disk_cache", NULL, K_SIZE, OFF(memory.disk_cache), 0, 0, INT64_C(1) << 62, NULL, "0",
	  "bytes of local disk that cache a model read from object storage (s3://, https://) "
	  "between it and the RAM tier (0: none; needs memory.disk_cache_dir)" },
	{ "memory.disk_cache_dir", NULL, K_STR, STR(memory.disk_cache_dir), 0, 0, NULL, "",
	  "directory of that disk cache (reused across restarts, each chunk checksummed)" },
	{ "runtime.prefetch_layers", NULL, K_INT, OFF(runtime.prefetch_layers), 0, 0, 1024, NULL, "2",
	  "weight blocks loaded ahead of the compute" },
	{ "runtime.cache_policy", NULL, K_ENUM, OFF(runtime.cache_policy), 0, 0, 0, policy_names, "predictive",
	  "eviction policy of the RAM and device tiers" },
	{ "runtime.smoke_test_layers", NULL, K_INT, OFF(runtime.smoke_test_layers), 0, 0, 4096, NULL, "4",
	  "blocks of the execution plan the predictor looks ahead" },
	{ "runtime.async_prefetch", NULL, K_BOOL, OFF(runtime.async_prefetch), 0, 0, 0, NULL, "true",
	  "prefetch on the libuv loop (false: load synchronously, for comparison)" },
	{ "runtime.expert_prediction", NULL, K_ENUM, OFF(runtime.expert_prediction), 0, 0, 0, xpredict_names,
	  "merged", "how a mixture of experts' next experts are predicted and fetched ahead: the next "
	  "layer's router on the hidden state, then recent and frequent choices (merged); router; "
	  "history; off" },
	{ "device.gpu_id", NULL, K_INT, OFF(device.gpu_id), 0, 0, 63, NULL, "0",
	  "first CUDA device to use" },
	{ "device.num_gpus", NULL, K_INT, OFF(device.num_gpus), 0, 0, 64, NULL, "1",
	  "CUDA devices to use (0: CPU only)" },
};
#define N_KEYS ((int)(sizeof(keys) / sizeof(keys[0])))

/* The flag of a key: the table's, else the last part with '_' -> '-'. */
static const char *key_flag(const struct key *k, char *buf, size_t len)
{
	if (k->flag)
		return k->flag;
	const char *dot = strrchr(k->name, '.');
	snprintf(buf, len, "%s", dot ? dot + 1 : k->name);
	for (char *p = buf; *p; p++)
		if (*p == '_')
			*p = '-';
	return buf;
}

/* Flags are built once, lazily, so config_flag_key can hand out pointers. */
static char flag_names[N_KEYS][48];

static const char *flag_of(int i)
{
	if (keys[i].flag)
		return keys[i].flag;
	if (!flag_names[i][0])
		key_flag(&keys[i], flag_names[i], sizeof(flag_names[i]));
	return flag_names[i];
}

const char *config_key_name(int i, const char **flag, bool *is_bool)
{
	if (i < 0 || i >= N_KEYS)
		return NULL;
	if (flag)
		*flag = flag_of(i);
	if (is_bool)
		*is_bool = keys[i].type == K_BOOL;
	return keys[i].name;
}

const char *config_flag_key(const char *flag, bool *is_bool)
{
	for (int i = 0; i < N_KEYS; i++)
		if (!strcmp(flag_of(i), flag)) {
			if (is_bool)
				*is_bool = keys[i].type == K_BOOL;
			return keys[i].name;
		}
	return NULL;
}

static const struct key *find_key(const char *name)
{
	for (int i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* ---- value parsers ---- */

static bool is_blank(const char *s)
{
	return !s || !*s;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "true", "yes", "on", "1" };
	static const char *const f[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, t[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, f[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A non-negative decimal number with an optional fraction; *end past it.
 * Written by hand so that "1e9", "0x10", "inf" and locales are refused. */
static int parse_decimal(const char *s, long double *out, const char **end)
{
	const char *p = s;
	long double v = 0;
	int digits = 0;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (*p++ - '0');
		digits++;
	}
	if (*p == '.') {
		long double scale = 0.1L;
		p++;
		while (isdigit((unsigned char)*p)) {
			v += (*p++ - '0') * scale;
			scale /= 10;
			digits++;
		}
	}
	if (!digits || v > 1e30L)
		return -EINVAL;
	*out = v;
	*end = p;
	return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
	static const struct { const char *unit; long double mul; } units[] = {
		{ "", 1 }, { "b", 1 },
		{ "kb", 1e3L }, { "mb", 1e6L }, { "gb", 1e9L }, { "tb", 1e12L },
		{ "kib", 1024.0L }, { "mib", 1048576.0L }, { "gib", 1073741824.0L },
		{ "tib", 1099511627776.0L },
	};
	long double v;
	const char *p;
	if (is_blank(s) || parse_decimal(s, &v, &p))
		return -EINVAL;
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(p, units[i].unit))
			continue;
		long double b = roundl(v * units[i].mul);
		if (b > (long double)(UINT64_C(1) << 62))
			return -ERANGE;
		*out = (uint64_t)b;
		return 0;
	}
	return -EINVAL;
}

int config_parse_seconds(const char *s, double *out)
{
	static const struct { const char *unit; double mul; } units[] = {
		{ "", 1 }, { "s", 1 }, { "ms", 1e-3 }, { "m", 60 }, { "h", 3600 },
	};
	long double v;
	const char *p;
	if (is_blank(s) || parse_decimal(s, &v, &p))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(p, units[i].unit)) {
			*out = (double)(v * units[i].mul);
			return 0;
		}
	return -EINVAL;
}

/* A whole decimal number, optional leading '-', no spaces, no overflow. */
static int parse_int(const char *s, int64_t *out)
{
	char *end;
	if (is_blank(s) || isspace((unsigned char)*s) || *s == '+')
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static void join_names(const char *const *names, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = 0;
	for (int i = 0; names[i] && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "|" : "", names[i]);
}

static int add_key(struct config *c, const char *v, const char *origin, const char *name,
		   struct smk_err *err)
{
	size_t len = strlen(v);
	if (len == 0 || len >= CONFIG_API_KEY_MAX)
		return smk_fail(err, -EINVAL, "%s: %s must be 1..%d bytes long, not %zu",
				origin, name, CONFIG_API_KEY_MAX - 1, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f)
			return smk_fail(err, -EINVAL, "%s: %s contains a space or control character "
					"(keys are sent in an HTTP header)", origin, name);
	if (c->server.n_api_keys >= CONFIG_MAX_API_KEYS)
		return smk_fail(err, -EINVAL, "%s: more than %d API keys", origin, CONFIG_MAX_API_KEYS);
	memcpy(c->server.api_keys[c->server.n_api_keys++], v, len + 1);
	return 0;
}

static int load_key_file(struct config *c, const char *path, const char *origin, struct smk_err *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return smk_fail(err, -errno, "%s: server.api_key_file '%s': %s", origin, path, strerror(errno));
	char line[CONFIG_API_KEY_MAX + 2];
	int lineno = 0, rc = 0, n_keys = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len && line[len - 1] != '\n' && !feof(f)) {
			rc = smk_fail(err, -EINVAL, "%s:%d: API key longer than %d bytes", path, lineno,
				      CONFIG_API_KEY_MAX - 1);
			break;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = 0;
		if (!len || line[0] == '#')
			continue;
		char where[CONFIG_PATH_MAX + 16];
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if ((rc = add_key(c, line, where, "API key", err)))
			break;
		n_keys++;
	}
	if (!rc && ferror(f))
		rc = smk_fail(err, -EIO, "%s: server.api_key_file '%s': read error", origin, path);
	/* A key file is asked for to turn authentication on: one that yields
	 * no key (empty, only comments, a credential that was not passed)
	 * must not start the daemon open to everyone. */
	if (!rc && !n_keys)
		rc = smk_fail(err, -EINVAL, "%s: server.api_key_file '%s' holds no key (empty, or only "
			      "comments); refusing to start without authentication", origin, path);
	fclose(f);
	return rc;
}

/* Parse value for key k into c.  The message names origin, key, value and
 * what is allowed. */
static int set_key(struct config *c, const struct key *k, const char *v, const char *origin,
		   struct smk_err *err)
{
	char *base = (char *)c + k->off;
	char flagbuf[48], allowed[128];
	const char *flag = key_flag(k, flagbuf, sizeof(flagbuf));
	int64_t i64;
	uint64_t u64;
	double d;
	bool b;

	switch (k->type) {
	case K_STR: {
		size_t len = strlen(v);
		if (len >= k->size)
			return smk_fail(err, -EINVAL, "%s: %s (--%s) is %zu bytes long; at most %zu allowed",
					origin, k->name, flag, len, k->size - 1);
		memcpy(base, v, len + 1);
		return 0;
	}
	case K_INT:
		if (parse_int(v, &i64) || i64 < k->lo || i64 > k->hi)
			return smk_fail(err, -EINVAL, "%s: %s (--%s) = '%s': expected a whole number in %lld..%lld",
					origin, k->name, flag, v, (long long)k->lo, (long long)k->hi);
		*(int *)base = (int)i64;
		return 0;
	case K_BOOL:
		if (config_parse_bool(v, &b))
			return smk_fail(err, -EINVAL, "%s: %s (--%s) = '%s': expected true or false "
					"(also yes/no, on/off, 1/0)", origin, k->name, flag, v);
		*(bool *)base = b;
		return 0;
	case K_SIZE:
		if (config_parse_size(v, &u64) || u64 < (uint64_t)k->lo || u64 > (uint64_t)k->hi)
			return smk_fail(err, -EINVAL, "%s: %s (--%s) = '%s': expected a size from %lld to %lld bytes "
					"with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. \"7.8GB\" or \"512MiB\"",
					origin, k->name, flag, v, (long long)k->lo, (long long)k->hi);
		*(uint64_t *)base = u64;
		return 0;
	case K_SECONDS:
		if (config_parse_seconds(v, &d) || d < (double)k->lo || d > (double)k->hi)
			return smk_fail(err, -EINVAL, "%s: %s (--%s) = '%s': expected seconds from %lld to %lld "
					"with an optional unit (ms, s, m, h), e.g. \"30\" or \"5m\"",
					origin, k->name, flag, v, (long long)k->lo, (long long)k->hi);
		*(double *)base = d;
		return 0;
	case K_ENUM:
		for (int i = 0; k->names[i]; i++)
			if (!strcmp(v, k->names[i])) {
				*(int *)base = i;
				return 0;
			}
		join_names(k->names, allowed, sizeof(allowed));
		return smk_fail(err, -EINVAL, "%s: %s (--%s) = '%s': expected one of %s",
				origin, k->name, flag, v, allowed);
	case K_KEY:
		return add_key(c, v, origin, k->name, err);
	case K_KEYFILE:
		return load_key_file(c, v, origin, err);
	}
	return -EINVAL;
}

int config_set(struct config *c, const char *key, const char *value, const char *origin,
	       struct smk_err *err)
{
	const struct key *k = find_key(key);
	if (!k)
		return smk_fail(err, -ENOENT, "%s: unknown setting '%s' (smoked --help lists them)",
				origin, key);
	return set_key(c, k, value, origin, err);
}

void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < N_KEYS; i++) {
		if (!keys[i].def)
			continue;
		/* A default that does not parse is a bug in the table. */
		if (set_key(c, &keys[i], keys[i].def, "default", NULL))
			abort();
	}
}

/* ---- the file ---- */

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = 0;
	*end = 0;
	return s;
}

/* Turn the value text [v, end) into its meaning in place: a quoted value
 * loses its quotes and escapes; an unquoted one loses an inline comment. */
static int unquote(char *v, char *end, char **out, const char *where, struct smk_err *err)
{
	v = trim(v, end);
	if (*v != '"') {
		for (char *p = v; *p; p++)
			if ((*p == '#' || *p == ';') && p > v && (p[-1] == ' ' || p[-1] == '\t')) {
				*p = 0;
				break;
			}
		*out = trim(v, v + strlen(v));
		return 0;
	}
	char *w = v, *r = v + 1;
	for (;;) {
		if (!*r)
			return smk_fail(err, -EINVAL, "%s: unterminated quoted value", where);
		if (*r == '"')
			break;
		if (*r == '\\') {
			r++;
			switch (*r) {
			case '\\': *w++ = '\\'; break;
			case '"': *w++ = '"'; break;
			case 'n': *w++ = '\n'; break;
			case 't': *w++ = '\t'; break;
			default:
				return smk_fail(err, -EINVAL, "%s: unknown escape '\\%c' in a quoted value "
						"(\\\\ \\\" \\n \\t are allowed)", where, *r ? *r : '0');
			}
			r++;
			continue;
		}
		*w++ = *r++;
	}
	r++;
	while (*r == ' ' || *r == '\t')
		r++;
	if (*r && *r != '#' && *r != ';')
		return smk_fail(err, -EINVAL, "%s: text after the closing quote", where);
	*w = 0;
	*out = v;
	return 0;
}

static bool valid_section(const char *s)
{
	static const char *const sections[] = { "server", "model", "limits", "memory", "runtime", "device" };
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (!strcmp(s, sections[i]))
			return true;
	return false;
}

int config_load_text(struct config *c, const char *text, size_t len, const char *name,
		     struct smk_err *err)
{
	char *buf = malloc(len + 1);
	if (!buf)
		return smk_fail(err, -ENOMEM, "%s: out of memory", name);
	memcpy(buf, text, len);
	buf[len] = 0;
	int rc = 0, lineno = 0;
	char section[32] = "";
	char *line = buf;
	if (len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3))
		line += 3;  /* a UTF-8 byte-order mark some editors write */
	while (line && rc == 0) {
		lineno++;
		size_t rem = len - (size_t)(line - buf);
		char *nl = memchr(line, '\n', rem);
		char *end = nl ? nl : line + rem;
		char *next = nl ? nl + 1 : NULL;
		if (end > line && end[-1] == '\r')
			end--;
		char where[CONFIG_PATH_MAX + 32];
		snprintf(where, sizeof(where), "%s:%d", name, lineno);
		if (strlen(line) < (size_t)(end - line)) {
			rc = smk_fail(err, -EINVAL, "%s: NUL byte in the file", where);
			break;
		}
		char *s = trim(line, end);
		line = next;
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (!close) {
				rc = smk_fail(err, -EINVAL, "%s: section header without ']'", where);
				break;
			}
			char *rest = trim(close + 1, close + 1 + strlen(close + 1));
			if (*rest && *rest != '#' && *rest != ';') {
				rc = smk_fail(err, -EINVAL, "%s: text after the section header", where);
				break;
			}
			char *sec = trim(s + 1, close);
			if (!valid_section(sec)) {
				rc = smk_fail(err, -EINVAL, "%s: unknown section [%s] (server, model, limits, "
					      "memory, runtime, device)", where, sec);
				break;
			}
			snprintf(section, sizeof(section), "%s", sec);
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			rc = smk_fail(err, -EINVAL, "%s: expected 'key = value' or '[section]'", where);
			break;
		}
		char *key = trim(s, eq);
		char *value = NULL;
		if ((rc = unquote(eq + 1, eq + 1 + strlen(eq + 1), &value, where, err)))
			break;
		char full[96];
		if (strchr(key, '.'))
			snprintf(full, sizeof(full), "%s", key);
		else if (section[0])
			snprintf(full, sizeof(full), "%s.%s", section, key);
		else {
			rc = smk_fail(err, -EINVAL, "%s: key '%s' before any [section]", where, key);
			break;
		}
		rc = config_set(c, full, value, where, err);
	}
	free(buf);
	return rc;
}

int config_load_file(struct config *c, const char *path, struct smk_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return smk_fail(err, -errno, "config file '%s': %s", path, strerror(errno));
	/* Settings files are small; refusing big ones guards against a wrong path
	 * (a model file, /dev/zero). */
	enum { MAX = 1 << 20 };
	char *buf = malloc(MAX + 1);
	if (!buf) {
		fclose(f);
		return smk_fail(err, -ENOMEM, "config file '%s': out of memory", path);
	}
	size_t n = fread(buf, 1, MAX + 1, f);
	int rd_err = ferror(f);
	fclose(f);
	int rc;
	if (rd_err)
		rc = smk_fail(err, -EIO, "config file '%s': read error", path);
	else if (n > MAX)
		rc = smk_fail(err, -EFBIG, "config file '%s' is larger than 1 MiB", path);
	else
		rc = config_load_text(c, buf, n, path, err);
	free(buf);
	return rc;
}

int config_validate(const struct config *c, struct smk_err *err)
{
	if (c->limits.default_max_tokens > c->limits.max_tokens)
		return smk_fail(err, -EINVAL, "limits.default_max_tokens (%d) is larger than limits.max_tokens (%d)",
				c->limits.default_max_tokens, c->limits.max_tokens);
	if (c->limits.max_connections_per_ip > c->limits.max_connections)
		return smk_fail(err, -EINVAL, "limits.max_connections_per_ip (%d) is larger than "
				"limits.max_connections (%d)", c->limits.max_connections_per_ip,
				c->limits.max_connections);
	if (!c->server.host[0])
		return smk_fail(err, -EINVAL, "server.host is empty");
	return 0;
}

/* ---- printing ---- */

static void format_value(const struct config *c, const struct key *k, char *buf, size_t len)
{
	const char *base = (const char *)c + k->off;
	switch (k->type) {
	case K_STR: snprintf(buf, len, "\"%s\"", base); break;
	case K_INT: snprintf(buf, len, "%d", *(const int *)base); break;
	case K_BOOL: snprintf(buf, len, "%s", *(const bool *)base ? "true" : "false"); break;
	case K_SIZE: snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)base); break;
	case K_SECONDS: snprintf(buf, len, "%g", *(const double *)base); break;
	case K_ENUM: snprintf(buf, len, "%s", k->names[*(const int *)base]); break;
	case K_KEY:
	case K_KEYFILE: snprintf(buf, len, "(%d keys, not shown)", c->server.n_api_keys); break;
	}
}

void config_print(const struct config *c, FILE *f)
{
	char sec[32] = "", val[CONFIG_PATH_MAX + 8];
	for (int i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		if (k->type == K_KEYFILE)
			continue;
		const char *dot = strchr(k->name, '.');
		if (strncmp(sec, k->name, (size_t)(dot - k->name)) || sec[dot - k->name]) {
			snprintf(sec, sizeof(sec), "%.*s", (int)(dot - k->name), k->name);
			fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
		}
		format_value(c, k, val, sizeof(val));
		fprintf(f, "%s%s = %s\n", k->type == K_KEY ? "# " : "", dot + 1, val);
	}
}

void config_help(FILE *f)
{
	char allowed[128], flag[80];
	for (int i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		snprintf(flag, sizeof(flag), "--%.47s%s", flag_of(i),
			 k->type == K_BOOL ? "[=BOOL]" : k->type == K_SIZE ? " SIZE" :
			 k->type == K_SECONDS ? " SECONDS" : k->type == K_INT ? " N" :
			 k->type == K_ENUM ? " NAME" : k->type == K_KEY ? " KEY" : " TEXT");
		fprintf(f, "  %-30s %s: %s", flag, k->name, k->help);
		if (k->type == K_ENUM) {
			join_names(k->names, allowed, sizeof(allowed));
			fprintf(f, " (%s)", allowed);
		}
		if (k->def && *k->def)
			fprintf(f, " [%s]", k->def);
		fputc('\n', f);
	}
}

const char *config_dtype_name(int d)
{
	return d >= 0 && d < 5 ? dtype_names[d] : "?";
}

const char *config_policy_name(int p)
{
	return p >= 0 && p < 4 ? policy_names[p] : "?";
}

const char *config_log_level_name(int l)
{
	return l >= 0 && l < 4 ? level_names[l] : "?";
}
