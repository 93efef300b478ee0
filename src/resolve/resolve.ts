/**
 * Resolution: a handle → a verified route. The record comes from registries (every one asked;
 * the first in order with a valid record wins, disagreements reported), with proof v1 and our
 * proof v2 verified; its mesh descriptor is fetched and must be signed by a key the record
 * names; the routes are what that document advertises. Every fetch goes through the SSRF guard.
 */
import { checkDocument } from "../discovery/index.ts";
import { parseJson } from "../json/index.ts";
import { guardedGet, PrivateAddressError } from "../net/index.ts";
import { verifyProofV1, verifyProofV2 } from "../registry/proof.ts";
import { checkRecord, type RegistryRecord } from "../registry/record.ts";
import { contentDigest, registrarOf } from "../registry/rules.ts";

export interface Routes {
  /** The federation relay (POST, EdDSA tokens): federationEndpoints.relay. */
  federationRelay: string | null;
  /** A gateway in front of the agent: roles.gateway. */
  gateway: { url: string; jsonRpcUrl: string } | null;
  /** The agent's own A2A endpoints: the document's `a2a`. */
  a2a: { agentCardUrl?: string; jsonRpcUrl?: string; publicJsonRpcUrl?: string } | null;
  registry: string | null;
  wan: unknown;
}

/** What was proven on the way to a route (told to the caller with the route). */
export interface Verified {
  /** `v2`: the whole record, signed by its author. `v1`: the reference's proof (four fields, consistency only), taken because the operator trusts that registry. */
  record: "v2" | "v1";
  /** `signed`: the descriptor is signed by a key the record lists. `unsigned`: a stock document, trusted for its origin only (proof v1 policy). */
  descriptor: "signed" | "unsigned";
}

export interface Resolution {
  handle: string;
  record: { registry: string; seq: number | null; updatedAt: string; signerPublicKeyHex: string; countersignedBy: string | null };
  verified: Verified;
  descriptor: { url: string; kid: string; publicKeyHex: string; instanceOrigin: string };
  routes: Routes;
  /** Candidates that were not used, and why. */
  refused: { source: string; reason: string }[];
  /** Registries with a valid record other than the one used. */
  disagreements: { registry: string; seq: number | null; updatedAt: string }[];
  /** Until when this result may be reused (the record's TTL and the document's max-age). */
  expiresAt: number;
}

export type ResolveResult = { ok: true; value: Resolution } | { ok: false; reason: string; refused: { source: string; reason: string }[]; unreachable: boolean };

export interface ResolveOptions {
  registries: string[];
  /**
   * Registries (of `registries`) whose records with only the reference's proof v1 are taken:
   * v1 signs four fields with a key the record itself carries, so it proves consistency, not
   * authorship; trusting it is trusting that registry. Their descriptors may be unsigned (stock
   * Pilox signs none), then checked for their origin only. Off by default.
   */
  acceptProofV1From?: string[];
  allowPrivate?: boolean;
  timeoutMs?: number;
  now?: number;
}

async function getJson(url: string, o: ResolveOptions): Promise<{ status: number; json: unknown; maxAge: number | null }> {
  const r = await guardedGet(url, { allowPrivate: o.allowPrivate ?? false, timeoutMs: o.timeoutMs ?? 5_000, maxBytes: 256 * 1024 });
  const j = parseJson(r.body || "null", 32);
  const m = /max-age=(\d{1,9})/.exec(String(r.headers["cache-control"] ?? ""));
  return { status: r.status, json: j.ok ? j.value : undefined, maxAge: m ? Number(m[1]) : null };
}

type Candidate = { registry: string; rec: RegistryRecord; seq: number | null; signer: string; proof: "v1" | "v2" };

const bareUrl = (u: string) => u.replace(/\/+$/, "");

