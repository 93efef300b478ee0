/** The bus HMAC keys: sign with the primary, accept any listed key (rotation without downtime). */
export interface BusKey {
  readonly id: string;
  readonly secret: Buffer;
}

export class KeyRing {
  readonly #byId = new Map<string, BusKey>();
  readonly primary: BusKey;

  constructor(keys: readonly BusKey[], primaryId?: string) {
    if (keys.length === 0) throw new Error("a key ring needs at least one key");
    for (const k of keys) {
      if (this.#byId.has(k.id)) throw new Error(`duplicate bus key id "${k.id}"`);
      if (k.secret.length < 32) throw new Error(`bus key "${k.id}" is shorter than 32 bytes`);
      this.#byId.set(k.id, k);
    }
    const p = primaryId === undefined ? keys[0] : this.#byId.get(primaryId);
    if (!p) throw new Error(`primary bus key "${primaryId}" is not in the ring`);
    this.primary = p;
  }

  get(id: string): BusKey | undefined {
    return this.#byId.get(id);
  }

  all(): IterableIterator<BusKey> {
    return this.#byId.values();
  }

  ids(): string[] {
    return [...this.#byId.keys()];
  }
}
