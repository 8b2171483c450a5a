/**
 * A small builder for ONNX graphs: named values, initializers, nodes with typed attributes, then one
 * ModelProto out.
 *
 * Why it exists: the exporter (onnx.ts) should read like the forward pass it mirrors — one line per op —
 * without protobuf plumbing, name bookkeeping or int64/float attribute confusion in the way. The builder
 * also catches the mistakes ORT would only report at session creation (a node reading a value nobody
 * produced, a duplicate name), naming the value.
 */
import { type AttributeProtoObj, AttrType, DataType, encodeModel, type NodeProtoObj } from "./proto.ts";
import type { DimObj, TensorProtoObj, ValueInfoProtoObj } from "./proto.ts";

/** An attribute value: plain integers and integer lists become INT/INTS; use {@link f} for floats. */
export type Attr = number | number[] | string | { float: number } | { floats: number[] };

/** Mark a number as a FLOAT attribute (plain numbers become INT). */
export function f(x: number): { float: number } {
  return { float: x };
}

/** A dimension: a fixed size, or a symbolic name such as "n". */
export type Dim = number | string;

function toDims(dims: Dim[]): DimObj[] {
  return dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d }));
}

function encodeAttr(name: string, v: Attr): AttributeProtoObj {
  if (typeof v === "string") return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    for (const x of v) {
      if (!Number.isInteger(x)) throw new Error(`attribute ${name}: INTS expected integers, got ${x}`);
    }
    return { name, type: AttrType.INTS, ints: v };
  }
  if (typeof v === "number") {
    if (!Number.isInteger(v)) {
      throw new Error(`attribute ${name}: INT expected an integer, got ${v} (use f())`);
    }
    return { name, type: AttrType.INT, i: v };
  }
  if ("float" in v) return { name, type: AttrType.FLOAT, f: v.float };
  return { name, type: AttrType.FLOATS, floats: v.floats };
}

/** Builds one ONNX graph; call {@link GraphBuilder.toBytes} at the end. */
export class GraphBuilder {
  private nodes: NodeProtoObj[] = [];
  private inits: TensorProtoObj[] = [];
  private inputs: ValueInfoProtoObj[] = [];
  private outputs: ValueInfoProtoObj[] = [];
  private defined = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh value name with the given prefix (prefix_1, prefix_2, …). */
  fresh(prefix: string): string {
    let n: string;
    do n = `${prefix}_${++this.counter}`; while (this.defined.has(n));
    return n;
  }

  private define(name: string): void {
    if (this.defined.has(name)) throw new Error(`ONNX graph ${this.name}: value "${name}" defined twice`);
    this.defined.add(name);
  }

  /** Declare a float32 graph input. */
  input(name: string, dims: Dim[]): string {
    this.define(name);
    this.inputs.push({
      name,
      type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: toDims(dims) } } },
    });
    return name;
  }

  /** Declare an existing value as a float32 graph output. */
  output(name: string, dims: Dim[]): void {
    if (!this.defined.has(name)) {
      throw new Error(`ONNX graph ${this.name}: output "${name}" is never produced`);
    }
    this.outputs.push({
      name,
      type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: toDims(dims) } } },
    });
  }

  /** A float32 constant (stored as little-endian raw_data). */
  floatInit(name: string, dims: number[], data: Float32Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new Error(`ONNX initializer ${name}: ${data.length} values for dims [${dims}] (expected ${n})`);
    }
    this.define(name);
    const copy = new Float32Array(data); // own, aligned, little-endian on every platform we run on
    this.inits.push({ name, dims, data_type: DataType.FLOAT, raw_data: new Uint8Array(copy.buffer) });
    return name;
  }

  /** An int64 constant, e.g. a Reshape target (-1 and 0 allowed). */
  int64Init(name: string, values: number[]): string {
    this.define(name);
    const b = new BigInt64Array(values.map((v) => BigInt(v)));
    this.inits.push({
      name,
      dims: [values.length],
      data_type: DataType.INT64,
      raw_data: new Uint8Array(b.buffer),
    });
    return name;
  }

  /**
   * Append a node. Every input must already exist ("" marks an omitted optional input). Returns the first
   * output's name; `outputs` defaults to one fresh name derived from the op type.
   */
  node(op: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs?: string[] | string): string {
    for (const i of inputs) {
      if (i !== "" && !this.defined.has(i)) {
        throw new Error(
          `ONNX graph ${this.name}: ${op} reads "${i}", which no earlier node or initializer defines`,
        );
      }
    }
    const outs = outputs === undefined
      ? [this.fresh(op.toLowerCase())]
      : typeof outputs === "string"
      ? [outputs]
      : outputs;
    for (const o of outs) this.define(o);
    this.nodes.push({
      op_type: op,
      input: inputs,
      output: outs,
      name: `${op}_${this.nodes.length}`,
      attribute: Object.entries(attrs).map(([k, v]) => encodeAttr(k, v)),
    });
    return outs[0];
  }

  /** Number of nodes per op type (for tests and reports). */
  opHistogram(): Record<string, number> {
    const h: Record<string, number> = {};
    for (const n of this.nodes) h[n.op_type] = (h[n.op_type] ?? 0) + 1;
    return h;
  }

  /** Serialise as a ModelProto. */
  toBytes(opts: {
    irVersion: number;
    opset: number;
    producer?: string;
    docString?: string;
    metadata?: Record<string, string>;
  }): Uint8Array {
    if (this.outputs.length === 0) throw new Error(`ONNX graph ${this.name}: no outputs declared`);
    return encodeModel({
      ir_version: opts.irVersion,
      opset_import: [{ domain: "", version: opts.opset }],
      producer_name: opts.producer ?? "funmatch",
      producer_version: "1",
      doc_string: opts.docString,
      metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.inits,
        input: this.inputs,
        output: this.outputs,
      },
    });
  }
}
