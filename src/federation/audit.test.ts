import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { AuditLog, GENESIS, verifyAuditFiles } from "./audit.ts";

describe("AuditLog rotation", () => {
  it("rotates at its bound, keeps `keep` files, and the chain runs on across them", () => {
    const dir = mkdtempSync(join(tmpdir(), "audit-"));
    const file = join(dir, "audit.jsonl");
    const log = new AuditLog(file, { maxBytes: 2_000, keep: 2, windowMs: 60_000 });
    for (let i = 0; i < 100; i++) log.append({ direction: "inbound", outcome: "accepted", peer: "https://p.example", messages: i });
    assert.ok(existsSync(`${file}.1`) && existsSync(`${file}.2`) && !existsSync(`${file}.3`));
    for (const f of [file, `${file}.1`, `${file}.2`]) assert.ok(readFileSync(f).length <= 2_000, f);
    const all = verifyAuditFiles([`${file}.2`, `${file}.1`, file]);
    assert.equal(all.ok, true);
    // The oldest file kept continues a chain whose start was rotated away: said, not hidden.
    assert.ok(all.ok && all.continues && all.continues !== GENESIS);
    // Out of order, or a file edited, breaks the chain.
    assert.equal(verifyAuditFiles([`${file}.1`, `${file}.2`, file]).ok, false);
    const lines = readFileSync(`${file}.1`, "utf8").split("\n");
    lines[1] = lines[1]!.replace('"accepted"', '"refused"');
    writeFileSync(`${file}.1`, lines.join("\n"));
    const broken = verifyAuditFiles([`${file}.2`, `${file}.1`, file]);
    assert.ok(!broken.ok && broken.file === `${file}.1` && broken.line === 3);
  });

  it("a restarted log links its first line to the last one written, also just after a rotation", () => {
    const dir = mkdtempSync(join(tmpdir(), "audit-"));
    const file = join(dir, "audit.jsonl");
    const a = new AuditLog(file, { maxBytes: 300, keep: 3, windowMs: 60_000 });
    a.append({ direction: "inbound", outcome: "accepted", messages: 1 });
    a.append({ direction: "inbound", outcome: "accepted", messages: 2 }); // rotates
    const b = new AuditLog(file, { maxBytes: 300, keep: 3, windowMs: 60_000 });
    b.append({ direction: "inbound", outcome: "accepted", messages: 3 }); // rotates again
    assert.equal(verifyAuditFiles([`${file}.2`, `${file}.1`, file]).ok, true);
    writeFileSync(file, ""); // as if the process stopped right after a rotation
    const c = new AuditLog(file, { maxBytes: 300, keep: 3, windowMs: 60_000 });
    c.append({ direction: "inbound", outcome: "accepted", messages: 4 });
    assert.equal(verifyAuditFiles([`${file}.2`, `${file}.1`, file]).ok, true);
  });

  it("aggregates refusals per client and reason; flush writes the counts", () => {
    const dir = mkdtempSync(join(tmpdir(), "audit-"));
    const file = join(dir, "audit.jsonl");
    const log = new AuditLog(file, { maxBytes: 1e9, keep: 1, windowMs: 60_000 });
    for (let i = 0; i < 500; i++) log.refused({ direction: "inbound", client: "10.0.0.1", reason: "bad_signature" });
    log.refused({ direction: "inbound", client: "10.0.0.2", reason: "bad_signature" });
    log.close();
    const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.client, l.count ?? 1]), [["10.0.0.1", 1], ["10.0.0.2", 1], ["10.0.0.1", 499]]);
  });
});
