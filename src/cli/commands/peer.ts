/**
 * `peer add|remove|list`: federation peers without hand-editing TOML, the way SSH pins a host
 * key. `add` fetches the peer's signed discovery document, shows its key fingerprint and asks
 * (or checks --pin), writes one drop-in `conf.d/peer-<host>.toml` (0640, atomically), checks the
 * whole configuration as check-config does, and asks the running appliance to reload. A key that
 * changed since an earlier `add` is refused loudly, as SSH refuses a changed host key.
 */
import { chownSync, existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline/promises";
import { dirname, join } from "node:path";
import { configPathFrom, ConfigError, formatProblem, loadConfig, resolveSecrets } from "../../config/index.ts";
import { checkDocument, DISCOVERY_PATH } from "../../discovery/index.ts";
import { thumbprint } from "../../identity/index.ts";
import { EXIT, intFlag, loadOptions, parse, UsageError, type Io } from "../args.ts";
import { apiRequest, ApiUnreachableError } from "../client.ts";
import { applianceSocket } from "../socket.ts";
import { fetchDocument } from "./discover.ts";

export const PEER_USAGE = `usage:
  pilox-mesh peer add URL [--pin FINGERPRINT] [--accept CH]… [--forward CH]… [--transport relay|wan] [--no-reload]
  pilox-mesh peer remove ORIGIN [--no-reload]
  pilox-mesh peer list [--json]
add fetches URL's signed discovery document (/.well-known/pilox-mesh.json), checks its signature,
prints the key's fingerprint (its RFC 7638 thumbprint, the kid) and asks to confirm it (checked out
of band), or checks it against --pin (FINGERPRINT: the kid or the 64-hex public key). It then
writes conf.d/peer-<host>.toml beside the configuration (mode 0640), runs the checks of
check-config, and reloads the running appliance. A peer whose key changed since it was added is
refused: remove it first if the change is expected (a rotation publishes the next key beforehand
and needs nothing here). remove deletes a peer added this way and reloads (a removal). list shows
every configured peer, its keys' fingerprints and the file that configures it.
  exit 0 done, 1 refused (signature, pin, changed key, configuration), 2 usage, 69 peer unreachable`;

const HEX64 = /^[0-9a-fA-F]{64}$/;

export async function peer(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "add") return add(rest, io);
  if (sub === "remove") return remove(rest, io);
  if (sub === "list") return list(rest, io);
  throw new UsageError(sub ? `unknown peer command "${sub}"\n${PEER_USAGE}` : PEER_USAGE);
}

/** conf.d/peer-<host>.toml for an origin (port kept: two instances on one host are two peers). */
function dropInFor(mainPath: string, origin: string): string {
  const u = new URL(origin);
  return join(dirname(mainPath), "conf.d", `peer-${u.host.replace(/[^A-Za-z0-9.-]/g, "-")}.toml`);
}

const tomlString = (s: string) => JSON.stringify(s);
const tomlList = (xs: string[]) => `[${xs.map(tomlString).join(", ")}]`;

/** Writes `text` to `file` atomically, 0640, with the group of its directory (the service's). */
function writeDropIn(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o640 });
  try {
    const dir = statSync(dirname(file));
    if (process.getuid?.() === 0) chownSync(tmp, 0, dir.gid);
  } catch {
    /* not ours to change: the mode still keeps others out */
  }
  renameSync(tmp, file);
}

/** check-config's checks on the configuration as it now is on disk: the problems, or none. */
function checkAll(values: { config?: string | undefined; "state-dir"?: string | undefined }): string | undefined {
  try {
    resolveSecrets(loadConfig(loadOptions(values)), false);
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map(formatProblem).join("\n");
    throw err;
  }
}

