/* osrc.h - an object in object storage as tier 0 of the weights.
 *
 * Each object (a GGUF file, a safetensors shard) is staged as a local
 * backing file of the object's size, sparse until filled: the model
 * readers map it and parse in place as they do a local file, so the
 * header and the few tensors read through the mapping (norms, what is
 * converted at load) must be fetched into it first (osrc_pin).  The weight
 * store reads everything else through osrc_read by ranged GETs: with no
 * disk cache straight into the RAM tier's buffer (the backing file holds
 * only what was pinned); with a disk cache (objstore_configure) through
 * the backing file, which then is the cache: filled in OSRC_CHUNK chunks,
 * each recorded with its checksum in an index file beside it, chunks
 * punched out (FIFO) when the cache holds more than its budget, and on the
 * next start reused only when the object's size and ETag are unchanged and
 * each chunk still matches its checksum.
 *
 * Where files go: with a disk cache, CACHE_DIR/<hash of the URL>/; without
 * one, a fresh directory under $TMPDIR that is unlinked as soon as the model
 * is open (the descriptors and mappings keep the files; nothing is left on
 * disk after a crash).
 */
#ifndef SMK_OBJSTORE_OSRC_H
#define SMK_OBJSTORE_OSRC_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore/oconf.h"
#include "objstore/oget.h"
#include "util/err.h"

#define OSRC_CHUNK (1u << 20)

/* Process-wide disk cache (memory.disk_cache, memory.disk_cache_dir): set
 * before the model opens.  dir NULL or bytes 0: no disk cache. */
void objstore_configure(const char *dir, uint64_t bytes);

/* One model URL: the client, its credentials and the staging directory. */
struct ostore;

/* Parse url, load credentials (oconf.h) and make the staging directory.
 * *out owned by the caller (ostore_free, after every osrc of it). */
int ostore_open(struct ostore **out, const char *url, struct smk_err *err);
void ostore_free(struct ostore *st);
/* The URL names a prefix (ends in '/'): a Hugging Face directory. */
bool ostore_is_dir(const struct ostore *st);
const char *ostore_url(const struct ostore *st);
/* The staging directory (what the model readers open). */
const char *ostore_dir(const struct ostore *st);
/* Remove the staging directory's names when it is temporary (no disk
 * cache); open descriptors and mappings keep the data. */
void ostore_unlink(struct ostore *st);
/* Fetch the whole small object `name` (next to a prefix URL) into the
 * staging directory.  -ENOENT when there is none (404). */
int ostore_fetch_small(struct ostore *st, const char *name, uint64_t max, struct smk_err *err);
/* Counters of the client (requests, retries, bytes). */
void ostore_stats(struct ostore *st, struct oget_stats *out);

struct osrc;

/* The object `name` (a prefix URL: name is relative to it; else NULL: the
 * URL itself), staged as ostore_dir()/basename.  *out owned by the caller
 * (osrc_free); st must outlive it. */
int osrc_open(struct osrc **out, struct ostore *st, const char *name, struct smk_err *err);
void osrc_free(struct osrc *s);

const char *osrc_path(const struct osrc *s);   /* the backing file */
const char *osrc_url(const struct osrc *s);    /* for messages */
uint64_t osrc_size(const struct osrc *s);

/* Make [off, off+n) present in the backing file for good (the mapping
 * reads it).  0 or a negative code with err naming the URL. */
int osrc_pin(struct osrc *s, uint64_t off, uint64_t n, struct smk_err *err);

/* n bytes at off into buf (thread-safe). */
int osrc_read(struct osrc *s, void *buf, uint64_t n, uint64_t off, struct smk_err *err);

/* Bytes read through osrc_read from the network and from the backing file. */
void osrc_read_stats(const struct osrc *s, uint64_t *net_bytes, uint64_t *disk_bytes);

/* The checksum the disk cache records per chunk (exposed for the tests). */
uint64_t osrc_checksum(const void *p, uint64_t n);

#endif
