/**
 * Pulling from peer registries (`[[registry.peers]]`): each run follows the peer's change feed
 * from the last cursor. Every page is signed (feed.ts) by a key pinned for the peer, for the
 * cursor asked, within the last five minutes: a replayed old page or an unpinned key stops the
 * run. Each record or tombstone is merged under the same rules as a POST. A record is taken only with the countersignature of
 * a pinned key of that peer, and only for handles under the peer's prefixes when it has any.
 * Timeouts, a size cap, per-peer backoff, no overlapping runs.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseJson } from "../json/index.ts";
import { readBounded } from "../net/index.ts";
import type { Logger } from "../log/index.ts";
import { feedRefusal } from "./feed.ts";
import type { RegistryRecord } from "./record.ts";
import { registrarOf } from "./rules.ts";
import type { RegistryService } from "./service.ts";
import type { Tombstone } from "./store.ts";

export interface SyncPeer {
  url: string;
  /** Keys (64 hex) the peer signs catalogs and countersigns records with. */
  catalogPublicKeys: string[];
  /** Handle prefixes the peer is authoritative for; empty: any. */
  prefixes: string[];
}

export interface PeerSyncState {
  cursor: number;
  lastOk: string | null;
  lastError: string | null;
  merged: number;
  refused: Record<string, number>;
}

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** One pass takes at most this many pages, or this long, from one peer. */
const PASS_MAX_PAGES = 100;
const PASS_MAX_MS = 30_000;
/** Consecutive pages with every change refused before the peer is paused (backed off). */
const REFUSED_PAGES_MAX = 3;
const JUNK_CODES = new Set(["invalid_record", "invalid_tombstone", "proof_verification_failed", "unsupported_proof_type"]);
/** How old a signed feed page may be (its issuedAt) when it arrives. */
const FEED_MAX_AGE_MS = 300_000;

