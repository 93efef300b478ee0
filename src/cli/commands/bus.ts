/** `bus seal|verify|publish|subscribe`. */
import { createBus } from "../../daemon/bus-factory.ts";
import { canonicalChannel, coreOf, hexMacEquals, KeyRing, macV1, sealMessage, SealError, type JsonObject, type MeshBus } from "../../bus/index.ts";
import { loadConfig, readSecretFile, resolveSecrets, type LoadedConfig } from "../../config/index.ts";
import { silentLogger } from "../../log/index.ts";
import { EXIT, loadOptions, parse, readStdin, required, UsageError, type Io } from "../args.ts";
import { apiRequest, apiSse, type ApiTarget } from "../client.ts";

const MAX_STDIN = 16 * 1024 * 1024;

export const BUS_USAGE = `usage:
  pilox-mesh bus seal --channel C --secret-file F          < message.json
  pilox-mesh bus verify --channel C --secret-file F        < wire.json
  pilox-mesh bus publish --channel C [JSON] [target]       (JSON or stdin)
  pilox-mesh bus subscribe --channel C [--last-event-id ID] [target]
target: the running appliance's agent API by default (its api.socket), or
  --socket PATH | --api http://127.0.0.1:PORT --token-file F
  --direct       straight to the bus of the config (Redis), no appliance needed
  --redis URL    straight to this Redis (implies --direct); keys from the config or
                 --secret-file F [--key-id ID]`;

export async function bus(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "seal":
      return seal(rest, io);
    case "verify":
      return verify(rest, io);
    case "publish":
      return publish(rest, io);
    case "subscribe":
      return subscribe(rest, io);
    default:
      throw new UsageError(sub ? `unknown bus command "${sub}"\n${BUS_USAGE}` : BUS_USAGE);
  }
}

function parseJsonObject(text: string, what: string): JsonObject {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (x === null || typeof x !== "object" || Array.isArray(x)) throw new UsageError(`${what} is not a JSON object`);
  return x as JsonObject;
}

async function seal(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { channel: { type: "string" }, "secret-file": { type: "string" } });
  const channel = required(values.channel, "--channel");
  const secret = readSecretFile(required(values["secret-file"], "--secret-file"));
  const msg = parseJsonObject(await readStdin(io, MAX_STDIN), "standard input");
  if (msg["meshMeta"] === undefined) throw new UsageError("the message needs its meshMeta ({v: 1, producer, eventId})");
  try {
    io.stdout(JSON.stringify(sealMessage(channel, msg, { id: "cli", secret }, { v1Only: true })) + "\n");
  } catch (err) {
    if (err instanceof SealError) {
      io.stderr(`cannot seal: ${err.message}\n`);
      return EXIT.failure;
    }
    throw err;
  }
  return EXIT.ok;
}

async function verify(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { channel: { type: "string" }, "secret-file": { type: "string" } });
  const channel = required(values.channel, "--channel");
  const secret = readSecretFile(required(values["secret-file"], "--secret-file"));
  const raw = await readStdin(io, MAX_STDIN);
  let msg: unknown;
  try {
    msg = JSON.parse(raw);
  } catch {
    io.stdout("malformed: not JSON\n");
    return EXIT.failure;
  }
  if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
    io.stdout("malformed: not a JSON object\n");
    return EXIT.failure;
  }
  const m = msg as JsonObject;
  if (m["meshSig"] === undefined) {
    io.stdout("unsigned: no meshSig\n");
    return EXIT.failure;
  }
  if (m["meshMeta"] === undefined) {
    io.stdout("invalid_schema: no meshMeta\n");
    return EXIT.failure;
  }
  if (!hexMacEquals(m["meshSig"], macV1(secret, channel, coreOf(m), m["meshMeta"]))) {
    io.stdout(`forged: meshSig does not match this key and channel ${channel}\n`);
    return EXIT.failure;
  }
  io.stdout("valid\n");
  return EXIT.ok;
}

const TARGET_OPTIONS = {
  channel: { type: "string" },
  socket: { type: "string" },
  api: { type: "string" },
  "token-file": { type: "string" },
  direct: { type: "boolean" },
  redis: { type: "string" },
  "secret-file": { type: "string" },
  "key-id": { type: "string" },
  v1: { type: "boolean" },
  "last-event-id": { type: "string" },
} as const;

