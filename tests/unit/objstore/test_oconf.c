/* oconf tests (objstore/oconf.h): model URLs, the endpoint and region as
 * the AWS SDKs resolve them, the shared credentials and config files, and
 * that no message ever holds a secret.  Expectations come from the header's
 * contract and the AWS SDKs' documented order, not from the code. */
#include <check.h>

#include "ck_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore/oconf.h"
#include "objstore/osrc.h"

/* A fake environment: NAME=VALUE pairs. */
static const char *const *fake_env;
static const char *env_lookup(const char *name)
{
	for (const char *const *p = fake_env; p && *p; p += 2)
		if (!strcmp(p[0], name))
			return p[1];
	return NULL;
}

static char dir[64];
static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/smoke-oconf-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* After each test (a checked fixture: in the test's own process). */
static void drop_dir(void)
{
	if (!dir[0])
		return;
	char p[128];
	snprintf(p, sizeof(p), "%s/credentials", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/config", dir);
	unlink(p);
	rmdir(dir);
	dir[0] = '\0';
}

static void write_file(const char *name, const char *text)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(is_url)
{
	ck_assert(oconf_is_url("s3://b/k"));
	ck_assert(oconf_is_url("https://h/p"));
	ck_assert(oconf_is_url("http://h/p"));
	ck_assert(!oconf_is_url("/models/x.gguf"));
	ck_assert(!oconf_is_url("S3://b/k"));
	ck_assert(!oconf_is_url("ftp://h/p"));
}
END_TEST

START_TEST(s3_path_style_endpoint)
{
	const char *const env[] = { "AWS_ENDPOINT_URL", "http://127.0.0.1:9000/", NULL };
	fake_env = env;
	struct ocreds c = { .region = "eu-west-1" };
	struct ourl u;
	struct smk_err e = { 0 };
	ck_assert_int_eq(oconf_parse_url(&u, "s3://my-bucket/dir/a b+c.gguf", &c, env_lookup, &e), 0);
	ck_assert(u.s3);
	ck_assert_str_eq(u.bucket, "my-bucket");
	ck_assert_str_eq(u.key, "dir/a b+c.gguf");
	ck_assert_str_eq(u.base, "http://127.0.0.1:9000/my-bucket/dir/a%20b%2Bc.gguf");
	/* The S3-specific variable wins over the general one. */
	const char *const env2[] = { "AWS_ENDPOINT_URL", "http://a:1", "AWS_ENDPOINT_URL_S3",
				     "https://s3.example:8443", NULL };
	fake_env = env2;
	ck_assert_int_eq(oconf_parse_url(&u, "s3://bkt/k", &c, env_lookup, &e), 0);
	ck_assert_str_eq(u.base, "https://s3.example:8443/bkt/k");
}
END_TEST

START_TEST(s3_aws_virtual_host)
{
	fake_env = NULL;
	struct ocreds c = { .region = "eu-west-1" };
	struct ourl u;
	struct smk_err e = { 0 };
	ck_assert_int_eq(oconf_parse_url(&u, "s3://models/hf/llama/", &c, env_lookup, &e), 0);
	ck_assert_str_eq(u.base, "https://models.s3.eu-west-1.amazonaws.com/hf/llama/");
	char child[512];
	ck_assert_int_eq(oconf_child_url(&u, "config.json", child, sizeof(child)), 0);
	ck_assert_str_eq(child, "https://models.s3.eu-west-1.amazonaws.com/hf/llama/config.json");
}
END_TEST

START_TEST(bad_urls)
{
	fake_env = NULL;
	struct ocreds c = { .region = "us-east-1" };
	struct ourl u;
	struct smk_err e = { 0 };
	ck_assert_int_eq(oconf_parse_url(&u, "s3://ab/k", &c, env_lookup, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "s3://ab/k"));
	ck_assert_int_eq(oconf_parse_url(&u, "s3://Bucket/k", &c, env_lookup, &e), -EINVAL);
	ck_assert_int_eq(oconf_parse_url(&u, "s3://bucket", &c, env_lookup, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "no key"));
	ck_assert_int_eq(oconf_parse_url(&u, "s3://bucket/k?x=1", &c, env_lookup, &e), -EINVAL);
	ck_assert_int_eq(oconf_parse_url(&u, "https:///x", &c, env_lookup, &e), -EINVAL);
	ck_assert_int_eq(oconf_parse_url(&u, "https://host", &c, env_lookup, &e), -EINVAL);
	ck_assert_int_eq(oconf_parse_url(&u, "https://h/a b", &c, env_lookup, &e), -EINVAL);
	const char *const env[] = { "AWS_ENDPOINT_URL", "minio:9000", NULL };
	fake_env = env;
	ck_assert_int_eq(oconf_parse_url(&u, "s3://bucket/k", &c, env_lookup, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "minio:9000"));
}
END_TEST

START_TEST(creds_env_first)
{
	make_dir();
	write_file("credentials", "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n");
	char cp[128];
	snprintf(cp, sizeof(cp), "%s/credentials", dir);
	const char *const env[] = { "AWS_ACCESS_KEY_ID", "ENVKEY", "AWS_SECRET_ACCESS_KEY", "ENVSECRET",
				    "AWS_SESSION_TOKEN", "TOK", "AWS_DEFAULT_REGION", "ap-south-1",
				    "AWS_SHARED_CREDENTIALS_FILE", cp, "HOME", dir, NULL };
	fake_env = env;
	struct ocreds c;
	struct smk_err e = { 0 };
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), 0);
	ck_assert(c.have_keys);
	ck_assert_str_eq(c.key, "ENVKEY");
	ck_assert_str_eq(c.secret, "ENVSECRET");
	ck_assert_str_eq(c.token, "TOK");
	ck_assert_str_eq(c.region, "ap-south-1");
}
END_TEST

