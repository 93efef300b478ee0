export { normalizeOrigin } from "./origin.ts";
export { bodySha256, mintToken, verifyToken, TOKEN_REJECT_REASONS, TOKEN_SUB, type PeerKeys, type TokenClaims, type TokenRejectReason, type TokenResult, type VerifyPolicy } from "./token.ts";
export { MemoryTokenReplayStore, RedisTokenReplayStore, ReplayStoreUnavailableError, type TokenReplayStore } from "./replay-store.ts";
export { ManifestSignError, signManifest, verifyManifest, MANIFEST_EXT, type ManifestPayload, type ManifestPeer, type ManifestResult, type SignedManifest } from "./manifest.ts";
export { AuditLog, verifyAuditFile, verifyAuditFiles, type AuditEntry } from "./audit.ts";
export { RELAY_PATH, RelayEntry } from "./inbound.ts";
export { Federation } from "./service.ts";
export { peersOf, type Peer } from "./peers.ts";
export { forwarderGroup, peerId } from "./outbound.ts";
