/** Flag parsing shared by the commands: node:util parseArgs, strict, with usage errors. */
import { parseArgs, type ParseArgsConfig } from "node:util";

export class UsageError extends Error {
  override name = "UsageError";
}

/** Exit codes (docs/operator-guide.md): sysexits where one fits. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unavailable: 69, config: 78 } as const;

export const GLOBAL_OPTIONS = {
  config: { type: "string" },
  "state-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export function parse<O extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The global --config and --state-dir as configuration load options. */
export function loadOptions(values: { config?: string | undefined; "state-dir"?: string | undefined }): { path?: string; stateDir?: string } {
  const o: { path?: string; stateDir?: string } = {};
  if (values.config) o.path = values.config;
  if (values["state-dir"]) o.stateDir = values["state-dir"];
  return o;
}

/** A whole-number flag within [min, max], or undefined when absent. */
export function intFlag(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${flag} takes a whole number from ${min} to ${max}`);
  return Number(v);
}

export function required(v: string | undefined, flag: string): string {
  if (v === undefined || v === "") throw new UsageError(`${flag} is required`);
  return v;
}

export interface Io {
  stdin: NodeJS.ReadableStream;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export async function readStdin(io: Io, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of io.stdin) {
    const b = typeof c === "string" ? Buffer.from(c) : (c as Buffer);
    n += b.length;
    if (n > maxBytes) throw new UsageError(`standard input exceeds ${maxBytes} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8");
}
