#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int smk_fail(struct smk_err *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

int smk_err_prefix(struct smk_err *err, const char *fmt, ...)
{
	if (!err)
		return -EINVAL;
	char head[256], old[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation is fine here: the head of the message says what failed. */
	int n = snprintf(err->msg, sizeof(err->msg), "%s: ", head);
	if (n >= 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, "%.*s",
			 (int)(sizeof(err->msg) - (size_t)n - 1), old);
	return err->code ? err->code : -EINVAL;
}

void smk_err_clear(struct smk_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}
