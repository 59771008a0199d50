/* model_file.c - URL -> object storage, directory -> Hugging Face, else GGUF. */
#include "formats/model_file.h"

#include <sys/stat.h>

#include "formats/hf/hf_model.h"
#include "formats/remote.h"
#include "objstore/oconf.h"

int model_file_open(struct gguf **out, const char *path, struct smk_err *err)
{
	if (oconf_is_url(path))
		return remote_open(out, path, err);
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return hf_open(out, path, err);
	return gguf_open(out, path, err);
}
