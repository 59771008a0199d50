/* alloc_inject.h - an allocator that fails on request, for the fault
 * injection tests (tests/unit/faults/test_faults.c, docs/fault-injection.md).
 *
 * The test executable is linked with -Wl,--wrap=malloc,... (tests/unit/meson.build),
 * so every allocation made by code in the executable - the daemon's static
 * layer libraries, the test itself - goes through alloc_inject.c first;
 * jansson's allocations come too, through the daemon's own hook
 * (formats/json_err.c), except those of jansson's parser (json_load*: not
 * safe against a failed allocation, alloc_inject.c).  The allocations of
 * the other shared libraries are not counted and never fail: libc's own,
 * libmicrohttpd's connection pools, Check's, and libuv's (uv_loop_init
 * abort()s when one fails: uv__io_start cannot report it; libuv could be
 * hooked with uv_replace_allocator, but a failure there is a crash by
 * design).
 *
 * Two things come of it:
 *  - a countdown: ainj_arm(n) makes the n-th counted allocation from then
 *    on fail (NULL, ENOMEM), once; ainj_disarm() says whether it happened
 *    and where (the call site in the daemon's code; through jansson, the
 *    daemon's call into it);
 *  - a balance: allocations minus frees since the start, a leak check that
 *    needs no sanitizer (ainj_live(); compare before and after).
 * All of it is thread-safe (atomics): the daemon allocates on the HTTP
 * threads and on the worker thread. */
#ifndef SMK_TESTS_ALLOC_INJECT_H
#define SMK_TESTS_ALLOC_INJECT_H

#include <stdbool.h>
#include <stdint.h>

/* Call first in main. */
void ainj_init(void);

/* From now on, fail the n-th allocation (n >= 1). */
void ainj_arm(long n);

/* Stop failing.  Returns whether the armed allocation was failed; *site
 * (if not NULL) gets its call site (an address in the executable), *seen
 * the allocations counted while armed. */
bool ainj_disarm(uintptr_t *site, long *seen);

/* Whether the calling thread's allocations are counted and may fail (on
 * by default): a test that talks to a server in the same process turns
 * it off on its own thread while it waits for an answer (Check's
 * assertions allocate). */
void ainj_thread_counted(bool on);

/* Allocations not yet freed (all counted allocators, since the start). */
long ainj_live(void);

/* An address in the executable as "function+0xoff" where the symbol table
 * knows it, else the offset from the executable's start. */
void ainj_site_name(uintptr_t site, char *buf, int len);

#endif