export class RegistrySync {
  readonly #state = new Map<string, PeerSyncState>();
  readonly #backoff = new Map<string, { until: number; failures: number }>();
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly service: RegistryService,
    private readonly peers: () => SyncPeer[],
    private readonly intervalMs: () => number,
    private readonly stateFile: string,
    private readonly log: Logger,
  ) {
    try {
      const saved = JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, PeerSyncState>;
      for (const [url, st] of Object.entries(saved)) this.#state.set(url, st);
    } catch {
      /* first run */
    }
  }

  start(): void {
    const tick = () => {
      void this.runOnce().finally(() => {
        this.#timer = setTimeout(tick, this.intervalMs());
        this.#timer.unref();
      });
    };
    this.#timer = setTimeout(tick, 0);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#running;
  }

  status(): Record<string, PeerSyncState> {
    return Object.fromEntries(this.#state);
  }

  /** One pass over every peer (a pass already under way is joined, never doubled). */
  runOnce(): Promise<void> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #pass(): Promise<void> {
    // A few peers at once at most.
    const peers = this.peers();
    for (let i = 0; i < peers.length; i += 4) await Promise.all(peers.slice(i, i + 4).map((p) => this.#pull(p)));
    this.#save();
  }

  #st(url: string): PeerSyncState {
    let st = this.#state.get(url);
    if (!st) this.#state.set(url, (st = { cursor: 0, lastOk: null, lastError: null, merged: 0, refused: {} }));
    return st;
  }

  async #pull(peer: SyncPeer): Promise<void> {
    const b = this.#backoff.get(peer.url);
    if (b && Date.now() < b.until) return;
    const st = this.#st(peer.url);
    const started = Date.now();
    let refusedPages = 0;
    try {
      const base = peer.url.replace(/\/+$/, "");
      const pinned = peer.catalogPublicKeys.map((k) => k.toLowerCase());
      // A pass is bounded in pages and time: a peer answering `more: true` for ever cannot hold
      // the pass (and the peers after it); the rest comes in the next pass, from the saved cursor.
      for (let pages = 0; pages < PASS_MAX_PAGES && Date.now() - started < PASS_MAX_MS; pages++) {
        const page = (await fetchJson(`${base}/v1/records?since=${st.cursor}&limit=1000`)) as { changes?: unknown; next?: unknown; more?: unknown; feedProof?: unknown };
        if (!Array.isArray(page.changes) || typeof page.next !== "number") throw new Error("change feed: malformed page");
        // Each page is signed: by a pinned key, for the cursor asked, just now (no replay).
        const refused = feedRefusal(page as { changes: unknown[]; next: number; feedProof?: unknown }, { since: st.cursor, pinned, maxAgeMs: FEED_MAX_AGE_MS });
        if (refused) throw new Error(`change feed refused: ${refused}`);
        let merged = 0;
        let allJunk = true;
        const reasons = new Set<string>();
        for (const ch of page.changes as { handle?: unknown; deleted?: unknown; record?: unknown; tombstone?: unknown }[]) {
          const refusal = await this.#merge(peer, pinned, ch);
          if (refusal) {
            st.refused[refusal.reason] = (st.refused[refusal.reason] ?? 0) + 1;
            reasons.add(refusal.reason);
            allJunk &&= refusal.junk;
          } else {
            st.merged++;
            merged++;
          }
        }
        if (page.next <= st.cursor && page.changes.length > 0) throw new Error("change feed: cursor went back");
        st.cursor = page.next;
        st.lastOk = new Date().toISOString();
        this.#save(); // as it goes: a crash or a stop mid-pass does not fetch these pages again
        // Pages whose every change is refused: a peer sending junk is paused like a failing one.
        // Only junk counts (malformed or invalid changes, failed proofs): already held, older,
        // outside the peer's prefixes or past a quota is no fault of the peer's.
        refusedPages = page.changes.length > 0 && merged === 0 && allJunk ? refusedPages + 1 : 0;
        if (refusedPages >= REFUSED_PAGES_MAX) throw new Error(`${refusedPages} pages in a row had every change refused (${[...reasons].join(", ")}); paused`);
        if (page.more !== true || page.changes.length === 0) break;
      }
      st.lastError = null;
      this.#backoff.delete(peer.url);
    } catch (err) {
      st.lastError = (err as Error).message;
      const failures = (b?.failures ?? 0) + 1;
      this.#backoff.set(peer.url, { failures, until: Date.now() + Math.min(300_000, 1_000 * 2 ** failures) });
      this.log.limited(`registry-sync-${peer.url}`, "warn", "registry sync failed; backing off", { peer: peer.url, error: st.lastError });
    }
  }

  /**
   * Merges one change; returns the refusal (its reason, and whether it is junk: a malformed or
   * invalid change or a failed proof, the peer's fault), or undefined when applied.
   */
  async #merge(peer: SyncPeer, pinned: string[], ch: { handle?: unknown; deleted?: unknown; record?: unknown; tombstone?: unknown }): Promise<{ reason: string; junk: boolean } | undefined> {
    const junk = (reason: string) => ({ reason, junk: true });
    const refused = (r: { code: string; reason: string }) => ({ reason: reasonOf(r.reason), junk: JUNK_CODES.has(r.code) });
    const handle = ch.handle;
    if (typeof handle !== "string") return junk("malformed");
    if (peer.prefixes.length && !peer.prefixes.some((p) => handle.startsWith(p))) return { reason: "outside_prefixes", junk: false };
    if (ch.deleted === true) {
      const t = ch.tombstone as Tombstone;
      if (t?.handle !== handle) return junk("malformed");
      const r = await this.service.delete(t);
      return r.ok ? undefined : refused(r);
    }
    const rec = ch.record as RegistryRecord;
    if (!rec || typeof rec !== "object" || rec.handle !== handle) return junk("malformed");
    const by = registrarOf(rec);
    if (!by || !pinned.includes(by)) return junk("not_countersigned_by_peer");
    const { registrar: _r, ...proof } = rec.proof!;
    const r = await this.service.accept({ ...rec, proof } as RegistryRecord, true);
    return r.ok ? undefined : refused(r);
  }

  #save(): void {
    try {
      mkdirSync(dirname(this.stateFile), { recursive: true, mode: 0o700 });
      writeFileSync(`${this.stateFile}.tmp`, JSON.stringify(Object.fromEntries(this.#state)), { mode: 0o600 });
      renameSync(`${this.stateFile}.tmp`, this.stateFile);
    } catch (err) {
      this.log.limited("registry-sync-state", "warn", "cannot save the registry sync state", { error: (err as Error).message });
    }
  }
}

const reasonOf = (r: string) => r.split(":")[0]!.trim();

async function fetchJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: "error", headers: { accept: "application/json" } });
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`${url} answered ${res.status}`);
  }
  const text = await readBounded(res, MAX_RESPONSE_BYTES, url);
  const j = parseJson(text, 64);
  if (!j.ok) throw new Error(`${url}: ${j.detail}`);
  return j.value;
}
