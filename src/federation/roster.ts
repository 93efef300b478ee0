/**
 * The signed manifest as a source of peers: fetched from its URL, verified against the pinned
 * signer keys with our anti-rollback extension (sequence and expiry), kept on disk as the last
 * good roster. A failed refresh keeps serving that roster and is reported (status, metrics).
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../config/index.ts";
import { publicKeyFromHex } from "../identity/index.ts";
import { parseJson } from "../json/index.ts";
import { readBounded } from "../net/index.ts";
import { MAX_MANIFEST_BYTES, verifyManifest, type ManifestPeer } from "./manifest.ts";

export interface RosterStatus {
  url: string;
  seq: number | null;
  expiresAt: string | null;
  peers: number;
  lastSyncOk: boolean | null;
  lastSyncAt: string | null;
  lastError: string | null;
  /** A stock manifest without our extension is in use (federation.manifest.accept_unversioned). */
  unversioned: boolean;
  issuedAt: string | null;
}

interface Stored {
  body: unknown;
  seq?: number;
  expiresAt?: string;
}

export class Roster {
  #config: Config;
  #peers: ManifestPeer[] = [];
  #seq: number | undefined;
  #expiresAt: string | undefined;
  #lastSyncOk: boolean | undefined;
  #lastSyncAt: number | undefined;
  #lastError: string | undefined;
  #issuedAt: string | undefined;
  #sigHex: string | undefined;
  #unversioned = false;
  readonly #file: string;

  constructor(config: Config) {
    this.#config = config;
    this.#file = join(config.node.state_dir, "federation", "manifest.json");
    this.#loadStored();
  }

  get configured(): boolean {
    return this.#config.federation.manifest.url !== "";
  }

  peers(): readonly ManifestPeer[] {
    // An expired roster admits nobody: the signer's expiry is a promise we keep.
    if (this.#expiresAt && Date.parse(this.#expiresAt) <= Date.now()) return [];
    return this.configured ? this.#peers : [];
  }

  #signers() {
    return this.#config.federation.manifest.signer_public_keys.map((h) => publicKeyFromHex(h));
  }

  #loadStored(): void {
    if (!this.configured || !existsSync(this.#file)) return;
    try {
      const s = JSON.parse(readFileSync(this.#file, "utf8")) as Stored;
      // Re-verify what is on disk: the pinned keys may have changed since it was stored.
      const r = verifyManifest(s.body, { signers: this.#signers(), requireExt: true, acceptUnversioned: this.#config.federation.manifest.accept_unversioned, now: 0 });
      if (r.ok) this.#apply(r);
    } catch {
      /* an unreadable last-good file: start empty and fetch */
    }
  }

  /** Fetches and applies the manifest; returns whether the roster changed. */
  async refresh(config: Config = this.#config): Promise<boolean> {
    const urlChanged = config.federation.manifest.url !== this.#config.federation.manifest.url;
    this.#config = config;
    if (urlChanged) {
      this.#peers = [];
      this.#seq = undefined;
      this.#expiresAt = undefined;
      this.#issuedAt = undefined;
      this.#sigHex = undefined;
      this.#unversioned = false;
      this.#loadStored();
    }
    if (!this.configured) return false;
    this.#lastSyncAt = Date.now();
    try {
      const body = await fetchBody(config.federation.manifest.url);
      const policy: Parameters<typeof verifyManifest>[1] = { signers: this.#signers(), requireExt: true, acceptUnversioned: config.federation.manifest.accept_unversioned };
      if (this.#seq !== undefined) policy.minSeq = this.#seq;
      if (this.#issuedAt !== undefined) policy.lastIssuedAt = this.#issuedAt;
      if (this.#sigHex !== undefined) policy.lastSigHex = this.#sigHex;
      const r = verifyManifest(body, policy);
      if (!r.ok) throw new Error(`${r.reason}: ${r.detail}`);
      // A versioned manifest once accepted is never replaced by a stock one (that would be a
      // way around its sequence).
      if (r.unversioned && this.#seq !== undefined) throw new Error("unversioned: a manifest with manifestExt was accepted before; a stock one cannot replace it");
      const changed = r.seq !== this.#seq || r.sigHex !== this.#sigHex || JSON.stringify(r.peers) !== JSON.stringify(this.#peers);
      this.#apply(r);
      const tmp = `${this.#file}.tmp`;
      const stored: Stored = { body };
      if (r.seq !== undefined) stored.seq = r.seq;
      if (r.expiresAt !== undefined) stored.expiresAt = r.expiresAt;
      writeFileSync(tmp, JSON.stringify(stored), { mode: 0o600 });
      renameSync(tmp, this.#file);
      this.#lastSyncOk = true;
      this.#lastError = undefined;
      return changed;
    } catch (err) {
      this.#lastSyncOk = false;
      this.#lastError = (err as Error).message;
      return false;
    }
  }

  #apply(r: Extract<ReturnType<typeof verifyManifest>, { ok: true }>): void {
    this.#peers = r.peers;
    this.#seq = r.seq;
    this.#expiresAt = r.expiresAt;
    this.#issuedAt = r.issuedAt;
    this.#sigHex = r.sigHex;
    this.#unversioned = r.unversioned === true;
  }

  status(): RosterStatus | null {
    if (!this.configured) return null;
    return {
      url: this.#config.federation.manifest.url,
      seq: this.#seq ?? null,
      expiresAt: this.#expiresAt ?? null,
      peers: this.peers().length,
      lastSyncOk: this.#lastSyncOk ?? null,
      lastSyncAt: this.#lastSyncAt ? new Date(this.#lastSyncAt).toISOString() : null,
      lastError: this.#lastError ?? null,
      unversioned: this.#unversioned,
      issuedAt: this.#issuedAt ?? null,
    };
  }
}

async function fetchBody(url: string): Promise<unknown> {
  let text: string;
  if (url.startsWith("file://")) {
    const file = fileURLToPath(url);
    if (statSync(file).size > MAX_MANIFEST_BYTES) throw new Error(`manifest larger than ${MAX_MANIFEST_BYTES} bytes`);
    text = readFileSync(file, "utf8");
  } else {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: "error" });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`${url} answered ${res.status}`);
    }
    text = await readBounded(res, MAX_MANIFEST_BYTES, `manifest ${url}`);
  }
  const r = parseJson(text, 16);
  if (!r.ok) throw new Error(`manifest: ${r.detail}`);
  return r.value;
}
