/**
 * Loads `pipeline/datasets/<name>.yaml`, overlays a profile and `--set key=value` overrides, and checks
 * the result against the schema. The resolved config is what stages read, what the runner hashes for
 * params deps and what the report prints, so there is exactly one place that decides its value.
 *
 * @example
 * ```ts
 * const { config, profile } = await resolveConfig({ dataset: "cifar10", profile: "smoke" });
 * console.log(profile, config.distill.steps);
 * ```
 */
import YAML from "yaml";
import { configSchema, defaults, requiredKeys, type Schema } from "./schema.ts";

/** The resolved config: a plain JSON-able object, typed loosely where stages read it. */
// deno-lint-ignore no-explicit-any
export type Config = Record<string, any>;

export interface Resolved {
  config: Config;
  profile: string;
  /** Why this profile was chosen ("--profile", "default: no GPU backend", …). */
  profileReason: string;
  /** The YAML file the config came from. */
  file: string;
  /** Every profile the file defines. */
  profiles: string[];
}

export interface ResolveOptions {
  dataset: string;
  profile?: string;
  source?: string;
  set?: string[];
  /** Repository root; defaults to the folder above `lib/`. */
  root?: string;
  /** Decides the default profile when none is given; defaults to "cpu". */
  gpu?: boolean;
}

/** A config error: one sentence naming the file, the line and the key. */
export class ConfigError extends Error {}

const repoRoot = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** The folder the dataset configs live in. */
export function datasetsDir(root = repoRoot): string {
  return `${root}/pipeline/datasets`;
}

/** Resolve a dataset's config: base YAML, then the profile overlay, then `--source`, then `--set`. */
export async function resolveConfig(opts: ResolveOptions): Promise<Resolved> {
  const root = opts.root ?? repoRoot;
  const file = `${datasetsDir(root)}/${opts.dataset}.yaml`;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    const known = await listDatasets(root);
    throw new ConfigError(
      `unknown dataset "${opts.dataset}": ${file} does not exist (known: ${known.join(", ") || "none"})`,
    );
  }
  return resolveText(text, file, opts);
}

/** The dataset names that have a config. */
export async function listDatasets(root = repoRoot): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(datasetsDir(root))) {
      if (e.isFile && e.name.endsWith(".yaml")) names.push(e.name.slice(0, -5));
    }
  } catch { /* no folder: no datasets */ }
  return names.sort();
}

/** Same as {@link resolveConfig} on YAML text already read (tests use this). */
export function resolveText(text: string, file: string, opts: ResolveOptions): Resolved {
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const at = e.linePos?.[0];
    throw new ConfigError(`${file}:${at?.line ?? "?"}: invalid YAML: ${e.message.split("\n")[0]}`);
  }
  const raw = doc.toJS() as Config | null;
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(`${file}: expected a mapping of config keys at the top level`);
  }
  const lineOf = (path: (string | number)[]): number | undefined => {
    for (let n = path.length; n > 0; n--) {
      // deno-lint-ignore no-explicit-any
      const node: any = doc.getIn(path.slice(0, n), true);
      const start = node?.range?.[0];
      if (typeof start === "number") return lines.linePos(start).line;
      // a scalar's key is the better anchor when the value node has no range (null values)
      // deno-lint-ignore no-explicit-any
      const parent: any = n > 1 ? doc.getIn(path.slice(0, n - 1), true) : doc.contents;
      // deno-lint-ignore no-explicit-any
      const pair = parent?.items?.find((p: any) => p?.key?.value === path[n - 1]);
      if (pair?.key?.range) return lines.linePos(pair.key.range[0]).line;
    }
    return undefined;
  };
  const fail = (path: (string | number)[], msg: string): never => {
    const line = lineOf(path);
    throw new ConfigError(`${file}${line ? `:${line}` : ""}: ${path.join(".")}: ${msg}`);
  };

  const { profiles = {}, ...base } = raw;
  if (typeof profiles !== "object" || Array.isArray(profiles)) {
    fail(["profiles"], "expected a mapping of profiles");
  }
  validate(base, configSchema, [], fail);
  for (const [name, overlay] of Object.entries(profiles as Record<string, unknown>)) {
    if (!overlay || typeof overlay !== "object" || Array.isArray(overlay)) {
      fail(["profiles", name], "expected a mapping of config keys to override");
    }
    const { extends: parent, ...keys } = overlay as Config;
    if (parent !== undefined && (typeof parent !== "string" || !(parent in profiles) || parent === name)) {
      fail(
        ["profiles", name, "extends"],
        `expected the name of another profile, got ${JSON.stringify(parent)}`,
      );
    }
    validate(keys, configSchema, ["profiles", name], fail);
  }

  const profileNames = Object.keys(profiles);
  let profile = opts.profile;
  let profileReason = "--profile";
  if (!profile) {
    profile = opts.gpu ? "paper" : "cpu";
    profileReason = opts.gpu ? "default: a GPU backend loaded" : "default: no GPU backend";
  }
  if (!(profile in profiles)) {
    throw new ConfigError(
      `${file}: profile "${profile}" is not defined (defined: ${profileNames.join(", ") || "none"})`,
    );
  }
  let config = deepMerge(deepMerge({ ...defaults }, base), profileOverlay(profiles as Config, profile, file));
  const mirror = Deno.env.get("FUNMATCH_DATA_MIRROR");
  if (opts.source) config.source = opts.source;
  else if (mirror) config.source = mirror;
  for (const assignment of opts.set ?? []) config = applySet(config, assignment, file);
  validate(config, configSchema, [], (path, msg) => {
    throw new ConfigError(`${file}: after overrides, ${path.join(".")}: ${msg}`);
  });
  for (const key of ["teacher.train.schedule", "distill.schedule"]) {
    const sch = getKey(config, key) as Config | undefined;
    if (sch && sch.warmup_steps != null && sch.warmup_fraction != null) {
      throw new ConfigError(
        `${file}: ${key} sets both warmup_steps (${sch.warmup_steps}) and warmup_fraction ` +
          `(${sch.warmup_fraction}) in one place (profile ${profile}); set one of them`,
      );
    }
  }
  for (const key of requiredKeys) {
    if (getKey(config, key) === undefined) {
      throw new ConfigError(`${file}: missing required key ${key} (profile ${profile})`);
    }
  }
  return { config, profile, profileReason, file, profiles: profileNames };
}

