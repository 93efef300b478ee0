/**
 * Every reason the WAN refuses (and dead-letters) a frame, an entry or an envelope for, and the
 * layers that catch repeats: their labelled counters start at zero (a rate over a series that
 * does not exist yet is no rate). A tiny module: the daemon reads it without loading NATS.
 */
export const WAN_REFUSAL_REASONS: readonly string[] = [
  // A frame's signature and routing (frame.ts), then its body (receiver.ts).
  "unsigned", "unknown_sender", "not_wan_peer", "wrong_subject", "unknown_kid", "bad_signature", "malformed", "oversized", "too_deep",
  // One entry of a frame.
  "malformed_entry", "channel_not_allowed",
  // The reference's envelopes (pilox.ts).
  "invalid_envelope", "invalid_json",
  // Deliveries.
  "attempts_exhausted", "too_large_for_frame",
];

export const WAN_DUPLICATE_LAYERS: readonly string[] = ["receiver", "jetstream"];