START_TEST(creds_shared_file_profile)
{
	make_dir();
	write_file("credentials", "# comment\n[default]\naws_access_key_id=D\naws_secret_access_key=DS\n\n"
		   "[ci]\n  aws_access_key_id =  CIKEY \naws_secret_access_key = CI/SECRET=\n"
		   "aws_session_token = CITOKEN\n");
	write_file("config", "[default]\nregion = us-west-2\n[profile ci]\nregion = eu-central-1\n"
		   "ca_bundle = /etc/ci-ca.pem\n");
	char cp[128], fp[128];
	snprintf(cp, sizeof(cp), "%s/credentials", dir);
	snprintf(fp, sizeof(fp), "%s/config", dir);
	const char *const env[] = { "AWS_PROFILE", "ci", "AWS_SHARED_CREDENTIALS_FILE", cp,
				    "AWS_CONFIG_FILE", fp, NULL };
	fake_env = env;
	struct ocreds c;
	struct smk_err e = { 0 };
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), 0);
	ck_assert_str_eq(c.key, "CIKEY");
	ck_assert_str_eq(c.secret, "CI/SECRET=");
	ck_assert_str_eq(c.token, "CITOKEN");
	ck_assert_str_eq(c.region, "eu-central-1");
	ck_assert_str_eq(c.ca_bundle, "/etc/ci-ca.pem");
	/* Default profile, region from the config file. */
	const char *const env2[] = { "AWS_SHARED_CREDENTIALS_FILE", cp, "AWS_CONFIG_FILE", fp, NULL };
	fake_env = env2;
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), 0);
	ck_assert_str_eq(c.key, "D");
	ck_assert_str_eq(c.region, "us-west-2");
	/* AWS_REGION beats the file. */
	const char *const env3[] = { "AWS_SHARED_CREDENTIALS_FILE", cp, "AWS_CONFIG_FILE", fp,
				     "AWS_REGION", "sa-east-1", NULL };
	fake_env = env3;
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), 0);
	ck_assert_str_eq(c.region, "sa-east-1");
	ck_assert_str_eq(c.ca_bundle, "");
	/* AWS_CA_BUNDLE beats the profile's ca_bundle. */
	const char *const env4[] = { "AWS_PROFILE", "ci", "AWS_SHARED_CREDENTIALS_FILE", cp,
				     "AWS_CONFIG_FILE", fp, "AWS_CA_BUNDLE", "/tmp/mine.pem", NULL };
	fake_env = env4;
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), 0);
	ck_assert_str_eq(c.ca_bundle, "/tmp/mine.pem");
}
END_TEST

START_TEST(creds_errors_name_no_secret)
{
	make_dir();
	write_file("credentials", "[default]\naws_access_key_id=K\naws_secret_access_key=TOPSECRET\n");
	char cp[128];
	snprintf(cp, sizeof(cp), "%s/credentials", dir);
	const char *const env[] = { "AWS_PROFILE", "nope", "AWS_SHARED_CREDENTIALS_FILE", cp, NULL };
	fake_env = env;
	struct ocreds c;
	struct smk_err e = { 0 };
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "[nope]"));
	ck_assert_ptr_null(strstr(e.msg, "TOPSECRET"));
	write_file("credentials", "[default]\naws_secret_access_key TOPSECRET\n");
	const char *const env2[] = { "AWS_SHARED_CREDENTIALS_FILE", cp, NULL };
	fake_env = env2;
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, ":2:"));
	ck_assert_ptr_null(strstr(e.msg, "TOPSECRET"));
	/* A secret without its key id. */
	write_file("credentials", "[default]\naws_secret_access_key = TOPSECRET\n");
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), -EINVAL);
	ck_assert_ptr_null(strstr(e.msg, "TOPSECRET"));
	/* No file, no variables: unsigned requests, default region. */
	const char *const env3[] = { "HOME", "/nonexistent", NULL };
	fake_env = env3;
	ck_assert_int_eq(oconf_load_creds(&c, env_lookup, &e), 0);
	ck_assert(!c.have_keys);
	ck_assert_str_eq(c.region, "us-east-1");
}
END_TEST

START_TEST(checksum_sees_changes)
{
	static unsigned char a[OSRC_CHUNK], b[OSRC_CHUNK];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (unsigned char)(i * 131u);
	ck_assert_uint_eq(osrc_checksum(a, sizeof(a)), osrc_checksum(b, sizeof(b)));
	for (size_t at = 0; at < sizeof(a); at += 4093) {
		b[at] ^= 1;
		ck_assert_uint_ne(osrc_checksum(a, sizeof(a)), osrc_checksum(b, sizeof(b)));
		b[at] ^= 1;
	}
	/* A zeroed (punched) chunk and a shorter one differ from the data. */
	memset(b, 0, sizeof(b));
	ck_assert_uint_ne(osrc_checksum(a, sizeof(a)), osrc_checksum(b, sizeof(b)));
	ck_assert_uint_ne(osrc_checksum(a, sizeof(a)), osrc_checksum(a, sizeof(a) - 1));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("oconf");
	TCase *tc = tcase_create("oconf");
	tcase_add_checked_fixture(tc, NULL, drop_dir);
	tcase_add_test(tc, is_url);
	tcase_add_test(tc, s3_path_style_endpoint);
	tcase_add_test(tc, s3_aws_virtual_host);
	tcase_add_test(tc, bad_urls);
	tcase_add_test(tc, creds_env_first);
	tcase_add_test(tc, creds_shared_file_profile);
	tcase_add_test(tc, creds_errors_name_no_secret);
	tcase_add_test(tc, checksum_sees_changes);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
