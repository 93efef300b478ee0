/**
 * Where a WAN consumer keeps its delivery memory on the embedded bus (on Redis it is a hash):
 * one JSON file, replaced whole by a rename so a crash leaves the old or the new, never half.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeAtomic } from "./atomic.ts";
import type { Logger } from "../log/index.ts";

/** The file's JSON; undefined when there is none, or when it cannot be read (logged: the consumer starts without). */
export function readMemoryFile(file: string | undefined, what: string, log: Logger): unknown {
  if (!file || !existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as unknown;
  } catch (err) {
    log.error(`cannot read the ${what}; starting without it`, { file, error: (err as Error).message });
    return undefined;
  }
}

export function writeMemoryFile(file: string, value: unknown): void {
  writeAtomic(file, JSON.stringify(value));
}
