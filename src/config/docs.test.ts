/** docs/configuration.md documents every key of the schema, in the section of its table. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ConfigSchema } from "./schema.ts";

type Schema = { type: string; entries?: Record<string, Schema>; wrapped?: Schema; item?: Schema; pipe?: Schema[]; requirement?: unknown };

/** [min, max] of an integer key (valibot minValue/maxValue in its pipe), if it has both. */
function bounds(s: Schema): [number, number] | undefined {
  let x: Schema | undefined = s;
  for (let i = 0; x && i < 5; i++) {
    const mn = x.pipe?.find((a) => a.type === "min_value");
    const mx = x.pipe?.find((a) => a.type === "max_value");
    if (mn && mx) return [mn.requirement as number, mx.requirement as number];
    x = x.wrapped;
  }
  return undefined;
}

/** The object schema inside optional/pipe/array wrappers, if any, and whether it was an array. */
function objectOf(s: Schema): { entries: Record<string, Schema>; array: boolean } | undefined {
  let x: Schema | undefined = s;
  let array = false;
  for (let i = 0; x && i < 10; i++) {
    if (x.entries) return { entries: x.entries, array };
    if (x.type === "array") array = true;
    // An object schema sits behind a plain-object check in its pipe (json/object.ts).
    x = x.wrapped ?? x.item ?? x.pipe?.find((p) => p.entries) ?? x.pipe?.[0];
  }
  return undefined;
}

function tables(entries: Record<string, Schema>, prefix: string, out: Map<string, string[]>, ranges: [string, string, number, number][] = []): void {
  for (const [k, s] of Object.entries(entries)) {
    const path = prefix ? `${prefix}.${k}` : k;
    const o = objectOf(s);
    if (o) {
      const name = o.array ? `[[${path}]]` : `[${path}]`;
      out.set(name, []);
      tables(o.entries, path, out, ranges);
    } else {
      const table = out.has(`[${prefix}]`) ? `[${prefix}]` : `[[${prefix}]]`;
      out.get(table)?.push(k);
      const b = bounds(s);
      if (b) ranges.push([table, k, b[0], b[1]]);
    }
  }
}

describe("docs/configuration.md", () => {
  it("has a section for every table and a row for every key in it", () => {
    const doc = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");
    const sections = new Map<string, string>();
    const parts = doc.split(/^#{2,3} /m).slice(1);
    for (const p of parts) {
      const m = /^`(\[\[?[a-z0-9_.]+\]\]?)`/.exec(p);
      if (m) sections.set(m[1]!, p);
    }
    const t = new Map<string, string[]>();
    const ranges: [string, string, number, number][] = [];
    tables(objectOf(ConfigSchema as unknown as Schema)!.entries, "", t, ranges);
    const missing: string[] = [];
    for (const [table, keys] of t) {
      const text = sections.get(table);
      if (!text) {
        missing.push(`section ${table}`);
        continue;
      }
      for (const k of keys) if (!text.includes(`\`${k}\``)) missing.push(`${table} ${k}`);
    }
    // Every bounded key states its range ("1–300", thousands separators allowed) in its row.
    for (const [table, k, mn, mx] of ranges) {
      const row = sections.get(table)?.split("\n").find((l) => l.startsWith("|") && l.includes(`\`${k}\``)) ?? "";
      if (!row.replaceAll(",", "").includes(`${mn}–${mx}`)) missing.push(`${table} ${k}: range ${mn}–${mx}`);
    }
    assert.deepEqual(missing, []);
  });
});
