/* mapfile.c - map a whole regular file read-only (see mapfile.h). */
#include "util/mapfile.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
		}
	}
	close(fd);
	return rc;
}
