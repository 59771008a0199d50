/* model_file.h - open whatever a model path names as a GGUF handle: the
 * one place that tells a Hugging Face directory from a GGUF file.
 */
#ifndef SMK_FORMATS_MODEL_FILE_H
#define SMK_FORMATS_MODEL_FILE_H

#include "formats/gguf.h"
#include "util/err.h"

/* An s3://, http:// or https:// URL is read from object storage
 * (formats/remote.h), a directory as a Hugging Face model (formats/hf/hf_model.h),
 * anything else as a GGUF file (formats/gguf.h).  *out owned by the caller
 * (gguf_close).  Returns 0 or a negative code with err naming the path. */
int model_file_open(struct gguf **out, const char *path, struct smk_err *err);

#endif
