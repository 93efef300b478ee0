/**
 * Pulling from peer registries (`[[registry.peers]]`): each run follows the peer's change feed
 * from the last cursor. Every page is signed (feed.ts) by a key pinned for the peer, for the
 * cursor asked, within the last five minutes: a replayed old page or an unpinned key stops the
 * run. Each record or tombstone is merged under the same rules as a POST. A record is taken only
 * when its countersignature names a pinned key of that peer over its content (the page's
 * signature authenticates it), and only for handles under the peer's prefixes when it has any.
 * Timeouts, a size cap, per-peer backoff, no overlapping runs.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseJson } from "../json/index.ts";
import { readBounded } from "../net/index.ts";
import type { Logger } from "../log/index.ts";
import { verifyCatalog } from "./catalog.ts";
import { pageChecks } from "./page-checks.ts";
import { verifyAhead } from "../identity/index.ts";
import { feedRefusal } from "./feed.ts";
import type { RegistryRecord } from "./record.ts";
import { contentDigest, registrarClaim } from "./rules.ts";
import type { RegistryService } from "./service.ts";
import type { Tombstone } from "./store.ts";

export interface SyncPeer {
  url: string;
  /** Keys (64 hex) the peer signs catalogs and countersigns records with. */
  catalogPublicKeys: string[];
  /** Handle prefixes the peer is authoritative for; empty: any. */
  prefixes: string[];
  /** `feed` (ours), `reference` (a stock Pilox registry: catalog, then a GET per handle), or `auto`. */
  protocol: "auto" | "feed" | "reference";
}

