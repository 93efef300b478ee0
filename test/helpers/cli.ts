/** Runs the real CLI in a child process, as an operator would. */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ENTRY = join(ROOT, "src", "cli", "entry.ts");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The Deno from the `deno` npm package (a devDependency): the source must also run there. */
export const DENO = join(ROOT, "node_modules", ".bin", "deno");

export function cli(
  args: string[],
  opts: { stdin?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; runtime?: "node" | "deno"; script?: string } = {},
): Promise<CliResult> {
  const script = opts.script ?? ENTRY;
  const [cmd, argv] =
    opts.runtime === "deno" ? [DENO, ["run", "--allow-all", "--quiet", script, ...args]] : [process.execPath, ["--import", "tsx", script, ...args]];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, PILOX_MESH_CONFIG: "", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(opts.stdin ?? "");
  });
}
