/**
 * The running appliance's socket for the commands that only talk to it (status, peers, reload,
 * wan dlq): --socket, else from the configuration, found even when the file on disk does not
 * load (what runs may well differ from what is on disk: said on stderr, once).
 */
import { socketPathOf } from "../config/index.ts";
import { loadOptions, type Io } from "./args.ts";

export function applianceSocket(values: { socket?: string | undefined; config?: string | undefined; "state-dir"?: string | undefined }, io: Io, command: string): string {
  if (values.socket) return values.socket;
  const r = socketPathOf(loadOptions(values));
  if (r.problem) {
    io.stderr(`pilox-mesh ${command}: note: the configuration on disk does not load, so it may differ from what runs; asking the running appliance at ${r.path} (--socket to choose):\n${r.problem.replace(/^/gm, "  ")}\n`);
  }
  return r.path;
}
