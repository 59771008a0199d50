/* osrc.c - objects as tier 0: staging, pinning, ranged reads and the disk
 * cache (see osrc.h). */
#include "objstore/osrc.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/log.h"

/* Largest single GET of a fill, and the bounce buffer it goes through. */
#define OSRC_FILL_MAX (16u << 20)
#define OSRC_MAX_STAGED 64
#define IDX_MAGIC "SMKOSRC1"

enum { C_ABSENT = 0, C_PRESENT = 1, C_PINNED = 2 };

static struct {
	pthread_mutex_t mu;
	char dir[PATH_MAX - 400];
	uint64_t bytes;      /* budget; 0: no disk cache */
	uint64_t used;       /* chunk bytes present in cache files */
} cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

void objstore_configure(const char *dir, uint64_t bytes)
{
	if (bytes && !(dir && *dir))
		log_warn("memory.disk_cache is %llu bytes but memory.disk_cache_dir is empty: no disk cache",
			 (unsigned long long)bytes);
	pthread_mutex_lock(&cache.mu);
	snprintf(cache.dir, sizeof(cache.dir), "%s", dir && bytes ? dir : "");
	cache.bytes = dir && *dir ? bytes : 0;
	pthread_mutex_unlock(&cache.mu);
}

struct ostore {
	struct ocreds creds;
	struct ourl url;
	struct oget *get;
	char root[PATH_MAX - 300]; /* the directory made for this URL */
	char dir[PATH_MAX];      /* root, or root/<last segment> for a prefix (the
				  * Hugging Face reader names the model after it) */
	bool temp;               /* no disk cache: unlink the staging dir */
	bool cached;             /* a disk cache holds the chunks */
	char *staged[OSRC_MAX_STAGED];
	int n_staged;
	/* One bounce buffer of OSRC_FILL_MAX bytes for every object of the URL
	 * (fills of several shards take turns: fill_mu, always taken after an
	 * object's own lock). */
	pthread_mutex_t fill_mu;
	uint8_t *bounce;
};

struct osrc_idx_head {
	char magic[8];
	uint64_t size, chunk;
	char etag[256];
};

struct osrc_idx_ent {
	uint64_t sum;
	uint8_t present, pad[7];
};

struct osrc {
	struct ostore *st;
	char url[1400];          /* HTTP URL */
	char shown[1400];        /* as the user would name it */
	char path[PATH_MAX];
	char etag[256];
	uint64_t size, n_chunks;
	int fd, idx_fd;          /* idx_fd < 0: no disk cache */
	uint8_t *state;          /* per chunk: C_* */
	uint64_t hand;           /* FIFO eviction's clock hand */
	pthread_mutex_t mu;
	uint64_t net_bytes, disk_bytes;
};

/* ---- small helpers ---- */

uint64_t osrc_checksum(const void *p, uint64_t n)
{
	/* A multiply-xorshift over 8-byte words: catches a torn or stale
	 * chunk, not an adversary (the cache directory is the operator's). */
	const uint8_t *b = p;
	uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
	uint64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
		h ^= h >> 31;
	}
	for (; i < n; i++)
		h = (h ^ b[i]) * 0x94D049BB133111EBull;
	return h ^ (h >> 29);
}

static uint64_t fnv64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

/* ---- the store ---- */

