/**
 * Turning the configuration's secret file paths into the secrets themselves. Kept apart from
 * loading so check-config and reload can validate secrets without starting anything.
 */
import { join } from "node:path";
import { KeyRing, type BusKey } from "../bus/keyring.ts";
import { ConfigError, type ConfigProblem } from "./errors.ts";
import type { LoadedConfig } from "./load.ts";
import { originOf } from "./merge.ts";
import { ensureSecretFile, readSecretFile, SecretFileError } from "../secrets/index.ts";
import { existsSync, readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { readKeyFile, readOrCreateKeyFile, type Ed25519Key } from "../identity/index.ts";

export interface Secrets {
  ring: KeyRing;
  redisPassword?: string;
  sentinelPassword?: string;
  /** CA and client certificate for a rediss:// server. */
  redisTls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  apiToken?: Buffer;
  /** Bearer token for registry writes (registry.write_token_file). */
  registryWriteToken?: Buffer;
  /** The gateway's upstream secret and TLS client material (gateway.upstream_*). */
  gatewaySecret?: Buffer;
  gatewayTls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** The shared registry store's password and CA (registry.postgres). */
  registryPgPassword?: string;
  registryPgCa?: Buffer;
  metricsToken?: Buffer;
  /** How the WAN role authenticates to NATS (wan.*_file), only when wan.nats_urls is set. */
  wan?: WanSecrets;
  /** PEM certificate chain and private key of the public listener. */
  tls?: { cert: Buffer; key: Buffer };
  /** The shared HS256 federation secret, only when federation.hs256.enabled. */
  hs256Secret?: Buffer;
  /** The instance's Ed25519 identity (current), and the next one when rotation is staged. */
  identity?: Ed25519Key;
  nextIdentity?: Ed25519Key;
}

export interface WanSecrets {
  /** Bearer token of the bridge-compatible POST /v1/publish (wan.pilox.publish_token_file). */
  publishToken?: Buffer;
  creds?: Buffer;
  nkeySeed?: Buffer;
  token?: Buffer;
  user?: string;
  password?: string;
  tls?: { ca?: string; cert?: string; key?: string };
}

/** The key the embedded bus uses when no [[bus.keys]] are configured. */
export function autoBusKeyPath(stateDir: string): string {
  return join(stateDir, "bus.key");
}

/**
 * Reads every secret file. `create` allows generating the embedded bus's own key on first
 * start (check-config passes false and only reports).
 */
export function resolveSecrets({ config: c, origin }: LoadedConfig, create: boolean): Secrets {
  const problems: ConfigProblem[] = [];
  const read = (key: string, file: string): Buffer | undefined => {
    try {
      return readSecretFile(file);
    } catch (err) {
      if (!(err instanceof SecretFileError)) throw err;
      problems.push({ file: originOf(origin, key.replace(/\[(\d+)\]/g, ".$1")), key, message: err.message });
      return undefined;
    }
  };
  /** A file that is not secret (a certificate): any mode, an error naming the key if unreadable. */
  const readPublic = (key: string, file: string): Buffer | undefined => {
    try {
      return readFileSync(file);
    } catch (err) {
      problems.push({ file: originOf(origin, key), key, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code}` });
      return undefined;
    }
  };

  const keys: BusKey[] = [];
  let primaryId: string | undefined;
  if (c.bus.keys.length === 0) {
    const file = autoBusKeyPath(c.node.state_dir);
    if (create) ensureSecretFile(file);
    const secret = create ? read("bus.keys (generated)", file) : undefined;
    if (secret) keys.push({ id: "local", secret });
  } else {
    c.bus.keys.forEach((k, i) => {
      const secret = read(`bus.keys[${i}].secret_file`, k.secret_file);
      if (!secret) return;
      if (secret.length < 32) {
        problems.push({ file: originOf(origin, `bus.keys.${i}`), key: `bus.keys[${i}].secret_file`, message: `${k.secret_file}: a bus secret is at least 32 bytes` });
        return;
      }
      keys.push({ id: k.id, secret });
      if (k.primary) primaryId = k.id;
    });
  }
  const out: Partial<Secrets> = {};
  if (c.bus.redis.password_file) {
    const p = read("bus.redis.password_file", c.bus.redis.password_file);
    if (p) out.redisPassword = p.toString("utf8");
  }
  const rt = c.bus.redis;
  if (rt.tls_ca_file || rt.tls_cert_file) {
    const tls: NonNullable<Secrets["redisTls"]> = {};
    if (rt.tls_ca_file) {
      const ca = readPublic("bus.redis.tls_ca_file", rt.tls_ca_file);
      if (ca) tls.ca = ca;
    }
    if (rt.tls_cert_file && rt.tls_key_file) {
      const cert = readPublic("bus.redis.tls_cert_file", rt.tls_cert_file);
      const key = read("bus.redis.tls_key_file", rt.tls_key_file);
      if (cert && key) {
        tls.cert = cert;
        tls.key = key;
      }
    }
    try {
      createSecureContext(tls);
      out.redisTls = tls;
    } catch (err) {
      problems.push({ file: originOf(origin, "bus.redis.tls_ca_file"), key: "bus.redis.tls_ca_file", message: `the Redis TLS files do not make a TLS context: ${(err as Error).message}` });
    }
  }
  if (c.bus.redis.sentinel_password_file) {
    const p = read("bus.redis.sentinel_password_file", c.bus.redis.sentinel_password_file);
    if (p) out.sentinelPassword = p.toString("utf8");
  }
  if (c.api.token_file) {
    const t = read("api.token_file", c.api.token_file);
    if (t && t.length < 16) problems.push({ key: "api.token_file", file: originOf(origin, "api.token_file"), message: `${c.api.token_file}: a token is at least 16 bytes` });
    else if (t) out.apiToken = t;
  }
  if (c.registry.write_token_file) {
    const t = read("registry.write_token_file", c.registry.write_token_file);
    if (t && t.length < 16) problems.push({ key: "registry.write_token_file", file: originOf(origin, "registry.write_token_file"), message: `${c.registry.write_token_file}: a token is at least 16 bytes` });
    else if (t) out.registryWriteToken = t;
  }
  const g = c.gateway;
  if (g.upstream_secret_file) {
    const t = read("gateway.upstream_secret_file", g.upstream_secret_file);
    if (t && t.length < 16) problems.push({ key: "gateway.upstream_secret_file", file: originOf(origin, "gateway.upstream_secret_file"), message: `${g.upstream_secret_file}: a secret is at least 16 bytes` });
    else if (t) out.gatewaySecret = t;
  }
  if (g.upstream_tls_ca_file || g.upstream_tls_cert_file || g.upstream_tls_key_file) {
    const tls: NonNullable<Secrets["gatewayTls"]> = {};
    if (g.upstream_tls_ca_file) {
      const ca = readPublic("gateway.upstream_tls_ca_file", g.upstream_tls_ca_file);
      if (ca) tls.ca = ca;
    }
    if (Boolean(g.upstream_tls_cert_file) !== Boolean(g.upstream_tls_key_file)) {
      problems.push({ key: "gateway.upstream_tls_cert_file", file: originOf(origin, "gateway.upstream_tls_cert_file"), message: "a client certificate needs both upstream_tls_cert_file and upstream_tls_key_file" });
    } else if (g.upstream_tls_cert_file) {
      const cert = readPublic("gateway.upstream_tls_cert_file", g.upstream_tls_cert_file);
      const key = read("gateway.upstream_tls_key_file", g.upstream_tls_key_file);
      if (cert && key) {
        tls.cert = cert;
        tls.key = key;
      }
    }
    out.gatewayTls = tls;
  }
  if (c.registry.postgres.password_file) {
    const p = read("registry.postgres.password_file", c.registry.postgres.password_file);
    if (p) out.registryPgPassword = p.toString("utf8");
  }
  if (c.registry.postgres.tls_ca_file) {
    const ca = readPublic("registry.postgres.tls_ca_file", c.registry.postgres.tls_ca_file);
    if (ca) out.registryPgCa = ca;
  }
  if (c.http.metrics_token_file) {
    const t = read("http.metrics_token_file", c.http.metrics_token_file);
    if (t && t.length < 16) problems.push({ key: "http.metrics_token_file", file: originOf(origin, "http.metrics_token_file"), message: `${c.http.metrics_token_file}: a token is at least 16 bytes` });
    else if (t) out.metricsToken = t;
  }
  const w = c.wan;
  if (w.nats_urls.length > 0) {
    const ws: WanSecrets = {};
    if (w.creds_file) {
      const b = read("wan.creds_file", w.creds_file);
      if (b) ws.creds = b;
    }
    if (w.nkey_seed_file) {
      const b = read("wan.nkey_seed_file", w.nkey_seed_file);
      if (b && !/^SU[A-Z2-7]{54,56}$/.test(b.toString("utf8").trim())) problems.push({ key: "wan.nkey_seed_file", file: originOf(origin, "wan.nkey_seed_file"), message: `${w.nkey_seed_file}: not a user nkey seed (SU…)` });
      else if (b) ws.nkeySeed = Buffer.from(b.toString("utf8").trim());
    }
    if (w.token_file) {
      const b = read("wan.token_file", w.token_file);
      if (b) ws.token = b;
    }
    if (w.user && w.password_file) {
      const b = read("wan.password_file", w.password_file);
      if (b) {
        ws.user = w.user;
        ws.password = b.toString("utf8");
      }
    }
    if (w.tls_ca_file || w.tls_cert_file) {
      const tls: NonNullable<WanSecrets["tls"]> = {};
      if (w.tls_ca_file) {
        const ca = readPublic("wan.tls_ca_file", w.tls_ca_file);
        if (ca) tls.ca = ca.toString("utf8");
      }
      if (w.tls_cert_file && w.tls_key_file) {
        const cert = readPublic("wan.tls_cert_file", w.tls_cert_file);
        const key = read("wan.tls_key_file", w.tls_key_file);
        if (cert && key) {
          tls.cert = cert.toString("utf8");
          tls.key = key.toString("utf8");
        }
      }
      ws.tls = tls;
    }
    if (w.pilox.publish_token_file) {
      const t = read("wan.pilox.publish_token_file", w.pilox.publish_token_file);
      if (t && t.length < 16) problems.push({ key: "wan.pilox.publish_token_file", file: originOf(origin, "wan.pilox.publish_token_file"), message: `${w.pilox.publish_token_file}: a token is at least 16 bytes` });
      else if (t) ws.publishToken = t;
    }
    out.wan = ws;
  }
  if (c.http.tls_cert_file && c.http.tls_key_file) {
    const key = read("http.tls_key_file", c.http.tls_key_file);
    const cert = readPublic("http.tls_cert_file", c.http.tls_cert_file);
    if (key && cert) {
      try {
        createSecureContext({ cert, key });
        out.tls = { cert, key };
      } catch (err) {
        problems.push({ file: originOf(origin, "http.tls_cert_file"), key: "http.tls_cert_file", message: `certificate and key do not make a TLS context: ${(err as Error).message}` });
      }
    }
  }
  if (c.federation.hs256.enabled && c.federation.hs256.secret_file) {
    const h = read("federation.hs256.secret_file", c.federation.hs256.secret_file);
    if (h && h.length < 32) problems.push({ key: "federation.hs256.secret_file", file: originOf(origin, "federation.hs256.secret_file"), message: "an HS256 secret is at least 32 bytes" });
    else if (h) out.hs256Secret = h;
  }
  const identity = (key: string, file: string, mayCreate: boolean): Ed25519Key | undefined => {
    try {
      return mayCreate ? readOrCreateKeyFile(file) : existsSync(file) ? readKeyFile(file) : undefined;
    } catch (err) {
      problems.push({ file: originOf(origin, key), key, message: (err as Error).message });
      return undefined;
    }
  };
  const id = identity("instance.key_file", c.instance.key_file, create);
  if (id) out.identity = id;
  if (c.instance.next_key_file) {
    const next = identity("instance.next_key_file", c.instance.next_key_file, false);
    if (next) out.nextIdentity = next;
    else if (!problems.some((p) => p.key === "instance.next_key_file")) {
      problems.push({ file: originOf(origin, "instance.next_key_file"), key: "instance.next_key_file", message: `${c.instance.next_key_file} does not exist (create it with pilox-mesh keygen)` });
    }
  }
  if (problems.length) throw new ConfigError(problems);
  if (keys.length === 0) {
    // check-config without a generated key yet: a throwaway ring keeps the shape valid.
    return { ...out, ring: new KeyRing([{ id: "local", secret: Buffer.alloc(32, 1) }]) };
  }
  return { ...out, ring: new KeyRing(keys, primaryId) };
}

/**
 * What an operator should hear about the instance keys: a rotation finished literally (the next
 * key made current, next_key_file still set to it) publishes current = next in the discovery
 * document, which reads as a rotation in progress that never ends.
 */
export function keyWarnings(s: Pick<Secrets, "identity" | "nextIdentity">): string[] {
  if (s.identity && s.nextIdentity && s.identity.publicKeyHex === s.nextIdentity.publicKeyHex) {
    return ["instance.next_key_file holds the current key (instance.key_file): the rotation is done; clear next_key_file and reload"];
  }
  return [];
}
