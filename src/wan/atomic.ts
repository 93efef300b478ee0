/** A file replaced whole (written beside it, then renamed): a crash leaves the old or the new, never half. */
import { renameSync, writeFileSync } from "node:fs";

export function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
