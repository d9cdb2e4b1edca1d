"""The TensorRT engine mounted at ENGINE_PATH and its build record at ENGINE_PATH + ".json" (stdlib only).

The engine is built on the device by the host's build step (never baked into the image) and
mounted read-only with its record, {"model": name, "sha256": the ONNX's SHA-256, "key": the engine
key, "builtAt": ..., ...}. Loading it checks that it belongs to its model:
  - a stand-in engine (the stand-in trtexec's: a first line JFSTANDIN-TRT-ENGINE/1, then a JSON
    header) names the SHA-256 of the ONNX it was built from: it must be the record's;
  - any other file must deserialize with TensorRT's Python module (on a Jetson's real base) and is
    bound to its model by the record alone, as a real engine names no model.
No engine at all is no error (the service runs degraded, as without a GPU); an engine that cannot
be read or loaded, a missing or malformed record, or a record of another model is one.
"""

import json
import os
import re
import threading

STAND_IN_MAGIC = b"JFSTANDIN-TRT-ENGINE/1\n"
MAX_HEADER = 1024 * 1024
MAX_RECORD = 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class EngineError(Exception):
    pass


def _signature(path):
    """What changes when a file is replaced or rewritten; None when it is absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_record(path):
    record_path = path + ".json"
    try:
        with open(record_path, "rb") as f:
            data = f.read(MAX_RECORD + 1)
    except FileNotFoundError:
        raise EngineError("no build record at %s for the TensorRT engine at %s" % (record_path, path))
    except OSError as e:
        raise EngineError("build record %s is not readable: %s" % (record_path, e.strerror))
    try:
        record = json.loads(data) if len(data) <= MAX_RECORD else None
    except ValueError as e:
        raise EngineError("build record %s: not JSON (%s)" % (record_path, e))
    if not isinstance(record, dict):
        raise EngineError("build record %s: expected a JSON object of at most %d bytes" % (record_path, MAX_RECORD))
    for key, what in (("model", "the model's name"), ("key", "the engine key")):
        if not isinstance(record.get(key), str) or not record[key]:
            raise EngineError('build record %s: "%s": expected %s, a non-empty string' % (record_path, key, what))
    if not isinstance(record.get("sha256"), str) or not SHA256.match(record["sha256"]):
        raise EngineError('build record %s: "sha256": expected the model\'s SHA-256, 64 lower-case hex digits' % record_path)
    return record


def _stand_in_header(f, path):
    line = f.readline(MAX_HEADER + 1)
    try:
        header = json.loads(line) if line.endswith(b"\n") else None
    except ValueError as e:
        raise EngineError("TensorRT engine at %s: malformed stand-in engine header (%s)" % (path, e))
    if not isinstance(header, dict) or not isinstance(header.get("onnxSha256"), str) or not SHA256.match(header["onnxSha256"]):
        raise EngineError('TensorRT engine at %s: malformed stand-in engine header (expected a JSON line with "onnxSha256")' % path)
    return header


def _deserialize(data, path):
    """A real engine, with TensorRT's Python module (on a Jetson's L4T TensorRT base)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineError(
            "TensorRT engine at %s: not an engine this service can load (no %s header, and no TensorRT Python module to deserialize it)"
            % (path, STAND_IN_MAGIC.decode().strip())
        )
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(data)
    if engine is None:
        raise EngineError("TensorRT engine at %s: TensorRT %s could not deserialize it" % (path, trt.__version__))
    return trt.__version__, engine


def _read_engine(path):
    """The engine's facts: {"standIn", "tensorrt", "precision", "onnxSha256" (stand-ins only), "trt" (real ones only)}."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(STAND_IN_MAGIC))
            if magic == STAND_IN_MAGIC:
                header = _stand_in_header(f, path)
                return {
                    "standIn": header.get("standIn") is True,
                    "tensorrt": header.get("tensorrt"),
                    "precision": header.get("precision"),
                    "onnxSha256": header["onnxSha256"],
                }
            data = magic + f.read()
    except OSError as e:
        raise EngineError("TensorRT engine at %s is not readable: %s" % (path, e.strerror))
    version, engine = _deserialize(data, path)
    return {"standIn": False, "tensorrt": version, "precision": None, "trt": engine}


def load(path):
    """The engine's state: {"engine": its /health fields, "model": the record's {name, sha256} or None, "error": text or None}."""
    if not os.path.isfile(path):
        return {"engine": {"path": path, "present": False}, "model": None, "error": None}
    engine = {"path": path, "present": True, "readOnly": bool(os.statvfs(path).f_flag & os.ST_RDONLY), "loaded": False}
    state = {"engine": engine, "model": None, "error": None}
    record = facts = None
    errors = []
    try:
        facts = _read_engine(path)
    except EngineError as e:
        errors.append(str(e))
    try:  # also when the engine failed, so /health names the record's model
        record = _read_record(path)
    except EngineError as e:
        errors.append(str(e))
    if record is not None:
        state["model"] = {"name": record["model"], "sha256": record["sha256"]}
    if facts is not None and record is not None and facts.get("onnxSha256", record["sha256"]) != record["sha256"]:
        errors.append(
            "TensorRT engine at %s was built from the ONNX with SHA-256 %s, not from model %s (SHA-256 %s in %s.json)"
            % (path, facts["onnxSha256"], record["model"], record["sha256"], path)
        )
    if errors:
        state["error"] = errors[0]
        return state
    if facts.get("precision") is None:  # a real engine does not say; the build's arguments do
        flags = [a[2:] for a in record.get("args") or [] if a in ("--fp16", "--int8", "--best")]
        facts["precision"] = "+".join(flags) or "fp32"
    state["trt"] = facts.get("trt")
    engine.update(
        loaded=True,
        key=record["key"],
        precision=facts["precision"],
        tensorrt=facts["tensorrt"],
        standIn=facts["standIn"],
        builtAt=record.get("builtAt"),
    )
    return state


class Engine:
    """The engine at `path`, loaded at start and again whenever the engine or its record changes."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._signature = self._current_signature()
        self._state = load(path)

    def _current_signature(self):
        return (_signature(self.path), _signature(self.path + ".json"))

    def state(self):
        with self._lock:
            signature = self._current_signature()
            if signature != self._signature:
                self._signature, self._state = signature, load(self.path)
            return self._state
