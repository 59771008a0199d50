/* config.h - the daemon's settings: one table of keys, read from an
 * INI-style file and overridden by command-line flags.
 *
 * Every setting has a dotted name "section.key" (memory.gpu_memory), a flag
 * (--gpu-memory: the key's last part with dashes unless the table says
 * otherwise), a type, a range and a default.  The file format, every key and
 * its default are documented in docs/configuration.md; config_help() prints
 * the same table.  Defaults are applied by parsing each key's default text
 * with the same code as the file and the flags, so a default can never be a
 * value the parser would refuse.
 *
 * File format (parsed by hand in config.c):
 *   # comment            ; comment        (at the start of a line)
 *   [section]
 *   key = value          # inline comment (after whitespace, outside quotes)
 *   key = "quoted value with # and \" and \\"
 *   section.key = value  (a dotted key is absolute, in any section)
 * Unknown sections and keys are errors, so that a typo never silently keeps
 * a default.  A key given twice keeps the last value, except server.api_key,
 * which accumulates.
 */
#ifndef SMK_CONFIG_CONFIG_H
#define SMK_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

#define CONFIG_MAX_API_KEYS 16
#define CONFIG_API_KEY_MAX 256   /* bytes per key, NUL included */
#define CONFIG_PATH_MAX 4096

/* memory.default_dtype; the values are enum convert_dtype's (quant/convert.h). */
enum config_dtype {
	CONFIG_DTYPE_AUTO, CONFIG_DTYPE_FLOAT32, CONFIG_DTYPE_FLOAT16, CONFIG_DTYPE_BFLOAT16,
	CONFIG_DTYPE_Q8_0,
};
/* memory.weights_in_ram; the values are enum wstore_load's (weights/wstore.h). */
enum config_load { CONFIG_LOAD_AUTO, CONFIG_LOAD_MAP, CONFIG_LOAD_COPY };
enum config_policy { CONFIG_POLICY_LRU, CONFIG_POLICY_LFU, CONFIG_POLICY_FIFO, CONFIG_POLICY_PREDICTIVE };
/* runtime.expert_prediction (exec/expert_predict.h) */
enum config_xpredict { CONFIG_XPREDICT_MERGED, CONFIG_XPREDICT_ROUTER, CONFIG_XPREDICT_HISTORY,
		       CONFIG_XPREDICT_OFF };
enum config_log_level { CONFIG_LOG_ERROR, CONFIG_LOG_WARN, CONFIG_LOG_INFO, CONFIG_LOG_DEBUG };

struct config {
	struct {
		char host[256];
		int port;                       /* 0: any free port (logged) */
		char api_keys[CONFIG_MAX_API_KEYS][CONFIG_API_KEY_MAX];
		int n_api_keys;                 /* 0: no authentication */
		char allowed_hosts[1024];       /* Host/Origin allow-list (http/guard.h); "": automatic */
		bool health_need_key, metrics_need_key;
		int http_threads;
		int log_level;                  /* enum config_log_level */
	} server;
	struct {
		char path[CONFIG_PATH_MAX];     /* "": main picks the default model */
		char id[128];                   /* "": the file name without .gguf */
		int context;                    /* 0: 4096, capped by the model */
		int batch;                      /* 0: 256 (64 for --perplexity) */
		int threads;                    /* 0: all CPUs */
	} model;
	struct {
		uint64_t max_body;              /* bytes of a request body */
		int max_tokens;                 /* cap on a request's max_tokens */
		int default_max_tokens;
		int concurrency;                /* sequences generating at once */
		int queue;                      /* requests waiting for a slot */
		double request_timeout;         /* seconds from arrival; 0: none */
		double connection_timeout;      /* idle seconds before a connection closes; also the limit for receiving a body */
		int max_connections, max_connections_per_ip;
		uint64_t connection_memory;     /* libmicrohttpd pool per connection */
		uint64_t kv_budget;             /* bytes of KV cache over all sequences */
		uint64_t prompt_cache;          /* bytes of RAM for the prompt cache; 0: off */
		double shutdown_grace;          /* seconds in-flight work may finish */
		double drain_delay;             /* seconds /health says "draining" before the grace */
	} limits;
	struct {
		uint64_t gpu_memory;            /* 0: no limit */
		uint64_t ram_cache;             /* 0: no limit */
		int default_dtype;              /* enum config_dtype */
		int weights_in_ram;             /* enum config_load */
		bool enable_cpu_offload;
		uint64_t disk_cache;            /* object storage's disk cache; 0: none */
		char disk_cache_dir[CONFIG_PATH_MAX];
	} memory;
	struct {
		int prefetch_layers;
		int cache_policy;               /* enum config_policy */
		int smoke_test_layers;
		bool async_prefetch;
		int expert_prediction;          /* enum config_xpredict */
	} runtime;
	struct {
		int gpu_id, num_gpus;
	} device;
};

/* Set every key to its default. */
void config_init(struct config *c);

/* Set one key from text.  `origin` says where the text came from
 * ("smoked.conf:12", "--port") and starts the error message, which also
 * names the key, the value and what is allowed.  Returns 0 or -EINVAL
 * (-ENOENT for an unknown key). */
int config_set(struct config *c, const char *key, const char *value, const char *origin,
	       struct smk_err *err);

/* Read an INI-style file (format above) into c, on top of what c holds. */
int config_load_file(struct config *c, const char *path, struct smk_err *err);

/* Parse the text of one file already in memory (name is for messages). */
int config_load_text(struct config *c, const char *text, size_t len, const char *name,
		     struct smk_err *err);

/* Checks that involve several keys (default_max_tokens <= max_tokens...). */
int config_validate(const struct config *c, struct smk_err *err);

/* The key a command-line flag sets ("gpu-memory" -> "memory.gpu_memory"),
 * or NULL.  *is_bool tells whether the flag's argument is optional. */
const char *config_flag_key(const char *flag, bool *is_bool);

/* Iterate the table: the i-th key's dotted name and flag (NULL past the end). */
const char *config_key_name(int i, const char **flag, bool *is_bool);

/* Print the flags with their key, default and allowed values. */
void config_help(FILE *f);

/* Print the effective settings in the file format (API keys redacted). */
void config_print(const struct config *c, FILE *f);

/* Size text: a decimal number (fraction allowed) with an optional unit, B,
 * KB MB GB TB (powers of 1000) or KiB MiB GiB TiB (powers of 1024), case
 * insensitive; "7.8GB", "512MiB", "1048576".  At most 2^62 bytes. */
int config_parse_size(const char *s, uint64_t *out);

/* true/false, yes/no, on/off, 1/0 (case insensitive). */
int config_parse_bool(const char *s, bool *out);

/* Seconds: a number with an optional unit ms, s, m or h ("30", "1.5s", "5m"). */
int config_parse_seconds(const char *s, double *out);

const char *config_dtype_name(int d);
const char *config_policy_name(int p);
const char *config_log_level_name(int l);

#endif
