/** `check-config`: validate and print the effective merged configuration, like `nginx -t`. */
import { keyWarnings, loadConfig, redactedToml, resolveSecrets } from "../../config/index.ts";
import { EXIT, loadOptions, parse, type Io } from "../args.ts";

export async function checkConfig(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { quiet: { type: "boolean", short: "q" } });
  const loaded = loadConfig(loadOptions(values));
  const secrets = resolveSecrets(loaded, false);
  const c = loaded.config;
  if (!values.quiet) {
    io.stdout(`# files: ${loaded.files.length ? loaded.files.join(", ") : "(none: embedded defaults)"}\n`);
    io.stdout(redactedToml(c) + "\n");
  }
  if (c.bus.keys.length === 0) io.stderr(`note: no [[bus.keys]]: the embedded bus uses a key generated in ${c.node.state_dir}\n`);
  const durable = c.bus.channels.filter((ch) => ch.durable).map((ch) => ch.name);
  if (durable.length && c.bus.backend === "embedded") {
    io.stderr(`warning: durable channels (${durable.join(", ")}) on the embedded bus survive no restart; configure bus.redis.url\n`);
  }
  if (durable.length && c.bus.backend === "redis") {
    io.stderr(`note: durable channels need Redis with appendonly yes; GET /readyz warns when the server persists nothing\n`);
  }
  if (c.registry.enabled) {
    for (const p of c.registry.peers.filter((p) => p.prefixes.length === 0)) {
      io.stderr(`note: registry.peers ${p.url} has no prefixes: its signed deletes are honoured for every handle, this registry's own too; list the prefixes it owns\n`);
    }
  }
  for (const w of keyWarnings(secrets)) io.stderr(`warning: ${w}\n`);
  io.stderr("configuration OK\n");
  return EXIT.ok;
}
