/**
 * Root running the appliance by hand (no systemd to drop privileges) into a state directory
 * that belongs to the service user would leave root-owned files the service cannot read at its
 * next start: refused, naming the command that runs it as the owner instead.
 */
import { readFileSync, statSync } from "node:fs";
import { ConfigError } from "../config/index.ts";

function userName(uid: number): string | undefined {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f.length > 2 && Number(f[2]) === uid) return f[0];
    }
  } catch {
    /* no /etc/passwd: the uid is named */
  }
  return undefined;
}

export function refuseRootInForeignDir(dir: string, uid = typeof process.getuid === "function" ? process.getuid() : -1): void {
  if (uid !== 0) return;
  const owner = statSync(dir).uid;
  if (owner === 0) return;
  const name = userName(owner);
  const who = name ?? String(owner);
  throw new ConfigError([
    {
      key: "node.state_dir",
      message: `running as root, but ${dir} belongs to ${name ? `user ${name} (uid ${owner})` : `uid ${owner}`}: files written now would be root's, and the service could not read them at its next start. Run it as that user: runuser -u ${who} -- pilox-mesh serve (or: sudo -u ${who} pilox-mesh serve); under systemd the unit does so`,
    },
  ]);
}
