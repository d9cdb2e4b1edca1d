// ONNX models for tests: small, valid ModelProto files made here (the machine can download no
// model), of an exact size and with bytes of their own per version label, and a malformed file.
// A model is one Identity node from the graph's input to its output and an unused UINT8
// initializer whose raw_data pads the file to the size asked for, with bytes that look like
// weights (they do not compress). The stand-in trtexec (images/base/trtexec-stand-in/) reads them
// as TensorRT's ONNX parser would: ir_version, opset, producer, the graph's inputs.
import { createHash } from "node:crypto";

/** The ONNX IR version the models declare (ONNX 1.10+; opset 17 needs IR 8). */
export const ONNX_IR_VERSION = 8;
/** The default-domain opset the models import. */
export const ONNX_OPSET = 17;
/** The models' `producer_name`; their `producer_version` is the version label. */
export const ONNX_PRODUCER = "jetson-fleet-test";
/** The default input: a YOLO-style image batch with a symbolic batch dimension. */
export const ONNX_INPUT = "images";
export const ONNX_OUTPUT = "output0";
export const ONNX_DIMS: readonly (number | string)[] = ["batch", 3, 640, 640];

export interface OnnxModelOptions {
  /**
   * The file's exact size in bytes; at least the size of the model without padding (about 200
   * bytes, more with long names: `onnxModel` names it when asked for less).
   * @default 4096
   */
  readonly bytes?: number;
  /**
   * A label the model's bytes derive from: its `producer_version`, the graph's name and the
   * padding. The same label and options give the same bytes; another label, other bytes.
   * @example "v1"
   */
  readonly version: string;
  /** @default ONNX_INPUT */
  readonly input?: string;
  /** @default ONNX_OUTPUT */
  readonly output?: string;
  /** The input's (and output's) dimensions: numbers are fixed, strings symbolic. @default ONNX_DIMS */
  readonly dims?: readonly (number | string)[];
}

// --- protobuf wire format: varints and length-delimited fields ------------------------------------

function varint(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`protobuf varint: ${value} is not a non-negative safe integer`);
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

const varintLength = (value: number) => varint(value).length;
const intField = (field: number, value: number) => Buffer.concat([varint(field * 8), varint(value)]);
const bytesField = (field: number, value: Buffer | string) => {
  const data = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  return Buffer.concat([varint(field * 8 + 2), varint(data.length), data]);
};
/** A length-delimited field's size for a payload of `length` bytes. */
const bytesFieldLength = (field: number, length: number) => varintLength(field * 8 + 2) + varintLength(length) + length;

// --- ONNX messages (onnx.proto field numbers) ------------------------------------------------------

const UINT8 = 2;
const FLOAT = 1;

/** ValueInfoProto: name (1), type (2) = TypeProto { tensor_type (1) = { elem_type (1), shape (2) } }. */
function valueInfo(name: string, dims: readonly (number | string)[]): Buffer {
  const shape = Buffer.concat(dims.map((d) => bytesField(1, typeof d === "number" ? intField(1, d) : bytesField(2, d))));
  const tensorType = Buffer.concat([intField(1, FLOAT), bytesField(2, shape)]);
  return Buffer.concat([bytesField(1, name), bytesField(2, bytesField(1, tensorType))]);
}

/** Weight-like bytes from a seed: xorshift128 seeded by the seed's SHA-256. */
function padding(length: number, seed: string): Buffer {
  const digest = createHash("sha256").update(seed).digest();
  let [a, b, c, d] = [0, 4, 8, 12].map((i) => digest.readUInt32LE(i) || 1) as [number, number, number, number];
  const out = Buffer.alloc(Math.ceil(length / 4) * 4);
  for (let i = 0; i < out.length; i += 4) {
    let t = a ^ (a << 11);
    [a, b, c] = [b, c, d];
    d = d ^ (d >>> 19) ^ (t ^ (t >>> 8));
    t = d >>> 0;
    out.writeUInt32LE(t, i);
  }
  return out.subarray(0, length);
}

