/* shopload.h -- load a synthetic shop into an engine.
 * Returns CX_OK or the status of the failing library call. */
#ifndef SHOPLOAD_H
#define SHOPLOAD_H

#include "cxengine.h"
#include "synth.h"

#include <stddef.h>

/* Upsert the shop's catalogue in item order, so that the engine's item
 * index i is the shop's item i (in a fresh engine). */
int shop_upsert_catalogue(cx_engine *e, const synth_shop *s);
/* Ingest signals [from, to) in batches of `batch` (0 = 4096). */
int shop_ingest(cx_engine *e, const synth_shop *s, size_t from, size_t to,
                size_t batch);

#endif
