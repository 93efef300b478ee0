export { buildDocument, buildJwks, buildPublicStatus, DISCOVERY_PATH, HIVE_DISCOVERY_PATH, hiveDocument, KEYS_PATH, PUBLIC_STATUS_PATH, rendered, signDocument, SIGNATURE_FIELD, type DiscoveryState, type WanMeshSummary } from "./document.ts";
export { checkDocument, type DocCheck } from "./verify.ts";
export { peerId } from "./site-id.ts";
