/* cli.h - the smoke command line client's internal interface. */
#ifndef SMOKE_CLI_H
#define SMOKE_CLI_H

#include <stdbool.h>

#include "smoke.h"

/* `smoke top`: a live view of GET /stats, redrawn every interval seconds
 * until q or Ctrl-C; once: print one plain frame (no terminal control) and
 * return.  Returns the process exit status. */
int cli_top(smoke_client *c, bool once, double interval);

/* "12.3 MiB" etc. into buf (size n); returns buf. */
const char *cli_bytes(char *buf, unsigned long n, double bytes);

#endif
