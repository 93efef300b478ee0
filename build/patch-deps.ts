/**
 * Fixes in dependencies that upstream has not released, applied to node_modules in place
 * (idempotent; each checks the text it replaces, so a new upstream release that changed it
 * fails loudly here instead of shipping unpatched). Run by the build before bundling and by the
 * test command before the suites, so what ships and what is tested are the same code.
 *
 * postgres 3.4.9 (porsager/postgres#1154, #1208; fix proposed in #1209, unreleased): a small
 * write is flushed on setImmediate; when the server goes away before it runs, `closed()` has set
 * `socket = null` and the flush throws from the timer: an uncaught TypeError that kills the
 * process (seen here: PostgreSQL stopped with `-m immediate` under a registry write load).
 * Teardown also cancelled the timer without forgetting it, so that connection never flushed
 * again. The patch settles the write as CONNECTION_CLOSED instead (the query's caller sees a
 * catchable error) and forgets the timer on teardown.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MARK = "/* pilox-mesh: patched nextWrite (porsager/postgres#1208) */";

export function patchPostgresConnection(src: string): string {
  if (src.includes(MARK)) return src;
  const write = "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)";
  const teardown = "    clearImmediate(nextWriteTimer)\n";
  if (!src.includes(write) || src.split(teardown).length !== 3) throw new Error("postgres' connection.js is not the one this patch was written for (3.4.9): check porsager/postgres#1208 and update build/patch-deps.ts");
  return src
    .replace(
      write,
      `  function nextWrite(fn) {\n    ${MARK}\n    if (!socket) {\n      nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options, socket))\n      return false\n    }\n    const x = socket.write(chunk, fn)`,
    )
    .replaceAll(teardown, "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n");
}

/** Patches the installed copies under `root`/node_modules; the files changed. */
export function patchDeps(root: string): string[] {
  const changed: string[] = [];
  for (const rel of ["node_modules/postgres/src/connection.js", "node_modules/postgres/cjs/src/connection.js"]) {
    const file = join(root, rel);
    if (!existsSync(file)) continue;
    const before = readFileSync(file, "utf8");
    const after = patchPostgresConnection(before);
    if (after !== before) {
      writeFileSync(file, after);
      changed.push(rel);
    }
  }
  return changed;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  for (const f of patchDeps(root)) process.stdout.write(`patched ${f}\n`);
}
