/**
 * What the schema says about its keys, read from the schema itself (the one source of keys):
 * which are paths (`v.metadata({ path: true })` on the key's schema), so that every path is
 * resolved the same way, by one function, however many keys there are; and which need a restart
 * (`v.metadata({ restart: true })`, on a key or a whole table), so that a reload keeps their
 * running values and names each one it could not apply.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { originOf, type Table } from "./merge.ts";

type Node = { type: string; entries?: Record<string, Node>; wrapped?: Node; item?: Node; pipe?: Node[]; kind?: string; metadata?: Record<string, unknown> };

export interface KeyInfo {
  /** Dotted, with `[]` for each array of tables: `bus.keys[].secret_file`. */
  key: string;
  path: boolean;
  /** A reload cannot change it: it keeps its running value until a restart. */
  restart: boolean;
}

/** The object schema inside optional/pipe wrappers, the array item when it is an array, and the metadata met on the way. */
function unwrap(s: Node): { node: Node; meta: Record<string, unknown>; array: boolean } {
  let x: Node = s;
  const meta: Record<string, unknown> = {};
  let array = false;
  for (let i = 0; i < 12; i++) {
    for (const p of x.pipe ?? []) if (p.kind === "metadata") Object.assign(meta, p.metadata);
    if (x.entries) break;
    if (x.type === "array" && x.item) {
      array = true;
      x = x.item;
      continue;
    }
    const next = x.wrapped ?? x.pipe?.find((p) => p.entries || p.type === "array" || p.wrapped) ?? x.pipe?.[0];
    if (!next || next === x) break;
    x = next;
  }
  return { node: x, meta, array };
}

/** Every leaf key of `schema` (a valibot object schema), with what its metadata says. */
export function schemaKeys(schema: unknown, prefix = "", inherited: Record<string, unknown> = {}): KeyInfo[] {
  const { node } = unwrap(schema as Node);
  const out: KeyInfo[] = [];
  for (const [k, s] of Object.entries(node.entries ?? {})) {
    const u = unwrap(s);
    const meta = { ...inherited, ...u.meta };
    const key = `${prefix}${k}${u.array && u.node.entries ? "[]" : ""}`;
    if (u.node.entries) out.push(...schemaKeys(s, `${key}.`, meta));
    else out.push({ key, path: meta["path"] === true, restart: meta["restart"] === true });
  }
  return out;
}

function getKey(o: unknown, key: string): unknown {
  let x = o;
  for (const part of key.split(".")) {
    if (x === null || typeof x !== "object" || !Object.hasOwn(x, part)) return undefined;
    x = (x as Table)[part];
  }
  return x;
}

function setKey(o: Table, key: string, value: unknown): void {
  const parts = key.split(".");
  let x: Table = o;
  for (const part of parts.slice(0, -1)) {
    const next = x[part];
    if (next === null || typeof next !== "object") return;
    // Copied on the way down: `next` may be shared with the running configuration.
    x = x[part] = { ...(next as Table) };
  }
  x[parts[parts.length - 1]!] = value;
}

const restartKeys = (keys: readonly KeyInfo[]) => keys.filter((k) => k.restart && !k.key.includes("[]"));

/** The restart-only keys whose value differs between `running` and `next`, by name. */
export function restartOnlyDiff<T extends object>(keys: readonly KeyInfo[], running: T, next: T): string[] {
  return restartKeys(keys)
    .filter((k) => JSON.stringify(getKey(running, k.key)) !== JSON.stringify(getKey(next, k.key)))
    .map((k) => k.key);
}

/** `next` with every restart-only key at its running value (what a reload applies). */
export function pinRestartOnly<T extends object>(keys: readonly KeyInfo[], running: T, next: T): T {
  const out = { ...next } as unknown as Table;
  for (const key of restartOnlyDiff(keys, running, next)) setKey(out, key, getKey(running, key));
  return out as unknown as T;
}

/**
 * Resolves every relative path key of `cfg` in place, against the directory of the file that
 * set it (a conf.d drop-in's own directory; the main file's for the main file), or `baseDir`.
 */
export function resolvePathKeys(cfg: Table, keys: readonly KeyInfo[], origin: Map<string, string>, baseDir: string): void {
  for (const k of keys) {
    if (!k.path) continue;
    visit(cfg, k.key.split("."), "", (holder, name, dotted) => {
      const v = holder[name];
      if (typeof v !== "string" || v === "" || isAbsolute(v)) return;
      const file = originOf(origin, dotted);
      holder[name] = resolve(file ? dirname(file) : baseDir, v);
    });
  }
}

function visit(node: unknown, parts: string[], dotted: string, leaf: (holder: Table, name: string, dotted: string) => void): void {
  if (node === null || typeof node !== "object") return;
  const [head, ...rest] = parts;
  if (head === undefined) return;
  const array = head.endsWith("[]");
  const name = array ? head.slice(0, -2) : head;
  const here = dotted ? `${dotted}.${name}` : name;
  const holder = node as Table;
  if (!Object.hasOwn(holder, name)) return;
  if (rest.length === 0) return leaf(holder, name, here);
  const child = holder[name];
  if (array) {
    if (Array.isArray(child)) child.forEach((item, i) => visit(item, rest, `${here}.${i}`, leaf));
  } else visit(child, rest, here, leaf);
}
