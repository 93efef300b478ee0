export { MeshBus, BusUnavailableError, type BusOptions, type ChannelOptions, type Delivery, type Handler, type PublishResult } from "./bus.ts";
// RedisBackend is not re-exported here: the appliance loads ioredis only when Redis is configured
// (src/index.ts exports it for library users).
export { KeyRing, type BusKey } from "./keyring.ts";
export { ReplayCache, ReplayJournal } from "./replay.ts";
export { sealMessage, sealToWire, MessageTooLargeError, SealError, type SealOptions } from "./envelope/seal.ts";
export { verifyWire, verifyParsed, REJECT_REASONS, type RejectReason, type Verified, type VerifyPolicy } from "./envelope/verify.ts";
export { macV1, signedStringV1, coreOf, hexMacEquals, EXT_FIELD, SIG_VERSION_V1, type JsonObject } from "./envelope/v1.ts";
export { extMac, EXT_SIG_VERSION, type MeshExt } from "./envelope/ext.ts";
export { traceOf, isTraceparent, isTracestate, type TraceContext } from "./trace.ts";
export { canonicalChannel, isPiloxChannel, wireNamesOf, PILOX_AGENT_STATUS, PILOX_SYSTEM_EVENTS } from "./channels.ts";
export { EmbeddedBackend } from "./backends/embedded.ts";
export { BackendUnavailableError, type BusBackend, type Closer, type Mark } from "./backends/backend.ts";
