/**
 * The discovery document, GET /.well-known/pilox-mesh.json: every field of the Pilox v1
 * descriptor (wire-v1 §4) filled from the running state, plus our own top-level keys (instance
 * keys with kids, token policy, manifest, endpoints) and a detached Ed25519 signature over
 * canon(document without `documentSignature`), so a peer that pinned our key can check it.
 */
import { createHash } from "node:crypto";
import { canonicalize } from "../canon/index.ts";
import { peerId } from "./site-id.ts";
import type { Config } from "../config/index.ts";
import { signHex, type Ed25519Key } from "../identity/index.ts";

export const DISCOVERY_PATH = "/.well-known/pilox-mesh.json";
/** The `hive-` family's path (Pilox's own docs and schema name it so). */
export const HIVE_DISCOVERY_PATH = "/.well-known/hive-mesh.json";
export const KEYS_PATH = "/.well-known/pilox-mesh/keys.json";
export const SIGNATURE_FIELD = "documentSignature";

export interface DiscoveryState {
  config: Config;
  identity: Ed25519Key;
  nextIdentity?: Ed25519Key;
  /** Whether peers are configured (the relay then runs). */
  federationActive?: boolean;
  /** The roster's public summary (the reference's `federation.wanMesh`), while federation is on. */
  wanMesh?: WanMeshSummary;
}

/** The reference's `federation.wanMesh`: coarse, with no raw error text. */
export interface WanMeshSummary {
  publicDescriptorPath: string;
  maxPeers: number;
  signedManifestConfigured: boolean;
  staticPeerCount: number;
  manifestPeerCount: number;
  manifestLastSyncOk: boolean | null;
  manifestIssueCategory: "fetch" | "verify" | "size" | "protocol" | "unknown" | null;
}

/** Public, secret-free federation status (GET /v1/federation/status on the public listener). */
export const PUBLIC_STATUS_PATH = "/v1/federation/status";

const MESH_V2 = "2.10.0";
const phaseOf = (active: boolean) => (active ? "2.1-transport" : "2.0-config");

/** The body of PUBLIC_STATUS_PATH: the document's federation phase and counts, nothing more. */
export function buildPublicStatus(active: boolean, wanMesh: WanMeshSummary | undefined): Record<string, unknown> {
  return { meshV2: MESH_V2, enabled: active, phase: phaseOf(active), transportActive: active, wanMesh: active && wanMesh ? wanMesh : null };
}

const keyEntry = (k: Ed25519Key) => ({ kid: k.kid, alg: "Ed25519", publicKeyHex: k.publicKeyHex });

export function buildDocument(s: DiscoveryState): Record<string, unknown> {
  const c = s.config;
  const origin = c.instance.origin;
  const wan = c.wan.nats_urls.length
    ? {
        subjectPrefix: c.wan.subject_prefix,
        stream: c.wan.stream,
        siteId: peerId(origin),
        // Frames for this site are published on <subjectPrefix>.<siteId>.<sender's siteId>.
        subjectTemplate: `${c.wan.subject_prefix}.{dst}.{src}`,
        frame: "pilox-mesh-wan-frame-v1",
        acceptedTransports: ["relay", "wan"],
      }
    : null;
  const doc: Record<string, unknown> = {
    schema: "pilox-mesh-descriptor-v1",
    meshV2: MESH_V2,
    planetaryReferenceVersion: "1.3.1",
    instanceOrigin: origin,
    // The agent this site fronts ([discovery] a2a_*): what a handle's resolution routes to.
    a2aEnabled: Boolean(c.discovery.a2a_agent_card_url && c.discovery.a2a_json_rpc_url),
    a2a:
      c.discovery.a2a_agent_card_url && c.discovery.a2a_json_rpc_url
        ? { agentCardUrl: c.discovery.a2a_agent_card_url, jsonRpcUrl: c.discovery.a2a_json_rpc_url, ...(c.discovery.a2a_public_json_rpc_url ? { publicJsonRpcUrl: c.discovery.a2a_public_json_rpc_url } : {}) }
        : null,
    federation: {
      enabled: s.federationActive === true,
      phase: phaseOf(s.federationActive === true),
      transportActive: s.federationActive === true,
      jwtAlg: s.federationActive ? "Ed25519" : null,
      localEd25519PublicKeyHex: s.identity.publicKeyHex,
      // We serve no peer directory (the reference's is its own): null, as the reference sends
      // when it has none. The status URL is served on the public listener.
      directoryUrl: null,
      federationStatusUrl: origin + PUBLIC_STATUS_PATH,
      wanMesh: s.federationActive && s.wanMesh ? s.wanMesh : null,
    },
    publicMesh: {
      bootstrapMeshDescriptorUrls: c.discovery.bootstrap_urls,
      ...(c.discovery.dht_hints.length ? { dhtBootstrapHints: c.discovery.dht_hints } : {}),
    },
    // Ours (new top-level keys; the Pilox fields above keep their types).
    instanceKeys: {
      current: keyEntry(s.identity),
      next: s.nextIdentity ? keyEntry(s.nextIdentity) : null,
      keysUrl: origin + KEYS_PATH,
    },
    tokenPolicy: {
      algorithms: ["EdDSA"],
      defaultLifetimeSeconds: c.federation.token_lifetime_seconds,
      maxLifetimeSeconds: c.federation.max_token_lifetime_seconds,
      leewaySeconds: c.federation.leeway_seconds,
      replayProtection: "jti-once-per-issuer",
    },
    signedManifest: c.federation.manifest.url
      ? { url: c.federation.manifest.url, signerPublicKeysHex: c.federation.manifest.signer_public_keys.map((k) => k.toLowerCase()), antiRollback: "manifestExt.seq" }
      : null,
    // The roles this instance runs and where (so a resolver can route to them).
    roles: {
      registry: c.registry.enabled ? { url: origin, api: "pilox-registry-v1" } : null,
      gateway: c.gateway.enabled ? { url: origin, jsonRpcUrl: origin + "/v1/a2a/jsonrpc", handleJsonRpcUrlTemplate: origin + "/v1/a2a/{handle}/jsonrpc" } : null,
      wan: wan ? { subjectPrefix: wan.subjectPrefix, stream: wan.stream, siteId: wan.siteId } : null,
    },
    // How this site is reached over NATS JetStream (null: the HTTPS relay only).
    wan,
    federationEndpoints: s.federationActive
      ? { relay: origin + "/v1/federation/relay", tokenHeader: "X-Pilox-Federation-JWT", bodyBinding: "body_sha256", maxBodyBytes: c.federation.max_body_bytes }
      : null,
  };
  return signDocument(doc, s.identity);
}

