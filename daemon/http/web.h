/* web.h - the web view at GET / (docs/web.md): one self-contained HTML
 * page, compiled into the daemon (web/index.html, embedded at build time by
 * web/embed.py), that polls /stats and draws the weight hierarchy live.
 * Internal to http/.
 *
 * The page itself carries no secret and is served without the API key (a
 * browser's navigation cannot send an Authorization header); its script
 * asks for the key and sends it with every /stats fetch.  The table of the
 * current /stats figures rendered into the page here (what a browser
 * without JavaScript shows, and what the script then keeps up to date) is
 * filled only when the request itself carried a valid key, or when no key
 * is configured. */
#ifndef SMK_HTTP_WEB_H
#define SMK_HTTP_WEB_H

#include <stdbool.h>

#include "http/server.h"

struct MHD_Response;

#define WEB_CONTENT_TYPE "text/html; charset=utf-8"

/* The page with the figures table filled from /stats (figures true) or a
 * row saying that the key is needed; malloc'd, NULL on out of memory. */
char *web_page(struct server *s, bool figures);

/* The headers of the page: Content-Security-Policy (no network but its own
 * origin, only its own inline style and script), no sniffing, no framing,
 * no referrer, no caching (the figures change). */
void web_headers(struct MHD_Response *resp);

#endif
