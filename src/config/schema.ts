/**
 * The configuration file's schema: every key, its type, bound and default. docs/configuration.md
 * documents each one; keep the two in step.
 */
import { isIP } from "node:net";
import * as v from "valibot";
import { strictObject } from "../schema/index.ts";
import { CHANNEL_NAME } from "../bus/channels.ts";

const int = (min: number, max: number) => v.pipe(v.number(), v.integer("expected an integer"), v.minValue(min), v.maxValue(max));
const str = (max = 4096) => v.pipe(v.string(), v.maxLength(max));
/** A key a reload cannot change: it keeps its running value until a restart (config/keys.ts). */
const restart = <T extends v.GenericSchema>(s: T) => v.pipe(s, v.metadata({ restart: true }));
/** A table whose every key needs a restart. */
const restartTable = <E extends v.ObjectEntries>(entries: E) => v.pipe(strictObject(entries), v.metadata({ restart: true }));
/** A file or directory: resolved against the directory of the file that set it (config/keys.ts). */
const path = () => v.pipe(v.string(), v.maxLength(4096), v.metadata({ path: true }));
const HOSTPORT = v.pipe(
  v.string(),
  v.regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):[0-9]{1,5}$/, 'expected "HOST:PORT", e.g. "127.0.0.1:7420"'),
  v.check((s) => Number(s.slice(s.lastIndexOf(":") + 1)) <= 65535, "port out of range"),
);
function isCidr(s: string): boolean {
  const [addr, bits, extra] = s.split("/");
  if (extra !== undefined || !addr) return false;
  const v = isIP(addr);
  if (v === 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (v === 4 ? 32 : 128);
}

const TRANSPORT = v.picklist(["relay", "wan"], 'expected "relay" or "wan"');
const STREAM_NAME = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_\-]{1,64}$/, "a stream name is 1-64 letters, digits, _ -"));

const KEY_ID = v.pipe(v.string(), v.regex(/^[A-Za-z0-9._\-]{1,64}$/, "a key id is 1-64 letters, digits, . _ -"));

