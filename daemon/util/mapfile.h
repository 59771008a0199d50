/* mapfile.h - map a whole regular file read-only (the model readers'
 * shared first step: GGUF and safetensors alike are parsed in place). */
#ifndef SMK_UTIL_MAPFILE_H
#define SMK_UTIL_MAPFILE_H

#include <stdint.h>

#include "util/err.h"

/* mmap path (PROT_READ, MAP_PRIVATE) and close the descriptor (the mapping
 * keeps the file referenced).  On success *base and *size describe the
 * mapping (munmap it when done).  Errors name the path: the errno of
 * open/fstat/mmap, or -EINVAL for a file that is not regular, too large to
 * map, or empty - then `empty_what` completes the message ("header field
 * 'magic': file is empty"), since what an empty file lacks depends on the
 * format. */
int smk_map_file(const char *path, const char *empty_what, const uint8_t **base, uint64_t *size,
		 struct smk_err *err);

#endif
