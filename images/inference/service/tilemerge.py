"""ctypes binding of libtilemerge.so (native/tilemerge.h): tile detections in, merged detections out."""

import ctypes
import os

ABI_VERSION = 1
TM_ERROR = ctypes.c_size_t(-1).value


class Box(ctypes.Structure):
    _fields_ = [
        ("x1", ctypes.c_double),
        ("y1", ctypes.c_double),
        ("x2", ctypes.c_double),
        ("y2", ctypes.c_double),
        ("score", ctypes.c_double),
        ("class_id", ctypes.c_int32),
        ("tile", ctypes.c_int32),
        ("merged", ctypes.c_int32),
    ]


class Tile(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("count", ctypes.c_size_t)]


class TileMerge:
    """The loaded library; `merge_tiles` is safe to call from several threads (no shared state)."""

    def __init__(self, path=None):
        path = path or os.environ.get("TILEMERGE_LIB", "libtilemerge.so")
        lib = ctypes.CDLL(path)
        lib.tm_abi_version.restype = ctypes.c_uint32
        lib.tm_abi_version.argtypes = []
        lib.tm_box_size.restype = ctypes.c_size_t
        lib.tm_box_size.argtypes = []
        lib.tm_merge_tiles.restype = ctypes.c_size_t
        lib.tm_merge_tiles.argtypes = [
            ctypes.POINTER(Tile),
            ctypes.c_size_t,
            ctypes.POINTER(Box),
            ctypes.c_size_t,
            ctypes.c_double,
            ctypes.POINTER(Box),
        ]
        if lib.tm_abi_version() != ABI_VERSION or lib.tm_box_size() != ctypes.sizeof(Box):
            raise RuntimeError(
                "%s: ABI %d with %d-byte boxes, this binding expects ABI %d with %d-byte boxes"
                % (path, lib.tm_abi_version(), lib.tm_box_size(), ABI_VERSION, ctypes.sizeof(Box))
            )
        self.path = path
        self._lib = lib

    def merge_tiles(self, tiles, iou):
        """tiles: [(x, y, [(x1, y1, x2, y2, score, class_id), ...]), ...] -> [dict, ...] by descending score."""
        boxes = [b for _, _, dets in tiles for b in dets]
        tile_arr = (Tile * max(len(tiles), 1))(*[Tile(x, y, len(dets)) for x, y, dets in tiles])
        in_arr = (Box * max(len(boxes), 1))(*[Box(x1, y1, x2, y2, s, c, -1, 0) for x1, y1, x2, y2, s, c in boxes])
        out_arr = (Box * max(len(boxes), 1))()
        n = self._lib.tm_merge_tiles(tile_arr, len(tiles), in_arr, len(boxes), iou, out_arr)
        if n == TM_ERROR:
            raise ValueError("tm_merge_tiles rejected its arguments")
        return [
            {"box": [b.x1, b.y1, b.x2, b.y2], "score": b.score, "class": b.class_id, "tile": b.tile, "merged": b.merged}
            for b in out_arr[:n]
        ]
