/* alloc_inject.c - the --wrap'ed allocators (alloc_inject.h). */
#include "alloc_inject.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_vasprintf(char **s, const char *fmt, va_list ap);
char *__real_realpath(const char *path, char *resolved);

extern const char __executable_start[], etext[];

static atomic_bool armed;
static atomic_long fail_at, seen, live;
static atomic_bool failed;
static atomic_uintptr_t fail_site;
static _Thread_local bool not_counted;

void ainj_thread_counted(bool on)
{
	not_counted = !on;
}

static bool in_exe(const void *a)
{
	return (const char *)a >= __executable_start && (const char *)a < etext;
}

/* The call site: ra, the wrapper's return address, unless that is the
 * hook jansson calls (the next frame lies in the library), then
 * the first frame back in the executable: the daemon's call into the
 * library. */
static uintptr_t call_site(void *ra)
{
	void *fr[32];
	int n = backtrace(fr, 32), k = 0;
	while (k < n && fr[k] != ra)
		k++;
	if (in_exe(ra) && (k + 1 >= n || in_exe(fr[k + 1])))
		return (uintptr_t)ra;
	for (k += in_exe(ra); k < n && !in_exe(fr[k]); k++)
		;
	return k < n ? (uintptr_t)fr[k] : (uintptr_t)ra;
}

/* Whether the allocation is made inside jansson's parser, which is not
 * safe against a failed allocation: jansson 2.14 (Debian 12) drops the
 * byte its lexer could not save and goes on, then asserts or reads past
 * its buffer (akheron/jansson#362, unfixed there).  Those allocations are
 * neither counted nor failed; the rest of jansson's are. */
static bool in_json_parser(void)
{
	void *fr[24];
	int n = backtrace(fr, 24);
	for (int i = 2; i < n; i++) {
		Dl_info di;
		if (dladdr(fr[i], &di) && di.dli_sname && !strncmp(di.dli_sname, "json_load", 9))
			return true;
	}
	return false;
}

/* Whether this allocation is the one to fail. */
static bool inject(void *ra)
{
	if (!atomic_load(&armed) || not_counted || in_json_parser())
		return false;
	if (atomic_fetch_add(&seen, 1) + 1 != atomic_load(&fail_at))
		return false;
	atomic_store(&fail_site, call_site(ra));
	atomic_store(&failed, true);
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t n)
{
	if (inject(__builtin_return_address(0)))
		return NULL;
	void *p = __real_malloc(n);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (inject(__builtin_return_address(0)))
		return NULL;
	void *p = __real_calloc(n, size);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	if (inject(__builtin_return_address(0)))
		return NULL;
	void *q = __real_realloc(p, n);
	if (!p && q)
		atomic_fetch_add(&live, 1);
	else if (p && !n && !q)
		atomic_fetch_sub(&live, 1);  /* glibc: realloc(p, 0) frees p */
	return q;
}

void __wrap_free(void *p)
{
	if (p)
		atomic_fetch_sub(&live, 1);
	__real_free(p);
}

char *__wrap_strdup(const char *s)
{
	if (inject(__builtin_return_address(0)))
		return NULL;
	char *p = __real_strdup(s);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
	if (inject(__builtin_return_address(0)))
		return NULL;
	char *p = __real_strndup(s, n);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
	if (inject(__builtin_return_address(0)))
		return ENOMEM;
	int rc = __real_posix_memalign(p, align, n);
	if (!rc)
		atomic_fetch_add(&live, 1);
	return rc;
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
	if (inject(__builtin_return_address(0)))
		return NULL;
	void *p = __real_aligned_alloc(align, n);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

static int vasprintf_at(void *ra, char **s, const char *fmt, va_list ap)
{
	if (inject(ra))
		return -1;
	int rc = __real_vasprintf(s, fmt, ap);
	if (rc >= 0)
		atomic_fetch_add(&live, 1);
	return rc;
}

int __wrap_vasprintf(char **s, const char *fmt, va_list ap)
{
	return vasprintf_at(__builtin_return_address(0), s, fmt, ap);
}

int __wrap_asprintf(char **s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vasprintf_at(__builtin_return_address(0), s, fmt, ap);
	va_end(ap);
	return rc;
}

char *__wrap_realpath(const char *path, char *resolved)
{
	if (!resolved && inject(__builtin_return_address(0)))
		return NULL;
	char *p = __real_realpath(path, resolved);
	if (p && !resolved)
		atomic_fetch_add(&live, 1);
	return p;
}

void ainj_init(void)
{
	/* backtrace() loads libgcc on its first call (allocating): now, not
	 * while a countdown runs. */
	void *fr[2];
	backtrace(fr, 2);
}

void ainj_arm(long n)
{
	atomic_store(&failed, false);
	atomic_store(&fail_site, 0);
	atomic_store(&seen, 0);
	atomic_store(&fail_at, n);
	atomic_store(&armed, true);
}

bool ainj_disarm(uintptr_t *site, long *n_seen)
{
	atomic_store(&armed, false);
	if (site)
		*site = atomic_load(&fail_site);
	if (n_seen)
		*n_seen = atomic_load(&seen);
	return atomic_load(&failed);
}

long ainj_live(void)
{
	return atomic_load(&live);
}

void ainj_site_name(uintptr_t site, char *buf, int len)
{
	Dl_info di;
	if (dladdr((void *)site, &di) && di.dli_sname)
		snprintf(buf, (size_t)len, "%s+0x%lx", di.dli_sname,
			 (unsigned long)(site - (uintptr_t)di.dli_saddr));
	else
		snprintf(buf, (size_t)len, "exe+0x%lx", (unsigned long)(site - (uintptr_t)__executable_start));
}
