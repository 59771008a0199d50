/* fuzz_config.c - the INI configuration (daemon/config/config.c): the text
 * of one smoked.conf on top of the defaults, then the checks across keys,
 * then the printed form (every value rendered back). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	static struct config c;
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	struct smk_err err = { 0 };
	config_init(&c);
	if (config_load_text(&c, (const char *)data, size, "fuzz.conf", &err) == 0) {
		config_validate(&c, &err);
		config_print(&c, devnull);
	}
	/* The value parsers on their own, on a NUL-terminated copy. */
	if (size < 256) {
		char s[256];
		memcpy(s, data, size);
		s[size] = 0;
		uint64_t u;
		bool b;
		double d;
		config_parse_size(s, &u);
		config_parse_bool(s, &b);
		config_parse_seconds(s, &d);
	}
	return 0;
}