int ostore_open(struct ostore **out, const char *url, struct smk_err *err)
{
	*out = NULL;
	struct ostore *st = calloc(1, sizeof(*st));
	if (!st)
		return smk_fail(err, -ENOMEM, "%s: out of memory", url);
	pthread_mutex_init(&st->fill_mu, NULL);
	if (!(st->bounce = malloc(OSRC_FILL_MAX))) {
		free(st);
		return smk_fail(err, -ENOMEM, "%s: out of memory", url);
	}
	int rc = oconf_load_creds(&st->creds, env_get, err);
	if (!rc)
		rc = oconf_parse_url(&st->url, url, &st->creds, env_get, err);
	if (!rc)
		rc = oget_new(&st->get, &st->creds, err);
	explicit_bzero(&st->creds, sizeof(st->creds)); /* the client holds its copy */
	if (rc) {
		ostore_free(st);
		return rc;
	}
	pthread_mutex_lock(&cache.mu);
	st->cached = cache.bytes > 0;
	if (st->cached)
		snprintf(st->root, sizeof(st->root), "%s/%016" PRIx64, cache.dir, fnv64(url));
	pthread_mutex_unlock(&cache.mu);
	if (st->cached) {
		if ((mkdir(cache.dir, 0700) && errno != EEXIST) || (mkdir(st->root, 0700) && errno != EEXIST)) {
			rc = -errno;
			smk_fail(err, rc, "memory.disk_cache_dir: cannot create %s: %s", st->root,
				 strerror(-rc));
			ostore_free(st);
			return rc;
		}
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(st->root, sizeof(st->root), "%s/smoke-objstore-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(st->root)) {
			rc = -errno;
			smk_fail(err, rc, "%s: cannot make a staging directory %s: %s", url, st->root,
				 strerror(-rc));
			ostore_free(st);
			return rc;
		}
		st->temp = true;
	}
	snprintf(st->dir, sizeof(st->dir), "%s", st->root);
	if (ostore_is_dir(st)) {
		/* root/<the prefix's last segment>/ */
		const char *k = st->url.key, *end = k + strlen(k) - 1, *seg = end;
		while (seg > k && seg[-1] != '/')
			seg--;
		int n = (int)(end - seg);
		if (n == 0 || (n <= 2 && seg[0] == '.' && seg[n - 1] == '.')) {
			seg = "model";
			n = 5;
		}
		snprintf(st->dir, sizeof(st->dir), "%s/%.*s", st->root, n > 255 ? 255 : n, seg);
		if (mkdir(st->dir, 0700) && errno != EEXIST) {
			rc = -errno;
			smk_fail(err, rc, "%s: cannot create %s: %s", url, st->dir, strerror(-rc));
			ostore_free(st);
			return rc;
		}
	}
	*out = st;
	return 0;
}

void ostore_unlink(struct ostore *st)
{
	if (!st || !st->temp)
		return;
	char p[PATH_MAX + 300];
	for (int i = 0; i < st->n_staged; i++) {
		snprintf(p, sizeof(p), "%s/%s", st->dir, st->staged[i]);
		unlink(p);
		free(st->staged[i]);
	}
	st->n_staged = 0;
	if (strcmp(st->dir, st->root))
		rmdir(st->dir);
	rmdir(st->root);
	st->temp = false;
}

void ostore_free(struct ostore *st)
{
	if (!st)
		return;
	ostore_unlink(st);
	for (int i = 0; i < st->n_staged; i++)
		free(st->staged[i]);
	oget_free(st->get);
	free(st->bounce);
	pthread_mutex_destroy(&st->fill_mu);
	free(st);
}

bool ostore_is_dir(const struct ostore *st)
{
	size_t n = strlen(st->url.key);
	return n && st->url.key[n - 1] == '/';
}

const char *ostore_url(const struct ostore *st) { return st->url.shown; }
const char *ostore_dir(const struct ostore *st) { return st->dir; }

void ostore_stats(struct ostore *st, struct oget_stats *out)
{
	oget_get_stats(st->get, out);
}

/* A plain file name to stage (no '/', not "." or ".."). */
static int check_name(const struct ostore *st, const char *name, struct smk_err *err)
{
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strlen(name) > 255)
		return smk_fail(err, -EINVAL, "%s: '%s' is not a plain file name", st->url.shown, name);
	return 0;
}

static int remember(struct ostore *st, const char *name, struct smk_err *err)
{
	for (int i = 0; i < st->n_staged; i++)
		if (!strcmp(st->staged[i], name))
			return 0;
	if (st->n_staged == OSRC_MAX_STAGED)
		return smk_fail(err, -E2BIG, "%s: more than %d files", st->url.shown, OSRC_MAX_STAGED);
	if (!(st->staged[st->n_staged] = strdup(name)))
		return smk_fail(err, -ENOMEM, "out of memory");
	st->n_staged++;
	return 0;
}

/* The target (URLs) of `name` under st (NULL: the URL itself). */
static int target_of(const struct ostore *st, const char *name, char *url, char *shown,
		     size_t cap, struct smk_err *err)
{
	if (!name) {
		snprintf(url, cap, "%s", st->url.base);
		snprintf(shown, cap, "%s", st->url.shown);
		return 0;
	}
	if (oconf_child_url(&st->url, name, url, cap) ||
	    (size_t)snprintf(shown, cap, "%s%s", st->url.shown, name) >= cap)
		return smk_fail(err, -ENAMETOOLONG, "%s%s: URL too long", st->url.shown, name);
	return 0;
}