/** A profile's overlay with its `extends:` chain applied (the parent first). */
function profileOverlay(profiles: Config, name: string, file: string, seen: string[] = []): Config {
  if (seen.includes(name)) {
    throw new ConfigError(`${file}: profiles extend each other in a cycle: ${[...seen, name].join(" → ")}`);
  }
  const { extends: parent, ...keys } = profiles[name] ?? {};
  return parent ? deepMerge(profileOverlay(profiles, parent, file, [...seen, name]), keys) : keys;
}

function validate(
  value: unknown,
  schema: Schema,
  path: (string | number)[],
  fail: (path: (string | number)[], msg: string) => never,
): void {
  if (value === null || value === undefined) {
    if ("nullable" in schema && schema.nullable) return;
    if (value === undefined) return;
    fail(path, `expected ${describe(schema)}, got null`);
  }
  switch (schema.type) {
    case "string":
    case "number":
    case "integer":
    case "boolean": {
      const kind = typeof value;
      const ok = schema.type === "integer" ? Number.isInteger(value) : kind === schema.type;
      if (!ok) fail(path, `expected ${describe(schema)}, got ${JSON.stringify(value)}`);
      if (schema.oneOf && !schema.oneOf.includes(value)) {
        fail(path, `expected one of ${schema.oneOf.join(", ")}, got ${JSON.stringify(value)}`);
      }
      if (schema.range && ((value as number) < schema.range[0] || (value as number) > schema.range[1])) {
        fail(
          path,
          `expected a number from ${schema.range[0]} to ${schema.range[1]}, got ${JSON.stringify(value)}`,
        );
      }
      return;
    }
    case "list":
      if (!Array.isArray(value)) fail(path, `expected a list, got ${JSON.stringify(value)}`);
      (value as unknown[]).forEach((v, i) => validate(v, schema.items, [...path, i], fail));
      return;
    case "map":
      if (typeof value !== "object" || Array.isArray(value)) fail(path, "expected a mapping");
      for (const [k, v] of Object.entries(value as object)) validate(v, schema.values, [...path, k], fail);
      return;
    case "object":
      if (typeof value !== "object" || Array.isArray(value)) fail(path, "expected a mapping");
      for (const [k, v] of Object.entries(value as object)) {
        const sub = schema.fields[k];
        if (!sub) {
          const known = Object.keys(schema.fields).join(", ");
          fail([...path, k], `unknown key (expected one of: ${known})`);
        }
        validate(v, sub, [...path, k], fail);
      }
  }
}

function describe(s: Schema): string {
  if (s.type === "list") return `a list of ${describe(s.items)}`;
  if (s.type === "object" || s.type === "map") return "a mapping";
  return s.type === "integer" ? "an integer" : `a ${s.type}`;
}

function isPlainObject(v: unknown): v is Config {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Overlay `over` onto `base`: mappings merge key by key, everything else (lists too) replaces. */
export function deepMerge(base: Config, over: Config): Config {
  const out: Config = structuredClone(base);
  for (const [k, v] of Object.entries(over ?? {})) {
    for (const alt of ALTERNATIVES[k] ?? []) if (!(alt in over)) delete out[alt];
    // another `kind` (of schedule) is a new block, not an edit of the old one: its keys do not carry over
    const newKind = isPlainObject(v) && isPlainObject(out[k]) && "kind" in v && v.kind !== out[k].kind;
    out[k] = isPlainObject(v) && isPlainObject(out[k]) && !newKind
      ? deepMerge(out[k], v)
      : structuredClone(v);
  }
  return out;
}

/**
 * Keys that say the same thing two ways: a layer (profile, `--set`) that sets one clears the others below it,
 * so a profile's `warmup_fraction: 0.1` is not silently beaten by the base's `warmup_steps: 1500`.
 */
const ALTERNATIVES: Record<string, string[]> = {
  warmup_steps: ["warmup_fraction"],
  warmup_fraction: ["warmup_steps"],
};

/** Read a dotted key (`distill.lr`); `undefined` when absent. */
export function getKey(config: Config, key: string): unknown {
  let cur: unknown = config;
  for (const part of key.split(".")) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

function applySet(config: Config, assignment: string, file: string): Config {
  const eq = assignment.indexOf("=");
  if (eq <= 0) throw new ConfigError(`--set ${assignment}: expected key=value (e.g. distill.steps=100)`);
  const key = assignment.slice(0, eq);
  let value: unknown;
  try {
    value = YAML.parse(assignment.slice(eq + 1));
  } catch {
    throw new ConfigError(`--set ${assignment}: the value is not valid YAML`);
  }
  const overlay: Config = {};
  let cur = overlay;
  const parts = key.split(".");
  parts.slice(0, -1).forEach((p) => cur = cur[p] = {});
  cur[parts[parts.length - 1]] = value;
  validate(overlay, configSchema, [], (path, msg) => {
    throw new ConfigError(`--set ${assignment}: ${path.join(".")}: ${msg} (schema of ${file})`);
  });
  return deepMerge(config, overlay);
}
