import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The shared spec vectors: `../shared/spec/vectors-v1.json` from the project root. */
export const SPEC_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "shared", "spec");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const vectors: any = JSON.parse(readFileSync(join(SPEC_DIR, "vectors-v1.json"), "utf8"));
