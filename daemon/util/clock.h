/* clock.h - the one clock the daemon measures with: CLOCK_MONOTONIC in
 * seconds, as a double (ns resolution for ~100 days of uptime).  Never the
 * wall clock, which jumps under NTP and settimeofday. */
#ifndef SMK_UTIL_CLOCK_H
#define SMK_UTIL_CLOCK_H

#include <time.h>

static inline double smk_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
