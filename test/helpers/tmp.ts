import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A scratch directory removed by `cleanup()`. */
export function scratch(prefix = "pilox-test-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    path: (...p: string[]) => join(dir, ...p),
    write(name: string, content: string, mode = 0o600): string {
      const f = join(dir, name);
      writeFileSync(f, content);
      chmodSync(f, mode);
      return f;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const SECRET_A = "bus-secret-a-0123456789abcdef0123456789";
export const SECRET_B = "bus-secret-b-0123456789abcdef0123456789";
