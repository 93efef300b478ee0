export { buildDocument, buildJwks, DISCOVERY_PATH, KEYS_PATH, rendered, signDocument, SIGNATURE_FIELD, type DiscoveryState } from "./document.ts";
export { checkDocument, type DocCheck } from "./verify.ts";
