/* wstore.h - where the forward pass gets its weights from.
 *
 * The forward pass asks for one weight block at a time (acquire), runs it and
 * gives it back (release).  Between the two the block's tensor views stay
 * valid and the block cannot be evicted.  This is the seam the weight
 * hierarchy (disk -> RAM cache -> device slots, with prefetch) plugs into;
 * the resident store here simply hands out views of the file mapping.
 */
#ifndef SMK_WEIGHTS_WSTORE_H
#define SMK_WEIGHTS_WSTORE_H

#include "arch/model.h"
#include "util/err.h"

struct wstore;

/* A store that serves every block straight from the model's mapping.  The
 * model must outlive the store.  *out owned by the caller (wstore_free). */
int wstore_new_resident(struct wstore **out, const struct model *m, struct smk_err *err);
void wstore_free(struct wstore *ws);

/* Block i of the model's plan, ready to compute with, or NULL with err set
 * (for example when a read failed).  Every successful acquire must be paired
 * with one release. */
const struct wblock *wstore_acquire(struct wstore *ws, int block, struct smk_err *err);
void wstore_release(struct wstore *ws, int block);

#endif
