/**
 * The state directory's format version (`<state_dir>/state-format`). A build refuses a state
 * directory written by a newer format than it understands (exit 78), rather than read queues,
 * frames and dedupe journals it would misread or not see at all, which lost messages silently
 * on a downgrade. An older directory (no file) is taken and migrated by the code that owns
 * each file; the file is then written with this build's format.
 *
 * Formats: 1, every layout before this file existed (relay queues and journals, WAN queues and
 * frames.log, registry.sqlite format 1); 2, the first with this file (registry.sqlite format 2);
 * 3, replay journals hold fingerprints, not ids (replay.journal, and the relay's
 * federation/inbound-delivered.journal): an older build would read none of their lines, so it
 * would take replays for new messages and deliver a retried relay batch twice.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../config/index.ts";

export const STATE_FORMAT = 3;
export const STATE_FORMAT_FILE = "state-format";

/** The format a state directory was last written by (1: before the file existed). */
export function stateFormatOf(dir: string): number {
  const file = join(dir, STATE_FORMAT_FILE);
  if (!existsSync(file)) return 1;
  const n = Number(readFileSync(file, "utf8").trim());
  if (!Number.isSafeInteger(n) || n < 1) throw new ConfigError([{ file, key: "node.state_dir", message: "not a state format number; restore the file or the state directory from a backup" }]);
  return n;
}

/** Refuses a newer directory; marks an older or new one as this build's format. */
export function claimStateDir(dir: string): void {
  const found = stateFormatOf(dir);
  if (found > STATE_FORMAT) {
    throw new ConfigError([
      {
        file: join(dir, STATE_FORMAT_FILE),
        key: "node.state_dir",
        message:
          `state format ${found} was written by a newer pilox-mesh; this build understands format ${STATE_FORMAT} and older. ` +
          "Run the newer build again (queued messages are kept), or restore the state directory backed up before the upgrade; see the operator guide, 'Upgrades and downgrades'",
      },
    ]);
  }
  if (found === STATE_FORMAT) return;
  const file = join(dir, STATE_FORMAT_FILE);
  writeFileSync(`${file}.tmp`, `${STATE_FORMAT}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
