// The test ONNX models (test/support/onnx.ts), decoded back with a protobuf reader of its own:
// the ModelProto's fields by table, exact sizes across the varints' length steps, the same bytes
// for the same version and other bytes for another, and a malformed file no reader takes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  malformedOnnx,
  ONNX_DIMS,
  ONNX_INPUT,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  ONNX_OUTPUT,
  ONNX_PRODUCER,
  onnxModel,
  sha256Hex,
} from "../../support/onnx.ts";

type Value = number | Buffer;
type Fields = Map<number, Value[]>;

/** A protobuf message's fields by number (varints and length-delimited only, as ONNX's here). */
function decode(buf: Buffer): Fields {
  const fields: Fields = new Map();
  let i = 0;
  const varint = () => {
    let value = 0;
    for (let scale = 1; ; scale *= 128) {
      const b = buf[i++];
      if (b === undefined) throw new Error(`truncated varint at byte ${i - 1}`);
      value += (b & 0x7f) * scale;
      if (!(b & 0x80)) return value;
    }
  };
  while (i < buf.length) {
    const at = i;
    const key = varint();
    const [field, wire] = [Math.floor(key / 8), key % 8];
    let value: Value;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const length = varint();
      if (i + length > buf.length) throw new Error(`field ${field} at byte ${at}: ${length} bytes past the end`);
      value = buf.subarray(i, i + length);
      i += length;
    } else throw new Error(`wire type ${wire} at byte ${at}`);
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}

const EMPTY: Fields = new Map();
const all = (f: Fields, n: number) => f.get(n) ?? [];
const int = (f: Fields, n: number) => {
  const [v] = all(f, n);
  assert.equal(typeof v, "number", `field ${n} is a varint`);
  return v as number;
};
const bytes = (f: Fields, n: number) => {
  const [v] = all(f, n);
  assert.ok(Buffer.isBuffer(v), `field ${n} is length-delimited`);
  return v;
};
const str = (f: Fields, n: number) => bytes(f, n).toString("utf8");
const messages = (f: Fields, n: number) => all(f, n).map((v) => decode(v as Buffer));

/** A ValueInfoProto -> [name, dims]. */
function valueInfo(f: Fields): [string, (number | string)[]] {
  const [type] = messages(f, 2);
  const [tensor] = messages(type ?? EMPTY, 1);
  assert.ok(tensor, "a tensor type");
  assert.equal(int(tensor, 1), 1, "elem_type FLOAT");
  const [shape] = messages(tensor, 2);
  const dims = messages(shape ?? EMPTY, 1).map((d) => (d.has(1) ? int(d, 1) : str(d, 2)));
  return [str(f, 1), dims];
}

