/**
 * The content digest of a stored record: SHA-256 of its canonical form without our registrar
 * countersignature, so the same record has one digest at every registry that holds it (what
 * catalogs list and sync compares). The stores compute it at write time; a leaf module, so
 * they need nothing of the rules (or the schema library) to do so.
 */
import { digestOf } from "./catalog.ts";
import type { RegistryRecord } from "./record.ts";
import type { Tombstone } from "./store.ts";

export function contentDigest(body: RegistryRecord | Tombstone): string {
  const proof = (body as RegistryRecord).proof;
  if (proof && !("registrar" in proof)) return digestOf(body);
  // A record that came with no proof is served with one (our countersignature alone): its
  // digest is that of the served form without the countersignature, `"proof": {}`, wherever
  // it is taken (before countersigning, or from a peer's copy).
  const { registrar: _r, ...rest } = proof ?? {};
  return digestOf({ ...body, proof: rest });
}
