/** Process entry point (the bin script, the bundle and the single executable start here). */
import { run } from "./main.ts";

// No top-level await: the single executable runs this as CommonJS.
void run(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
}).then((code) => {
  process.exitCode = code;
  // serve has closed everything; other commands may hold sockets a library keeps: leave now.
  setTimeout(() => process.exit(code), 50).unref();
});