int ostore_fetch_small(struct ostore *st, const char *name, uint64_t max, struct smk_err *err)
{
	char url[1400], shown[1400], path[PATH_MAX + 300];
	int rc = check_name(st, name, err);
	if (!rc)
		rc = target_of(st, name, url, shown, sizeof(url), err);
	if (rc)
		return rc;
	struct oget_target t = { url, shown, st->url.s3 };
	uint64_t size;
	char etag[256];
	if ((rc = oget_stat(st->get, &t, &size, etag, sizeof(etag), err)))
		return rc;
	if (size > max)
		return smk_fail(err, -EFBIG, "%s: %" PRIu64 " bytes, more than the %" PRIu64
				" expected of it", shown, size, max);
	uint8_t *buf = malloc((size_t)size);
	if (!buf)
		return smk_fail(err, -ENOMEM, "%s: out of memory", shown);
	rc = oget_range(st->get, &t, size, etag, 0, size, buf, err);
	snprintf(path, sizeof(path), "%s/%s", st->dir, name);
	if (!rc) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || smk_pwrite_all(fd, buf, size, 0)) {
			rc = -(errno ? errno : EIO);
			smk_fail(err, rc, "%s: cannot write %s: %s", shown, path, strerror(-rc));
		}
		if (fd >= 0)
			close(fd);
	}
	free(buf);
	return rc ? rc : remember(st, name, err);
}

/* ---- one object ---- */

static uint64_t chunk_len(const struct osrc *s, uint64_t c)
{
	uint64_t off = c * OSRC_CHUNK;
	return s->size - off < OSRC_CHUNK ? s->size - off : OSRC_CHUNK;
}

static int write_ent(struct osrc *s, uint64_t c, uint64_t sum, bool present)
{
	if (s->idx_fd < 0)
		return 0;
	struct osrc_idx_ent e = { .sum = sum, .present = present };
	return smk_pwrite_all(s->idx_fd, &e, sizeof(e), sizeof(struct osrc_idx_head) + c * sizeof(e));
}

/* The disk cache: reuse what an earlier run left if size and ETag agree and
 * each chunk matches its checksum; else start the files afresh. */
static int cache_attach(struct osrc *s, struct smk_err *err)
{
	char ip[PATH_MAX + 8];
	snprintf(ip, sizeof(ip), "%s.idx", s->path);
	s->idx_fd = open(ip, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->idx_fd < 0)
		return smk_fail(err, -errno, "%s: cannot open the cache index %s: %s", s->shown, ip,
				strerror(errno));
	struct osrc_idx_head h, want = { .size = s->size, .chunk = OSRC_CHUNK };
	memcpy(want.magic, IDX_MAGIC, 8);
	snprintf(want.etag, sizeof(want.etag), "%s", s->etag);
	struct stat sb;
	bool reuse = !smk_pread_all(s->idx_fd, &h, sizeof(h), 0) && !memcmp(&h, &want, sizeof(h)) &&
		     !fstat(s->fd, &sb) && (uint64_t)sb.st_size == s->size;
	uint64_t kept = 0, dropped = 0;
	if (reuse) {
		for (uint64_t c = 0; c < s->n_chunks; c++) {
			struct osrc_idx_ent e;
			if (smk_pread_all(s->idx_fd, &e, sizeof(e), sizeof(h) + c * sizeof(e)) || !e.present)
				continue;
			uint64_t n = chunk_len(s, c);
			pthread_mutex_lock(&s->st->fill_mu);
			bool good = !smk_pread_all(s->fd, s->st->bounce, n, c * OSRC_CHUNK) &&
				    osrc_checksum(s->st->bounce, n) == e.sum;
			pthread_mutex_unlock(&s->st->fill_mu);
			if (good) {
				s->state[c] = C_PRESENT;
				kept += n;
			} else {
				write_ent(s, c, 0, false);
				fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)(c * OSRC_CHUNK), (off_t)n);
				dropped++;
			}
		}
		log_info("%s: disk cache %s: %" PRIu64 " bytes reused, %" PRIu64
			 " chunks failed their checksum and were dropped", s->shown, s->path, kept,
			 dropped);
	} else {
		if (ftruncate(s->fd, 0) || ftruncate(s->fd, (off_t)s->size) ||
		    ftruncate(s->idx_fd, 0) || smk_pwrite_all(s->idx_fd, &want, sizeof(want), 0) ||
		    ftruncate(s->idx_fd, (off_t)(sizeof(want) + s->n_chunks * sizeof(struct osrc_idx_ent))))
			return smk_fail(err, -EIO, "%s: cannot set up the disk cache %s: %s", s->shown,
					s->path, strerror(errno));
	}
	pthread_mutex_lock(&cache.mu);
	cache.used += kept;
	pthread_mutex_unlock(&cache.mu);
	return 0;
}

