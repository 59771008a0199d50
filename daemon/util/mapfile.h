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

/* munmap what smk_map_file mapped, and forget it (below). */
void smk_unmap_file(const uint8_t *base, uint64_t size);

/* A file cut short while it is mapped (truncated under the daemon, or
 * rewritten in place, which truncates first) makes every touch of a page
 * past its new end raise SIGBUS, which would kill the process mid-request.
 * So smk_map_file installs (once) a SIGBUS handler that, for an address
 * inside a mapping it made, maps a page of zeros there and counts the
 * fault: the thread goes on, reading zeros.  What was computed from them
 * is wrong and must never be given out: code that computes from mappings
 * (exec/forward.c, after each pass) fails once smk_map_faults() has moved
 * since it started, and goes on failing (the zeros stay: a truncated model
 * cannot be trusted again until it is reloaded).  Any other SIGBUS goes to
 * the handler that was there before, or kills the process as it would
 * have.  (A file replaced by rename is no fault: the mapping keeps the old
 * file.)  Tested by tests/integration/test_faults.py. */
uint64_t smk_map_faults(void);

/* The path of the file whose mapping faulted last ("" before any). */
const char *smk_map_fault_path(void);

#endif
