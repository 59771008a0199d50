/* mapfile.c - map a whole regular file read-only (see mapfile.h). */
#include "util/mapfile.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the mappings the SIGBUS handler may repair (mapfile.h) ---- */

#define MAP_SLOTS 1024   /* more shards than any model has; past it, unguarded */

static struct map_slot {
	atomic_uintptr_t base, end;   /* [base, end) rounded to pages; 0: free */
	char path[256];
} slots[MAP_SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static struct sigaction bus_before;
static uintptr_t page_size;
static atomic_uint_fast64_t n_faults;
static atomic_int fault_slot = -1;

/* Async-signal context: atomics, and mmap (a plain system call on Linux,
 * though POSIX does not list it as async-signal-safe). */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	const uintptr_t a = (uintptr_t)si->si_addr;
	for (int i = 0; i < MAP_SLOTS; i++) {
		const uintptr_t b = atomic_load(&slots[i].base), e = atomic_load(&slots[i].end);
		if (!b || a < b || a >= e)
			continue;
		void *page = (void *)(a & ~(page_size - 1));
		if (mmap(page, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		atomic_store(&fault_slot, i);
		atomic_fetch_add(&n_faults, 1);
		return;
	}
	/* Not a page of ours: what would have happened without us. */
	if ((bus_before.sa_flags & SA_SIGINFO) && bus_before.sa_sigaction) {
		bus_before.sa_sigaction(sig, si, uc);
		return;
	}
	if (bus_before.sa_handler != SIG_DFL && bus_before.sa_handler != SIG_IGN) {
		bus_before.sa_handler(sig);
		return;
	}
	signal(SIGBUS, SIG_DFL);
	raise(SIGBUS);  /* delivered on return: the default action */
}

static void guard_install(void)
{
	page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &bus_before);
}

static void guard_add(const char *path, const uint8_t *base, uint64_t size)
{
	pthread_once(&guard_once, guard_install);
	pthread_mutex_lock(&slots_lock);
	for (int i = 0; i < MAP_SLOTS; i++) {
		if (atomic_load(&slots[i].base))
			continue;
		snprintf(slots[i].path, sizeof(slots[i].path), "%s", path);
		atomic_store(&slots[i].end, ((uintptr_t)base + size + page_size - 1) & ~(page_size - 1));
		atomic_store(&slots[i].base, (uintptr_t)base);
		break;
	}
	pthread_mutex_unlock(&slots_lock);
}

void smk_unmap_file(const uint8_t *base, uint64_t size)
{
	if (!base)
		return;
	pthread_mutex_lock(&slots_lock);
	for (int i = 0; i < MAP_SLOTS; i++)
		if (atomic_load(&slots[i].base) == (uintptr_t)base) {
			atomic_store(&slots[i].base, 0);
			atomic_store(&slots[i].end, 0);
		}
	pthread_mutex_unlock(&slots_lock);
	munmap((void *)base, (size_t)size);
}

uint64_t smk_map_faults(void)
{
	return atomic_load(&n_faults);
}

const char *smk_map_fault_path(void)
{
	int i = atomic_load(&fault_slot);
	return i >= 0 ? slots[i].path : "";
}

int smk_map_file(const char *path, const char *empty_what, const uint8_t **base, uint64_t *size,
		 struct smk_err *err)
{
	*base = NULL;
	*size = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		return smk_fail(err, e, "%s: cannot open: %s", path, strerror(-e));
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		smk_fail(err, rc, "%s: cannot stat: %s", path, strerror(-rc));
	} else if (!S_ISREG(st.st_mode)) {
		rc = smk_fail(err, -EINVAL, "%s: not a regular file", path);
	} else if (st.st_size == 0) {
		/* mmap of zero bytes fails with EINVAL; say what is wrong instead. */
		rc = smk_fail(err, -EINVAL, "%s: %s", path, empty_what);
	} else if ((uint64_t)st.st_size > SIZE_MAX) {
		rc = smk_fail(err, -EINVAL, "%s: file too large to map", path);
	} else {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			rc = -errno;
			smk_fail(err, rc, "%s: cannot mmap %" PRIu64 " bytes: %s", path,
				 (uint64_t)st.st_size, strerror(-rc));
		} else {
			*base = m;
			*size = (uint64_t)st.st_size;
			guard_add(path, m, *size);
		}
	}
	close(fd);
	return rc;
}
