import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resolveClientIp, trustedProxyList } from "./client-ip.ts";

describe("client address behind trusted proxies", () => {
  const trusted = trustedProxyList(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
  it("uses the socket address when the peer is not a trusted proxy", () => {
    assert.equal(resolveClientIp("203.0.113.9", "1.2.3.4", trusted), "203.0.113.9");
  });
  it("takes the right-most untrusted hop from a trusted proxy", () => {
    assert.equal(resolveClientIp("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.0.0.5", trusted), "198.51.100.7");
    assert.equal(resolveClientIp("::ffff:127.0.0.1", "198.51.100.7", trusted), "198.51.100.7");
    assert.equal(resolveClientIp("fd00::1", "2001:db8::7", trusted), "2001:db8::7");
  });
  it("ignores a malformed header", () => {
    assert.equal(resolveClientIp("10.1.2.3", "not-an-ip", trusted), "10.1.2.3");
  });
  it("without trusted proxies the header is ignored", () => {
    assert.equal(resolveClientIp("10.1.2.3", "1.2.3.4", trustedProxyList([])), "10.1.2.3");
  });
});