async function fromRegistry(base: string, handle: string, o: ResolveOptions): Promise<Candidate | { registry: string; reason: string; unreachable?: boolean }> {
  const registry = base.replace(/\/+$/, "");
  let r: { status: number; json: unknown };
  try {
    r = await getJson(`${registry}/v1/records/${encodeURIComponent(handle)}`, o);
  } catch (err) {
    if (err instanceof PrivateAddressError) return { registry, reason: privateRefusal(err) };
    return { registry, reason: `unreachable: ${(err as Error).message}`, unreachable: true };
  }
  if (r.status === 404) return { registry, reason: "not_found" };
  if (r.status === 410) return { registry, reason: "record_expired" };
  if (r.status !== 200) return { registry, reason: `answered ${r.status}` };
  const check = checkRecord(r.json);
  if (!check.ok) return { registry, reason: `invalid_record: ${check.instancePath}: ${check.message}` };
  const rec = check.record;
  if (rec.handle !== handle) return { registry, reason: "another handle" };
  if (rec.validUntil && Date.parse(rec.validUntil) <= (o.now ?? Date.now())) return { registry, reason: "record_expired" };
  const v1 = verifyProofV1(rec);
  if (!v1.ok) return { registry, reason: v1.reason };
  const v2 = verifyProofV2(rec);
  if (!v2.ok) return { registry, reason: v2.reason };
  if (v2.signed) return { registry, rec, seq: v2.seq ?? null, signer: v2.publicKeyHex!, proof: "v2" };
  const v1Trusted = (o.acceptProofV1From ?? []).map(bareUrl).includes(registry);
  if (v1Trusted && v1.signed) return { registry, rec, seq: null, signer: v1.publicKeyHex!, proof: "v1" };
  if (v1Trusted) return { registry, reason: "unsigned: neither proof v1 nor proof v2" };
  return {
    registry,
    reason: v1.signed
      ? "proof_v1_only: the record has the reference's proof v1 (consistency, not authorship) and no proof v2; to take v1 from this registry, trust it with resolve --accept-proof-v1 or gateway.accept_proof_v1_from"
      : "unsigned: no proof v2, so no author to check the descriptor against",
  };
}