describe("onnxModel", () => {
  it("is a ModelProto: IR version, producer, opset, and a graph of one Identity node", () => {
    const model = decode(onnxModel({ bytes: 2048, version: "v1" }));
    assert.deepEqual([...model.keys()], [1, 2, 3, 6, 7, 8]);
    assert.equal(int(model, 1), ONNX_IR_VERSION);
    assert.equal(str(model, 2), ONNX_PRODUCER);
    assert.equal(str(model, 3), "v1");
    assert.match(str(model, 6), /^jetson-fleet test model v1 *$/);
    const [opset] = messages(model, 8);
    assert.deepEqual([str(opset ?? EMPTY, 1), int(opset ?? EMPTY, 2)], ["", ONNX_OPSET]);

    const [graph = EMPTY] = messages(model, 7);
    assert.deepEqual([...graph.keys()], [1, 2, 5, 11, 12]);
    assert.equal(str(graph, 2), "jetson-fleet-test-v1");
    const [node = EMPTY] = messages(graph, 1);
    assert.deepEqual([str(node, 1), str(node, 2), str(node, 3), str(node, 4)], [ONNX_INPUT, ONNX_OUTPUT, "identity", "Identity"]);
    assert.deepEqual(messages(graph, 11).map(valueInfo), [[ONNX_INPUT, [...ONNX_DIMS]]]);
    assert.deepEqual(messages(graph, 12).map(valueInfo), [[ONNX_OUTPUT, [...ONNX_DIMS]]]);

    const [tensor = EMPTY] = messages(graph, 5);
    const raw = bytes(tensor, 9);
    assert.deepEqual([int(tensor, 1), int(tensor, 2), str(tensor, 8)], [raw.length, 2, "padding"]);
  });

  it("takes its input's and output's names and dimensions", () => {
    const [graph = EMPTY] = messages(decode(onnxModel({ version: "v1", input: "input", output: "boxes", dims: [1, "n", 4] })), 7);
    assert.deepEqual(messages(graph, 11).map(valueInfo), [["input", [1, "n", 4]]]);
    assert.deepEqual(messages(graph, 12).map(valueInfo), [["boxes", [1, "n", 4]]]);
    assert.deepEqual([str(messages(graph, 1)[0] ?? EMPTY, 1), str(messages(graph, 1)[0] ?? EMPTY, 2)], ["input", "boxes"]);
  });

  describe("has exactly the size asked for, across the length varints' steps", () => {
    // 4096 by default; the others around the steps of a varint (128, 16 Ki, 2 Mi) in the padding,
    // the tensor, the graph and the whole model, and the sizes the tests use.
    const sizes = [undefined, 223, 224, 16_384, 2 ** 21 - 1, 2 ** 21, 2 ** 21 + 40, 1024 ** 2, 4 * 1024 ** 2];
    for (const size of sizes) {
      it(`${size ?? "default"} bytes`, () => {
        const buf = onnxModel({ bytes: size, version: "v1" });
        assert.equal(buf.length, size ?? 4096);
        assert.equal(int(decode(buf), 1), ONNX_IR_VERSION);
      });
    }
    it("every size around the first two steps (128 and 16 KiB), for labels of two lengths", () => {
      for (const version of ["v", "release-2026.12"]) {
        let smallest = 0;
        assert.throws(
          () => onnxModel({ bytes: 0, version }),
          (e: Error) => (smallest = Number(/at least (\d+) /.exec(e.message)?.[1])) > 200,
        );
        for (const [from, to] of [
          [smallest, smallest + 400],
          [16_000, 16_800],
        ] as const) {
          for (let size = from; size <= to; size++) assert.equal(onnxModel({ bytes: size, version }).length, size);
        }
      }
    });
  });

  it("refuses a size below the model without padding, naming the smallest", () => {
    assert.throws(() => onnxModel({ bytes: 100, version: "v1" }), {
      name: "RangeError",
      message: "onnxModel: bytes 100: expected a whole number of at least 223 (the model without padding)",
    });
    assert.throws(() => onnxModel({ bytes: 4096.5, version: "v1" }), { name: "RangeError" });
  });

  describe("gives the same bytes for the same version and other bytes for another", () => {
    const cases: { name: string; a: Parameters<typeof onnxModel>[0]; b: Parameters<typeof onnxModel>[0]; same: boolean }[] = [
      { name: "the same version and size", a: { bytes: 65_536, version: "v1" }, b: { bytes: 65_536, version: "v1" }, same: true },
      { name: "another version, the same size", a: { bytes: 65_536, version: "v1" }, b: { bytes: 65_536, version: "v2" }, same: false },
      { name: "the same version, another size", a: { bytes: 65_536, version: "v1" }, b: { bytes: 65_537, version: "v1" }, same: false },
      { name: "another input name", a: { version: "v1" }, b: { version: "v1", input: "input" }, same: false },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const [a, b] = [onnxModel(c.a), onnxModel(c.b)];
        assert.equal(sha256Hex(a) === sha256Hex(b), c.same);
        assert.equal(a.equals(b), c.same);
      });
    }
  });

  it("pads with bytes of its version that look like weights, not a repeated pattern", () => {
    const pad = (version: string) => {
      const [graph = EMPTY] = messages(decode(onnxModel({ bytes: 65_536, version })), 7);
      return bytes(messages(graph, 5)[0] ?? EMPTY, 9);
    };
    const [a, b] = [pad("v1"), pad("v2")];
    const differing = a.reduce((n, x, i) => n + (x === b[i] ? 0 : 1), 0);
    assert.ok(differing > a.length * 0.9, `${differing} of ${a.length} bytes differ`);
    assert.ok(new Set(a).size === 256, "every byte value occurs");
    assert.notDeepEqual(a.subarray(0, 32), a.subarray(32, 64));
  });
});

describe("malformedOnnx", () => {
  const cases = [
    { bytes: undefined, length: 1024 },
    { bytes: 5, length: 5 },
    { bytes: 4096, length: 4096 },
  ];
  for (const c of cases) {
    it(`${c.bytes ?? "default"} bytes: text whose first byte is no protobuf key`, () => {
      const buf = malformedOnnx(c.bytes);
      assert.equal(buf.length, c.length);
      assert.ok("not an ONNX model\n".startsWith(buf.toString("utf8", 0, Math.min(buf.length, 18))));
      assert.throws(() => decode(buf), { message: "wire type 6 at byte 0" });
    });
  }
});

describe("sha256Hex", () => {
  const cases = [
    { input: "", hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
    { input: "abc", hex: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
    { input: Buffer.from([0, 255]), hex: "06eb7d6a69ee19e5fbdf749018d3d2abfa04bcbd1365db312eb86dc7169389b8" },
  ];
  for (const c of cases) it(JSON.stringify(c.input), () => assert.equal(sha256Hex(c.input), c.hex));
});
