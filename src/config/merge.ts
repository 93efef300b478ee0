/**
 * Merging the main file with conf.d drop-ins, in lexical order: tables merge key by key, a
 * later scalar or plain array replaces an earlier one, arrays of tables append. Each leaf
 * remembers the file it came from, so errors can name it.
 */
export type Table = Record<string, unknown>;

export function isTable(x: unknown): x is Table {
  return x !== null && typeof x === "object" && !Array.isArray(x) && !(x instanceof Date);
}

function isArrayOfTables(x: unknown): x is Table[] {
  return Array.isArray(x) && x.length > 0 && x.every(isTable);
}

/** Merges `src` into `dst` in place; `origin` maps dotted key paths to files. */
export function mergeInto(dst: Table, src: Table, file: string, origin: Map<string, string>, prefix = ""): void {
  for (const [k, val] of Object.entries(src)) {
    const path = prefix ? `${prefix}.${k}` : k;
    // Own keys only: a file's "__proto__" or "constructor" must never reach Object.prototype
    // (merging into it polluted every object in the process). Such keys stay plain keys, and
    // the schema refuses them as unknown.
    const cur = Object.hasOwn(dst, k) ? dst[k] : undefined;
    if (isTable(cur) && isTable(val)) {
      mergeInto(cur, val, file, origin, path);
    } else if (isArrayOfTables(cur) && isArrayOfTables(val)) {
      const start = cur.length;
      val.forEach((t, i) => {
        cur.push(t);
        recordOrigins(t, file, origin, `${path}.${start + i}`);
      });
    } else {
      Object.defineProperty(dst, k, { value: val, enumerable: true, writable: true, configurable: true });
      recordOrigins(val, file, origin, path);
    }
  }
}

function recordOrigins(val: unknown, file: string, origin: Map<string, string>, path: string): void {
  origin.set(path, file);
  if (isTable(val)) for (const [k, x] of Object.entries(val)) recordOrigins(x, file, origin, `${path}.${k}`);
  else if (Array.isArray(val)) val.forEach((x, i) => recordOrigins(x, file, origin, `${path}.${i}`));
}

/** The file that set `path`, or the nearest enclosing table's file. */
export function originOf(origin: Map<string, string>, path: string): string | undefined {
  let p = path;
  for (;;) {
    const f = origin.get(p);
    if (f) return f;
    const dot = p.lastIndexOf(".");
    if (dot < 0) return undefined;
    p = p.slice(0, dot);
  }
}