export const ConfigSchema = strictObject({
  node: v.optional(
    restartTable({
      name: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9._\-]{1,64}$/, "a node name is 1-64 letters, digits, . _ -"))),
      state_dir: v.optional(path()),
      runtime_dir: v.optional(path()),
    }),
    {},
  ),
  log: v.optional(
    restartTable({
      level: v.optional(v.picklist(["debug", "info", "warn", "error"]), "info"),
      format: v.optional(v.picklist(["text", "json"]), "text"),
    }),
    {},
  ),
  instance: v.optional(
    strictObject({
      origin: v.optional(
        v.pipe(v.string(), v.regex(/^https?:\/\/[^\/?#\s]+$/, 'expected an origin such as "https://mesh.example.org" (no path)')),
      ),
      key_file: v.optional(path()),
      next_key_file: v.optional(path(), ""),
    }),
    {},
  ),
  http: v.optional(
    strictObject({
      listen: restart(v.optional(HOSTPORT, "127.0.0.1:7420")),
      tls_cert_file: v.optional(path(), ""),
      tls_key_file: v.optional(path(), ""),
      metrics_token_file: v.optional(path(), ""),
      // GET / on this listener: a status page (off by default; behind metrics_token_file when set).
      status_page: v.optional(v.boolean(), false),
      trusted_proxies: v.optional(
        v.array(
          v.pipe(
            v.string(),
            v.check((s) => isCidr(s), "expected an IP address or CIDR, e.g. \"10.0.0.0/8\""),
          ),
        ),
        [],
      ),
      max_body_bytes: v.optional(int(0, 64 * 1024 * 1024), 64 * 1024),
    }),
    {},
  ),
  discovery: v.optional(
    strictObject({
      bootstrap_urls: v.optional(v.array(v.pipe(v.string(), v.url(), v.maxLength(2048))), []),
      dht_hints: v.optional(v.array(str(512)), []),
      max_age_seconds: v.optional(int(0, 86_400), 120),
      // The agent this site fronts, advertised as the document's `a2a` (what resolution routes to).
      a2a_agent_card_url: v.optional(v.pipe(v.string(), v.regex(/^(https?:\/\/\S+)?$/, "expected an http(s) URL")), ""),
      a2a_json_rpc_url: v.optional(v.pipe(v.string(), v.regex(/^(https?:\/\/\S+)?$/, "expected an http(s) URL")), ""),
      a2a_public_json_rpc_url: v.optional(v.pipe(v.string(), v.regex(/^(https?:\/\/\S+)?$/, "expected an http(s) URL")), ""),
    }),
    {},
  ),
  federation: v.optional(
    strictObject({
      token_lifetime_seconds: v.optional(int(1, 300), 60),
      max_token_lifetime_seconds: v.optional(int(1, 3_600), 300),
      leeway_seconds: v.optional(int(0, 120), 30),
      max_body_bytes: v.optional(int(1024, 64 * 1024 * 1024), 1024 * 1024),
      per_ip_rate: v.optional(int(1, 100_000), 20),
      batch_size: v.optional(int(1, 10_000), 256),
      batch_max_bytes: v.optional(int(1024, 64 * 1024 * 1024), 512 * 1024),
      audit_max_bytes: restart(v.optional(int(64 * 1024, 1024 ** 4), 64 * 1024 * 1024)),
      audit_keep: restart(v.optional(int(0, 1_000), 5)),
      audit_window_seconds: restart(v.optional(int(1, 86_400), 60)),
      queue_max_bytes: v.optional(int(4096, 1024 ** 4), 256 * 1024 * 1024),
      hs256: v.optional(
        strictObject({
          enabled: v.optional(v.boolean(), false),
          secret_file: v.optional(path(), ""),
          accept_channels: v.optional(v.array(CHANNEL_NAME), []),
        }),
        {},
      ),
      manifest: v.optional(
        strictObject({
          url: v.optional(v.pipe(v.string(), v.regex(/^((https?|file):\/\/\S+)?$/, "expected an https://, http:// or file:// URL")), ""),
          signer_public_keys: v.optional(v.array(v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex characters"))), []),
          refresh_seconds: v.optional(int(10, 86_400), 300),
          accept_channels: v.optional(v.array(CHANNEL_NAME), []),
          forward_channels: v.optional(v.array(CHANNEL_NAME), []),
          rate_per_second: v.optional(int(1, 1_000_000), 100),
          accept_unversioned: v.optional(v.boolean(), false),
          transport: v.optional(TRANSPORT, "relay"),
        }),
        {},
      ),
      peers: v.optional(
        v.array(
          strictObject({
            origin: v.pipe(v.string(), v.regex(/^https?:\/\/[^\/?#\s]+\/?$/, "expected an origin such as \"https://mesh-b.example\"")),
            url: v.optional(v.pipe(v.string(), v.regex(/^https?:\/\/[^?#\s]+$/, "expected an http(s) URL"))),
            public_keys: v.pipe(v.array(v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex characters"))), v.minLength(1)),
            accept_channels: v.optional(v.array(CHANNEL_NAME), []),
            forward_channels: v.optional(v.array(CHANNEL_NAME), []),
            rate_per_second: v.optional(int(1, 1_000_000), 100),
            transport: v.optional(TRANSPORT, "relay"),
          }),
        ),
        [],
      ),
    }),
    {},
  ),
  wan: v.optional(
    strictObject({
      nats_urls: restart(v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(/^(nats|tls):\/\/[^\s\/?#]+$/, 'expected a NATS URL such as "nats://10.0.0.5:4222" or "tls://hub.example:4222"'))), v.maxLength(32)), [])),
      creds_file: restart(v.optional(path(), "")),
      nkey_seed_file: restart(v.optional(path(), "")),
      token_file: restart(v.optional(path(), "")),
      user: restart(v.optional(str(256), "")),
      password_file: restart(v.optional(path(), "")),
      tls_ca_file: restart(v.optional(path(), "")),
      tls_cert_file: restart(v.optional(path(), "")),
      tls_key_file: restart(v.optional(path(), "")),
      subject_prefix: restart(v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+){0,7}$/, 'expected NATS subject tokens joined by ".", e.g. "pilox-mesh.wan.v1"')), "pilox-mesh.wan.v1")),
      dlq_subject_prefix: restart(v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+){0,7}$/, 'expected NATS subject tokens joined by ".", e.g. "pilox-mesh.wan-dlq.v1"')), "pilox-mesh.wan-dlq.v1")),
      stream: restart(v.optional(STREAM_NAME, "PILOX_MESH_WAN_V1")),
      dlq_stream: restart(v.optional(STREAM_NAME, "PILOX_MESH_WAN_DLQ")),
      manage_streams: restart(v.optional(v.boolean(), false)),
      jetstream_domain: restart(v.optional(v.pipe(v.string(), v.regex(/^([A-Za-z0-9_\-]{1,64})?$/, "expected a JetStream domain name (letters, digits, _ and -)")), "")),
      stream_max_age_seconds: restart(v.optional(int(60, 365 * 86_400), 7 * 86_400)),
      stream_max_bytes: restart(v.optional(int(1024 * 1024, 1024 ** 5), 1024 ** 3)),
      duplicate_window_seconds: restart(v.optional(int(1, 86_400), 120)),
      // JetStream replicates by Raft: an odd count keeps a majority through a node's loss.
      stream_replicas: restart(v.optional(v.picklist([1, 3, 5], "expected 1, 3 or 5 (JetStream replicas: an odd count, at most 5)"), 1)),
      max_frame_bytes: v.optional(int(4096, 8 * 1024 * 1024), 1024 * 1024),
      frame_max_messages: v.optional(int(1, 10_000), 256),
      frame_max_wait_ms: v.optional(int(0, 10_000), 5),
      max_in_flight: v.optional(int(1, 10_000), 64),
      ack_wait_seconds: restart(v.optional(int(1, 3_600), 30)),
      max_attempts: v.optional(int(1, 1_000), 5),
      max_deliver: restart(v.optional(int(2, 10_000), 20)),
      fetch_batch: v.optional(int(1, 10_000), 64),
      connect_timeout_ms: v.optional(int(100, 60_000), 5_000),
      pilox: v.optional(
        strictObject({
          // The first is where POST /v1/publish publishes: the stock bridge's and subscriber's default.
          subjects: restart(v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+){0,15}$/, 'expected a NATS subject without wildcards, e.g. "pilox.mesh.wan"'))), v.minLength(1), v.maxLength(8)), ["hive.mesh.wan", "pilox.mesh.wan"])),
          stream: restart(v.optional(STREAM_NAME, "PILOX_MESH_WAN")),
          ingest: restart(v.optional(v.boolean(), false)),
          accept_unsigned: v.optional(v.boolean(), false),
          publish_token_file: v.optional(path(), ""),
          max_envelope_bytes: v.optional(int(1024, 8 * 1024 * 1024), 256 * 1024),
          publish_rate_per_second: v.optional(int(1, 1_000_000), 100),
        }),
        {},
      ),
    }),
    {},
  ),
  api: v.optional(
    strictObject({
      socket: restart(v.optional(path())),
      socket_mode: restart(v.optional(v.pipe(v.string(), v.regex(/^0?[0-7]{3}$/, 'expected an octal mode such as "0660"')), "0660")),
      listen: restart(v.optional(v.union([v.literal(""), HOSTPORT]), "")),
      token_file: v.optional(path(), ""),
      max_body_bytes: v.optional(int(1024, 64 * 1024 * 1024), 1024 * 1024),
      max_subscribers: v.optional(int(1, 100_000), 256),
      sse_max_queued_bytes: v.optional(int(64 * 1024, 1024 ** 3), 4 * 1024 * 1024),
      sse_max_total_queued_bytes: v.optional(int(64 * 1024, 1024 ** 4), 64 * 1024 * 1024),
      sse_write_timeout_seconds: v.optional(int(1, 3_600), 30),
    }),
    {},
  ),
  gateway: v.optional(
    strictObject({
      enabled: restart(v.optional(v.boolean(), false)),
      upstream_url: v.optional(v.pipe(v.string(), v.regex(/^(https?:\/\/[^?#\s]+)?$/, "expected an http(s) URL")), ""),
      upstream_path: v.optional(v.pipe(v.string(), v.regex(/^\/[^?#\s]*$/, "expected a path starting with /")), "/api/a2a/jsonrpc/public"),
      upstream_secret_file: v.optional(path(), ""),
      upstream_tls_ca_file: v.optional(path(), ""),
      upstream_tls_cert_file: v.optional(path(), ""),
      upstream_tls_key_file: v.optional(path(), ""),
      rate_per_second: v.optional(int(1, 1_000_000), 20),
      burst: v.optional(int(1, 1_000_000), 40),
      max_concurrent: v.optional(int(1, 100_000), 256),
      max_body_bytes: v.optional(int(1024, 64 * 1024 * 1024), 1024 * 1024),
      upstream_timeout_seconds: v.optional(int(1, 3_600), 30),
      breaker_failures: v.optional(int(1, 1_000), 5),
      breaker_cooldown_seconds: v.optional(int(1, 3_600), 10),
      registries: v.optional(v.array(v.pipe(v.string(), v.regex(/^https?:\/\/[^?#\s]+$/, "expected an http(s) URL"))), []),
      resolve_allow_private: v.optional(v.boolean(), false),
      // Registries (of `registries`) trusted for records with only the reference's proof v1.
      accept_proof_v1_from: v.optional(v.array(v.pipe(v.string(), v.regex(/^https?:\/\/[^?#\s]+$/, "expected an http(s) URL"))), []),
    }),
    {},
  ),
  registry: v.optional(
    strictObject({
      enabled: restart(v.optional(v.boolean(), false)),
      write_token_file: v.optional(path(), ""),
      require_proof: v.optional(v.boolean(), true),
      verify_origin: v.optional(v.boolean(), false),
      origin_allow_private: v.optional(v.boolean(), false),
      max_future_skew_seconds: v.optional(int(0, 86_400), 300),
      tombstone_retention_seconds: v.optional(int(3_600, 10 * 365 * 86_400), 30 * 86_400),
      sync_interval_seconds: v.optional(int(5, 86_400), 60),
      max_body_bytes: v.optional(int(1024, 8 * 1024 * 1024), 1024 * 1024),
      catalog_proof: v.optional(v.picklist(["hive", "pilox"]), "hive"),
      max_records: v.optional(int(1, 1_000_000_000), 1_000_000),
      max_bytes: v.optional(int(1024 * 1024, 2 ** 50), 4 * 1024 ** 3),
      max_records_per_key: v.optional(int(1, 1_000_000_000), 10_000),
      max_bytes_per_key: v.optional(int(64 * 1024, 2 ** 50), 256 * 1024 ** 2),
      postgres: v.optional(
        restartTable({
          url: v.optional(v.pipe(v.string(), v.regex(/^(postgres(ql)?:\/\/.*)?$/, 'expected a "postgres://" URL')), ""),
          password_file: v.optional(path(), ""),
          tls_ca_file: v.optional(path(), ""),
        }),
        {},
      ),
      peers: v.optional(
        v.array(
          v.pipe(
            strictObject({
              url: v.pipe(v.string(), v.regex(/^https?:\/\/[^?#\s]+$/, "expected an http(s) URL")),
              catalog_public_keys: v.optional(v.array(v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex characters"))), []),
              prefixes: v.optional(v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(512))), []),
              protocol: v.optional(v.picklist(["auto", "feed", "reference"]), "auto"),
            }),
            // Our change feed is signed page by page: it needs a pinned key. A stock registry
            // may sign nothing (its catalog proof is then not checked).
            v.check((p) => p.protocol === "reference" || p.catalog_public_keys.length > 0, 'catalog_public_keys: at least one key (only a peer with protocol = "reference" may have none)'),
          ),
        ),
        [],
      ),
    }),
    {},
  ),
  bus: v.optional(
    strictObject({
      backend: v.optional(v.picklist(["auto", "embedded", "redis"]), "auto"),
      producer: restart(v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(128)), "pilox-mesh")),
      max_message_bytes: v.optional(int(256, 16 * 1024 * 1024), 256 * 1024),
      max_age_seconds: v.optional(int(1, 30 * 86_400), 300),
      clock_skew_seconds: v.optional(int(0, 3_600), 30),
      accept_v1_unextended: v.optional(v.boolean(), true),
      replay_cache_size: restart(v.optional(int(1_000, 100_000_000), 100_000)),
      keys: v.optional(
        v.array(
          strictObject({
            id: KEY_ID,
            secret_file: path(),
            primary: v.optional(v.boolean(), false),
          }),
        ),
        [],
      ),
      redis: v.optional(
        restartTable({
          url: v.optional(v.pipe(v.string(), v.regex(/^(rediss?:\/\/.*)?$/, 'expected a "redis://" or "rediss://" URL')), ""),
          password_file: v.optional(path(), ""),
          sentinels: v.optional(v.pipe(v.array(HOSTPORT), v.maxLength(16)), []),
          cluster_nodes: v.optional(v.pipe(v.array(HOSTPORT), v.maxLength(64)), []),
          sentinel_master: v.optional(v.pipe(v.string(), v.maxLength(128)), ""),
          sentinel_password_file: v.optional(path(), ""),
          db: v.optional(int(0, 15), 0),
          tls_ca_file: v.optional(path(), ""),
          tls_cert_file: v.optional(path(), ""),
          tls_key_file: v.optional(path(), ""),
          stream_prefix: v.optional(str(128), "pilox-mesh:stream:"),
          stream_max_len: v.optional(int(100, 1_000_000_000), 1_000_000),
          consumer_group: v.optional(str(128)),
          consumer_name: v.optional(str(128)),
          claim_idle_seconds: v.optional(int(1, 86_400), 60),
          max_attempts: v.optional(int(1, 1_000), 10),
          block_ms: v.optional(int(100, 60_000), 5_000),
          connect_timeout_ms: v.optional(int(100, 60_000), 5_000),
          // Redis replicates asynchronously: WAIT before a delivery is acknowledged upstream.
          wait_replicas: v.optional(int(0, 16), 0),
          wait_timeout_ms: v.optional(int(10, 60_000), 1_000),
        }),
        {},
      ),
      spool: v.optional(
        restartTable({
          max_bytes: v.optional(int(4096, 1024 ** 4), 64 * 1024 * 1024),
        }),
        {},
      ),
      channels: v.optional(
        v.array(
          strictObject({
            name: CHANNEL_NAME,
            durable: v.optional(v.boolean(), false),
            max_age_seconds: v.optional(int(1, 365 * 86_400)),
          }),
        ),
        [],
      ),
    }),
    {},
  ),
});

export type FileConfig = v.InferOutput<typeof ConfigSchema>;
