/** The effective configuration as TOML for check-config, with anything secret-looking masked. */
import { stringify } from "smol-toml";
import type { Config } from "./load.ts";

export function redactedToml(c: Config): string {
  const copy = structuredClone(c) as Config;
  if (copy.bus.redis.url) {
    try {
      const u = new URL(copy.bus.redis.url);
      if (u.password) u.password = "REDACTED";
      copy.bus.redis.url = u.toString();
    } catch {
      copy.bus.redis.url = "REDACTED";
    }
  }
  // smol-toml cannot write undefined; optional keys that stayed unset are simply absent.
  return stringify(JSON.parse(JSON.stringify(copy)));
}
