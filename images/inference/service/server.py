"""The inference service's HTTP API (stdlib only).

  POST /merge    {"tiles": [{"x": 0, "y": 0, "detections": [{"box": [x1, y1, x2, y2], "score": 0.9, "class": 0}]}],
                  "iou": 0.5}
                 -> {"detections": [{"box": [...], "score": ..., "class": ..., "tile": i, "merged": k}]}
                 Tile-relative boxes are moved to frame coordinates and merged across tile borders by
                 class-wise NMS in libtilemerge.so (native/); "iou" defaults to 0.5.
  GET  /health   200 {"status": "ok"} or 200 {"status": "degraded", "reasons": [...]}: no GPU device
                 (/dev/nvhost-* or /dev/nvidia0) or no TensorRT engine at ENGINE_PATH. Degraded is
                 reported, not fatal: the engine is built on the device and mounted read-only later.
                 With "gpu", "engine" (path, present, readOnly, and once loaded: loaded, key, precision,
                 tensorrt, standIn, builtAt) and "model" (name, sha256: the build record's).
                 503 {"status": "error", "reasons": [...]}: an engine is mounted but does not load or is
                 not its model's (engine.py): the image's HEALTHCHECK fails, so a health-gated deploy
                 refuses it.
  GET  /metrics  Prometheus text.

Environment: PORT (8080), ENGINE_PATH (/models/model.engine; its build record at ENGINE_PATH + ".json"),
TILEMERGE_LIB, APP_VERSION, APP_REVISION.
"""

import glob
import json
import math
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine import Engine
from metrics import Metrics
from tilemerge import TileMerge

MAX_BODY = 8 * 1024 * 1024
MAX_DETECTIONS = 100_000
PATHS = ("/merge", "/health", "/metrics")


class BadRequest(Exception):
    pass


def health(engine):
    """The /health body for an Engine: status "ok", "degraded" (no GPU, no engine) or "error" (an engine that does not load)."""
    gpu = sorted(glob.glob("/dev/nvhost-*")) + [d for d in ("/dev/nvidia0",) if os.path.exists(d)]
    state = engine.state()
    reasons = []
    if not gpu:
        reasons.append("no GPU: neither /dev/nvhost-* nor /dev/nvidia0 is present")
    if not state["engine"]["present"]:
        reasons.append("no TensorRT engine at %s" % engine.path)
    if state["error"]:
        reasons.append(state["error"])
    status = "error" if state["error"] else "degraded" if reasons else "ok"
    body = {"status": status, "reasons": reasons} if reasons else {"status": status}
    body.update(gpu={"devices": gpu})
    if state["model"]:
        body.update(model=state["model"])
    body.update(engine=state["engine"])
    return body


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest("%s: expected a finite number" % where)
    return float(value)


def parse_merge(body):
    """The request body -> ([(x, y, [(x1, y1, x2, y2, score, class), ...]), ...], iou); BadRequest names the key."""
    try:
        req = json.loads(body)
    except ValueError as e:
        raise BadRequest("body: not JSON (%s)" % e)
    if not isinstance(req, dict) or not isinstance(req.get("tiles"), list):
        raise BadRequest('body: expected an object with a "tiles" list')
    iou = _number(req.get("iou", 0.5), "iou")
    if not 0 <= iou <= 1:
        raise BadRequest("iou: expected a number within [0, 1]")
    tiles, total = [], 0
    for i, tile in enumerate(req["tiles"]):
        where = "tiles[%d]" % i
        if not isinstance(tile, dict) or not isinstance(tile.get("detections"), list):
            raise BadRequest('%s: expected an object with "x", "y" and a "detections" list' % where)
        dets = []
        for j, det in enumerate(tile["detections"]):
            w = "%s.detections[%d]" % (where, j)
            if not isinstance(det, dict):
                raise BadRequest('%s: expected an object with "box", "score" and "class"' % w)
            box = det.get("box")
            if not isinstance(box, list) or len(box) != 4:
                raise BadRequest("%s.box: expected [x1, y1, x2, y2]" % w)
            x1, y1, x2, y2 = (_number(v, "%s.box[%d]" % (w, k)) for k, v in enumerate(box))
            if not (x1 < x2 and y1 < y2):
                raise BadRequest("%s.box: expected x1 < x2 and y1 < y2" % w)
            cls = det.get("class")
            if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < 2**31:
                raise BadRequest("%s.class: expected a non-negative integer" % w)
            dets.append((x1, y1, x2, y2, _number(det.get("score"), w + ".score"), cls))
        total += len(dets)
        if total > MAX_DETECTIONS:
            raise BadRequest("tiles: more than %d detections" % MAX_DETECTIONS)
        tiles.append((_number(tile.get("x"), where + ".x"), _number(tile.get("y"), where + ".y"), dets))
    return tiles, iou


class Service:
    def __init__(self):
        self.engine = Engine(os.environ.get("ENGINE_PATH", "/models/model.engine"))
        self.merger = TileMerge()
        self.metrics = Metrics(os.environ.get("APP_VERSION", "unknown"), os.environ.get("APP_REVISION", "unknown"))


class Handler(BaseHTTPRequestHandler):
    server_version = "inference"
    service = None  # set by main()

    def _send(self, code, body, content_type="application/json", headers=()):
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        # Counted before the answer leaves: a client that reads /metrics right after its answer sees it.
        path = self.path.split("?", 1)[0]
        self.service.metrics.request(path if path in PATHS else "other", self.command, code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/health":
            body = health(self.service.engine)
            self._send(503 if body["status"] == "error" else 200, body)
        elif path == "/metrics":
            degraded = health(self.service.engine)["status"] != "ok"
            self._send(200, self.service.metrics.render(degraded).encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/merge":
            self._send(405, {"error": "use POST"}, headers=[("Allow", "POST")])
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path != "/merge":
            if path in PATHS:
                self._send(405, {"error": "use GET"}, headers=[("Allow", "GET")])
            else:
                self._send(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, {"error": "Content-Length required"})
            return
        if length < 0 or length > MAX_BODY:
            self._send(413, {"error": "body larger than %d bytes" % MAX_BODY})
            return
        try:
            tiles, iou = parse_merge(self.rfile.read(length))
        except BadRequest as e:
            self._send(400, {"error": str(e)})
            return
        start = time.perf_counter()
        merged = self.service.merger.merge_tiles(tiles, iou)
        self.service.metrics.merge(time.perf_counter() - start, sum(len(d) for _, _, d in tiles), len(merged))
        self._send(200, {"detections": merged})

    def log_message(self, fmt, *args):
        if self.path not in ("/health", "/metrics"):  # probes and scrapes would drown the log
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    Handler.service = Service()
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True
    # PID 1 in a container gets no default SIGTERM handling: stop serving and exit cleanly.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    h = health(Handler.service.engine)
    engine = h["engine"]
    print(
        "inference %s listening on :%d, library %s, status %s%s%s"
        % (
            os.environ.get("APP_VERSION", "unknown"),
            port,
            Handler.service.merger.path,
            h["status"],
            "".join("; " + r for r in h.get("reasons", [])),
            "; engine %s loaded: model %s, key %s, %s, TensorRT %s%s"
            % (engine["path"], h["model"]["name"], engine["key"], engine["precision"], engine["tensorrt"], " (stand-in)" if engine["standIn"] else "")
            if engine.get("loaded")
            else "",
        ),
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
