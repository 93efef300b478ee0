/** Checking a peer's discovery document against a pinned key (pilox-mesh discover). */
import { canonicalize } from "../canon/index.ts";
import { publicKeyFromHex, thumbprint, verifyHex } from "../identity/index.ts";
import { SIGNATURE_FIELD } from "./document.ts";

export type DocCheck =
  | { ok: true; kid: string; publicKeyHex: string }
  | { ok: false; reason: string; publicKeyHex?: string; kid?: string; unsigned?: true };

/** With `pinnedHex`, the signature must verify under that key; without, reports the key used. */
export function checkDocument(doc: unknown, pinnedHex?: string): DocCheck {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return { ok: false, reason: "not a JSON object" };
  const d = doc as Record<string, unknown>;
  const sig = d[SIGNATURE_FIELD] as { alg?: unknown; sigHex?: unknown; kid?: unknown } | undefined;
  const fed = d["federation"] as { localEd25519PublicKeyHex?: unknown } | undefined;
  const advertised = typeof fed?.localEd25519PublicKeyHex === "string" ? fed.localEd25519PublicKeyHex : undefined;
  if (!sig || sig.alg !== "Ed25519" || typeof sig.sigHex !== "string") {
    return { ok: false, reason: "unsigned document (no documentSignature)", unsigned: true, ...(advertised ? { publicKeyHex: advertised } : {}) };
  }
  const keyHex = pinnedHex ?? advertised;
  if (!keyHex || !/^[0-9a-fA-F]{64}$/.test(keyHex)) return { ok: false, reason: "no Ed25519 public key to check against" };
  const { [SIGNATURE_FIELD]: _s, ...body } = d;
  const good = verifyHex(publicKeyFromHex(keyHex), canonicalize(body), sig.sigHex);
  const kid = thumbprint(keyHex.toLowerCase());
  if (!good) return { ok: false, reason: pinnedHex ? "signature does not verify with the pinned key" : "signature does not verify with the advertised key", publicKeyHex: keyHex, kid };
  return { ok: true, kid, publicKeyHex: keyHex.toLowerCase() };
}
