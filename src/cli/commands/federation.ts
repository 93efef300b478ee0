/** `token mint|verify` and `manifest sign|verify`: the federation formats from the shell. */
import { readFileSync } from "node:fs";
import {
  ManifestSignError,
  MemoryTokenReplayStore,
  mintToken,
  normalizeOrigin,
  signManifest,
  verifyManifest,
  verifyToken,
  type ManifestPayload,
  type PeerKeys,
} from "../../federation/index.ts";
import { publicKeyFromHex, readKeyFile, thumbprint } from "../../identity/index.ts";
import { EXIT, intFlag, parse, readStdin, required, UsageError, type Io } from "../args.ts";

const origin = (s: string, flag: string): string => {
  const o = normalizeOrigin(s);
  if (!o) throw new UsageError(`${flag}: not an origin (scheme://host[:port]): ${s}`);
  return o;
};

/** Exit 0 printing the result as JSON, or exit 1 printing the reason (detail on stderr). */
function verdict(io: Io, r: { ok: true } | { ok: false; reason: string; detail: string }, result: () => unknown): number {
  if (!r.ok) {
    io.stdout(`${r.reason}\n`);
    io.stderr(`${r.detail}\n`);
    return EXIT.failure;
  }
  io.stdout(JSON.stringify(result()) + "\n");
  return EXIT.ok;
}

export async function token(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "mint") {
    const { values } = parse(rest, { "key-file": { type: "string" }, iss: { type: "string" }, aud: { type: "string" }, ttl: { type: "string" }, "body-file": { type: "string" } });
    const key = readKeyFile(required(values["key-file"], "--key-file"));
    const o: Parameters<typeof mintToken>[0] = {
      key,
      iss: origin(required(values.iss, "--iss"), "--iss"),
      aud: origin(required(values.aud, "--aud"), "--aud"),
      ttlSeconds: intFlag(values.ttl, "--ttl", 1, 300) ?? 60,
    };
    if (values["body-file"]) o.body = readFileSync(values["body-file"]);
    io.stdout((await mintToken(o)) + "\n");
    return EXIT.ok;
  }
  if (sub === "verify") {
    const { values } = parse(rest, {
      aud: { type: "string" },
      peer: { type: "string", multiple: true },
      at: { type: "string" },
      "max-lifetime": { type: "string" },
      leeway: { type: "string" },
      "body-file": { type: "string" },
    });
    const peers = new Map<string, PeerKeys>();
    for (const spec of values.peer ?? []) {
      const eq = spec.lastIndexOf("=");
      const hex = spec.slice(eq + 1);
      if (eq < 0 || !/^[0-9a-fA-F]{64}$/.test(hex)) throw new UsageError(`--peer takes ORIGIN=PUBHEX, got ${spec}`);
      const o = origin(spec.slice(0, eq), "--peer");
      const entry = peers.get(o) ?? { origin: o, keys: [] };
      entry.keys.push({ kid: thumbprint(hex.toLowerCase()), publicKey: publicKeyFromHex(hex) });
      peers.set(o, entry);
    }
    if (peers.size === 0) throw new UsageError("at least one --peer ORIGIN=PUBHEX is required");
    const at = intFlag(values.at, "--at", 0, 2 ** 40);
    const tokenText = (await readStdin(io, 16 * 1024)).trim();
    const policy: Parameters<typeof verifyToken>[1] = {
      audience: origin(required(values.aud, "--aud"), "--aud"),
      peers,
      leewaySeconds: intFlag(values.leeway, "--leeway", 0, 120) ?? 30,
      maxLifetimeSeconds: intFlag(values["max-lifetime"], "--max-lifetime", 1, 86_400) ?? 300,
      replay: new MemoryTokenReplayStore(),
    };
    if (at !== undefined) policy.now = at * 1000;
    if (values["body-file"]) policy.body = readFileSync(values["body-file"]);
    const r = await verifyToken(tokenText, policy);
    return verdict(io, r, () => r.ok && r.claims);
  }
  throw new UsageError("usage: pilox-mesh token mint --key-file F --iss ORIGIN --aud ORIGIN [--ttl S]\n       pilox-mesh token verify --aud ORIGIN --peer ORIGIN=PUBHEX [--peer …] [--at UNIXSECONDS] [--max-lifetime S] < token");
}

export async function manifest(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "sign") {
    const { values } = parse(rest, { "key-file": { type: "string" }, seq: { type: "string" }, "expires-in": { type: "string" } });
    const key = readKeyFile(required(values["key-file"], "--key-file"));
    let payload: ManifestPayload;
    try {
      payload = JSON.parse(await readStdin(io, 1024 * 1024)) as ManifestPayload;
    } catch {
      throw new UsageError("standard input is not JSON (the manifest payload {v: 1, peers: [...]})");
    }
    const seq = intFlag(values.seq, "--seq", 0, Number.MAX_SAFE_INTEGER);
    const expiresIn = intFlag(values["expires-in"], "--expires-in", 60, 366 * 86_400);
    if ((seq === undefined) !== (expiresIn === undefined)) throw new UsageError("--seq and --expires-in go together");
    let body: ReturnType<typeof signManifest>;
    try {
      body = signManifest(payload, key, seq === undefined ? undefined : { seq, expiresAt: new Date(Date.now() + expiresIn! * 1000).toISOString() });
    } catch (err) {
      if (!(err instanceof ManifestSignError)) throw err;
      io.stderr(`refusing to sign: ${err.message}\n`);
      return EXIT.failure;
    }
    const check = verifyManifest(body, { signers: [key.publicKey] });
    if (!check.ok) {
      io.stderr(`refusing to sign an invalid payload: ${check.detail}\n`);
      return EXIT.failure;
    }
    io.stdout(JSON.stringify(body) + "\n");
    return EXIT.ok;
  }
  if (sub === "verify") {
    const { values } = parse(rest, { "public-key": { type: "string", multiple: true }, "min-seq": { type: "string" }, "require-ext": { type: "boolean" } });
    const keys = (values["public-key"] ?? []).map((h) => {
      if (!/^[0-9a-fA-F]{64}$/.test(h)) throw new UsageError("--public-key takes 64 hex characters");
      return publicKeyFromHex(h);
    });
    if (keys.length === 0) throw new UsageError("at least one --public-key HEX is required");
    let body: unknown;
    try {
      body = JSON.parse(await readStdin(io, 1024 * 1024));
    } catch {
      io.stdout("malformed\n");
      return EXIT.failure;
    }
    const policy: Parameters<typeof verifyManifest>[1] = { signers: keys, requireExt: values["require-ext"] === true };
    const minSeq = intFlag(values["min-seq"], "--min-seq", 0, Number.MAX_SAFE_INTEGER);
    if (minSeq !== undefined) policy.minSeq = minSeq;
    const r = verifyManifest(body, policy);
    return verdict(io, r, () => r.ok && r.peers);
  }
  throw new UsageError("usage: pilox-mesh manifest sign --key-file F [--seq N --expires-in S] < payload.json\n       pilox-mesh manifest verify --public-key HEX [--min-seq N] [--require-ext] < body.json");
}
