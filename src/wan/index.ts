/** The WAN transport of federation over NATS JetStream (loaded only when [wan] is configured). */
export { WanRole, type WanDeps, type WanReady } from "./role.ts";
export { sealFrame, verifyFrame, signingString, frameMsgId, FRAME_DOMAIN, HDR, type FrameEntry, type SealedFrame } from "./frame.ts";
export { frameSubject, inboxFilter, dlqSubject, consumerName } from "./subjects.ts";
export { DLQ_HDR } from "./dlq.ts";
export { placementLine, type StreamPlacement } from "./placement.ts";
