/**
 * Pilox's registry service as the tests' other side: a port of its behaviour (wire-v1 §7, §9:
 * routes, statuses, error bodies, Ajv validation against the `hive-` record schema, proof v1 and
 * the catalog proof knowing only the `hive-` names, its pull sync: catalog, then one GET per
 * handle, remote wins when strictly newer), written from the spec, not from its code, and
 * sharing nothing with src/: its own canonical JSON, its own Ed25519 through node:crypto, its own
 * schema validator (Ajv with the fixtures in test/fixtures/reference). Plus the reference's
 * unsigned instance descriptor at `/.well-known/pilox-mesh.json`, for resolution tests.
 */
import { createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, createHash, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Ajv2020 } from "ajv/dist/2020.js";

const FIXTURES = new URL("../fixtures/reference/", import.meta.url);
export const referenceSchema = (name: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8")) as Record<string, unknown>;

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

/** Ajv (draft 2020-12) with the two formats the reference's schemas use (ajv-formats' meaning). */
export function referenceAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  ajv.addFormat("date-time", (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)));
  ajv.addFormat("uri", (s: string) => /^[a-z][a-z0-9+.-]*:[^\s]*$/i.test(s));
  return ajv;
}

/** The reference's stable stringify: keys sorted at every level, no whitespace. */
export function stableStringify(x: unknown): string {
  if (x === null || typeof x !== "object") return JSON.stringify(x);
  if (Array.isArray(x)) return `[${x.map(stableStringify).join(",")}]`;
  const o = x as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
    .join(",")}}`;
}

const ED_SPKI = Buffer.from("302a300506032b6570032100", "hex");
const ED_PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");
const pub = (hex: string): KeyObject => createPublicKey({ key: Buffer.concat([ED_SPKI, Buffer.from(hex, "hex")]), format: "der", type: "spki" });

/** An Ed25519 key from a 32-byte seed (hex), as the reference takes its catalog key. */
export function seedKey(seedHex: string): { publicKeyHex: string; sign: (msg: string) => string } {
  const priv = createPrivateKey({ key: Buffer.concat([ED_PKCS8, Buffer.from(seedHex, "hex")]), format: "der", type: "pkcs8" });
  const publicKeyHex = (createPublicKey(priv).export({ format: "der", type: "spki" }) as Buffer).subarray(12).toString("hex");
  return { publicKeyHex, sign: (msg) => sign(null, Buffer.from(msg), priv).toString("hex") };
}

/** The reference's record proof v1 check (its reasons, its order; `hive-` type only). */
export function referenceVerifyRecordProof(rec: Record<string, any>): { ok: true } | { ok: false; reason: string } {
  const p = rec["proof"];
  if (!p || typeof p !== "object" || p.sigHex === undefined || p.sigHex === "") return { ok: true };
  if (typeof p.sigHex !== "string" || !/^[0-9a-fA-F]{128}$/.test(p.sigHex)) return { ok: false, reason: "invalid_sig_hex" };
  if (p.type !== "hive-registry-record-ed25519-v1") return { ok: false, reason: "unsupported_proof_type" };
  if (typeof p.signingKid !== "string" || !p.signingKid) return { ok: false, reason: "missing_signing_kid" };
  const keys = rec["publicKeys"]?.ed25519;
  if (!Array.isArray(keys)) return { ok: false, reason: "missing_ed25519_public_keys" };
  const k = keys.find((e: any) => e?.kid === p.signingKid);
  if (!k) return { ok: false, reason: "signing_kid_not_in_public_keys" };
  if (!/^[0-9a-fA-F]{64}$/.test(String(k.publicKeyHex))) return { ok: false, reason: "invalid_hex" };
  const msg = stableStringify({ schema: rec["schema"], handle: rec["handle"], updatedAt: rec["updatedAt"], agentCardUrl: rec["agentCardUrl"] });
  try {
    return verify(null, Buffer.from(msg), pub(k.publicKeyHex), Buffer.from(p.sigHex, "hex")) ? { ok: true } : { ok: false, reason: "bad_signature" };
  } catch {
    return { ok: false, reason: "verify_error" };
  }
}

/** Signs a record the reference's way (proof v1, `hive-` type), with the key it lists. */
export function referenceSignRecord(rec: Record<string, unknown>, key: { publicKeyHex: string; sign: (m: string) => string }, kid = "k1"): Record<string, unknown> {
  const out: Record<string, unknown> = { ...rec, publicKeys: { ed25519: [{ kid, publicKeyHex: key.publicKeyHex }] } };
  const msg = stableStringify({ schema: out["schema"], handle: out["handle"], updatedAt: out["updatedAt"], agentCardUrl: out["agentCardUrl"] });
  return { ...out, proof: { type: "hive-registry-record-ed25519-v1", signer: `did:key:${kid}`, signingKid: kid, sigHex: key.sign(msg) } };
}

/** The reference's catalog check: `hive-` proof type and schema name only. */
export function referenceVerifyCatalog(body: any, pinnedHex?: string): { ok: true } | { ok: false; reason: string } {
  if (!body || typeof body !== "object") return { ok: false, reason: "bad_body" };
  if (!Array.isArray(body.handles)) return { ok: false, reason: "missing_handles" };
  for (const h of body.handles) if (typeof h !== "string" || h.length < 8) return { ok: false, reason: "bad_handle_entry" };
  const p = body.catalogProof;
  if (!p || typeof p !== "object") return { ok: false, reason: "missing_catalog_proof" };
  if (p.type !== "hive-registry-catalog-ed25519-v1") return { ok: false, reason: "bad_proof_type" };
  if (typeof p.issuedAt !== "string" || !p.issuedAt.trim()) return { ok: false, reason: "bad_issuedAt" };
  if (typeof p.sigHex !== "string" || !/^[0-9a-fA-F]{128}$/.test(p.sigHex)) return { ok: false, reason: "bad_sig_hex" };
  if (typeof p.publicKeyHex !== "string" || !/^[0-9a-fA-F]{64}$/.test(p.publicKeyHex)) return { ok: false, reason: "bad_pub_hex" };
  if (pinnedHex && pinnedHex.toLowerCase() !== p.publicKeyHex.toLowerCase()) return { ok: false, reason: "pubkey_mismatch" };
  const msg = stableStringify({ schema: "hive-registry-catalog-v1", handles: [...body.handles].sort(), issuedAt: p.issuedAt });
  return verify(null, Buffer.from(msg), pub(p.publicKeyHex), Buffer.from(p.sigHex, "hex")) ? { ok: true } : { ok: false, reason: "bad_signature" };
}

export interface ReferenceOptions {
  writeSecret: string;
  /** REGISTRY_CATALOG_SIGNING_KEY_HEX: a 32-byte seed; catalogs are signed when set. */
  catalogSeedHex?: string;
  /** REGISTRY_VERIFY_ED25519_PROOF: POSTed records' proof v1 must verify. */
  verifyProof?: boolean;
  /** REGISTRY_SYNC_VERIFY_CATALOG and REGISTRY_SYNC_CATALOG_PUBKEY_HEX. */
  syncVerifyCatalog?: boolean;
  syncCatalogPubkeyHex?: string;
  /** REGISTRY_SYNC_VERIFY_ED25519_PROOF. */
  syncVerifyProof?: boolean;
}

export interface ReferenceRegistry {
  url: string;
  store: Map<string, Record<string, unknown>>;
  catalogKey?: { publicKeyHex: string };
  /** One pull from `base` (its syncFromPeer): counts merged, and why the rest were not. */
  syncFrom(base: string): Promise<{ merged: number; skipped: Record<string, number>; catalog: "ok" | string }>;
  close(): Promise<void>;
}

const MAX_POST = 1_048_576;

export async function startReferenceRegistry(o: ReferenceOptions): Promise<ReferenceRegistry> {
  const ajv = referenceAjv();
  const validate = ajv.compile(referenceSchema("hive-registry-record-v1.schema.json"));
  const store = new Map<string, Record<string, unknown>>();
  const catalogKey = o.catalogSeedHex ? seedKey(o.catalogSeedHex) : undefined;
  const etag = (rec: unknown) => `W/"${createHash("sha256").update(stableStringify(rec)).digest("hex").slice(0, 32)}"`;
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const readBody = (req: IncomingMessage) =>
    new Promise<Buffer | null>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let n = 0;
      req.on("data", (c: Buffer) => {
        n += c.length;
        if (n > MAX_POST) resolve(null);
        else chunks.push(c);
      });
      req.on("end", () => resolve(Buffer.concat(chunks)));
      req.on("error", reject);
    });
  const authorized = (req: IncomingMessage) => {
    const h = req.headers.authorization ?? "";
    if (!h.startsWith("Bearer ")) return false;
    const a = createHash("sha256").update(h.slice(7)).digest();
    const b = createHash("sha256").update(o.writeSecret).digest();
    return timingSafeEqual(a, b);
  };

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname;
    if (req.method === "GET" && path === "/.well-known/pilox-mesh.json") {
      // The reference's descriptor: unsigned, A2A advertised.
      const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      return send(res, 200, { schema: "pilox-mesh-descriptor-v1", meshV2: "2.10.0", planetaryReferenceVersion: "1.3.1", instanceOrigin: origin, a2aEnabled: true, a2a: { agentCardUrl: `${origin}/.well-known/agent-card.json`, jsonRpcUrl: `${origin}/api/a2a/jsonrpc` }, federation: { enabled: false, phase: "2.0-config", transportActive: false, jwtAlg: null, localEd25519PublicKeyHex: null, directoryUrl: null, federationStatusUrl: `${origin}/api/mesh/federation/status`, wanMesh: null }, publicMesh: { bootstrapMeshDescriptorUrls: [] } });
    }
    if (req.method === "GET" && path === "/v1/records") {
      const handles = [...store.keys()];
      const body: Record<string, unknown> = { handles };
      if (catalogKey) {
        const issuedAt = new Date().toISOString();
        const sigHex = catalogKey.sign(stableStringify({ schema: "hive-registry-catalog-v1", handles: [...handles].sort(), issuedAt }));
        body["catalogProof"] = { type: "hive-registry-catalog-ed25519-v1", issuedAt, signingKid: "registry-catalog", sigHex, publicKeyHex: catalogKey.publicKeyHex };
      }
      return send(res, 200, body, { "cache-control": "no-store" });
    }
    if (req.method === "GET" && path.startsWith("/v1/records/")) {
      let h: string;
      try {
        h = decodeURIComponent(path.slice("/v1/records/".length));
      } catch {
        return send(res, 404, { error: "not_found" });
      }
      const rec = store.get(h);
      if (!rec) return send(res, 404, { error: "not_found" });
      return send(res, 200, rec, { etag: etag(rec), "cache-control": "public, max-age=60" });
    }
    if (req.method === "POST" && path === "/v1/records") {
      if (!authorized(req)) return send(res, 401, { error: "unauthorized" });
      const raw = await readBody(req);
      if (raw === null) return send(res, 413, { error: "payload_too_large" });
      let rec: Record<string, any>;
      try {
        rec = JSON.parse(raw.length ? raw.toString("utf8") : "{}");
      } catch {
        return send(res, 400, { error: "invalid_json" });
      }
      if (!validate(rec)) {
        const e = validate.errors?.[0];
        return send(res, 400, { error: "invalid_record", instancePath: e?.instancePath ?? "", message: e?.message ?? "" });
      }
      if (o.verifyProof) {
        const v = referenceVerifyRecordProof(rec);
        if (!v.ok) return send(res, 409, { error: "proof_verification_failed", reason: v.reason });
      }
      store.set(rec.handle, rec);
      return send(res, 201, { ok: true, handle: rec.handle, etag: etag(rec) }, { etag: etag(rec) });
    }
    return send(res, 404, { error: "not_found" });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;

  async function syncFrom(base: string) {
    const skipped: Record<string, number> = {};
    const skip = (why: string) => (skipped[why] = (skipped[why] ?? 0) + 1);
    const catalog = (await (await fetch(`${base}/v1/records`)).json()) as { handles?: unknown };
    if (o.syncVerifyCatalog) {
      const v = referenceVerifyCatalog(catalog, o.syncCatalogPubkeyHex);
      if (!v.ok) return { merged: 0, skipped, catalog: v.reason };
    }
    let merged = 0;
    for (const h of Array.isArray(catalog.handles) ? catalog.handles : []) {
      if (typeof h !== "string" || h.length < 8) continue;
      const r = await fetch(`${base}/v1/records/${encodeURIComponent(h)}`);
      if (!r.ok) {
        skip(`http_${r.status}`);
        continue;
      }
      const rec = (await r.json()) as Record<string, any>;
      if (!validate(rec)) {
        skip(`schema:${validate.errors?.[0]?.instancePath}:${validate.errors?.[0]?.message}`);
        continue;
      }
      if (o.syncVerifyProof) {
        const v = referenceVerifyRecordProof(rec);
        if (!v.ok) {
          skip(v.reason);
          continue;
        }
      }
      const cur = store.get(rec["handle"]);
      if (cur && Date.parse(String(cur["updatedAt"])) >= Date.parse(rec["updatedAt"])) {
        skip("not_newer");
        continue;
      }
      store.set(rec["handle"], rec);
      merged++;
    }
    return { merged, skipped, catalog: "ok" as const };
  }

  return {
    url: `http://127.0.0.1:${port}`,
    store,
    ...(catalogKey ? { catalogKey: { publicKeyHex: catalogKey.publicKeyHex } } : {}),
    syncFrom,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
