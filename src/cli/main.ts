/** The pilox-mesh command line: dispatch, error reporting and exit codes. */
import { parseArgs } from "node:util";
import { ConfigError, EX_CONFIG, formatProblem, loadConfig } from "../config/index.ts";
import { VERSION, versionLine } from "../version.ts";
import { completion, manPage } from "./docs.ts";
import { HELP, helpFor } from "./help.ts";
import { EXIT, UsageError, type Io } from "./args.ts";
import { ApiUnreachableError } from "./client.ts";
import { bus } from "./commands/bus.ts";
import { checkConfig } from "./commands/config.ts";
import { serve } from "./commands/serve.ts";
import { discover } from "./commands/discover.ts";
import { keygen, pubkey } from "./commands/keys.ts";
import { manifest, token } from "./commands/federation.ts";
import { audit, peers, reload } from "./commands/peers.ts";
import { peer } from "./commands/peer.ts";
import { status } from "./commands/status.ts";
import { registry } from "./commands/registry.ts";
import { resolve } from "./commands/resolve.ts";
import { wan } from "./commands/wan.ts";

export const USAGE = `pilox-mesh: the mesh layer for AI-agent platforms

usage: pilox-mesh [--config PATH] [--state-dir DIR] COMMAND [options]

commands:
  serve [--listen HOST:PORT]   run the appliance (SIGHUP reloads, SIGTERM drains and stops)
  check-config [--quiet]       validate the configuration and print it, secrets redacted
  status [--json]              what the running appliance is doing: bus, channels, spool, peers
  reload [--allow-removals]    make the running appliance re-read its configuration (as SIGHUP;
                               removing keys, peers or channels needs --allow-removals)
  version                      print version, commit and runtime
  keygen --out PATH            write a new Ed25519 identity seed (0600), print its public key
  pubkey --key-file PATH       print the public key (hex) of a seed file
  discover URL [--public-key HEX] [--allow-unsigned]   fetch and verify a peer's discovery document
  token mint|verify            federation tokens (EdDSA JWT, Pilox-compatible)
  manifest sign|verify         signed peer manifests (Pilox-compatible, with anti-rollback)
  peers [--json]               federation peers of the running appliance: keys, queue, last contact
  peer add|remove|list         add a peer by its signed discovery document (pins its key), remove, list
  audit verify FILE…           check the hash chain of the federation audit log (rotated files oldest first)
  bus seal|verify|publish|subscribe   work with signed bus messages (pilox-mesh bus --help)
  registry sign|verify|verify-catalog|publish|get|delete   registry records (pilox-mesh registry --help)
  resolve HANDLE [--registry URL]…     the verified route to an agent
  wan dlq list|replay ID       the WAN's dead letters: what this site refused, and a retry
  completion bash|zsh|fish     print the shell completion script
  man                          print the man page (roff), as the package installs it

configuration: --config PATH, else $PILOX_MESH_CONFIG, else /etc/pilox-mesh/pilox-mesh.toml,
plus conf.d/*.toml beside it. Exit codes: 0 ok, 1 failure, 2 usage, 69 unavailable, 78 config.
pilox-mesh COMMAND --help describes one command.`;

const COMMANDS: Record<string, (args: string[], io: Io) => Promise<number>> = {
  serve,
  "check-config": checkConfig,
  bus,
  keygen,
  pubkey,
  discover,
  token,
  manifest,
  peers,
  peer,
  audit,
  reload,
  status,
  registry,
  resolve,
  wan,
  version: async (_a, io) => {
    io.stdout(versionLine() + "\n");
    return EXIT.ok;
  },
  completion: async (args, io) => {
    const shell = args.find((a) => !a.startsWith("-"));
    if (shell !== "bash" && shell !== "zsh" && shell !== "fish") throw new UsageError("completion takes bash, zsh or fish");
    io.stdout(completion(shell, cliText()));
    return EXIT.ok;
  },
  man: async (_a, io) => {
    io.stdout(manPage(cliText(), VERSION));
    return EXIT.ok;
  },
};

/** The help text every generated document is made from (one source). */
export function cliText() {
  return { usage: USAGE, help: HELP, commands: Object.keys(COMMANDS) };
}

/** Did the operator ask for JSON logs? (A fatal start error is then a JSON line too.) */
function jsonLogs(args: string[]): boolean {
  try {
    const { values } = parseArgs({ args, options: { config: { type: "string" }, "state-dir": { type: "string" } }, strict: false, allowPositionals: true });
    const o: { path?: string } = {};
    if (typeof values.config === "string") o.path = values.config;
    return loadConfig(o).config.log.format === "json";
  } catch {
    return false;
  }
}

function fatalJson(err: unknown, io: Io): number {
  const code = err instanceof ConfigError ? EX_CONFIG : (err as NodeJS.ErrnoException)?.code === "EADDRINUSE" || (err as NodeJS.ErrnoException)?.code === "EACCES" || /in use by another process/.test((err as Error)?.message ?? "") ? EXIT.unavailable : EXIT.failure;
  const fields = err instanceof ConfigError ? { problems: err.problems.map(formatProblem) } : { error: (err as Error)?.message ?? String(err) };
  io.stderr(JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "cannot start", exit: code, ...fields }) + "\n");
  return code;
}

/** Global flags may come before the command; they are handed to it. */
function splitArgs(argv: string[]): { command?: string; args: string[] } {
  const globals: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    if (a === "--config" || a === "--state-dir") {
      globals.push(a, argv[i + 1] ?? "");
      i += 2;
    } else if (a.startsWith("--config=") || a.startsWith("--state-dir=")) {
      globals.push(a);
      i++;
    } else break;
  }
  const command = argv[i];
  return command === undefined ? { args: globals } : { command, args: [...argv.slice(i + 1), ...globals] };
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { command, args } = splitArgs(argv);
  if (!command || command === "help" || command === "--help" || command === "-h") {
    (command ? io.stdout : io.stderr)(USAGE + "\n");
    return command ? EXIT.ok : EXIT.usage;
  }
  if (command === "--version") return COMMANDS["version"]!(args, io);
  const fn = COMMANDS[command];
  if (!fn) {
    io.stderr(`pilox-mesh: unknown command "${command}"\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (args.includes("--help") || args.includes("-h")) {
    io.stdout((helpFor(command) ?? USAGE) + "\n");
    return EXIT.ok;
  }
  try {
    return await fn(args, io);
  } catch (err) {
    if (command === "serve" && jsonLogs(args)) return fatalJson(err, io);
    if (err instanceof UsageError) {
      io.stderr(`pilox-mesh ${command}: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      io.stderr(`pilox-mesh: configuration error:\n${err.problems.map((p) => "  " + formatProblem(p)).join("\n")}\n`);
      return EX_CONFIG;
    }
    if (err instanceof ApiUnreachableError) {
      io.stderr(`pilox-mesh ${command}: ${err.message}\n`);
      return EXIT.unavailable;
    }
    if ((err as NodeJS.ErrnoException)?.code === "EADDRINUSE" || (err as NodeJS.ErrnoException)?.code === "EACCES" || /in use by another process/.test((err as Error)?.message ?? "")) {
      io.stderr(`pilox-mesh ${command}: cannot listen: ${(err as Error).message}\n`);
      return EXIT.unavailable;
    }
    if ((err as Error)?.name === "SecretFileError") {
      io.stderr(`pilox-mesh ${command}: ${(err as Error).message}\n`);
      return EX_CONFIG;
    }
    io.stderr(`pilox-mesh ${command}: ${(err as Error)?.message ?? String(err)}\n`);
    return EXIT.failure;
  }
}
