/** Reading, merging, validating and completing the configuration. */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import * as v from "valibot";
import { ConfigError, type ConfigProblem } from "./errors.ts";
import { mergeInto, originOf, type Table } from "./merge.ts";
import { resolvePathKeys, schemaKeys } from "./keys.ts";
import { DEFAULT_CONFIG_PATH, defaultRuntimeDir, defaultStateDir } from "./paths.ts";
import { ConfigSchema, type FileConfig } from "./schema.ts";

export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** The effective configuration: the merged files with every default filled in. */
export type Config = FileConfig & {
  node: Required<FileConfig["node"]>;
  instance: FileConfig["instance"] & { origin: string; key_file: string };
  api: FileConfig["api"] & { socket: string };
  bus: FileConfig["bus"] & {
    backend: "embedded" | "redis";
    redis: FileConfig["bus"]["redis"] & { consumer_group: string; consumer_name: string };
  };
};

export interface LoadedConfig {
  config: Config;
  /** Files read, main first then drop-ins in merge order. */
  files: string[];
  /** Where each key came from (dotted path → file), for later error messages. */
  origin: Map<string, string>;
}

export interface LoadOptions {
  /** --config; when absent, PILOX_MESH_CONFIG, then the default path. */
  path?: string;
  /** --state-dir overrides node.state_dir. */
  stateDir?: string;
  /** serve --listen overrides http.listen. */
  listen?: string;
  env?: NodeJS.ProcessEnv;
}

export function configPathFrom(opts: LoadOptions): { path: string; explicit: boolean } {
  const env = opts.env ?? process.env;
  if (opts.path) return { path: resolve(opts.path), explicit: true };
  if (env["PILOX_MESH_CONFIG"]) return { path: resolve(env["PILOX_MESH_CONFIG"]), explicit: true };
  return { path: DEFAULT_CONFIG_PATH, explicit: false };
}

