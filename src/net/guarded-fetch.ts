/**
 * Outbound GETs to addresses that other people chose (a record's origin, a handle's
 * descriptor): a timeout on the whole request, a size cap, no redirects, and no private,
 * loopback or link-local targets unless the operator allows them. The address is checked at
 * connect time (a custom lookup), so a name that resolves differently the second time cannot
 * slip past the check.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP } from "node:net";

const PRIVATE = new BlockList();
for (const [a, p] of [["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12], ["192.0.0.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["224.0.0.0", 4], ["240.0.0.0", 4]] as const) PRIVATE.addSubnet(a, p, "ipv4");
// (No ::ffff:0:0/96 rule: BlockList matches IPv4 addresses against it. Mapped addresses are
// checked as the IPv4 address they carry, below.)
for (const [a, p] of [["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["ff00::", 8]] as const) PRIVATE.addSubnet(a, p, "ipv6");

export function isPrivateAddress(ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return isPrivateAddress(mapped[1]!);
  const v = isIP(ip);
  return v === 0 ? true : PRIVATE.check(ip, v === 4 ? "ipv4" : "ipv6");
}

export class GuardedFetchError extends Error {
  override name = "GuardedFetchError";
}

/** The SSRF guard refused the target (a private, loopback or link-local address): not a network failure. */
export class PrivateAddressError extends GuardedFetchError {
  override name = "PrivateAddressError";
}

export interface GuardedFetchOptions {
  timeoutMs?: number;
  maxBytes?: number;
  /** Allow loopback, private and link-local targets (tests, a LAN deployment). */
  allowPrivate?: boolean;
}

export function guardedGet(url: string, o: GuardedFetchOptions = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const u = new URL(url);
  if (u.protocol !== "https:" && u.protocol !== "http:") return Promise.reject(new GuardedFetchError(`${url}: not an http(s) URL`));
  const maxBytes = o.maxBytes ?? 256 * 1024;
  const lookup = (host: string, opts: object, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    dnsLookup(host, { ...opts, all: true }, (err, addrs) => {
      if (err) return cb(err, "", 4);
      const list = addrs as LookupAddress[];
      const bad = list.find((a) => !o.allowPrivate && isPrivateAddress(a.address));
      if (bad) return cb(Object.assign(new Error(`${host} resolves to a private address (${bad.address})`), { code: "EPRIVATE" }), "", 4);
      cb(null, list);
    });
  };
  return new Promise((resolve, reject) => {
    const literal = isIP(u.hostname.replace(/^\[|\]$/g, ""));
    if (literal && !o.allowPrivate && isPrivateAddress(u.hostname.replace(/^\[|\]$/g, ""))) return reject(new PrivateAddressError(`${url}: a private address (private, loopback and link-local targets are refused)`));
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(u, { method: "GET", lookup: lookup as never, headers: { accept: "application/json" }, timeout: o.timeoutMs ?? 5_000 }, (res) => {
      if ((res.statusCode ?? 0) >= 300 && (res.statusCode ?? 0) < 400) {
        res.resume();
        return reject(new GuardedFetchError(`${url}: redirects are not followed`));
      }
      const chunks: Buffer[] = [];
      let n = 0;
      res.on("data", (c: Buffer) => {
        n += c.length;
        if (n > maxBytes) {
          reject(new GuardedFetchError(`${url}: response larger than ${maxBytes} bytes`));
          res.destroy();
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }));
      res.on("error", () => reject(new GuardedFetchError(`${url}: the response was cut off`)));
    });
    const timer = setTimeout(() => req.destroy(new GuardedFetchError(`${url}: timed out`)), o.timeoutMs ?? 5_000);
    req.on("close", () => clearTimeout(timer));
    req.on("timeout", () => req.destroy(new GuardedFetchError(`${url}: timed out`)));
    req.on("error", (err) => {
      if (err instanceof GuardedFetchError) return reject(err);
      if ((err as NodeJS.ErrnoException).code === "EPRIVATE") return reject(new PrivateAddressError(`${url}: ${(err as Error).message}`));
      reject(new GuardedFetchError(`${url}: ${(err as Error).message}`));
    });
    req.end();
  });
}
