/** `registry sign|verify|verify-catalog|publish|get|delete`: registry records from the shell. */
import { readKeyFile } from "../../identity/index.ts";
import { parseJson } from "../../json/index.ts";
import { readBounded } from "../../net/index.ts";
import { readSecretFile } from "../../config/index.ts";
// The pure modules, not registry/index.ts: the CLI must not load node:sqlite for every command.
import { verifyCatalog } from "../../registry/catalog.ts";
import { signRecord, verifyProofV1, verifyProofV2 } from "../../registry/proof.ts";
import { checkRecord, MAX_RECORD_BYTES, type RegistryRecord } from "../../registry/record.ts";
import { signTombstone } from "../../registry/rules.ts";
import { EXIT, intFlag, parse, readStdin, required, UsageError, type Io } from "../args.ts";

export const REGISTRY_USAGE = `usage:
  pilox-mesh registry template --handle H --origin URL [--key-file F] [--kid K] [--family pilox|hive]
  pilox-mesh registry sign --key-file F --kid K [--signer URI] [--seq N]    < record.json
  pilox-mesh registry verify [--require-proof] [--public-key HEX]         < record.json
  pilox-mesh registry verify-catalog [--public-key HEX] [--at UNIX] [--max-age S]  < catalog.json
  pilox-mesh registry publish URL --token-file F                            < record.json
  pilox-mesh registry get URL HANDLE
  pilox-mesh registry delete URL HANDLE --key-file F   (a delete signed by the handle's key)
  pilox-mesh registry delete URL HANDLE --token-file F (the registry operator's delete)
sign prints the record with proof v1 (the reference's, over schema/handle/updatedAt/agentCardUrl)
and our proof v2 in proof.v2 (over the whole record, with sequence N; default: updatedAt in
unix seconds). verify and verify-catalog print "valid" and exit 0, or print the reason and exit 1.
template prints a valid record to edit and sign: the agent card and mesh descriptor at the
origin's well-known paths, a TTL, and with --key-file the public key the record will be signed
with (kid K, default k1). --family hive writes a hive-registry-record-v1 record (Pilox's
registry service takes no other).`;

const MAX_CATALOG_BYTES = 64 * 1024 * 1024;

export async function registry(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "template":
      return template(rest, io);
    case "sign":
      return sign(rest, io);
    case "verify":
      return verify(rest, io);
    case "verify-catalog":
      return verifyCatalogCmd(rest, io);
    case "publish":
      return publish(rest, io);
    case "get":
      return get(rest, io);
    case "delete":
      return del(rest, io);
    default:
      throw new UsageError(sub ? `unknown registry command "${sub}"\n${REGISTRY_USAGE}` : REGISTRY_USAGE);
  }
}

async function readObject(io: Io, max: number): Promise<Record<string, unknown> | string> {
  const r = parseJson(await readStdin(io, max), 64);
  if (!r.ok) return `invalid_json: ${r.detail}`;
  if (r.value === null || typeof r.value !== "object" || Array.isArray(r.value)) return "invalid_json: not a JSON object";
  return r.value as Record<string, unknown>;
}

/** A record ready to sign, every field valid: the fields found one failed attempt at a time no more. */
async function template(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { handle: { type: "string" }, origin: { type: "string" }, "key-file": { type: "string" }, kid: { type: "string" }, family: { type: "string" } });
  const handle = required(values.handle, "--handle");
  let origin: string;
  try {
    origin = new URL(required(values.origin, "--origin")).origin;
  } catch {
    throw new UsageError("--origin takes a URL such as https://agents.example");
  }
  const family = values.family ?? "pilox";
  if (family !== "pilox" && family !== "hive") throw new UsageError("--family is pilox or hive");
  const rec: Record<string, unknown> = {
    schema: `${family}-registry-record-v1`,
    handle,
    updatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    agentCardUrl: `${origin}/.well-known/agent-card.json`,
    meshDescriptorUrl: `${origin}/.well-known/pilox-mesh.json`,
    ttlSecondsRecommended: 300,
    capabilities: ["a2a-jsonrpc"],
  };
  if (values["key-file"]) rec["publicKeys"] = { ed25519: [{ kid: values.kid ?? "k1", publicKeyHex: readKeyFile(values["key-file"]).publicKeyHex }] };
  const check = checkRecord(rec);
  if (!check.ok) {
    io.stderr(`pilox-mesh registry template: ${check.instancePath || "/"}: ${check.message}\n`);
    return EXIT.failure;
  }
  io.stdout(JSON.stringify(rec, null, 2) + "\n");
  return EXIT.ok;
}

