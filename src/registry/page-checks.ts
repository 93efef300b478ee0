/**
 * The signature checks merging a page of a peer's changes will make (the owner's proofs v1 and
 * v2; the page's own signature covers the registrar's countersignature), listed by running
 * those checks in collect mode: the sync has them verified on worker threads ahead of the
 * merge (identity/verify-ahead.ts).
 */
import { collectChecks, type Check } from "../identity/index.ts";
import { verifyProofV1, verifyProofV2 } from "./proof.ts";
import type { RegistryRecord } from "./record.ts";

export function pageChecks(changes: readonly unknown[]): Check[] {
  return collectChecks(() => {
    for (const ch of changes) {
      const rec = (ch as { record?: unknown } | null)?.record;
      if (!rec || typeof rec !== "object") continue;
      try {
        verifyProofV1(rec as RegistryRecord);
        verifyProofV2(rec as RegistryRecord);
      } catch {
        /* a malformed record is refused when it is merged */
      }
    }
  });
}
