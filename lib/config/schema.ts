/**
 * The shape of a dataset config (`pipeline/datasets/<name>.yaml`), written once as data so that the
 * validator, the docs and the error messages agree. A recipe change is a config change; a typo in a key
 * must be an error with its line, never a silently ignored setting.
 */

/** A schema node: a scalar type, a list of one type, a record with free keys, or an object with known keys. */
export type Schema =
  | {
    type: "string" | "number" | "integer" | "boolean";
    nullable?: boolean;
    oneOf?: readonly unknown[];
    /** Inclusive bounds of a number. */
    range?: readonly [number, number];
  }
  | { type: "list"; items: Schema; nullable?: boolean }
  | { type: "map"; values: Schema }
  | { type: "object"; fields: Record<string, Schema>; nullable?: boolean };

const str: Schema = { type: "string" };
const optStr: Schema = { type: "string", nullable: true };
const num: Schema = { type: "number" };
const int: Schema = { type: "integer" };
const bool: Schema = { type: "boolean" };
/** An accuracy as a fraction, as metrics.json writes it (0.9092, not 90.92). */
const fraction: Schema = { type: "number", range: [0, 1] };

const optimizer: Schema = {
  type: "object",
  fields: {
    name: { type: "string", oneOf: ["adam", "sgd"] },
    lr: num,
    momentum: num,
    nesterov: bool,
    weight_decay: num,
    clip_norm: { type: "number", nullable: true },
  },
};

const schedule: Schema = {
  type: "object",
  fields: {
    kind: { type: "string", oneOf: ["warmup_cosine", "piecewise", "constant"] },
    warmup_steps: int,
    warmup_fraction: num,
    boundaries: { type: "list", items: int },
    values: { type: "list", items: num },
  },
};

const training: Record<string, Schema> = {
  preprocess: str,
  optimizer,
  schedule,
  batch_size: int,
  steps: int,
  eval_every: int,
  checkpoint_every: int,
};

const split: Schema = {
  type: "object",
  // pattern/shards: a folder per split; tfds: a TensorFlow Datasets split with optional slicing ("train[:90%]"),
  // used when the source is a TFDS dataset folder (it has dataset_info.json)
  fields: { pattern: str, shards: { type: "list", items: str }, tfds: str },
};

/** The whole dataset config after the profile overlay. */
export const configSchema: Schema = {
  type: "object",
  fields: {
    name: str,
    description: str,
    source: str,
    num_classes: int,
    classes: { type: "list", items: str, nullable: true },
    seed: int,
    backend: { type: "string", oneOf: ["auto", "tensorflow", "wasm", "cpu"] },
    threads: int,
    native: { type: "string", oneOf: ["auto", "off"] },
    data: {
      type: "object",
      fields: {
        keys: { type: "object", fields: { image: str, label: str } },
        splits: { type: "object", fields: { train: split, validation: split, test: split } },
        take: { type: "map", values: { type: "integer", nullable: true } },
        workers: int,
        prefetch: int,
        // decoded pixels each input worker keeps for later epochs (MiB; 0 = decode every time; default 256)
        cache_mb: int,
      },
    },
    teacher: {
      type: "object",
      fields: {
        arch: str,
        image_size: int,
        pretrained: optStr,
        init: optStr,
        train: { type: "object", fields: training },
      },
    },
    freeze: {
      type: "object",
      fields: { consistency_images: int, crop: str },
    },
    student: { type: "object", fields: { arch: str, image_size: int } },
    distill: {
      type: "object",
      fields: {
        ...training,
        modes: {
          type: "list",
          items: { type: "string", oneOf: ["function_matching", "consistent", "fixed_teacher", "labels"] },
        },
        temperature: num,
        teacher_runtime: { type: "string", oneOf: ["auto", "onnx", "tfjs"] },
      },
    },
    eval: {
      type: "object",
      fields: { preprocess: str, batch_size: int, latency_repeats: int },
    },
    published: {
      type: "object",
      nullable: true,
      fields: {
        source: str,
        teacher_top1: fraction,
        teacher_arch: str,
        students: {
          type: "list",
          items: { type: "object", fields: { top1: fraction, epochs: int, arch: str } },
        },
        note: str,
      },
    },
  },
};

/** Values of top-level keys a dataset config may leave out (the resolved config, and so the lock, has them). */
export const defaults = { backend: "auto", threads: 1, native: "auto" } as const;

/** Keys every resolved config must have (dotted paths); the rest may be absent. */
export const requiredKeys = [
  "name",
  "source",
  "num_classes",
  "seed",
  "data.keys.image",
  "data.keys.label",
  "data.splits.train",
  "data.splits.validation",
  "data.splits.test",
  "teacher.arch",
  "teacher.image_size",
  "student.arch",
  "student.image_size",
  "distill.modes",
  "distill.steps",
  "distill.batch_size",
  "distill.preprocess",
  "distill.temperature",
  "eval.preprocess",
];