async function reloadRunning(values: { socket?: string | undefined; config?: string | undefined; "state-dir"?: string | undefined }, io: Io, allowRemovals: boolean): Promise<number> {
  try {
    const { status, json } = await apiRequest({ socketPath: applianceSocket(values, io, "peer") }, "POST", "/v1/admin/reload", allowRemovals ? { allowRemovals: true } : undefined);
    if (status === 200) {
      io.stderr("the running appliance reloaded\n");
      return EXIT.ok;
    }
    io.stderr(`the running appliance refused the reload: ${json?.error?.message ?? status}\n`);
    return EXIT.config;
  } catch (err) {
    if (!(err instanceof ApiUnreachableError)) throw err;
    io.stderr("no running appliance answered: it takes the peer when it starts\n");
    return EXIT.ok;
  }
}

async function confirm(io: Io, question: string): Promise<boolean> {
  const stdin = io.stdin as NodeJS.ReadStream;
  if (!stdin.isTTY) return false;
  const rl = createInterface({ input: stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function add(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    { pin: { type: "string" }, accept: { type: "string", multiple: true }, forward: { type: "string", multiple: true }, transport: { type: "string" }, "no-reload": { type: "boolean" }, socket: { type: "string" }, timeout: { type: "string" } },
    true,
  );
  if (positionals.length !== 1) throw new UsageError(PEER_USAGE);
  let url: URL;
  try {
    url = new URL(positionals[0]!);
  } catch {
    throw new UsageError(`not a URL: ${positionals[0]}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new UsageError("peer add takes an http(s) URL");
  const transport = values.transport ?? "relay";
  if (transport !== "relay" && transport !== "wan") throw new UsageError("--transport is relay or wan");
  const docUrl = new URL(DISCOVERY_PATH, url);
  const got = await fetchDocument(docUrl, intFlag(values.timeout, "--timeout", 1, 120) ?? 10);
  if (!got.ok) {
    io.stderr(`pilox-mesh peer add: ${got.error}\n`);
    return got.code;
  }
  const check = checkDocument(got.doc);
  if (!check.ok) {
    io.stderr(`pilox-mesh peer add: ${check.reason}${check.unsigned ? " (a stock Pilox instance signs no document: add it by hand, with the key you checked out of band)" : ""}\n`);
    return EXIT.failure;
  }
  const origin = new URL(String(got.doc["instanceOrigin"] ?? url.origin)).origin;
  const next = got.doc["instanceKeys"]?.next?.publicKeyHex;
  // The current key, and the next one it published (signed by the current one): a rotation then needs no step here.
  const keys = [check.publicKeyHex, ...(typeof next === "string" && HEX64.test(next) && next.toLowerCase() !== check.publicKeyHex ? [next.toLowerCase()] : [])];
  const fingerprint = check.kid;
  const main = configPathFrom(loadOptions(values)).path;
  const file = dropInFor(main, origin);

  // A peer added before with another key: refused loudly, like SSH's changed host key.
  if (existsSync(file)) {
    const before = readFileSync(file, "utf8");
    const known = [...before.matchAll(/"([0-9a-f]{64})"/g)].map((m) => m[1]!);
    if (known.length && !known.includes(check.publicKeyHex)) {
      io.stderr(
        `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n` +
          `@    WARNING: ${origin}'s KEY HAS CHANGED!\n` +
          `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n` +
          `It now signs with fingerprint ${fingerprint}; ${file} pins ${known.map((k) => thumbprint(k)).join(", ")}.\n` +
          `Someone may be impersonating it, or it replaced its key without announcing the next one.\n` +
          `Check the new fingerprint out of band; if it is right: pilox-mesh peer remove ${origin}, then add it again.\n`,
      );
      return EXIT.failure;
    }
  }
  io.stderr(`${origin} signs its discovery document with key fingerprint ${fingerprint}\n  (public key ${check.publicKeyHex})\n`);
  if (values.pin !== undefined) {
    const pin = values.pin.trim();
    if (pin !== fingerprint && pin.toLowerCase() !== check.publicKeyHex) {
      io.stderr(`pilox-mesh peer add: refused: --pin ${pin} does not match that key\n`);
      return EXIT.failure;
    }
  } else if (!(await confirm(io, "Is this the fingerprint you checked out of band? [y/N] "))) {
    io.stderr("pilox-mesh peer add: not confirmed: check the fingerprint out of band, then give it with --pin=FINGERPRINT (the = form: a fingerprint may start with '-')\n");
    return EXIT.failure;
  }
  const lines = [
    `# Added by pilox-mesh peer add on ${new Date().toISOString()} from ${docUrl}`,
    `# Key fingerprint ${fingerprint}. Remove with: pilox-mesh peer remove ${origin}`,
    "[[federation.peers]]",
    `origin = ${tomlString(origin)}`,
    ...(url.origin !== origin || (url.pathname !== "/" && url.pathname !== DISCOVERY_PATH) ? [`url = ${tomlString(url.origin)}`] : []),
    `public_keys = ${tomlList(keys)}`,
    `accept_channels = ${tomlList(values.accept ?? [])}`,
    `forward_channels = ${tomlList(values.forward ?? [])}`,
    `transport = ${tomlString(transport)}`,
  ];
  const previous = existsSync(file) ? readFileSync(file, "utf8") : undefined;
  writeDropIn(file, lines.join("\n") + "\n");
  const problems = checkAll(values);
  if (problems) {
    // The configuration as it was: the drop-in goes back (or away).
    if (previous === undefined) unlinkSync(file);
    else writeDropIn(file, previous);
    io.stderr(`pilox-mesh peer add: the configuration with this peer does not pass check-config; nothing changed:\n${problems.replace(/^/gm, "  ")}\n`);
    return EXIT.failure;
  }
  io.stdout(`${file}\n`);
  return values["no-reload"] ? EXIT.ok : reloadRunning(values, io, false);
}

async function remove(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { "no-reload": { type: "boolean" }, socket: { type: "string" } }, true);
  if (positionals.length !== 1) throw new UsageError(PEER_USAGE);
  let origin: string;
  try {
    origin = new URL(positionals[0]!).origin;
  } catch {
    throw new UsageError(`not an origin: ${positionals[0]}`);
  }
  const main = configPathFrom(loadOptions(values)).path;
  const file = dropInFor(main, origin);
  if (!existsSync(file)) {
    // Configured elsewhere (by hand): say where, rather than edit an operator's own file.
    let where: string | undefined;
    try {
      const loaded = loadConfig(loadOptions(values));
      const i = loaded.config.federation.peers.findIndex((p) => new URL(p.origin).origin === origin);
      if (i >= 0) where = loaded.origin.get(`federation.peers.${i}`) ?? loaded.origin.get("federation.peers");
    } catch {
      /* the configuration does not load: the message below stands */
    }
    io.stderr(`pilox-mesh peer remove: ${origin} was not added by peer add (no ${file})${where ? `; it is configured in ${where}: remove it there, then pilox-mesh reload --allow-removals` : ""}\n`);
    return EXIT.failure;
  }
  const previous = readFileSync(file, "utf8");
  unlinkSync(file);
  const problems = checkAll(values);
  if (problems) {
    writeDropIn(file, previous);
    io.stderr(`pilox-mesh peer remove: the configuration without this peer does not pass check-config; nothing changed:\n${problems.replace(/^/gm, "  ")}\n`);
    return EXIT.failure;
  }
  io.stdout(`removed ${file}\n`);
  return values["no-reload"] ? EXIT.ok : reloadRunning(values, io, true);
}

async function list(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  const loaded = loadConfig(loadOptions(values));
  const rows = loaded.config.federation.peers.map((p, i) => ({
    origin: p.origin,
    transport: p.transport,
    fingerprints: p.public_keys.map((k) => thumbprint(k.toLowerCase())),
    acceptChannels: p.accept_channels,
    forwardChannels: p.forward_channels,
    file: loaded.origin.get(`federation.peers.${i}`) ?? loaded.origin.get("federation.peers") ?? null,
  }));
  if (values.json) io.stdout(JSON.stringify(rows, null, 2) + "\n");
  else if (rows.length === 0) io.stdout("no federation peers configured\n");
  else for (const r of rows) io.stdout(`${r.origin}  ${r.transport}  ${r.fingerprints.join(",")}  accept ${r.acceptChannels.join(",") || "-"}  forward ${r.forwardChannels.join(",") || "-"}  (${r.file ?? "?"})\n`);
  return EXIT.ok;
}
