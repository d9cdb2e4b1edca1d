// Unit tests of the merge logic; run in the image's builder stage (`make check`), where a failure
// fails the build. No test framework: the L4T devel base has none, and this needs none.
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tilemerge.h"
#include "tilemerge.hpp"

namespace {

int failures = 0;
int checks = 0;

#define CHECK(cond)                                                   \
  do {                                                                \
    ++checks;                                                         \
    if (!(cond)) {                                                    \
      ++failures;                                                     \
      std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
    }                                                                 \
  } while (0)

#define CHECK_NEAR(a, b) CHECK(std::fabs((a) - (b)) < 1e-12)

tm_box box(double x1, double y1, double x2, double y2, double score, int32_t cls = 0) {
  return tm_box{x1, y1, x2, y2, score, cls, -1, 0};
}

bool same_box(const tm_box& a, double x1, double y1, double x2, double y2, double score, int32_t cls) {
  return a.x1 == x1 && a.y1 == y1 && a.x2 == x2 && a.y2 == y2 && a.score == score && a.class_id == cls;
}

std::vector<tm_box> merge(const std::vector<tm_box>& in, double iou) {
  std::vector<tm_box> out(in.size());
  const size_t n = tm_merge(in.data(), in.size(), iou, out.data());
  if (n == TM_ERROR) return {box(0, 0, 0, 0, -1)};
  out.resize(n);
  return out;
}

void test_abi() {
  CHECK(tm_abi_version() == TM_ABI_VERSION);
  CHECK(tm_box_size() == sizeof(tm_box));
  CHECK(sizeof(tm_box) == 56);  // the layout the Python binding declares
}

void test_iou() {
  CHECK_NEAR(tilemerge::iou(box(0, 0, 10, 10, 1), box(0, 0, 10, 10, 1)), 1.0);
  CHECK_NEAR(tilemerge::iou(box(0, 0, 10, 10, 1), box(5, 0, 15, 10, 1)), 50.0 / 150.0);
  CHECK_NEAR(tilemerge::iou(box(0, 0, 10, 10, 1), box(10, 0, 20, 10, 1)), 0.0);  // touching edges
  CHECK_NEAR(tilemerge::iou(box(0, 0, 10, 10, 1), box(20, 20, 30, 30, 1)), 0.0);
  CHECK_NEAR(tilemerge::iou(box(0, 0, 10, 10, 1), box(2, 2, 4, 4, 1)), 4.0 / 100.0);  // contained
  CHECK_NEAR(tilemerge::iou(box(0, 0, 0, 10, 1), box(0, 0, 0, 10, 1)), 0.0);        // no area
}

void test_keeps_highest_score_of_overlapping_pair() {
  auto out = merge({box(0, 0, 100, 100, 0.6), box(5, 5, 100, 100, 0.9)}, 0.5);
  CHECK(out.size() == 1);
  CHECK(same_box(out[0], 5, 5, 100, 100, 0.9, 0));
  CHECK(out[0].merged == 1);
}

void test_classes_do_not_suppress_each_other() {
  auto out = merge({box(0, 0, 100, 100, 0.9, 0), box(0, 0, 100, 100, 0.8, 1)}, 0.5);
  CHECK(out.size() == 2);
  CHECK(out[0].class_id == 0 && out[1].class_id == 1);
  CHECK(out[0].merged == 0 && out[1].merged == 0);
}

void test_threshold_is_strict() {
  // A pair with IoU exactly 0.5 is kept at threshold 0.5 (suppression needs IoU > threshold).
  const auto a = box(0, 0, 30, 1, 0.9), b = box(10, 0, 40, 1, 0.8);  // inter 20, union 40
  CHECK_NEAR(tilemerge::iou(a, b), 0.5);
  CHECK(merge({a, b}, 0.5).size() == 2);
  CHECK(merge({a, b}, 0.49).size() == 1);
  CHECK(merge({a, b}, 1.0).size() == 2);
  CHECK(merge({a, box(0, 0, 30, 1, 0.1)}, 0.0).size() == 1);
}

void test_sorted_by_score_ties_in_input_order() {
  auto out = merge({box(0, 0, 1, 1, 0.5), box(10, 10, 11, 11, 0.7), box(20, 20, 21, 21, 0.5)}, 0.5);
  CHECK(out.size() == 3);
  CHECK(out[0].score == 0.7 && out[0].x1 == 10);
  CHECK(out[1].x1 == 0 && out[2].x1 == 20);
}

void test_greedy_chain() {
  // b overlaps a and c, a and c do not overlap: a suppresses b, c survives.
  auto out = merge({box(0, 0, 10, 10, 0.9), box(2, 0, 12, 10, 0.8), box(4, 0, 14, 10, 0.7)}, 0.5);
  // iou(a,b) = 80/120, iou(a,c) = 60/140 <= 0.5
  CHECK(out.size() == 2);
  CHECK(out[0].score == 0.9 && out[0].merged == 1);
  CHECK(out[1].score == 0.7 && out[1].merged == 0);
}

void test_drops_invalid_boxes() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto out = merge({box(0, 0, 10, 10, nan), box(10, 0, 0, 10, 0.9), box(0, 0, 10, 0, 0.9), box(0, 0, inf, 10, 0.9), box(0, 0, 10, 10, 0.3)}, 0.5);
  CHECK(out.size() == 1);
  CHECK(out.size() == 1 && same_box(out[0], 0, 0, 10, 10, 0.3, 0));
}