/**
 * The same descriptor for the `hive-` family (GET /.well-known/hive-mesh.json): exactly what the
 * reference's `hive-mesh-descriptor-v1` schema allows (no other top-level keys, `a2a` and
 * `publicMesh` closed). Our own fields go where that schema allows extra keys, under
 * `federation.piloxMesh`: where the full signed document and the keys are.
 */
export function hiveDocument(full: Record<string, unknown>): Record<string, unknown> {
  const origin = String(full["instanceOrigin"]);
  const a2a = full["a2a"] as { agentCardUrl?: string; jsonRpcUrl?: string } | null;
  const pm = full["publicMesh"] as { bootstrapMeshDescriptorUrls: string[]; dhtBootstrapHints?: string[] };
  return {
    schema: "hive-mesh-descriptor-v1",
    meshV2: full["meshV2"],
    planetaryReferenceVersion: full["planetaryReferenceVersion"],
    instanceOrigin: origin,
    a2aEnabled: full["a2aEnabled"],
    a2a: a2a && a2a.agentCardUrl && a2a.jsonRpcUrl ? { agentCardUrl: a2a.agentCardUrl, jsonRpcUrl: a2a.jsonRpcUrl } : null,
    federation: {
      ...(full["federation"] as Record<string, unknown>),
      piloxMesh: { descriptorUrl: origin + DISCOVERY_PATH, keysUrl: origin + KEYS_PATH, signed: true },
    },
    publicMesh: { bootstrapMeshDescriptorUrls: pm.bootstrapMeshDescriptorUrls, ...(pm.dhtBootstrapHints ? { dhtBootstrapHints: pm.dhtBootstrapHints } : {}) },
  };
}

export function signDocument(doc: Record<string, unknown>, key: Ed25519Key): Record<string, unknown> {
  const { [SIGNATURE_FIELD]: _drop, ...body } = doc;
  return {
    ...body,
    [SIGNATURE_FIELD]: { alg: "Ed25519", kid: key.kid, covers: "canon(document without documentSignature)", sigHex: signHex(key, canonicalize(body)) },
  };
}

/** JWKS (RFC 7517/8037) of the instance keys, current first. */
export function buildJwks(s: DiscoveryState): { keys: Record<string, string>[] } {
  const jwk = (k: Ed25519Key, use: string) => ({
    kty: "OKP",
    crv: "Ed25519",
    x: Buffer.from(k.publicKeyHex, "hex").toString("base64url"),
    kid: k.kid,
    alg: "EdDSA",
    use,
  });
  return { keys: [jwk(s.identity, "sig"), ...(s.nextIdentity ? [jwk(s.nextIdentity, "sig")] : [])] };
}

/** The bytes served and their strong ETag, computed once per state change. */
export function rendered(body: unknown): { text: string; etag: string } {
  const text = JSON.stringify(body);
  return { text, etag: `"${createHash("sha256").update(text).digest("base64url").slice(0, 32)}"` };
}
