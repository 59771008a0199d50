/* oconf.c - object URLs, endpoint, region and credentials (see oconf.h). */
#include "objstore/oconf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool oconf_is_url(const char *s)
{
	return s && (!strncmp(s, "s3://", 5) || !strncmp(s, "http://", 7) ||
		     !strncmp(s, "https://", 8));
}

static const char *nonempty(oconf_env_fn env, const char *name)
{
	const char *v = env(name);
	return v && *v ? v : NULL;
}

static int copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, src, n + 1);
	return 0;
}

int oconf_encode_path(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/';
		if (n + (plain ? 1 : 3) >= cap)
			return -ENAMETOOLONG;
		if (plain)
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
	}
	out[n] = '\0';
	return 0;
}

int oconf_child_url(const struct ourl *u, const char *name, char *out, size_t cap)
{
	if (copy(out, cap, u->base))
		return -ENAMETOOLONG;
	return oconf_encode_path(out, cap, name);
}

/* ---- the shared files: INI sections of "name = value" ---- */

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Call want(key, value) for each entry of section `section` of path.
 * Returns 1 if the section was found, 0 if not (or no file), -EINVAL for a
 * malformed line (err names file and line, not the content). */
static int ini_section(const char *path, const char *section,
		       void (*want)(void *, const char *, const char *), void *arg,
		       struct smk_err *err)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char line[8192];
	int found = 0, lineno = 0;
	bool in = false;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');
			if (!end) {
				fclose(f);
				return smk_fail(err, -EINVAL, "%s:%d: a section header without ']'", path,
						lineno);
			}
			*end = '\0';
			in = !strcmp(trim(s + 1), section);
			found |= in;
			continue;
		}
		if (!in)
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			fclose(f);
			return smk_fail(err, -EINVAL, "%s:%d: expected 'name = value'", path, lineno);
		}
		*eq = '\0';
		want(arg, trim(s), trim(eq + 1));
	}
	fclose(f);
	return found;
}

struct want_ctx {
	struct ocreds *c;
	bool too_long;
};

static void set(struct want_ctx *w, char *dst, size_t cap, const char *v)
{
	if (copy(dst, cap, v))
		w->too_long = true;
}

static void want_creds(void *arg, const char *k, const char *v)
{
	struct want_ctx *w = arg;
	if (!strcmp(k, "aws_access_key_id"))
		set(w, w->c->key, sizeof(w->c->key), v);
	else if (!strcmp(k, "aws_secret_access_key"))
		set(w, w->c->secret, sizeof(w->c->secret), v);
	else if (!strcmp(k, "aws_session_token"))
		set(w, w->c->token, sizeof(w->c->token), v);
	else if (!strcmp(k, "region") && !w->c->region[0])
		set(w, w->c->region, sizeof(w->c->region), v);
}

static void want_config(void *arg, const char *k, const char *v)
{
	struct want_ctx *w = arg;
	if (!strcmp(k, "region") && !w->c->region[0])
		set(w, w->c->region, sizeof(w->c->region), v);
	else if (!strcmp(k, "ca_bundle") && !w->c->ca_bundle[0])
		set(w, w->c->ca_bundle, sizeof(w->c->ca_bundle), v);
}

static void home_path(char *out, size_t cap, oconf_env_fn env, const char *over, const char *rel)
{
	const char *p = nonempty(env, over);
	if (p) {
		snprintf(out, cap, "%s", p);
		return;
	}
	const char *home = nonempty(env, "HOME");
	snprintf(out, cap, "%s/.aws/%s", home ? home : "", rel);
}