void test_errors_and_empty_input() {
  tm_box b = box(0, 0, 1, 1, 1), o{};
  CHECK(tm_merge(nullptr, 0, 0.5, nullptr) == 0);
  CHECK(tm_merge(nullptr, 1, 0.5, &o) == TM_ERROR);
  CHECK(tm_merge(&b, 1, 0.5, nullptr) == TM_ERROR);
  CHECK(tm_merge(&b, 1, -0.1, &o) == TM_ERROR);
  CHECK(tm_merge(&b, 1, 1.1, &o) == TM_ERROR);
  CHECK(tm_merge(&b, 1, std::numeric_limits<double>::quiet_NaN(), &o) == TM_ERROR);
  CHECK(tm_merge_tiles(nullptr, 0, nullptr, 0, 0.5, nullptr) == 0);
  tm_tile t{0, 0, 2};
  CHECK(tm_merge_tiles(&t, 1, &b, 1, 0.5, &o) == TM_ERROR);  // counts add up to 2, not 1
  t.count = 0;
  CHECK(tm_merge_tiles(&t, 1, &b, 1, 0.5, &o) == TM_ERROR);  // 0, not 1
  t = tm_tile{std::numeric_limits<double>::infinity(), 0, 1};
  CHECK(tm_merge_tiles(&t, 1, &b, 1, 0.5, &o) == TM_ERROR);
}

void test_in_place() {
  std::vector<tm_box> v{box(0, 0, 10, 10, 0.5), box(0, 0, 10, 10, 0.9)};
  const size_t n = tm_merge(v.data(), v.size(), 0.5, v.data());
  CHECK(n == 1);
  CHECK(same_box(v[0], 0, 0, 10, 10, 0.9, 0));
}

void test_tiles_merge_across_border() {
  // Two 640x640 tiles overlapping by 128 px: tile 1 starts at x = 512. One object at frame
  // x 500..600 is seen whole by tile 0 and cut by tile 1's left edge (local x 0..88).
  const tm_tile tiles[] = {{0, 0, 2}, {512, 0, 2}};
  const tm_box in[] = {
      box(500, 100, 600, 200, 0.9, 0),  // tile 0: the object
      box(10, 10, 50, 50, 0.8, 2),      // tile 0: elsewhere
      box(0, 100, 88, 200, 0.7, 0),     // tile 1: the same object, cut -> frame 512..600
      box(0, 100, 88, 200, 0.6, 1),     // tile 1: another class at the same place
  };
  tm_box out[4];
  const size_t n = tm_merge_tiles(tiles, 2, in, 4, 0.5, out);
  CHECK(n == 3);
  if (n != 3) return;
  CHECK(same_box(out[0], 500, 100, 600, 200, 0.9, 0) && out[0].tile == 0 && out[0].merged == 1);
  CHECK(same_box(out[1], 10, 10, 50, 50, 0.8, 2) && out[1].tile == 0 && out[1].merged == 0);
  CHECK(same_box(out[2], 512, 100, 600, 200, 0.6, 1) && out[2].tile == 1 && out[2].merged == 0);
}

void test_tile_offset_moves_boxes_apart() {
  // The same tile-local box in two tiles far apart is two objects.
  const tm_tile tiles[] = {{0, 0, 1}, {0, 640, 1}};
  const tm_box in[] = {box(10, 10, 50, 50, 0.9), box(10, 10, 50, 50, 0.8)};
  tm_box out[2];
  CHECK(tm_merge_tiles(tiles, 2, in, 2, 0.5, out) == 2);
  CHECK(out[1].y1 == 650 && out[1].tile == 1);
}

void test_many_boxes() {
  // A grid of 100 disjoint objects, each detected 3 times with jitter: 100 survive.
  std::vector<tm_box> in;
  for (int i = 0; i < 100; ++i) {
    const double x = (i % 10) * 100.0, y = (i / 10) * 100.0;
    for (int j = 0; j < 3; ++j) in.push_back(box(x + j, y + j, x + 50 + j, y + 50 + j, 0.5 + 0.1 * j, i % 3));
  }
  auto out = merge(in, 0.5);
  CHECK(out.size() == 100);
  for (const auto& b : out) CHECK(b.merged == 2 && b.score == 0.5 + 0.1 * 2);
}

}  // namespace

int main() {
  const std::vector<std::pair<std::string, std::function<void()>>> tests{
      {"abi", test_abi},
      {"iou", test_iou},
      {"keeps the highest score of an overlapping pair", test_keeps_highest_score_of_overlapping_pair},
      {"classes do not suppress each other", test_classes_do_not_suppress_each_other},
      {"threshold is strict", test_threshold_is_strict},
      {"sorted by score, ties in input order", test_sorted_by_score_ties_in_input_order},
      {"greedy chain", test_greedy_chain},
      {"drops invalid boxes", test_drops_invalid_boxes},
      {"errors and empty input", test_errors_and_empty_input},
      {"in place", test_in_place},
      {"tiles merge across a border", test_tiles_merge_across_border},
      {"tile offsets move boxes apart", test_tile_offset_moves_boxes_apart},
      {"many boxes", test_many_boxes},
  };
  for (const auto& [name, fn] : tests) {
    const int before = failures;
    fn();
    std::printf("%s %s\n", failures == before ? "ok  " : "FAIL", name.c_str());
  }
  std::printf("%zu tests, %d checks, %d failed\n", tests.size(), checks, failures);
  return failures == 0 ? 0 : 1;
}
