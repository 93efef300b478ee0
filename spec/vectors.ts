/** The Pilox v1 spec vectors, copied into the repository (spec/ORIGIN.md says from where). */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const SPEC_DIR = dirname(fileURLToPath(import.meta.url));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const vectors: any = JSON.parse(readFileSync(join(SPEC_DIR, "vectors-v1.json"), "utf8"));
