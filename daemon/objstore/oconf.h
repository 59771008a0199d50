/* oconf.h - where an object lives and how to sign for it, read the way the
 * AWS SDKs read it.
 *
 * A model URL is one of
 *   s3://BUCKET/KEY             an S3 object (KEY may end in '/': a prefix,
 *                               read as a Hugging Face directory)
 *   http://HOST[:PORT]/PATH     any server that honours Range
 *   https://HOST[:PORT]/PATH
 * For s3:// the HTTP URL is built from, in this order (as the SDKs do):
 *   endpoint  AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL: path-style
 *             (ENDPOINT/BUCKET/KEY, what MinIO, Ceph, moto and most
 *             S3-compatible stores want); else virtual-hosted AWS
 *             (https://BUCKET.s3.REGION.amazonaws.com/KEY)
 *   region    AWS_REGION, else AWS_DEFAULT_REGION, else the profile's
 *             `region` in the shared config file (AWS_CONFIG_FILE, default
 *             ~/.aws/config), else us-east-1
 *   keys      AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN),
 *             else the profile (AWS_PROFILE, default "default") of the shared
 *             credentials file (AWS_SHARED_CREDENTIALS_FILE, default
 *             ~/.aws/credentials): aws_access_key_id, aws_secret_access_key,
 *             aws_session_token; no keys at all: unsigned requests (a
 *             public bucket).
 *   CAs       AWS_CA_BUNDLE, else the profile's `ca_bundle` in the config
 *             file: the certificates https is verified against (for
 *             s3:// and https:// alike), else the system's store.
 * The key is percent-encoded per segment (S3's canonical URI).  Secrets
 * live only in struct ocreds and the signing options handed to libcurl;
 * nothing here formats them into a message.
 */
#ifndef SMK_OBJSTORE_OCONF_H
#define SMK_OBJSTORE_OCONF_H

#include <stdbool.h>

#include "util/err.h"

/* Looks a variable up (getenv in the daemon; a table in the unit tests). */
typedef const char *(*oconf_env_fn)(const char *name);

struct ocreds {
	char key[256], secret[256], token[4096];
	char region[64];
	char ca_bundle[4096];  /* AWS_CA_BUNDLE / ca_bundle: CA certificates for
				* https (else the system's); not a secret */
	bool have_keys;
};

struct ourl {
	bool s3;
	char bucket[256];
	char key[1024];       /* decoded, as in the s3:// URL or the HTTP path */
	char base[1024];      /* the HTTP URL of the object (or the prefix) */
	char shown[1400];     /* the URL as given: what messages name */
};

/* True for s3://, http:// and https:// (what model_file_open sends here). */
bool oconf_is_url(const char *s);

/* Parse url and resolve the HTTP URL from env (endpoint and region).  0 or
 * -EINVAL with err naming the URL and what is wrong with it. */
int oconf_parse_url(struct ourl *u, const char *url, const struct ocreds *c, oconf_env_fn env,
		    struct smk_err *err);

/* Credentials and region from env, then the shared files.  0, or -EINVAL
 * when a named profile is missing or a file is malformed (the file and
 * line; never a value). */
int oconf_load_creds(struct ocreds *c, oconf_env_fn env, struct smk_err *err);

/* The URL of `name` next to u (u a prefix ending in '/'): out gets
 * base + encoded name.  -ENAMETOOLONG if it does not fit. */
int oconf_child_url(const struct ourl *u, const char *name, char *out, size_t cap);

/* Append s to out (cap bytes), percent-encoding all but unreserved
 * characters and '/'.  -ENAMETOOLONG if it does not fit. */
int oconf_encode_path(char *out, size_t cap, const char *s);

#endif