int osrc_open(struct osrc **out, struct ostore *st, const char *name, struct smk_err *err)
{
	*out = NULL;
	struct osrc *s = calloc(1, sizeof(*s));
	if (!s)
		return smk_fail(err, -ENOMEM, "%s: out of memory", st->url.shown);
	s->st = st;
	s->fd = s->idx_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	const char *base = name;
	if (!base) {
		base = strrchr(st->url.key, '/');
		base = base ? base + 1 : st->url.key;
	}
	int rc = check_name(st, base, err);
	if (!rc)
		rc = target_of(st, name, s->url, s->shown, sizeof(s->url), err);
	struct oget_target t = { s->url, s->shown, st->url.s3 };
	if (!rc)
		rc = oget_stat(st->get, &t, &s->size, s->etag, sizeof(s->etag), err);
	if (rc) {
		osrc_free(s);
		return rc;
	}
	s->n_chunks = (s->size + OSRC_CHUNK - 1) / OSRC_CHUNK;
	if ((size_t)snprintf(s->path, sizeof(s->path), "%s/%s", st->dir, base) >= sizeof(s->path)) {
		osrc_free(s);
		return smk_fail(err, -ENAMETOOLONG, "%s: staging path too long", st->url.shown);
	}
	s->state = calloc((size_t)s->n_chunks, 1);
	if (!s->state) {
		osrc_free(s);
		return smk_fail(err, -ENOMEM, "%s: out of memory", s->shown);
	}
	s->fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		rc = -errno;
		smk_fail(err, rc, "%s: cannot create %s: %s", s->shown, s->path, strerror(-rc));
	} else if (st->cached) {
		rc = cache_attach(s, err);
	} else if (ftruncate(s->fd, (off_t)s->size)) {
		rc = -errno;
		smk_fail(err, rc, "%s: cannot size %s to %" PRIu64 " bytes: %s", s->shown, s->path,
			 s->size, strerror(-rc));
	}
	if (!rc)
		rc = remember(st, base, err);
	if (rc) {
		osrc_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void osrc_free(struct osrc *s)
{
	if (!s)
		return;
	if (s->idx_fd >= 0) {
		uint64_t had = 0;
		for (uint64_t c = 0; c < s->n_chunks; c++)
			if (s->state[c] != C_ABSENT)
				had += chunk_len(s, c);
		pthread_mutex_lock(&cache.mu);
		cache.used -= had < cache.used ? had : cache.used;
		pthread_mutex_unlock(&cache.mu);
		close(s->idx_fd);
	}
	if (s->fd >= 0)
		close(s->fd);
	free(s->state);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

const char *osrc_path(const struct osrc *s) { return s->path; }
const char *osrc_url(const struct osrc *s) { return s->shown; }
uint64_t osrc_size(const struct osrc *s) { return s->size; }

void osrc_read_stats(const struct osrc *s, uint64_t *net_bytes, uint64_t *disk_bytes)
{
	pthread_mutex_lock((pthread_mutex_t *)&s->mu);
	*net_bytes = s->net_bytes;
	*disk_bytes = s->disk_bytes;
	pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}

/* Punch present, unpinned chunks outside [keep0, keep1] (FIFO by a clock
 * hand) until the disk cache is within its budget.  Under s->mu. */
static void evict(struct osrc *s, uint64_t keep0, uint64_t keep1)
{
	for (uint64_t k = 0; k < s->n_chunks; k++) {
		pthread_mutex_lock(&cache.mu);
		bool over = cache.used > cache.bytes;
		pthread_mutex_unlock(&cache.mu);
		if (!over)
			return;
		uint64_t c = s->hand;
		s->hand = (s->hand + 1) % s->n_chunks;
		if (s->state[c] != C_PRESENT || (c >= keep0 && c <= keep1))
			continue;
		uint64_t n = chunk_len(s, c);
		write_ent(s, c, 0, false);
		fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(c * OSRC_CHUNK),
			  (off_t)n);
		s->state[c] = C_ABSENT;
		pthread_mutex_lock(&cache.mu);
		cache.used -= n < cache.used ? n : cache.used;
		pthread_mutex_unlock(&cache.mu);
	}
}

/* Fetch chunks [c0, c1] that are absent into the backing file, marking them
 * `mark`; chunks already present are marked too when pinning.  Under s->mu. */
static int fill(struct osrc *s, uint64_t c0, uint64_t c1, uint8_t mark, struct smk_err *err)
{
	struct oget_target t = { s->url, s->shown, s->st->url.s3 };
	uint64_t c = c0;
	while (c <= c1) {
		if (s->state[c] != C_ABSENT) {
			if (mark == C_PINNED)
				s->state[c] = C_PINNED;
			c++;
			continue;
		}
		/* A run of absent chunks, at most OSRC_FILL_MAX bytes. */
		uint64_t e = c, off = c * OSRC_CHUNK, n = chunk_len(s, c);
		while (e + 1 <= c1 && s->state[e + 1] == C_ABSENT && n + chunk_len(s, e + 1) <= OSRC_FILL_MAX)
			n += chunk_len(s, ++e);
		uint8_t *b = s->st->bounce;
		pthread_mutex_lock(&s->st->fill_mu);
		int rc = oget_range(s->st->get, &t, s->size, s->etag, off, n, b, err);
		if (!rc && (rc = smk_pwrite_all(s->fd, b, n, off)))
			smk_fail(err, rc, "%s: cannot write %s: %s", s->shown, s->path, strerror(-rc));
		for (uint64_t k = c; k <= e && !rc; k++)
			if ((rc = write_ent(s, k, osrc_checksum(b + (k - c) * OSRC_CHUNK, chunk_len(s, k)), true)))
				smk_fail(err, rc, "%s: cannot write the cache index of %s: %s", s->shown,
					 s->path, strerror(-rc));
		pthread_mutex_unlock(&s->st->fill_mu);
		if (rc)
			return rc;
		s->net_bytes += n;
		for (uint64_t k = c; k <= e; k++) {
			s->state[k] = mark;
			if (s->idx_fd >= 0) {
				pthread_mutex_lock(&cache.mu);
				cache.used += chunk_len(s, k);
				pthread_mutex_unlock(&cache.mu);
			}
		}
		c = e + 1;
	}
	if (s->idx_fd >= 0)
		evict(s, c0, c1);
	return 0;
}

static int check_range(const struct osrc *s, uint64_t off, uint64_t n, struct smk_err *err)
{
	if (off > s->size || n > s->size - off)
		return smk_fail(err, -EINVAL, "%s: bytes %" PRIu64 "+%" PRIu64 " are past its end (%"
				PRIu64 " bytes)", s->shown, off, n, s->size);
	return 0;
}

int osrc_pin(struct osrc *s, uint64_t off, uint64_t n, struct smk_err *err)
{
	if (!n)
		return 0;
	int rc = check_range(s, off, n, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&s->mu);
	rc = fill(s, off / OSRC_CHUNK, (off + n - 1) / OSRC_CHUNK, C_PINNED, err);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int osrc_read(struct osrc *s, void *buf, uint64_t n, uint64_t off, struct smk_err *err)
{
	if (!n)
		return 0;
	int rc = check_range(s, off, n, err);
	if (rc)
		return rc;
	uint64_t c0 = off / OSRC_CHUNK, c1 = (off + n - 1) / OSRC_CHUNK;
	pthread_mutex_lock(&s->mu);
	bool all = true;
	for (uint64_t c = c0; c <= c1 && all; c++)
		all = s->state[c] != C_ABSENT;
	if (s->idx_fd < 0) {
		/* No disk cache: what is present is pinned (never punched), the
		 * rest comes straight from the network into buf. */
		pthread_mutex_unlock(&s->mu);
		if (all) {
			if ((rc = smk_pread_all(s->fd, buf, n, off)))
				return smk_fail(err, rc, "%s: reading %s: %s", s->shown, s->path,
						strerror(-rc));
		} else {
			struct oget_target t = { s->url, s->shown, s->st->url.s3 };
			if ((rc = oget_range(s->st->get, &t, s->size, s->etag, off, n, buf, err)))
				return rc;
		}
		pthread_mutex_lock(&s->mu);
		*(all ? &s->disk_bytes : &s->net_bytes) += n;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	/* Disk cache: fill the chunks, then read them back, all under the lock
	 * so that eviction cannot punch them in between. */
	if (!all)
		rc = fill(s, c0, c1, C_PRESENT, err);
	if (!rc && (rc = smk_pread_all(s->fd, buf, n, off)))
		smk_fail(err, rc, "%s: reading the disk cache %s: %s", s->shown, s->path, strerror(-rc));
	if (!rc && all)
		s->disk_bytes += n;
	pthread_mutex_unlock(&s->mu);
	return rc;
}