async function sign(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { "key-file": { type: "string" }, kid: { type: "string" }, signer: { type: "string" }, seq: { type: "string" } });
  const key = readKeyFile(required(values["key-file"], "--key-file"));
  const kid = required(values.kid, "--kid");
  const rec = await readObject(io, MAX_RECORD_BYTES);
  if (typeof rec === "string") {
    io.stderr(`pilox-mesh registry sign: ${rec}\n`);
    return EXIT.failure;
  }
  const { proof: _p, ...body } = rec;
  const check = checkRecord(body);
  if (!check.ok) {
    io.stderr(`pilox-mesh registry sign: invalid_record: ${check.instancePath || "/"}: ${check.message}\n`);
    return EXIT.failure;
  }
  const seq = intFlag(values.seq, "--seq", 0, Number.MAX_SAFE_INTEGER) ?? Math.floor(Date.parse(check.record.updatedAt) / 1000);
  let out: RegistryRecord;
  try {
    out = signRecord(check.record, key, { kid, seq, ...(values.signer ? { signer: values.signer } : {}) });
  } catch (err) {
    io.stderr(`pilox-mesh registry sign: ${(err as Error).message}\n`);
    return EXIT.failure;
  }
  io.stdout(JSON.stringify(out) + "\n");
  return EXIT.ok;
}

async function verify(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { "require-proof": { type: "boolean" }, "public-key": { type: "string" } });
  const pinned = values["public-key"];
  if (pinned !== undefined && !/^[0-9a-fA-F]{64}$/.test(pinned)) throw new UsageError("--public-key takes 64 hex characters");
  const rec = await readObject(io, MAX_RECORD_BYTES);
  if (typeof rec === "string") return refuse(io, rec);
  // The proofs first, with the reference's reasons; our stricter record checks after.
  const r = rec as RegistryRecord;
  const v1 = verifyProofV1(r);
  if (!v1.ok) return refuse(io, v1.reason);
  const v2 = verifyProofV2(r);
  if (!v2.ok) return refuse(io, v2.reason);
  if (values["require-proof"] && !v1.signed && !v2.signed) return refuse(io, "missing_proof");
  if (pinned) {
    const keys = [v1, v2].filter((x) => x.ok && x.signed).map((x) => (x as { publicKeyHex: string }).publicKeyHex);
    if (keys.length === 0) return refuse(io, "missing_proof");
    if (keys.some((k) => k !== pinned.toLowerCase())) return refuse(io, "pubkey_mismatch");
  }
  const check = checkRecord(rec);
  if (!check.ok) return refuse(io, `invalid_record: ${check.instancePath || "/"}: ${check.message}`);
  io.stdout("valid\n");
  return EXIT.ok;
}

async function verifyCatalogCmd(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { "public-key": { type: "string" }, at: { type: "string" }, "max-age": { type: "string" } });
  const pinned = values["public-key"];
  if (pinned !== undefined && !/^[0-9a-fA-F]{64}$/.test(pinned)) throw new UsageError("--public-key takes 64 hex characters");
  const at = intFlag(values.at, "--at", 0, 2 ** 40);
  const maxAge = intFlag(values["max-age"], "--max-age", 0, Number.MAX_SAFE_INTEGER);
  const parsed = parseJson(await readStdin(io, MAX_CATALOG_BYTES), 16);
  if (!parsed.ok) return refuse(io, `invalid_json: ${parsed.detail}`);
  const r = verifyCatalog(parsed.value, { ...(pinned ? { publicKeyHex: pinned } : {}), ...(at !== undefined ? { at: at * 1000 } : {}), ...(maxAge !== undefined ? { maxAgeSeconds: maxAge } : {}) });
  if (!r.ok) return refuse(io, r.reason);
  io.stdout("valid\n");
  return EXIT.ok;
}

