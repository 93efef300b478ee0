/** `registry sign|verify|verify-catalog|publish|get|delete`: registry records from the shell. */
import { readKeyFile } from "../../identity/index.ts";
import { parseJson } from "../../json/index.ts";
import { checkRecord, MAX_RECORD_BYTES, signRecord, verifyCatalog, verifyProofV1, verifyProofV2, type RegistryRecord } from "../../registry/index.ts";
import { EXIT, parse, readStdin, required, UsageError, type Io } from "../args.ts";

export const REGISTRY_USAGE = `usage:
  pilox-mesh registry sign --key-file F --kid K [--signer URI] [--seq N]    < record.json
  pilox-mesh registry verify [--require-proof] [--public-key HEX]         < record.json
  pilox-mesh registry verify-catalog [--public-key HEX] [--at UNIX] [--max-age S]  < catalog.json
sign prints the record with proof v1 (the reference's, over schema/handle/updatedAt/agentCardUrl)
and our proof v2 in proof.v2 (over the whole record, with sequence N; default: updatedAt in
unix seconds). verify and verify-catalog print "valid" and exit 0, or print the reason and exit 1.`;

const MAX_CATALOG_BYTES = 64 * 1024 * 1024;

export async function registry(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "sign":
      return sign(rest, io);
    case "verify":
      return verify(rest, io);
    case "verify-catalog":
      return verifyCatalogCmd(rest, io);
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

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v)) throw new UsageError(`${flag} takes a whole number`);
  return Number(v);
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
  const seq = int(values.seq, "--seq") ?? Math.floor(Date.parse(check.record.updatedAt) / 1000);
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
  const at = int(values.at, "--at");
  const maxAge = int(values["max-age"], "--max-age");
  const parsed = parseJson(await readStdin(io, MAX_CATALOG_BYTES), 16);
  if (!parsed.ok) return refuse(io, `invalid_json: ${parsed.detail}`);
  const r = verifyCatalog(parsed.value, { ...(pinned ? { publicKeyHex: pinned } : {}), ...(at !== undefined ? { at: at * 1000 } : {}), ...(maxAge !== undefined ? { maxAgeSeconds: maxAge } : {}) });
  if (!r.ok) return refuse(io, r.reason);
  io.stdout("valid\n");
  return EXIT.ok;
}

function refuse(io: Io, reason: string): number {
  io.stdout(reason + "\n");
  return EXIT.failure;
}
