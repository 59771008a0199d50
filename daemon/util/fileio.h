/* fileio.h - whole positioned reads and writes (pread/pwrite until every
 * byte moved): the disk cache, the staged object files and the gpt-oss
 * conversion cache all need "this many bytes at this offset, or an error",
 * never a silent short transfer. */
#ifndef SMK_UTIL_FILEIO_H
#define SMK_UTIL_FILEIO_H

#include <stdint.h>

/* 0, or -errno (-EIO where the file ended before n bytes).  EINTR is
 * retried; each call moves at most 1 GiB so that n may exceed ssize_t's
 * guarantees on any platform. */
int smk_pread_all(int fd, void *buf, uint64_t n, uint64_t off);
int smk_pwrite_all(int fd, const void *buf, uint64_t n, uint64_t off);

#endif