/**
 * A valid ONNX ModelProto of exactly `bytes` bytes: ir_version, producer, opset_import, and a
 * graph named after the version with one Identity node (input -> output), the input and output
 * ValueInfo, and the padding initializer.
 * @example onnxModel({ bytes: 1024 ** 2, version: "v1" }) // a 1 MiB model
 */
export function onnxModel(options: OnnxModelOptions): Buffer {
  const { bytes = 4096, version, input = ONNX_INPUT, output = ONNX_OUTPUT, dims = ONNX_DIMS } = options;
  const graphName = `${ONNX_PRODUCER}-${version}`;
  const initializer = "padding";
  const node = Buffer.concat([bytesField(1, input), bytesField(2, output), bytesField(3, "identity"), bytesField(4, "Identity")]);
  // The graph and model without the initializer, in field-number order around where it goes.
  const graphHead = Buffer.concat([bytesField(1, node), bytesField(2, graphName)]);
  const graphTail = Buffer.concat([bytesField(11, valueInfo(input, dims)), bytesField(12, valueInfo(output, dims))]);
  // The model's doc_string takes `extra` spaces where the lengths' varints growing by a byte would
  // jump over the size asked for.
  const modelHead = (extra: number) =>
    Buffer.concat([
      intField(1, ONNX_IR_VERSION),
      bytesField(2, ONNX_PRODUCER),
      bytesField(3, version),
      bytesField(6, `jetson-fleet test model ${version}${" ".repeat(extra)}`),
    ]);
  const modelTail = bytesField(8, Buffer.concat([bytesField(1, ""), intField(2, ONNX_OPSET)]));
  // TensorProto: dims (1) = [n], data_type (2), name (8), raw_data (9) of n bytes.
  const tensorHead = (n: number) => Buffer.concat([intField(1, n), intField(2, UINT8), bytesField(8, initializer)]);
  const tensorRest = tensorHead(0).length - 1; // all but the varint n
  const size = (n: number, extra: number) => {
    const tensor = tensorRest + varintLength(n) + bytesFieldLength(9, n);
    const graph = graphHead.length + bytesFieldLength(5, tensor) + graphTail.length;
    return modelHead(extra).length + bytesFieldLength(7, graph) + modelTail.length;
  };
  const smallest = size(0, 0);
  if (!Number.isSafeInteger(bytes) || bytes < smallest) {
    throw new RangeError(`onnxModel: bytes ${bytes}: expected a whole number of at least ${smallest} (the model without padding)`);
  }
  for (let n = bytes - smallest; n >= 0; n--) {
    for (let extra = 0; extra <= 8; extra++) {
      if (size(n, extra) !== bytes) continue;
      const tensor = Buffer.concat([tensorHead(n), bytesField(9, padding(n, `jetson-fleet-test-onnx/${version}`))]);
      const graph = Buffer.concat([graphHead, bytesField(5, tensor), graphTail]);
      return Buffer.concat([modelHead(extra), bytesField(7, graph), modelTail]);
    }
  }
  throw new Error(`onnxModel: found no padding for ${bytes} bytes`); // unreachable: a few spaces fill any gap
}

/**
 * A file that is no ONNX model: text whose first byte, read as a protobuf key, has the invalid wire
 * type 6, padded with text to `bytes` bytes (a model file swapped for an HTML error page or a
 * note, say). TensorRT's parser and the stand-in refuse it.
 * @example malformedOnnx(1024) // "not an ONNX model\n" then 1006 bytes of "x"
 */
export function malformedOnnx(bytes = 1024): Buffer {
  const text = Buffer.from("not an ONNX model\n");
  if (!Number.isSafeInteger(bytes) || bytes < 1)
    throw new RangeError(`malformedOnnx: bytes ${bytes}: expected a whole number of at least 1`);
  return Buffer.concat([text, Buffer.alloc(Math.max(0, bytes - text.length), "x")]).subarray(0, bytes);
}

/** The SHA-256 of `buf` as 64 lower-case hex digits, as the stack config's `sha256` writes it. */
export function sha256Hex(buf: Buffer | string): string {
  return createHash("sha256").update(buf).digest("hex");
}
