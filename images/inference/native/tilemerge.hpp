// The C++ core behind tilemerge.h, exposed to the unit tests.
#ifndef TILEMERGE_HPP
#define TILEMERGE_HPP

#include <vector>

#include "tilemerge.h"

namespace tilemerge {

// Intersection over union of two boxes; 0 when either has no area.
double iou(const tm_box& a, const tm_box& b) noexcept;

// Whether a box takes part in merging: finite corners and score, x1 < x2, y1 < y2.
bool valid(const tm_box& b) noexcept;

// Class-wise greedy NMS; see tm_merge.
std::vector<tm_box> merge(std::vector<tm_box> boxes, double iou_threshold);

}  // namespace tilemerge

#endif  // TILEMERGE_HPP
