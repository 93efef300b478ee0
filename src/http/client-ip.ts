/**
 * The client address of a request. Behind a reverse proxy the socket address is the proxy's;
 * X-Forwarded-For is believed only when the connection comes from a configured trusted proxy,
 * and then read from the right, skipping trusted hops (the left end is client-supplied).
 */
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import { BlockList, isIP } from "node:net";

export function trustedProxyList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split("/");
    const type = isIP(addr!) === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(addr!, type);
    else list.addSubnet(addr!, Number(bits), type);
  }
  return list;
}

function isTrusted(list: BlockList, ip: string): boolean {
  const v = isIP(ip);
  if (v === 0) return false;
  // IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) are checked as IPv4.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? list.check(mapped[1]!, "ipv4") : list.check(ip, v === 6 ? "ipv6" : "ipv4");
}

export function resolveClientIp(socketIp: string, forwardedFor: string | undefined, trusted: BlockList): string {
  if (!forwardedFor || !isTrusted(trusted, socketIp)) return socketIp;
  const hops = forwardedFor.split(",").map((h) => h.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (isIP(hop) === 0) return socketIp; // garbage: trust nothing in the header
    if (!isTrusted(trusted, hop)) return hop;
  }
  return hops[0] ?? socketIp;
}

/** Sets `clientIp` on the context for later handlers and logs. */
export function clientIp(trusted: () => BlockList): MiddlewareHandler<{ Variables: { clientIp: string } }> {
  return async (c, next) => {
    c.set("clientIp", resolveClientIp(socketAddress(c), c.req.header("x-forwarded-for"), trusted()));
    await next();
  };
}

function socketAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? "";
  } catch {
    return "";
  }
}
