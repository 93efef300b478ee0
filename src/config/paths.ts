/** Where things live when the config does not say: systemd's directories, then FHS or XDG. */
import { join, resolve } from "node:path";

export const DEFAULT_CONFIG_PATH = "/etc/pilox-mesh/pilox-mesh.toml";

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  if (env["STATE_DIRECTORY"]) return env["STATE_DIRECTORY"].split(":")[0]!;
  if (isRoot()) return "/var/lib/pilox-mesh";
  if (env["XDG_STATE_HOME"]) return join(env["XDG_STATE_HOME"], "pilox-mesh");
  return resolve(".pilox-mesh");
}

export function defaultRuntimeDir(env: NodeJS.ProcessEnv, stateDir: string): string {
  if (env["RUNTIME_DIRECTORY"]) return env["RUNTIME_DIRECTORY"].split(":")[0]!;
  if (isRoot()) return "/run/pilox-mesh";
  if (env["XDG_RUNTIME_DIR"]) return join(env["XDG_RUNTIME_DIR"], "pilox-mesh");
  return join(stateDir, "run");
}
