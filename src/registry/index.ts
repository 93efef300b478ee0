export { checkRecord, isAcceptableUrl, MAX_RECORD_BYTES, RECORD_SCHEMA, withoutProof, type RecordCheck, type RegistryRecord } from "./record.ts";
export { PROOF_V1, PROOF_V1_HIVE, PROOF_V2, proofV1TypeFor, signRecord, verifyProofV1, verifyProofV2, v1SignedString, type ProofResult, type ProofV2 } from "./proof.ts";
export { CATALOG_PROOF, CATALOG_PROOF_HIVE, CATALOG_PROOF_V2, catalogSignedString, digestOf, signCatalog, verifyCatalog, type CatalogCheck, type CatalogEntry, type CatalogFamily, type CatalogPolicy, type CatalogProof, type CatalogProofV2 } from "./catalog.ts";
export { RegistryRole } from "./role.ts";
export { RegistryService, etagOf, etagMatches } from "./service.ts";
export { SqliteStore } from "./sqlite-store.ts";
export { RegistrySync, type SyncPeer } from "./sync.ts";
export { countersign, decideRecord, decideTombstone, registrarOf, signTombstone, contentDigest } from "./rules.ts";
export type { Entry, RecordStore, Tombstone } from "./store.ts";