function baseOf(u: string | undefined): string {
  const url = required(u, "URL");
  if (!/^https?:\/\/[^?#\s]+$/.test(url)) throw new UsageError(`not an http(s) URL: ${url}`);
  return url.replace(/\/+$/, "");
}

const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

async function call(io: Io, method: string, url: string, o: { token?: Buffer; body?: string } = {}): Promise<{ status: number; json: any } | number> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { ...(o.body !== undefined ? { "content-type": "application/json" } : {}), ...(o.token ? { authorization: `Bearer ${o.token.toString("utf8")}` } : {}) },
      ...(o.body !== undefined ? { body: o.body } : {}),
      signal: AbortSignal.timeout(15_000),
      redirect: "error",
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    io.stderr(`pilox-mesh registry: cannot reach ${url}: ${cause?.code ?? (err as Error).message}\n`);
    return EXIT.unavailable;
  }
  let text: string;
  try {
    // A registry's answer: a catalog of many handles at most.
    text = await readBounded(res, MAX_ANSWER_BYTES, url);
  } catch (err) {
    io.stderr(`pilox-mesh registry: ${(err as Error).message}\n`);
    return EXIT.unavailable;
  }
  const j = parseJson(text || "null", 64);
  return { status: res.status, json: j.ok ? j.value : text };
}

async function publish(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { "token-file": { type: "string" } }, true);
  const base = baseOf(positionals[0]);
  const token = readSecretFile(required(values["token-file"], "--token-file"));
  const rec = await readObject(io, MAX_RECORD_BYTES);
  if (typeof rec === "string") return refuse(io, rec);
  const r = await call(io, "POST", `${base}/v1/records`, { token, body: JSON.stringify(rec) });
  if (typeof r === "number") return r;
  io.stdout(JSON.stringify(r.json) + "\n");
  return r.status === 201 ? EXIT.ok : EXIT.failure;
}

async function get(args: string[], io: Io): Promise<number> {
  const { positionals } = parse(args, {}, true);
  const base = baseOf(positionals[0]);
  const handle = required(positionals[1], "HANDLE");
  const r = await call(io, "GET", `${base}/v1/records/${encodeURIComponent(handle)}`);
  if (typeof r === "number") return r;
  io.stdout(JSON.stringify(r.json) + "\n");
  return r.status === 200 ? EXIT.ok : EXIT.failure;
}

async function del(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { "key-file": { type: "string" }, "token-file": { type: "string" } }, true);
  const base = baseOf(positionals[0]);
  const handle = required(positionals[1], "HANDLE");
  const url = `${base}/v1/records/${encodeURIComponent(handle)}`;
  if (values["token-file"] && !values["key-file"]) {
    const r = await call(io, "DELETE", url, { token: readSecretFile(values["token-file"]) });
    if (typeof r === "number") return r;
    io.stdout(JSON.stringify(r.json) + "\n");
    return r.status === 200 ? EXIT.ok : EXIT.failure;
  }
  const key = readKeyFile(required(values["key-file"], "--key-file (or --token-file)"));
  // The tombstone's sequence must pass the stored version's: read it first.
  const cur = await call(io, "GET", url);
  if (typeof cur === "number") return cur;
  if (cur.status !== 200) {
    io.stdout(JSON.stringify(cur.json) + "\n");
    return EXIT.failure;
  }
  const seq = (cur.json as RegistryRecord).proof?.["v2"] as { seq?: unknown } | undefined;
  if (typeof seq?.seq !== "number") return refuse(io, "the stored record has no proof v2: only the registry operator can delete it (--token-file)");
  const r = await call(io, "DELETE", url, { body: JSON.stringify(signTombstone(handle, seq.seq + 1, key)) });
  if (typeof r === "number") return r;
  io.stdout(JSON.stringify(r.json) + "\n");
  return r.status === 200 ? EXIT.ok : EXIT.failure;
}

function refuse(io: Io, reason: string): number {
  io.stdout(reason + "\n");
  return EXIT.failure;
}
