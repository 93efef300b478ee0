/**
 * The registry role on the public listener (`[registry] enabled = true`): the reference's
 * registry API (wire-v1 §7: paths, statuses, error codes, weak ETags) over a RecordStore, with
 * our rules (rules.ts), a countersignature on what we accept, signed catalogs, and a change
 * feed (`GET /v1/records?since=CURSOR`) for peers.
 */
import { Hono, type Context } from "hono";
import { createHash } from "node:crypto";
import { bearerMatches } from "../secrets/index.ts";
import { canonicalize } from "../canon/index.ts";
import type { Ed25519Key } from "../identity/index.ts";
import { parseJson } from "../json/index.ts";
import { BodyTooLargeError, readBounded } from "../net/index.ts";
import type { Logger } from "../log/index.ts";
import { signCatalog, type CatalogEntry } from "./catalog.ts";
import { signFeed } from "./feed.ts";
import { RECORD_SCHEMA, type RegistryRecord } from "./record.ts";
import { originRefusal } from "./origin-check.ts";
import { verifyProofV2 } from "./proof.ts";
import { contentDigest, countersign, decideRecord, decideTombstone, signTombstone, type WritePolicy } from "./rules.ts";
import { QuotaExceeded, type Quota, type QuotaLimit } from "./quota.ts";
import { StoreUnavailableError, type Entry, type RecordStore, type Tombstone } from "./store.ts";

export interface RegistryOptions {
  store: RecordStore;
  /** Signs catalogs, countersignatures and operator deletes. */
  key: () => Ed25519Key;
  origin: () => string;
  writeToken: () => Buffer | undefined;
  requireProof: () => boolean;
  maxFutureSkewMs: () => number;
  tombstoneRetentionMs: () => number;
  /** Keys of registries whose signed deletes we honour (peers' pinned keys) besides ours. */
  registryKeys: () => string[];
  /** registry.verify_origin: the record's origin must list its signing key. */
  verifyOrigin: () => { enabled: boolean; allowPrivate: boolean };
  /** Which family's catalog proof goes in `catalogProof` (registry.catalog_proof). */
  catalogFamily: () => "hive" | "pilox";
  /** The largest request body (registry.max_body_bytes). */
  maxBodyBytes: () => number;
  /** How much may be stored, in all and per writer key (registry.max_*). */
  quota: () => Quota;
  /** A write refused by a quota, by the limit it would have passed. */
  onQuota?: (limit: QuotaLimit) => void;
  log: Logger;
}

export const CHANGES_MAX = 1_000;
/** Bodies in one change-feed page at most (a page always holds at least one entry). */
export const CHANGES_MAX_BYTES = 4 * 1024 * 1024;
/** Catalog rows read from the store at a time: the catalog never holds a record body. */
const CATALOG_PAGE = 1_000;
const CATALOG_VALIDITY_MS = 10 * 60_000;
/** A catalog is re-read from the store at most this often while nothing was written. */
const CATALOG_REUSE_MS = 5_000;

type Refusal = { ok: false; status: number; code: string; reason: string };

const err = (c: Context, status: number, error: string, extra: Record<string, unknown> = {}) => c.json({ error, ...extra }, status as 400);

/** The reference's ETag: W/"<32 hex of sha256(canon(stored record))>". */
export function etagOf(body: unknown): string {
  return `W/"${createHash("sha256").update(canonicalize(body)).digest("hex").slice(0, 32)}"`;
}

/** If-None-Match / If-Match: comma-separated, W/ and quotes stripped, case-insensitive, * matches. */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = (t: string) => t.trim().replace(/^W\//i, "").replace(/^"|"$/g, "").toLowerCase();
  const want = bare(etag);
  return header.split(",").some((t) => t.trim() === "*" || bare(t) === want);
}

/** No handle or URL we store or look up holds a control character (PostgreSQL refuses NUL in text). */
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The stored-and-looked-up field of a record holding a control character, if any: checked
 * before any store lookup (the rules refuse it too, but only after the lookup they need).
 */
function controlField(rec: unknown): "handle" | "agentCardUrl" | undefined {
  for (const field of ["handle", "agentCardUrl"] as const) {
    const v = (rec as Record<string, unknown>)[field];
    if (typeof v === "string" && CONTROL.test(v)) return field;
  }
  return undefined;
}

/** The handle from the path: URL-encoded, or with its slashes as they are. */
function handleOf(c: Context): string | undefined {
  const raw = c.req.path.slice("/v1/records/".length);
  try {
    const h = decodeURIComponent(raw);
    return h.length >= 1 && h.length <= 512 && !CONTROL.test(h) ? h : undefined;
  } catch {
    return undefined;
  }
}