export interface PeerSyncState {
  cursor: number;
  lastOk: string | null;
  lastError: string | null;
  merged: number;
  refused: Record<string, number>;
  /** The protocol the peer was found to speak (null until it answered once). */
  protocol?: "feed" | "reference" | null;
  /** Reference protocol: the last handle taken in the catalog's order (a pass resumes after it). */
  after?: string;
}

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** One pass takes at most this many pages, or this long, from one peer. */
const PASS_MAX_PAGES = 100;
/** Changes of a page merged at once (see the merge loop). */
const MERGE_AT_ONCE = 100;
const PASS_MAX_MS = 30_000;
/** Consecutive pages with every change refused before the peer is paused (backed off). */
const REFUSED_PAGES_MAX = 3;
const JUNK_CODES = new Set(["invalid_record", "invalid_tombstone", "proof_verification_failed", "unsupported_proof_type"]);
/** How old a signed feed page may be (its issuedAt) when it arrives. */
const FEED_MAX_AGE_MS = 300_000;
/** Reference protocol: records fetched one by one, at most this many in one pass. */
const REFERENCE_PASS_MAX_RECORDS = 2_000;
/** The largest record fetched from a reference peer (its own body limit is 1 MiB by default). */
const REFERENCE_RECORD_MAX_BYTES = 8 * 1024 * 1024;

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
      if (peer.protocol === "reference" || (peer.protocol === "auto" && st.protocol === "reference")) {
        await this.#pullReference(peer, st, base, pinned, started);
        st.lastError = null;
        this.#backoff.delete(peer.url);
        return;
      }
      // A pass is bounded in pages and time: a peer answering `more: true` for ever cannot hold
      // the pass (and the peers after it); the rest comes in the next pass, from the saved cursor.
      type Page = { changes?: unknown; next?: unknown; more?: unknown; feedProof?: unknown; handles?: unknown };
      // A page's record signatures are verified on worker threads before its merge: only good
      // results are kept, so nothing here decides; the merge still checks every record.
      const fetched = async (cursor: number) => {
        const page = (await fetchJson(`${base}/v1/records?since=${cursor}&limit=1000`)) as Page;
        return { page, checked: Array.isArray(page.changes) ? verifyAhead(pageChecks(page.changes)) : Promise.resolve() };
      };
      // The next page downloads and is verified while this one is merged (its feed proof is checked in turn).
      let ahead: { cursor: number; page: ReturnType<typeof fetched> } | undefined;
      for (let pages = 0; pages < PASS_MAX_PAGES && Date.now() - started < PASS_MAX_MS; pages++) {
        const { page, checked } = ahead?.cursor === st.cursor ? await ahead.page : await fetched(st.cursor);
        ahead = undefined;
        await checked;
        if (!Array.isArray(page.changes) && Array.isArray(page.handles)) {
          // A catalog for a change-feed request: a stock Pilox registry, which has no feed.
          if (peer.protocol === "feed") throw new Error("the peer answered a catalog, not a change feed: it speaks the reference's protocol (set protocol = \"reference\" or \"auto\" for this peer)");
          st.protocol = "reference";
          await this.#pullReference(peer, st, base, pinned, started);
          break;
        }
        if (!Array.isArray(page.changes) || typeof page.next !== "number") throw new Error(`change feed: malformed page (neither a change feed nor a catalog${page && typeof page === "object" ? `: keys ${Object.keys(page).slice(0, 8).join(", ") || "none"}` : ""})`);
        st.protocol = "feed";
        // Each page is signed: by a pinned key, for the cursor asked, just now (no replay).
        const refused = feedRefusal(page as { changes: unknown[]; next: number; feedProof?: unknown }, { since: st.cursor, pinned, maxAgeMs: FEED_MAX_AGE_MS });
        if (refused) throw new Error(`change feed refused: ${refused}`);
        if (page.more === true && page.changes.length > 0 && page.next > st.cursor && pages + 1 < PASS_MAX_PAGES) {
          const next = page.next;
          ahead = { cursor: next, page: fetched(next) };
          ahead.page.catch(() => {}); // a failure is met when (and if) the page is awaited
        }
        let merged = 0;
        let allJunk = true;
        const reasons = new Set<string>();
        // Changes merge MERGE_AT_ONCE at a time: the embedded store commits each such group in
        // one transaction. (Two changes of one handle are safe together: the store's cursor check
        // makes the second decide again.)
        const changes = page.changes as { handle?: unknown; deleted?: unknown; record?: unknown; tombstone?: unknown }[];
        const results: ({ reason: string; junk: boolean } | undefined)[] = [];
        for (let i = 0; i < changes.length; i += MERGE_AT_ONCE) results.push(...(await Promise.all(changes.slice(i, i + MERGE_AT_ONCE).map((ch) => this.#merge(peer, pinned, ch)))));
        for (const refusal of results) {
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
   * The reference's own sync (a stock Pilox registry): its catalog (whose proof must verify
   * with a pinned key when keys are pinned, either family), then one GET per handle, merged
   * when the record's proof v1 (or v2) verifies and it is newer. Bounded per pass; the next
   * pass resumes after the last handle taken, and starts over once the list is done.
   */
  async #pullReference(peer: SyncPeer, st: PeerSyncState, base: string, pinned: string[], started: number): Promise<void> {
    st.protocol = "reference";
    const catalog = (await fetchJson(`${base}/v1/records`)) as { handles?: unknown };
    if (!catalog || !Array.isArray(catalog.handles)) throw new Error("reference catalog: no handles list in GET /v1/records");
    if (pinned.length) {
      const check = verifyCatalog(catalog, { maxAgeSeconds: FEED_MAX_AGE_MS / 1000 });
      if (!check.ok) throw new Error(`reference catalog refused: ${check.reason}`);
      if (!pinned.includes(check.publicKeyHex)) throw new Error("reference catalog refused: signed by a key not pinned for this peer (catalog_public_keys)");
    }
    const handles = (catalog.handles as unknown[]).filter((h): h is string => typeof h === "string" && h.length >= 8 && h.length <= 512).sort();
    let i = st.after ? handles.findIndex((h) => h > st.after!) : 0;
    if (i < 0) i = handles.length;
    for (let taken = 0; i < handles.length && taken < REFERENCE_PASS_MAX_RECORDS && Date.now() - started < PASS_MAX_MS; i++, taken++) {
      const handle = handles[i]!;
      st.after = handle;
      if (peer.prefixes.length && !peer.prefixes.some((p) => handle.startsWith(p))) continue;
      const refusal = await this.#mergeReference(base, handle);
      if (refusal) st.refused[refusal] = (st.refused[refusal] ?? 0) + 1;
      else st.merged++;
      if (taken % 100 === 99) this.#save();
    }
    // The whole list taken: the next pass starts over (the reference has no cursor).
    if (i >= handles.length) st.after = "";
    st.lastOk = new Date().toISOString();
  }

  /** One handle from a reference peer; the refusal reason, or undefined when merged. */
  async #mergeReference(base: string, handle: string): Promise<string | undefined> {
    let rec: unknown;
    try {
      rec = await fetchJson(`${base}/v1/records/${encodeURIComponent(handle)}`, REFERENCE_RECORD_MAX_BYTES);
    } catch (err) {
      // A handle the peer cannot serve (404, 410, 409 on its own proof check) is skipped, as its own sync does.
      return err instanceof HttpStatusError ? `fetch_${err.status}` : "fetch_failed";
    }
    if (!rec || typeof rec !== "object" || (rec as { handle?: unknown }).handle !== handle) return "malformed";
    const r = await this.service.accept(rec as RegistryRecord, true, true);
    return r.ok ? undefined : reasonOf(r.reason);
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
    // The page's signature (by a pinned key, over every change: feedRefusal) is what makes the
    // record the peer's; its countersignature must name a pinned key over this very content,
    // and verifying that signature too would prove nothing more (it was a third of a sync's
    // Ed25519 work).
    const digest = contentDigest(rec);
    const by = registrarClaim(rec, digest);
    if (!by || !pinned.includes(by)) return junk("not_countersigned_by_peer");
    const { registrar: _r, ...proof } = rec.proof!;
    const r = await this.service.accept({ ...rec, proof } as RegistryRecord, true, false, digest);
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

class HttpStatusError extends Error {
  constructor(
    url: string,
    readonly status: number,
  ) {
    super(`${url} answered ${status}`);
  }
}

async function fetchJson(url: string, maxBytes = MAX_RESPONSE_BYTES): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: "error", headers: { accept: "application/json" } });
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new HttpStatusError(url, res.status);
  }
  const text = await readBounded(res, maxBytes, url);
  const j = parseJson(text, 64);
  if (!j.ok) throw new Error(`${url}: ${j.detail}`);
  return j.value;
}
