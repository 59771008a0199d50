/* err.h - the one error convention of smoke.
 *
 * Every fallible function returns 0 on success or a negative errno-style code
 * (-EINVAL for bad input, -ENOMEM, -EIO, ...).  Where the caller needs to know
 * *what* was wrong, the function also takes a `struct smk_err *` and fills it
 * with a sentence that names the input (file, field, JSON path) and the reason.
 * Passing NULL for the err pointer is allowed: the code alone is then returned.
 */
#ifndef SMK_UTIL_ERR_H
#define SMK_UTIL_ERR_H

#include <errno.h>
#include <stddef.h>

struct smk_err {
	int code;        /* the negative code last recorded, 0 if none */
	char msg[512];   /* human-readable reason, NUL-terminated */
};

/* Record a formatted message in err (if non-NULL) and return code, so that
 * call sites read `return smk_fail(err, -EINVAL, "%s: bad magic", path);`. */
int smk_fail(struct smk_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to an already recorded message (adds context while an
 * error travels up).  Returns err->code (or -EINVAL if err is NULL). */
int smk_err_prefix(struct smk_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void smk_err_clear(struct smk_err *err);

#endif
