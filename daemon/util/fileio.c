/* fileio.c - whole positioned reads and writes (see fileio.h). */
#include "util/fileio.h"

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#define FILEIO_STEP (1u << 30)

int smk_pread_all(int fd, void *buf, uint64_t n, uint64_t off)
{
	uint8_t *d = buf;
	while (n) {
		ssize_t r = pread(fd, d, n > FILEIO_STEP ? FILEIO_STEP : (size_t)n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		d += r;
		n -= (uint64_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int smk_pwrite_all(int fd, const void *buf, uint64_t n, uint64_t off)
{
	const uint8_t *d = buf;
	while (n) {
		ssize_t r = pwrite(fd, d, n > FILEIO_STEP ? FILEIO_STEP : (size_t)n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		d += r;
		n -= (uint64_t)r;
		off += (uint64_t)r;
	}
	return 0;
}
