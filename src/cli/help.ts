/** `pilox-mesh COMMAND --help`: each command's own usage, options and exit codes. */
import { BUS_USAGE } from "./commands/bus.ts";
import { DISCOVER_USAGE } from "./commands/discover.ts";
import { REGISTRY_USAGE } from "./commands/registry.ts";
import { WAN_USAGE } from "./commands/wan.ts";
import { RESOLVE_USAGE } from "./commands/resolve.ts";
import { PEER_USAGE } from "./commands/peer.ts";

const GLOBAL = `global options: --config PATH (else $PILOX_MESH_CONFIG, else /etc/pilox-mesh/pilox-mesh.toml
  plus conf.d/*.toml beside it), --state-dir DIR`;

export const HELP: Record<string, string> = {
  serve: `usage: pilox-mesh serve [--listen HOST:PORT]
  Runs the appliance in the foreground (systemd runs exactly this). SIGHUP reloads the
  configuration, SIGTERM/SIGINT drain and stop. --listen overrides http.listen.
  exit 0 stopped cleanly, 69 cannot listen (address in use, socket held by another instance),
  78 configuration error`,
  "check-config": `usage: pilox-mesh check-config [--quiet|-q]
  Validates the configuration (file, drop-ins, secret files and their modes) and prints the
  effective merged configuration with secrets redacted. --quiet prints only the verdict.
  exit 0 valid, 78 invalid (every problem named with file, key, line and column)`,
  reload: `usage: pilox-mesh reload [--allow-removals] [--socket PATH]
  Asks the running appliance (through its agent API socket) to re-read its configuration,
  like SIGHUP, and waits for the verdict. A configuration that removes bus keys, federation
  peers, the manifest, channels or a channel's durability, or changes the advertised origin,
  is refused unless --allow-removals is given. The appliance checks the file itself (it logs
  "reload rejected" and counts pilox_mesh_config_reloads_total{result="rejected"}) and the
  answer names what it refused, including each setting that needs a restart. The socket is
  found even when the file on disk does not load.
  exit 0 reloaded, 78 refused (the running configuration stays), 1 other error, 2 usage,
  69 appliance unreachable`,
  status: `usage: pilox-mesh status [--json] [--socket PATH]
  What the running appliance is doing: version, bus backend and its connection, channels,
  spool, federation peers and queues, the last reload, warnings. Only needs the socket: with a
  configuration on disk that does not load (mid-edit), it is found all the same (the file's
  api.socket or node.runtime_dir if readable, else the default) and a note says the file on
  disk differs from what runs.
  exit 0, 1 the appliance answered an error, 2 usage, 69 appliance unreachable`,
  version: `usage: pilox-mesh version
  Prints version, commit, the embedded Node runtime and the platform.`,
  keygen: `usage: pilox-mesh keygen --out PATH
  Writes a new Ed25519 identity seed (64 hex, mode 0600; refuses to overwrite) and prints its
  public key and kid.`,
  pubkey: `usage: pilox-mesh pubkey --key-file PATH
  Prints the public key (64 hex) and kid of a seed file.`,
  discover: DISCOVER_USAGE,
  token: `usage: pilox-mesh token mint --key-file F --iss ORIGIN --aud ORIGIN [--ttl S]
       pilox-mesh token verify --aud ORIGIN --peer ORIGIN=PUBHEX [--peer …] [--at UNIXSECONDS] [--max-lifetime S] < token
  Federation tokens (EdDSA JWT, byte-compatible with Pilox). verify prints the claims.
  exit 0 valid, 1 refused (the reason is printed), 2 usage`,
  manifest: `usage: pilox-mesh manifest sign --key-file F [--seq N --expires-in S] < payload.json
       pilox-mesh manifest verify --public-key HEX [--min-seq N] [--require-ext] < body.json
  Signed peer manifests (Pilox-compatible; --seq/--expires-in add our anti-rollback
  extension). verify prints the peers.
  exit 0 valid, 1 refused, 2 usage`,
  peers: `usage: pilox-mesh peers [--json] [--socket PATH]
  Federation peers of the running appliance: transport (relay or wan) and, with [wan], the NATS
  connection; keys, queue, last contact, channels, last error
  (--json: everything, with the manifest's state and orphaned consumer groups). Works with a
  configuration on disk that does not load, as status does.
  exit 0, 1 the appliance answered an error, 2 usage, 69 appliance unreachable`,
  audit: `usage: pilox-mesh audit verify FILE [FILE…]
  Checks the hash chain of the federation audit log; give rotated files oldest first
  (audit.jsonl.2 audit.jsonl.1 audit.jsonl).
  exit 0 intact, 1 broken (file and line named)`,
  bus: BUS_USAGE,
  registry: REGISTRY_USAGE,
  wan: WAN_USAGE,
  resolve: RESOLVE_USAGE,
  peer: PEER_USAGE,
  completion: `usage: pilox-mesh completion bash|zsh|fish
  Prints the completion script for the shell, generated from this help text. The package
  installs all three; by hand: pilox-mesh completion bash > /etc/bash_completion.d/pilox-mesh`,
  man: `usage: pilox-mesh man
  Prints the man page (roff) generated from this help text; the package installs it as
  pilox-mesh(1). Read it here with: pilox-mesh man | man -l -`,
};

export function helpFor(command: string): string | undefined {
  const h = HELP[command];
  return h === undefined ? undefined : `${h}\n${GLOBAL}`;
}