type TargetValues = { [K in keyof typeof TARGET_OPTIONS]?: (typeof TARGET_OPTIONS)[K]["type"] extends "boolean" ? boolean : string } & {
  config?: string;
  "state-dir"?: string;
};

function load(values: TargetValues): LoadedConfig {
  return loadConfig(loadOptions(values));
}

function apiTarget(values: TargetValues): ApiTarget {
  if (values.api) {
    if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+\/?$/.test(values.api)) throw new UsageError("--api takes http://127.0.0.1:PORT");
    const t: ApiTarget = { url: values.api };
    if (values["token-file"]) t.token = readSecretFile(values["token-file"]).toString("utf8");
    return t;
  }
  if (values.socket) return { socketPath: values.socket };
  return { socketPath: load(values).config.api.socket };
}

/** A bus of our own, straight to the configured (or given) Redis. */
async function directBus(values: TargetValues): Promise<MeshBus> {
  const loaded = load(values);
  const c = loaded.config;
  if (values.redis) {
    c.bus.backend = "redis";
    c.bus.redis.url = values.redis;
    c.bus.redis.sentinels = [];
    c.bus.redis.sentinel_master = "";
    c.bus.redis.cluster_nodes = [];
  }
  if (c.bus.backend !== "redis") throw new UsageError("--direct needs a Redis (bus.redis.url or --redis URL); the embedded bus lives inside the appliance");
  let secrets;
  if (values["secret-file"]) {
    const secret = readSecretFile(values["secret-file"]);
    secrets = { ring: new KeyRing([{ id: values["key-id"] ?? "cli", secret }]) };
    c.bus.keys = [];
  } else {
    if (c.bus.keys.length === 0) throw new UsageError("no [[bus.keys]] in the config: pass --secret-file F [--key-id ID]");
    secrets = resolveSecrets(loaded, false);
  }
  // A CLI run does not share the appliance's spool: a publish it cannot send fails.
  const b = await createBus({ ...c, bus: { ...c.bus, backend: "redis" } }, secrets, silentLogger, undefined, false);
  await b.start();
  await waitReady(b);
  return b;
}

async function waitReady(b: MeshBus, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!b.backend.isReady()) {
    if (Date.now() > end) throw new Error("cannot reach Redis");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function publish(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, TARGET_OPTIONS, true);
  const channel = required(values.channel, "--channel");
  if (positionals.length > 1) throw new UsageError("give the message as one JSON argument (or on stdin)");
  const message = parseJsonObject(positionals[0] ?? (await readStdin(io, MAX_STDIN)), positionals[0] ? "the message" : "standard input");
  if (values.direct || values.redis) {
    const b = await directBus(values);
    try {
      const r = await b.publish(channel, message, { v1Only: values.v1 === true });
      io.stdout(JSON.stringify(r) + "\n");
      return EXIT.ok;
    } finally {
      await b.close();
    }
  }
  const { status, json } = await apiRequest(apiTarget(values), "POST", "/v1/bus/publish", { channel, message, v1: values.v1 === true });
  if (status === 202) {
    io.stdout(JSON.stringify(json) + "\n");
    return EXIT.ok;
  }
  io.stderr(`publish refused (${status}): ${json?.error?.code ?? ""} ${json?.error?.message ?? JSON.stringify(json)}\n`);
  return status === 503 ? EXIT.unavailable : EXIT.failure;
}

async function subscribe(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, TARGET_OPTIONS);
  const channel = canonicalChannel(required(values.channel, "--channel"));
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    if (values.direct || values.redis) {
      const b = await directBus(values);
      const print = async (d: { text(): string }) => void io.stdout(d.text() + "\n");
      const c = b.isDurable(channel) ? await b.tail(channel, values["last-event-id"] ?? "$", print) : await b.subscribe(channel, print);
      await new Promise<void>((r) => ac.signal.addEventListener("abort", () => r()));
      await c.close();
      await b.close();
      return EXIT.ok;
    }
    const q = new URLSearchParams({ channel });
    if (values["last-event-id"]) q.set("last_event_id", values["last-event-id"]);
    await apiSse(apiTarget(values), `/v1/bus/subscribe?${q}`, (data) => io.stdout(data + "\n"), ac.signal);
    return EXIT.ok;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}
