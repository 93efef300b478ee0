export { checkRecord, isAcceptableUrl, MAX_RECORD_BYTES, RECORD_SCHEMA, withoutProof, type RecordCheck, type RegistryRecord } from "./record.ts";
export { PROOF_V1, PROOF_V2, signRecord, verifyProofV1, verifyProofV2, v1SignedString, type ProofResult, type ProofV2 } from "./proof.ts";
export { CATALOG_PROOF, CATALOG_PROOF_V2, catalogSignedString, digestOf, signCatalog, verifyCatalog, type CatalogCheck, type CatalogEntry, type CatalogPolicy, type CatalogProof, type CatalogProofV2 } from "./catalog.ts";