export async function resolveHandle(handle: string, o: ResolveOptions): Promise<ResolveResult> {
  const refused: { source: string; reason: string }[] = [];
  if (o.registries.length === 0) return { ok: false, reason: "no registry to ask", refused, unreachable: false };
  const answers = await Promise.all(o.registries.map((r) => fromRegistry(r, handle, o)));
  const valid: Candidate[] = [];
  for (const a of answers) {
    if ("rec" in a) valid.push(a);
    else refused.push({ source: a.registry, reason: a.reason });
  }
  const unreachable = answers.every((a) => "unreachable" in a && a.unreachable);
  if (valid.length === 0) return { ok: false, reason: "no registry has a valid record", refused, unreachable };
  const now = o.now ?? Date.now();

  for (const cand of valid) {
    const rec = cand.rec;
    const descriptorUrl = rec.meshDescriptorUrl;
    if (!descriptorUrl) {
      refused.push({ source: cand.registry, reason: "the record has no meshDescriptorUrl" });
      continue;
    }
    let doc: { status: number; json: unknown; maxAge: number | null };
    try {
      doc = await getJson(descriptorUrl, o);
    } catch (err) {
      refused.push({ source: descriptorUrl, reason: err instanceof PrivateAddressError ? privateRefusal(err) : `unreachable: ${(err as Error).message}` });
      continue;
    }
    if (doc.status !== 200) {
      refused.push({ source: descriptorUrl, reason: `answered ${doc.status}` });
      continue;
    }
    const c = checkDocument(doc.json);
    let descriptorKey: { kid: string; publicKeyHex: string };
    let descriptor: Verified["descriptor"] = "signed";
    if (c.ok) descriptorKey = c;
    else if (cand.proof === "v1" && c.unsigned && sameOrigin(doc.json, descriptorUrl)) {
      // Stock Pilox signs no descriptor: under the v1 policy it stands for its own origin only.
      descriptor = "unsigned";
      descriptorKey = { kid: "", publicKeyHex: "" };
    } else {
      refused.push({ source: descriptorUrl, reason: `descriptor: ${c.reason}` });
      continue;
    }
    // The document must be signed by a key the record's author holds: the record's signing
    // key, or another key the record lists.
    const recordKeys = (rec.publicKeys?.ed25519 ?? []).map((k) => k.publicKeyHex.toLowerCase());
    if (descriptor === "signed" && !recordKeys.includes(descriptorKey.publicKeyHex)) {
      refused.push({ source: descriptorUrl, reason: "descriptor_key_mismatch: the document is signed by a key the record does not list" });
      continue;
    }
    const d = doc.json as Record<string, any>;
    const disagreements = valid
      .filter((x) => x !== cand && contentDigest(x.rec) !== contentDigest(rec))
      .map((x) => ({ registry: x.registry, seq: x.seq, updatedAt: x.rec.updatedAt }));
    const ttl = (rec.ttlSecondsRecommended ?? 60) * 1000;
    const roles = d["roles"] as { gateway?: { url?: string; jsonRpcUrl?: string } | null; registry?: { url?: string } | null; wan?: unknown } | undefined;
    const value: Resolution = {
      handle,
      record: { registry: cand.registry, seq: cand.seq, updatedAt: rec.updatedAt, signerPublicKeyHex: cand.signer, countersignedBy: registrarOf(rec) ?? null },
      verified: { record: cand.proof, descriptor },
      descriptor: { url: descriptorUrl, kid: descriptorKey.kid, publicKeyHex: descriptorKey.publicKeyHex, instanceOrigin: String(d["instanceOrigin"] ?? "") },
      routes: {
        federationRelay: typeof d["federationEndpoints"]?.relay === "string" ? d["federationEndpoints"].relay : null,
        gateway: roles?.gateway?.url && roles.gateway.jsonRpcUrl ? { url: roles.gateway.url, jsonRpcUrl: roles.gateway.jsonRpcUrl } : null,
        a2a: d["a2a"] && typeof d["a2a"] === "object" ? d["a2a"] : null,
        registry: roles?.registry?.url ?? null,
        wan: roles?.wan ?? null,
      },
      refused,
      disagreements,
      expiresAt: now + Math.min(ttl, (doc.maxAge ?? 120) * 1000),
    };
    return { ok: true, value };
  }
  return { ok: false, reason: "no candidate's descriptor verifies", refused, unreachable: false };
}

/** Which guard refused, and how an operator allows it (a LAN deployment). */
function privateRefusal(err: Error): string {
  return `refused_private_address: ${err.message}; the SSRF guard refuses private, loopback and link-local targets (allow them with resolve --allow-private, or gateway.resolve_allow_private)`;
}

/** An unsigned descriptor names the origin it was fetched from (nothing else vouches for it). */
function sameOrigin(doc: unknown, url: string): boolean {
  try {
    return new URL(String((doc as { instanceOrigin?: unknown })?.instanceOrigin)).origin === new URL(url).origin;
  } catch {
    return false;
  }
}

/** Resolutions kept until they expire; bounded. */
export class ResolveCache {
  readonly #m = new Map<string, Resolution>();
  constructor(private readonly max = 10_000) {}

  async resolve(handle: string, o: ResolveOptions): Promise<ResolveResult & { cached?: boolean }> {
    const now = o.now ?? Date.now();
    const hit = this.#m.get(handle);
    if (hit && hit.expiresAt > now) return { ok: true, value: hit, cached: true };
    const r = await resolveHandle(handle, o);
    if (r.ok) {
      if (this.#m.size >= this.max) {
        let n = Math.max(1, this.max >> 2);
        for (const k of this.#m.keys()) {
          if (n-- <= 0) break;
          this.#m.delete(k);
        }
      }
      this.#m.set(handle, r.value);
    }
    return r;
  }

  get size(): number {
    return this.#m.size;
  }
}