int oconf_load_creds(struct ocreds *c, oconf_env_fn env, struct smk_err *err)
{
	memset(c, 0, sizeof(*c));
	struct want_ctx w = { .c = c };
	const char *region = nonempty(env, "AWS_REGION");
	if (!region)
		region = nonempty(env, "AWS_DEFAULT_REGION");
	if (region)
		set(&w, c->region, sizeof(c->region), region);
	const char *ca = nonempty(env, "AWS_CA_BUNDLE");
	if (ca)
		set(&w, c->ca_bundle, sizeof(c->ca_bundle), ca);

	const char *profile = nonempty(env, "AWS_PROFILE");
	const char *id = nonempty(env, "AWS_ACCESS_KEY_ID");
	const char *secret = nonempty(env, "AWS_SECRET_ACCESS_KEY");
	char path[4200];
	if (id && secret) {
		set(&w, c->key, sizeof(c->key), id);
		set(&w, c->secret, sizeof(c->secret), secret);
		const char *token = nonempty(env, "AWS_SESSION_TOKEN");
		if (token)
			set(&w, c->token, sizeof(c->token), token);
	} else {
		home_path(path, sizeof(path), env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
		int rc = ini_section(path, profile ? profile : "default", want_creds, &w, err);
		if (rc < 0)
			return rc;
		if (rc == 0 && profile)
			return smk_fail(err, -EINVAL, "%s: no profile [%s] (AWS_PROFILE)", path, profile);
	}
	{
		/* The config file names profiles "[profile NAME]", except default. */
		char section[300];
		if (profile && strcmp(profile, "default"))
			snprintf(section, sizeof(section), "profile %s", profile);
		else
			snprintf(section, sizeof(section), "default");
		home_path(path, sizeof(path), env, "AWS_CONFIG_FILE", "config");
		int rc = ini_section(path, section, want_config, &w, err);
		if (rc < 0)
			return rc;
	}
	if (w.too_long)
		return smk_fail(err, -EINVAL, "AWS credentials: a value is too long");
	if (!c->region[0])
		snprintf(c->region, sizeof(c->region), "us-east-1");
	if (!!c->key[0] != !!c->secret[0])
		return smk_fail(err, -EINVAL, "AWS credentials: %s without %s",
				c->key[0] ? "an access key id" : "a secret access key",
				c->key[0] ? "a secret access key" : "an access key id");
	c->have_keys = c->key[0] != '\0';
	return 0;
}

/* ---- URLs ---- */

int oconf_parse_url(struct ourl *u, const char *url, const struct ocreds *c, oconf_env_fn env,
		    struct smk_err *err)
{
	memset(u, 0, sizeof(*u));
	if (copy(u->shown, sizeof(u->shown), url))
		return smk_fail(err, -EINVAL, "model URL: too long (%zu bytes)", strlen(url));
	if (strchr(url, '?') || strchr(url, '#'))
		return smk_fail(err, -EINVAL, "%s: a query or fragment is not supported in a model URL",
				url);
	/* An S3 key may hold spaces (encoded below); an HTTP URL is used as
	 * given, so it must already be encoded. */
	bool s3 = !strncmp(url, "s3://", 5);
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f || (*p == ' ' && !s3))
			return smk_fail(err, -EINVAL, "%s: a %s in the URL", url,
					*p == ' ' ? "space (encode it as %20)" : "control byte");
	if (strncmp(url, "s3://", 5)) {
		/* http(s): used as given (already encoded); key = the path. */
		const char *host = strstr(url, "://") + 3;
		const char *slash = strchr(host, '/');
		if (slash == host || !*host)
			return smk_fail(err, -EINVAL, "%s: no host", url);
		if (!slash || !slash[1])
			return smk_fail(err, -EINVAL, "%s: no path to an object", url);
		if (copy(u->base, sizeof(u->base), url) || copy(u->key, sizeof(u->key), slash + 1))
			return smk_fail(err, -EINVAL, "%s: too long", url);
		return 0;
	}
	u->s3 = true;
	const char *b = url + 5, *slash = strchr(b, '/');
	size_t bl = slash ? (size_t)(slash - b) : strlen(b);
	if (bl < 3 || bl > 63)
		return smk_fail(err, -EINVAL, "%s: bucket name must be 3 to 63 characters", url);
	for (size_t i = 0; i < bl; i++)
		if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-' ||
		      b[i] == '.'))
			return smk_fail(err, -EINVAL,
					"%s: bucket name may hold only a-z, 0-9, '-' and '.'", url);
	memcpy(u->bucket, b, bl);
	if (!slash || !slash[1])
		return smk_fail(err, -EINVAL, "%s: no key after the bucket (s3://BUCKET/KEY)", url);
	if (copy(u->key, sizeof(u->key), slash + 1))
		return smk_fail(err, -EINVAL, "%s: key too long", url);
	const char *ep = nonempty(env, "AWS_ENDPOINT_URL_S3");
	if (!ep)
		ep = nonempty(env, "AWS_ENDPOINT_URL");
	int rc;
	if (ep) {
		if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
			return smk_fail(err, -EINVAL, "AWS endpoint '%s': not an http:// or https:// URL",
					ep);
		size_t el = strlen(ep);
		while (el && ep[el - 1] == '/')
			el--;
		rc = snprintf(u->base, sizeof(u->base), "%.*s/%s/", (int)el, ep, u->bucket) >=
		     (int)sizeof(u->base);
	} else {
		rc = snprintf(u->base, sizeof(u->base), "https://%s.s3.%s.amazonaws.com/", u->bucket,
			      c->region) >= (int)sizeof(u->base);
	}
	if (rc || oconf_encode_path(u->base, sizeof(u->base), u->key))
		return smk_fail(err, -EINVAL, "%s: URL too long", url);
	return 0;
}
