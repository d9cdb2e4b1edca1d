/*
 * libtilemerge: merges the detections of tiled YOLO inference into frame detections.
 *
 * A frame too large for the network is cut into overlapping tiles; an object on a tile border is
 * then detected once per tile it touches. tm_merge_tiles moves each tile's boxes into frame
 * coordinates (adds the tile's offset) and runs class-wise non-maximum suppression over all of
 * them: the boxes are taken by descending score and a box is dropped when its IoU with an already
 * kept box of the same class is greater than the threshold, so the highest-scoring box survives.
 *
 * Plain C ABI for ctypes and other FFIs; the library allocates nothing the caller frees.
 */
#ifndef TILEMERGE_H
#define TILEMERGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TM_ABI_VERSION 1u
/* Returned instead of a count when the arguments are invalid (or memory ran out). */
#define TM_ERROR ((size_t)-1)

typedef struct tm_box {
  double x1, y1, x2, y2; /* corners, x1 < x2 and y1 < y2; pixels */
  double score;          /* confidence, finite */
  int32_t class_id;      /* suppression happens only within one class */
  int32_t tile;          /* output: index of the tile the box came from (input of tm_merge: kept as is) */
  int32_t merged;        /* output: how many boxes this one suppressed (input: ignored) */
} tm_box;

typedef struct tm_tile {
  double x, y;  /* the tile's top-left corner in frame coordinates */
  size_t count; /* how many consecutive boxes of the input belong to this tile */
} tm_tile;

/* TM_ABI_VERSION of the loaded library, and sizeof(tm_box), so bindings can check their layout. */
uint32_t tm_abi_version(void);
size_t tm_box_size(void);

/*
 * Merges n boxes already in frame coordinates. `out` has room for n boxes (it may be `in`).
 * Boxes with a non-finite value or no area are dropped. The kept boxes are written by descending
 * score (ties: input order). Returns how many, or TM_ERROR when a pointer is NULL while n > 0 or
 * iou_threshold is not within [0, 1].
 */
size_t tm_merge(const tm_box* in, size_t n, double iou_threshold, tm_box* out);

/*
 * As tm_merge, for tile-relative boxes: tiles[i].count consecutive boxes of `in` belong to tile i
 * and are offset by (tiles[i].x, tiles[i].y); out[k].tile is set to the source tile's index.
 * TM_ERROR also when the tiles' counts do not add up to n or an offset is not finite.
 */
size_t tm_merge_tiles(const tm_tile* tiles, size_t n_tiles, const tm_box* in, size_t n, double iou_threshold, tm_box* out);

#ifdef __cplusplus
}
#endif

#endif /* TILEMERGE_H */
