// Class-wise greedy non-maximum suppression over the detections of all tiles of a frame.
#include "tilemerge.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#define TM_EXPORT extern "C" __attribute__((visibility("default")))

namespace tilemerge {

bool valid(const tm_box& b) noexcept {
  return std::isfinite(b.x1) && std::isfinite(b.y1) && std::isfinite(b.x2) && std::isfinite(b.y2) && std::isfinite(b.score) &&
         b.x1 < b.x2 && b.y1 < b.y2;
}

double iou(const tm_box& a, const tm_box& b) noexcept {
  const double iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const double ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0;
  const double inter = iw * ih;
  const double uni = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return uni > 0 ? inter / uni : 0;
}

std::vector<tm_box> merge(std::vector<tm_box> boxes, double iou_threshold) {
  boxes.erase(std::remove_if(boxes.begin(), boxes.end(), [](const tm_box& b) { return !valid(b); }), boxes.end());
  for (auto& b : boxes) b.merged = 0;
  // Highest score first; equal scores keep their input order, so the result is deterministic.
  std::stable_sort(boxes.begin(), boxes.end(), [](const tm_box& a, const tm_box& b) { return a.score > b.score; });

  std::vector<tm_box> kept;
  std::unordered_map<int32_t, std::vector<size_t>> kept_by_class;  // indices into `kept`
  for (const auto& box : boxes) {
    auto& same_class = kept_by_class[box.class_id];
    auto winner = std::find_if(same_class.begin(), same_class.end(), [&](size_t k) { return iou(kept[k], box) > iou_threshold; });
    if (winner != same_class.end()) {
      ++kept[*winner].merged;
    } else {
      same_class.push_back(kept.size());
      kept.push_back(box);
    }
  }
  return kept;
}

}  // namespace tilemerge

namespace {

bool valid_threshold(double t) { return std::isfinite(t) && t >= 0 && t <= 1; }

size_t write_out(const std::vector<tm_box>& kept, tm_box* out) {
  if (!kept.empty()) std::memcpy(out, kept.data(), kept.size() * sizeof(tm_box));
  return kept.size();
}

}  // namespace

TM_EXPORT uint32_t tm_abi_version(void) { return TM_ABI_VERSION; }

TM_EXPORT size_t tm_box_size(void) { return sizeof(tm_box); }

TM_EXPORT size_t tm_merge(const tm_box* in, size_t n, double iou_threshold, tm_box* out) {
  if ((n > 0 && (in == nullptr || out == nullptr)) || !valid_threshold(iou_threshold)) return TM_ERROR;
  try {
    // Copied first, so `out` may alias `in`.
    return write_out(tilemerge::merge(std::vector<tm_box>(in, in + n), iou_threshold), out);
  } catch (...) {  // std::bad_alloc: no exception crosses the C ABI
    return TM_ERROR;
  }
}

TM_EXPORT size_t tm_merge_tiles(const tm_tile* tiles, size_t n_tiles, const tm_box* in, size_t n, double iou_threshold, tm_box* out) {
  if ((n_tiles > 0 && tiles == nullptr) || (n > 0 && (in == nullptr || out == nullptr)) || !valid_threshold(iou_threshold)) return TM_ERROR;
  size_t total = 0;
  for (size_t t = 0; t < n_tiles; ++t) {
    if (!std::isfinite(tiles[t].x) || !std::isfinite(tiles[t].y) || tiles[t].count > n - total) return TM_ERROR;
    total += tiles[t].count;
  }
  if (total != n || n_tiles > static_cast<size_t>(INT32_MAX)) return TM_ERROR;
  try {
    std::vector<tm_box> boxes(in, in + n);
    size_t i = 0;
    for (size_t t = 0; t < n_tiles; ++t) {
      for (size_t k = 0; k < tiles[t].count; ++k, ++i) {
        boxes[i].x1 += tiles[t].x;
        boxes[i].x2 += tiles[t].x;
        boxes[i].y1 += tiles[t].y;
        boxes[i].y2 += tiles[t].y;
        boxes[i].tile = static_cast<int32_t>(t);
      }
    }
    return write_out(tilemerge::merge(std::move(boxes), iou_threshold), out);
  } catch (...) {
    return TM_ERROR;
  }
}
