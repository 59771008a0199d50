/* web.c - the web view's page (web.h): the embedded HTML with the table of
 * /stats figures rendered in, and its headers. */
#include "http/web.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json_err.h"

/* web_page.c, generated from web/index.html by web/embed.py. */
extern const unsigned char web_page_html[];
extern const size_t web_page_len;
extern const char web_page_csp[];

/* Where the rows go: the body of the figures table in index.html. */
static const char MARK[] = "<!--smoke:figures-->";

static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* One row per scalar of the document, its dotted path as the key
 * (data-k) and its JSON text as the value (data-v): the same rows the
 * page's script draws from each /stats it fetches (fill_table in
 * index.html).  Arrays (histogram buckets, per-layer lists, requests in
 * flight, the expert map) are left to the script's charts and tables;
 * their length is shown. */
static void rows(FILE *f, const char *path, json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) {
			char sub[256];
			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k);
			rows(f, sub, x);
		}
		return;
	}
	/* The checked dump: NULL rather than a different text when memory ran
	 * out inside jansson (formats/json_err.h). */
	char *text = json_is_array(v) ? NULL : json_dumps_checked(v, JSON_ENCODE_ANY | JSON_COMPACT);
	fputs("<tr data-k=\"", f);
	put_escaped(f, path);
	fputs("\"><th>", f);
	put_escaped(f, path);
	fputs("</th><td", f);
	if (text) {
		fputs(" data-v=\"", f);
		put_escaped(f, text);
		fputs("\">", f);
		put_escaped(f, json_is_string(v) ? json_string_value(v) : text);
	} else if (json_is_array(v)) {
		fprintf(f, ">[%zu entries]", json_array_size(v));
	} else {
		fputs(">(out of memory)", f);
	}
	fputs("</td></tr>\n", f);
	free(text);
}

char *web_page(struct server *s, bool figures)
{
	const char *page = (const char *)web_page_html;
	const char *at = strstr(page, MARK);
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	if (!f)
		return NULL;
	if (!at)   /* embed.py's input lost its marker: serve it as it is */
		at = page + web_page_len;
	fwrite(page, 1, (size_t)(at - page), f);
	if (at < page + web_page_len) {
		json_t *st = figures ? server_stats_object(s) : NULL;
		if (st)
			rows(f, "", st);
		else if (figures)
			fputs("<tr><td colspan=\"2\">out of memory</td></tr>\n", f);
		else
			fputs("<tr id=\"needkey\"><td colspan=\"2\">This server needs an API key: "
			      "the figures are shown once the page has it (or to a request that sends "
			      "Authorization: Bearer KEY).</td></tr>\n", f);
		json_decref(st);
		at += strlen(MARK);
		fwrite(at, 1, web_page_len - (size_t)(at - page), f);
	}
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	return out;
}

void web_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Content-Security-Policy", web_page_csp);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}