function readToml(file: string): Table {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new ConfigError([{ file, message: "not a regular file" }]);
    if (st.size > MAX_CONFIG_FILE_BYTES) throw new ConfigError([{ file, message: `larger than ${MAX_CONFIG_FILE_BYTES} bytes` }]);
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([{ file, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  try {
    return parseToml(text) as Table;
  } catch (err) {
    if (err instanceof TomlError) {
      // smol-toml's message repeats the location and a code excerpt; keep its first line.
      const first = err.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      const open = unclosedString(text, err.line, err.column);
      if (open) throw new ConfigError([{ file, line: err.line, column: open.column, message: `TOML syntax: the string opened here is not closed: its ${open.quote} has no closing ${open.quote} before the end of the line (a string spanning lines needs ${open.quote.repeat(3)})` }]);
      throw new ConfigError([{ file, line: err.line, column: err.column, message: `TOML syntax: ${first}` }]);
    }
    throw new ConfigError([{ file, message: (err as Error).message }]);
  }
}

/**
 * smol-toml reports a string left open at the end of its line as "control characters are not
 * allowed in strings" (the newline): when the error sits at the end of the line, the opening
 * quote of that string, so the message can say what is wrong and where it starts.
 */
function unclosedString(text: string, line: number, column: number): { column: number; quote: string } | undefined {
  const l = text.split(/\r?\n/)[line - 1];
  if (l === undefined || column - 1 < l.length) return undefined;
  // The last opening quote whose string runs to the end of the line.
  let quote: string | undefined;
  let at = -1;
  for (let i = 0; i < l.length; i++) {
    const ch = l[i]!;
    if (quote === undefined) {
      if (ch === "#") break;
      if (ch === '"' || ch === "'") [quote, at] = [ch, i];
    } else if (ch === "\\" && quote === '"') i++;
    else if (ch === quote) quote = undefined;
  }
  return quote ? { column: at + 1, quote } : undefined;
}

export function dropInsOf(mainPath: string): string[] {
  const dir = join(dirname(mainPath), "conf.d");
  if (!existsSync(dir)) return [];
  if (!statSync(dir).isDirectory()) throw new ConfigError([{ file: dir, message: "conf.d must be a directory of *.toml drop-ins, not a file" }]);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new ConfigError([{ file: dir, message: `cannot read the drop-in directory: ${(err as NodeJS.ErrnoException).code}` }]);
  }
  return names
    .filter((f) => f.endsWith(".toml") && !f.startsWith("."))
    .sort()
    .map((f) => join(dir, f));
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const { path: main, explicit } = configPathFrom(opts);
  const files: string[] = [];
  if (existsSync(main)) files.push(main);
  else if (explicit) throw new ConfigError([{ file: main, message: "configuration file does not exist" }]);
  files.push(...dropInsOf(main));

  const merged: Table = {};
  const origin = new Map<string, string>();
  const problems: ConfigProblem[] = [];
  for (const f of files) {
    try {
      mergeInto(merged, readToml(f), f, origin);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  }
  if (problems.length) throw new ConfigError(problems);

  const r = v.safeParse(ConfigSchema, merged);
  if (!r.success) {
    throw new ConfigError(
      r.issues.map((i) => {
        const key = v.getDotPath(i) ?? "";
        return { file: originOf(origin, key), key: prettyKey(key), message: issueMessage(i) };
      }),
    );
  }
  if (opts.listen) r.output.http.listen = opts.listen;
  // Every path key, relative to the directory of the file that set it (the schema marks them).
  resolvePathKeys(r.output as unknown as Table, PATH_KEYS, origin, files[0] ? dirname(files[0]) : process.cwd());
  const config = complete(r.output, opts, env);
  const semantic = checkSemantics(config, origin);
  if (semantic.length) throw new ConfigError(semantic);
  return { config, files, origin };
}

/** `bus.keys.0.id` reads better as `bus.keys[0].id`. */
function prettyKey(dotted: string): string {
  return dotted.replace(/\.(\d+)(?=\.|$)/g, "[$1]");
}

function issueMessage(i: v.BaseIssue<unknown>): string {
  if (i.expected === "never") return "unknown key (check the spelling; docs/configuration.md lists every key)";
  if (i.kind === "schema" && i.received === "undefined") return `missing (expected ${i.expected})`;
  if (i.kind === "schema") return `expected ${i.expected}, got ${i.received}`;
  return i.message;
}

/** The path keys of the schema, read once. */
const PATH_KEYS = schemaKeys(ConfigSchema).filter((k) => k.path);

/** Defaults that depend on other keys or the environment (paths are already absolute here). */
function complete(c: FileConfig, opts: LoadOptions, env: NodeJS.ProcessEnv): Config {
  const name = c.node.name ?? (hostname().replace(/[^A-Za-z0-9._\-]/g, "-").slice(0, 64) || "pilox-mesh");
  const stateDir = opts.stateDir ? resolve(opts.stateDir) : c.node.state_dir || defaultStateDir(env);
  const runtimeDir = c.node.runtime_dir || defaultRuntimeDir(env, stateDir);
  const redisGiven = c.bus.redis.url !== "" || c.bus.redis.sentinels.length > 0 || c.bus.redis.cluster_nodes.length > 0;
  const backend = c.bus.backend === "auto" ? (redisGiven ? "redis" : "embedded") : c.bus.backend;
  return {
    ...c,
    node: { name, state_dir: stateDir, runtime_dir: runtimeDir },
    instance: {
      ...c.instance,
      // Without a configured origin the listener's own address stands in (fine on a LAN).
      origin: c.instance.origin ? new URL(c.instance.origin).origin : `http://${c.http.listen}`,
      key_file: c.instance.key_file || join(stateDir, "identity.key"),
    },
    api: { ...c.api, socket: c.api.socket === undefined ? join(runtimeDir, "api.sock") : c.api.socket },
    bus: {
      ...c.bus,
      backend,
      redis: {
        ...c.bus.redis,
        consumer_group: c.bus.redis.consumer_group ?? name,
        consumer_name: c.bus.redis.consumer_name ?? name,
      },
    },
  };
}

function checkSemantics(c: Config, origin: Map<string, string>): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const at = (key: string, message: string) => out.push({ file: originOf(origin, key.replace(/\[(\d+)\]/g, ".$1")), key, message });

  // Directories the appliance creates: something else already standing there is a config error.
  const notDir = (key: string, path: string) => {
    for (let p = path; p !== dirname(p); p = dirname(p)) {
      if (!existsSync(p)) continue;
      if (!statSync(p).isDirectory()) at(key, `${p} exists and is not a directory`);
      return;
    }
  };
  notDir("node.state_dir", c.node.state_dir);
  notDir("node.runtime_dir", c.node.runtime_dir);
  if (c.api.socket) notDir("api.socket", dirname(c.api.socket));

  const d = c.discovery;
  if (Boolean(d.a2a_agent_card_url) !== Boolean(d.a2a_json_rpc_url)) at(d.a2a_agent_card_url ? "discovery.a2a_json_rpc_url" : "discovery.a2a_agent_card_url", "set both discovery.a2a_agent_card_url and discovery.a2a_json_rpc_url (the A2A endpoint this site advertises), or neither");
  if (d.a2a_public_json_rpc_url && !d.a2a_json_rpc_url) at("discovery.a2a_public_json_rpc_url", "needs discovery.a2a_json_rpc_url and discovery.a2a_agent_card_url");

  const ids = new Set<string>();
  c.bus.keys.forEach((k, i) => {
    if (ids.has(k.id)) at(`bus.keys[${i}].id`, `duplicate key id "${k.id}"`);
    ids.add(k.id);
  });
  const primaries = c.bus.keys.filter((k) => k.primary);
  if (primaries.length > 1) at("bus.keys", `${primaries.length} keys say primary = true; exactly one may`);
  if (c.bus.keys.length > 1 && primaries.length === 0) at("bus.keys", "several keys and none has primary = true: say which one signs");
  const pgUrl = c.registry.postgres.url;
  if (pgUrl && /^postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(pgUrl)) at("registry.postgres.url", "a password in the URL is refused: use registry.postgres.password_file");
  const r = c.bus.redis;
  if (r.cluster_nodes.length > 0) {
    if (r.url || r.sentinels.length > 0) {
      at("bus.redis.cluster_nodes", "set one of bus.redis.url (one server), bus.redis.sentinels (Sentinel) or bus.redis.cluster_nodes (Cluster)");
    }
    if (r.db !== 0) at("bus.redis.db", "a Redis Cluster has only database 0");
    if (r.sentinel_master) at("bus.redis.sentinel_master", "only meaningful with bus.redis.sentinels");
    for (const k of ["tls_ca_file", "tls_cert_file", "tls_key_file"] as const) if (r[k]) at(`bus.redis.${k}`, "TLS to a Redis Cluster is not supported");
  }
  if (r.sentinels.length > 0) {
    if (r.url) at("bus.redis.url", "set either bus.redis.url (one server) or bus.redis.sentinels (Redis Sentinel), not both");
    if (!r.sentinel_master) at("bus.redis.sentinel_master", "required with bus.redis.sentinels: the name of the monitored master");
  } else if (r.cluster_nodes.length === 0) {
    if (r.db !== 0) at("bus.redis.db", "only meaningful with bus.redis.sentinels; with a URL, the database is its path (redis://host:6379/2)");
    if (r.sentinel_master) at("bus.redis.sentinel_master", "only meaningful with bus.redis.sentinels");
    if (r.sentinel_password_file) at("bus.redis.sentinel_password_file", "only meaningful with bus.redis.sentinels");
  }
  for (const k of ["tls_ca_file", "tls_cert_file", "tls_key_file"] as const) {
    if (!r[k]) continue;
    if (r.sentinels.length > 0) at(`bus.redis.${k}`, "TLS through Sentinel is not supported; use a rediss:// URL");
    else if (r.cluster_nodes.length === 0 && !r.url.startsWith("rediss://")) at(`bus.redis.${k}`, "needs a rediss:// bus.redis.url");
  }
  if (Boolean(r.tls_cert_file) !== Boolean(r.tls_key_file)) {
    at(r.tls_cert_file ? "bus.redis.tls_key_file" : "bus.redis.tls_cert_file", "a client certificate needs both tls_cert_file and tls_key_file");
  }
  if (c.bus.backend === "redis") {
    if (!r.url && r.sentinels.length === 0 && r.cluster_nodes.length === 0) {
      at("bus.redis.url", 'required when bus.backend = "redis" (or bus.redis.sentinels, or bus.redis.cluster_nodes)');
    }
    if (c.bus.keys.length === 0) at("bus.keys", "at least one [[bus.keys]] entry (id, secret_file) is required with the redis backend");
  }
  if (c.bus.redis.url) {
    try {
      const u = new URL(c.bus.redis.url);
      if (u.password) at("bus.redis.url", "holds a password; put it in bus.redis.password_file instead");
    } catch {
      at("bus.redis.url", "not a valid URL");
    }
  }
  const names = new Set<string>();
  c.bus.channels.forEach((ch, i) => {
    if (names.has(ch.name)) at(`bus.channels[${i}].name`, `channel "${ch.name}" is configured twice`);
    names.add(ch.name);
    if (ch.name.startsWith("hive:")) at(`bus.channels[${i}].name`, `use the pilox name, not the hive alias`);
  });
  if (c.api.listen) {
    const host = c.api.listen.slice(0, c.api.listen.lastIndexOf(":")).replace(/^\[|\]$/g, "");
    if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) at("api.listen", "the agent API listens on loopback only (127.0.0.0/8, ::1, localhost)");
    if (!c.api.token_file) at("api.token_file", "required when api.listen is set: the TCP agent API always needs a bearer token");
  }
  if (Boolean(c.http.tls_cert_file) !== Boolean(c.http.tls_key_file)) {
    at(c.http.tls_cert_file ? "http.tls_key_file" : "http.tls_cert_file", "TLS needs both http.tls_cert_file and http.tls_key_file");
  }
  const origins = new Set<string>();
  c.federation.peers.forEach((peer, i) => {
    const o = new URL(peer.origin).origin;
    if (origins.has(o)) at(`federation.peers[${i}].origin`, `peer ${o} is configured twice`);
    if (o === c.instance.origin) at(`federation.peers[${i}].origin`, "is this instance's own origin");
    origins.add(o);
  });
  if (c.federation.hs256.enabled && !c.federation.hs256.secret_file) at("federation.hs256.secret_file", "required when federation.hs256.enabled = true");
  if (c.federation.manifest.url && c.federation.manifest.signer_public_keys.length === 0) {
    at("federation.manifest.signer_public_keys", "a manifest URL needs at least one pinned signer key");
  }
  if (c.federation.token_lifetime_seconds > c.federation.max_token_lifetime_seconds) {
    at("federation.token_lifetime_seconds", "exceeds federation.max_token_lifetime_seconds");
  }
  if (c.api.socket && Buffer.byteLength(c.api.socket) > 107) at("api.socket", "a unix socket path is at most 107 bytes");
  checkWan(c, at);
  return out;
}

function checkWan(c: Config, at: (key: string, message: string) => void): void {
  const w = c.wan;
  const wanPeers = c.federation.peers.map((p, i) => [p, i] as const).filter(([p]) => p.transport === "wan");
  if (w.nats_urls.length === 0) {
    for (const [, i] of wanPeers) at(`federation.peers[${i}].transport`, 'transport = "wan" needs wan.nats_urls');
    if (c.federation.manifest.transport === "wan" && c.federation.manifest.url) at("federation.manifest.transport", 'transport = "wan" needs wan.nats_urls');
    return;
  }
  const auth = (["creds_file", "nkey_seed_file", "token_file", "password_file"] as const).filter((k) => w[k]);
  if (auth.length > 1) at(`wan.${auth[1]}`, `set one way to authenticate to NATS; wan.${auth[0]} is set too`);
  if (Boolean(w.user) !== Boolean(w.password_file)) at(w.user ? "wan.password_file" : "wan.user", "a NATS user needs both wan.user and wan.password_file");
  if (Boolean(w.tls_cert_file) !== Boolean(w.tls_key_file)) at(w.tls_cert_file ? "wan.tls_key_file" : "wan.tls_cert_file", "a client certificate needs both wan.tls_cert_file and wan.tls_key_file");
  if ((w.tls_ca_file || w.tls_cert_file) && !w.nats_urls.every((u) => u.startsWith("tls://"))) at("wan.nats_urls", "TLS files are set: every URL must be tls://");
  if (w.stream === w.dlq_stream) at("wan.dlq_stream", "must differ from wan.stream");
  const overlaps = (x: string, y: string) => x === y || x.startsWith(y + ".") || y.startsWith(x + ".");
  for (const subj of w.pilox.subjects) {
    if (overlaps(subj, w.subject_prefix) || overlaps(subj, w.dlq_subject_prefix)) at("wan.pilox.subjects", `"${subj}" overlaps wan.subject_prefix or wan.dlq_subject_prefix`);
  }
  if (w.pilox.stream === w.stream || w.pilox.stream === w.dlq_stream) at("wan.pilox.stream", "must differ from wan.stream and wan.dlq_stream");
  if (overlaps(w.subject_prefix, w.dlq_subject_prefix)) at("wan.dlq_subject_prefix", `must not overlap wan.subject_prefix ("${w.subject_prefix}"): the two streams cannot share subjects`);
}

/**
 * Where the running appliance's socket is, even when the configuration on disk does not load
 * (an operator mid-edit needs `status` most then): the full load when it works; else
 * `api.socket`, `node.runtime_dir` and `node.state_dir` read leniently from whichever files parse
 * (later drop-ins win, relative paths against their own file), else the defaults.
 */
export function socketPathOf(opts: LoadOptions = {}): { path: string; problem?: string } {
  try {
    return { path: loadConfig(opts).config.api.socket ?? "" };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const env = opts.env ?? process.env;
    const { path: main } = configPathFrom(opts);
    let socket: string | undefined;
    let runtimeDir: string | undefined;
    let stateDir: string | undefined;
    let files: string[] = [];
    try {
      files = [...(existsSync(main) ? [main] : []), ...dropInsOf(main)];
    } catch {
      /* an unreadable conf.d: the main file and the defaults */
    }
    for (const f of files) {
      let t: Table;
      try {
        t = readToml(f);
      } catch {
        continue;
      }
      const str = (table: string, key: string) => {
        const v = (t[table] as Table | undefined)?.[key];
        return typeof v === "string" && v ? resolve(dirname(f), v) : undefined;
      };
      socket = str("api", "socket") ?? socket;
      runtimeDir = str("node", "runtime_dir") ?? runtimeDir;
      stateDir = str("node", "state_dir") ?? stateDir;
    }
    const state = opts.stateDir ? resolve(opts.stateDir) : (stateDir ?? defaultStateDir(env));
    return { path: socket ?? join(runtimeDir ?? defaultRuntimeDir(env, state), "api.sock"), problem: err.message };
  }
}