export class RegistryService {
  /** The last catalog built, with the store head it was read at (reused briefly, built once at a time). */
  #catalog: { head: number; at: number; body: Promise<Record<string, unknown>> } | undefined;

  constructor(readonly o: RegistryOptions) {}

  #quotaRefusal(q: QuotaExceeded): Refusal {
    this.o.onQuota?.(q.limit);
    this.o.log.limited(`registry-quota-${q.limit}`, "warn", "registry write refused: storage limit reached", { limit: q.limit, detail: q.detail });
    return { ok: false, status: 403, code: "quota_exceeded", reason: q.detail };
  }

  #authorized(c: Context): boolean | "disabled" {
    const token = this.o.writeToken();
    if (!token) return "disabled";
    return bearerMatches(c.req.header("authorization"), token);
  }

  #policy(merge = false, acceptV1 = false): WritePolicy {
    return { requireProof: this.o.requireProof(), maxFutureSkewMs: this.o.maxFutureSkewMs(), now: Date.now(), merge, acceptV1 };
  }

  /**
   * Applies a record (POST or merge): decided by the rules, countersigned, written conditionally.
   * `acceptV1`: merged from a peer speaking the reference's protocol (see WritePolicy).
   * `digest`: contentDigest(rec), when the caller already computed it (sync does).
   */
  async accept(rec: RegistryRecord, merge = false, acceptV1 = false, digest?: string): Promise<{ ok: true; entry: Entry } | Refusal> {
    const bad = controlField(rec);
    if (bad) return { ok: false, status: 400, code: "invalid_record", reason: `${bad}: holds a control character` };
    for (let attempt = 0; attempt < 3; attempt++) {
      // No store lookup for a malformed handle: the rules refuse it with a 400, not the store a 500.
      const current = typeof rec.handle === "string" ? await this.o.store.get(rec.handle) : undefined;
      const d = decideRecord(current, rec, this.#policy(merge, acceptV1));
      if (!d.ok) return d;
      if (d.unchanged && current) return { ok: true, entry: current };
      const vo = this.o.verifyOrigin();
      if (vo.enabled) {
        const signer = verifyProofV2(rec);
        if (!signer.ok || !signer.signed) return { ok: false, status: 409, code: "proof_verification_failed", reason: "origin_check_needs_proof: verify_origin needs proof v2" };
        const refusal = await originRefusal(rec, signer.publicKeyHex!, vo);
        if (refusal) return { ok: false, status: 409, code: "proof_verification_failed", reason: refusal };
      }
      // Emit the pilox- schema name (hive- accepted): only when unsigned, since v1/v2 cover it.
      // The content digest once: the countersignature names it and the store keeps it.
      digest ??= contentDigest(rec);
      const body = countersign(rec, this.o.key(), this.o.origin(), digest);
      const written = await this.o.store.put({ handle: rec.handle, seq: d.seq, body, deleted: false, keys: d.keys, agentCardUrl: rec.agentCardUrl, expiresAt: 0, etag: etagOf(body), digest }, current?.cursor ?? null, this.o.quota());
      if (written instanceof QuotaExceeded) return this.#quotaRefusal(written);
      if (written !== "conflict") return { ok: true, entry: written };
    }
    return { ok: false, status: 409, code: "stale_updatedAt", reason: "conflict: the handle changed while writing; retry" };
  }

  /** Applies a tombstone (DELETE or merge). */
  async delete(t: unknown): Promise<{ ok: true; entry: Entry } | Refusal> {
    const handle = (t as { handle?: unknown })?.handle;
    if (typeof handle !== "string" || CONTROL.test(handle)) return { ok: false, status: 400, code: "invalid_tombstone", reason: "no handle" };
    const current = await this.o.store.get(handle);
    const d = decideTombstone(current, t, [this.o.key().publicKeyHex, ...this.o.registryKeys()]);
    if (!d.ok) return d;
    // A registry's delete is re-signed by us, so registries that pin us (and not the first
    // one) honour it too; a delete signed by the handle's own key stands as it is.
    const tomb = t as Tombstone;
    const body = current!.keys.includes(tomb.proof.publicKeyHex) ? tomb : signTombstone(handle, tomb.seq, this.o.key(), tomb.deletedAt, this.o.origin());
    const written = await this.o.store.put(
      { handle, seq: d.seq, body, deleted: true, keys: d.keys, agentCardUrl: "", expiresAt: Date.now() + this.o.tombstoneRetentionMs(), etag: etagOf(body) },
      current!.cursor,
      this.o.quota(),
    );
    if (written instanceof QuotaExceeded) return this.#quotaRefusal(written);
    return written === "conflict" ? { ok: false, status: 409, code: "stale_updatedAt", reason: "conflict: retry" } : { ok: true, entry: written };
  }

  /**
   * The signed catalog. Built from catalog rows (handle, seq, digest) read in pages, never
   * from bodies, so it costs some 150 bytes a record whatever the records weigh; reused while
   * nothing was written (for CATALOG_REUSE_MS at most), and built once for concurrent readers.
   */
  async catalog(): Promise<Record<string, unknown>> {
    const head = await this.o.store.head();
    const c = this.#catalog;
    if (c && c.head === head && Date.now() - c.at < CATALOG_REUSE_MS) return c.body;
    const body = this.#buildCatalog();
    this.#catalog = { head, at: Date.now(), body };
    body.catch(() => {
      if (this.#catalog?.body === body) this.#catalog = undefined;
    });
    return body;
  }

  async #buildCatalog(): Promise<Record<string, unknown>> {
    const entries: CatalogEntry[] = [];
    for (let after = ""; ; ) {
      const page = await this.o.store.catalogPage(after, CATALOG_PAGE);
      for (const r of page) entries.push([r.handle, r.seq, r.digest]);
      if (page.length < CATALOG_PAGE) break;
      after = page[page.length - 1]!.handle;
    }
    // The signed order is JavaScript's (UTF-16) order, whatever the store's collation.
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const handles = entries.map((e) => e[0]);
    const issuedAt = new Date().toISOString();
    const proofs = signCatalog(handles, this.o.key(), { kid: "registry-catalog", issuedAt, origin: this.o.origin(), expiresAt: new Date(Date.now() + CATALOG_VALIDITY_MS).toISOString(), entries, family: this.o.catalogFamily() });
    return { handles, ...proofs };
  }

  routes(): Hono {
    const app = new Hono();
    const s = this.o.store;
    // The store away (PostgreSQL restarting): 503 with the reason, logged once a while, not per request.
    app.onError((e, c) => {
      if (e instanceof StoreUnavailableError) {
        this.o.log.limited("registry-store-down", "warn", "registry store unavailable", { error: e.message });
        c.header("Retry-After", "5");
        return err(c, 503, "store_unavailable", { reason: "the registry's store cannot be reached; retry shortly" });
      }
      this.o.log.limited(`registry-error-${e.name}`, "error", "registry request failed", { path: c.req.path, error: e.message });
      return err(c, 500, "internal");
    });

    app.get("/v1/health", async (c) => c.json({ ok: true, role: "pilox-mesh-registry", recordSchema: RECORD_SCHEMA, writeEnabled: this.o.writeToken() !== undefined, records: await s.count() }));

    app.get("/v1/records", async (c) => {
      c.header("Cache-Control", "no-store");
      const since = c.req.query("since");
      if (since === undefined) return c.json(await this.catalog());
      if (!/^\d{1,15}$/.test(since)) return err(c, 400, "invalid_cursor");
      const limitQ = c.req.query("limit");
      const limit = limitQ && /^\d{1,6}$/.test(limitQ) ? Math.min(Math.max(Number(limitQ), 1), CHANGES_MAX) : CHANGES_MAX;
      const page = await s.changes(Number(since), { limit, maxBytes: CHANGES_MAX_BYTES });
      const changes = page.map((e) => ({ cursor: e.cursor, handle: e.handle, seq: e.seq, deleted: e.deleted, ...(e.deleted ? { tombstone: e.body } : { record: e.body }) }));
      const next = page.length ? page[page.length - 1]!.cursor : Number(since);
      // A page cut short by its byte bound has more behind it too.
      const more = page.length === limit || (page.length > 0 && next < (await s.head()));
      return c.json({ changes, next, more, feedProof: signFeed(this.o.key(), this.o.origin(), Number(since), next, changes) });
    });

    app.get("/v1/records/*", async (c) => {
      const handle = handleOf(c);
      if (!handle) return err(c, 404, "not_found");
      // The stored text and ETag, as written: no parse, canonicalisation or hash per read.
      const e = await s.served(handle);
      if (!e || e.deleted) return err(c, 404, "not_found");
      if (e.validUntil && e.validUntil <= Date.now()) return err(c, 410, "record_expired");
      c.header("ETag", e.etag);
      c.header("Cache-Control", `public, max-age=${e.ttl >= 0 ? e.ttl : 60}`);
      if (etagMatches(c.req.header("if-none-match"), e.etag)) return c.body(null, 304);
      c.header("Content-Type", "application/json");
      return c.body(e.text, 200);
    });

    app.get("/v1/resolve", async (c) => {
      const url = c.req.query("agentCardUrl");
      if (!url) return err(c, 400, "agentCardUrl_required");
      if (url.length > 2048 || CONTROL.test(url)) return err(c, 400, "invalid_agentCardUrl");
      return c.json({ handles: await s.byAgentCard(url) });
    });

    /** The body as text, or the 413 once it passes registry.max_body_bytes (read no further). */
    const readBody = async (c: Context): Promise<string | Response> => {
      try {
        return await readBounded(c.req.raw, this.o.maxBodyBytes());
      } catch (e) {
        if (e instanceof BodyTooLargeError) return err(c, 413, "payload_too_large", { message: `the body exceeds registry.max_body_bytes (${this.o.maxBodyBytes()} bytes)` });
        throw e;
      }
    };

    const readRecord = async (c: Context): Promise<{ rec: RegistryRecord } | Response> => {
      const text = await readBody(c);
      if (text instanceof Response) return text;
      const j = parseJson(text === "" ? "{}" : text, 32);
      if (!j.ok) return err(c, 400, "invalid_json");
      if (j.value === null || typeof j.value !== "object" || Array.isArray(j.value)) return err(c, 400, "invalid_record", { instancePath: "", message: "expected an object" });
      const bad = controlField(j.value);
      if (bad) return err(c, 400, "invalid_record", { instancePath: `/${bad}`, message: `${bad}: holds a control character` });
      return { rec: j.value as RegistryRecord };
    };

    // Always answers 200 with the verdict (the guide's promise): a token only decides wouldAcceptWrite.
    app.post("/v1/records/validate", async (c) => {
      const auth = this.#authorized(c);
      const r = await readRecord(c);
      if (r instanceof Response) return r;
      const current = typeof r.rec.handle === "string" ? await s.get(r.rec.handle) : undefined;
      const d = decideRecord(current, r.rec, this.#policy());
      const schemaValid = d.ok || d.code !== "invalid_record";
      return c.json({ wouldAcceptWrite: d.ok && auth === true, schemaValid, schemaErrors: d.ok || d.code !== "invalid_record" ? [] : [d.reason], ...(d.ok ? {} : { error: d.code, reason: d.reason }) });
    });

    app.post("/v1/records", async (c) => {
      const auth = this.#authorized(c);
      if (auth === "disabled") return err(c, 403, "write_disabled");
      if (!auth) return err(c, 401, "unauthorized");
      const r = await readRecord(c);
      if (r instanceof Response) return r;
      const ifMatch = c.req.header("if-match");
      if (ifMatch !== undefined && typeof r.rec.handle === "string") {
        const current = await s.get(r.rec.handle);
        const etag = current && !current.deleted ? etagOf(current.body) : undefined;
        if (!etag || !etagMatches(ifMatch, etag)) return err(c, 412, "if_match_mismatch");
      }
      const res = await this.accept(r.rec);
      if (!res.ok) return err(c, res.status, res.code, res.code === "invalid_record" ? { instancePath: res.reason.split(":")[0], message: res.reason } : { reason: res.reason });
      const etag = etagOf(res.entry.body);
      c.header("ETag", etag);
      return c.json({ ok: true, handle: res.entry.handle, etag }, 201);
    });

    app.delete("/v1/records/*", async (c) => {
      const handle = handleOf(c);
      if (!handle) return err(c, 404, "not_found");
      const text = await readBody(c);
      if (text instanceof Response) return text;
      let tombstone: unknown;
      if (text.trim()) {
        // A delete signed by the handle's key: no token needed, the signature is the authority.
        const j = parseJson(text, 8);
        if (!j.ok) return err(c, 400, "invalid_json");
        tombstone = j.value;
        if ((tombstone as { handle?: unknown })?.handle !== handle) return err(c, 400, "invalid_tombstone", { reason: "the tombstone names another handle" });
      } else {
        const auth = this.#authorized(c);
        if (auth === "disabled") return err(c, 403, "write_disabled");
        if (!auth) return err(c, 401, "unauthorized");
        const current = await s.get(handle);
        if (!current || current.deleted) return err(c, 404, "not_found");
        // The operator's delete, signed by this registry.
        tombstone = signTombstone(handle, current.seq + 1, this.o.key(), new Date().toISOString(), this.o.origin());
      }
      const res = await this.delete(tombstone);
      if (!res.ok) return err(c, res.status === 409 && res.reason.startsWith("not_found") ? 404 : res.status, res.reason.startsWith("not_found") ? "not_found" : res.code, { reason: res.reason });
      return c.json({ ok: true, deleted: handle });
    });

    return app;
  }
}

