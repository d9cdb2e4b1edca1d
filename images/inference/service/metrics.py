"""Prometheus text exposition (format 0.0.4) for the few metrics the service keeps; stdlib only."""

import threading

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _labels(pairs):
    def esc(v):
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join('%s="%s"' % (k, esc(v)) for k, v in pairs) + "}" if pairs else ""


def _num(v):
    return repr(float(v)) if isinstance(v, float) else str(v)


class Metrics:
    def __init__(self, version, revision):
        self._lock = threading.Lock()
        self._requests = {}  # (path, method, code) -> count
        self._buckets = [0] * len(BUCKETS)
        self._merge_count = 0
        self._merge_sum = 0.0
        self._boxes = {"in": 0, "out": 0}
        self._build = (("version", version), ("revision", revision))

    def request(self, path, method, code):
        with self._lock:
            key = (path, method, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1

    def merge(self, seconds, boxes_in, boxes_out):
        with self._lock:
            self._merge_count += 1
            self._merge_sum += seconds
            for i, le in enumerate(BUCKETS):
                if seconds <= le:
                    self._buckets[i] += 1
            self._boxes["in"] += boxes_in
            self._boxes["out"] += boxes_out

    def render(self, degraded):
        with self._lock:
            out = [
                "# HELP inference_build_info The running build: version and source revision.",
                "# TYPE inference_build_info gauge",
                "inference_build_info%s 1" % _labels(self._build),
                "# HELP inference_degraded 1 when the service runs without a GPU or without its TensorRT engine.",
                "# TYPE inference_degraded gauge",
                "inference_degraded %d" % (1 if degraded else 0),
                "# HELP inference_requests_total HTTP requests by path, method and status code.",
                "# TYPE inference_requests_total counter",
            ]
            for (path, method, code), n in sorted(self._requests.items()):
                out.append("inference_requests_total%s %d" % (_labels((("path", path), ("method", method), ("code", code))), n))
            out += [
                "# HELP inference_merge_seconds Time spent merging tile detections in libtilemerge.",
                "# TYPE inference_merge_seconds histogram",
            ]
            for le, n in zip(BUCKETS, self._buckets):
                out.append("inference_merge_seconds_bucket%s %d" % (_labels((("le", _num(le)),)), n))
            out.append('inference_merge_seconds_bucket{le="+Inf"} %d' % self._merge_count)
            out.append("inference_merge_seconds_sum %s" % _num(self._merge_sum))
            out.append("inference_merge_seconds_count %d" % self._merge_count)
            out += [
                "# HELP inference_merge_boxes_total Detections into and out of the merge.",
                "# TYPE inference_merge_boxes_total counter",
            ]
            for direction in ("in", "out"):
                out.append("inference_merge_boxes_total%s %d" % (_labels((("direction", direction),)), self._boxes[direction]))
            return "\n".join(out) + "\n"
