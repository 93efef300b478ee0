import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as v from "valibot";
import { canonicalChannel, MESH_META_LOOSE, meshMetaProblem, wireNamesOf } from "./channels.ts";

describe("meshMeta check", () => {
  it("agrees with the valibot schema on every input of a generated corpus", () => {
    const strs = [undefined, "", "a", "x".repeat(128), "x".repeat(129), "x".repeat(256), "x".repeat(257), 5, null, ["a"], { a: 1 }];
    const vs = [1, 2, "1", undefined, null, 1.0, true];
    const extras = [{}, { extra: 1 }, { correlationId: undefined }];
    let n = 0;
    for (const vv of vs)
      for (const producer of strs)
        for (const eventId of strs.slice(0, 6))
          for (const correlationId of strs)
            for (const extra of extras) {
              const meta: Record<string, unknown> = { ...extra };
              if (vv !== undefined) meta["v"] = vv;
              if (producer !== undefined) meta["producer"] = producer;
              if (eventId !== undefined) meta["eventId"] = eventId;
              if (correlationId !== undefined) meta["correlationId"] = correlationId;
              const schemaOk = v.safeParse(MESH_META_LOOSE, meta).success;
              assert.equal(meshMetaProblem(meta) === undefined, schemaOk, JSON.stringify(meta));
              n++;
            }
    for (const x of [null, undefined, 1, "s", [], [1]]) assert.notEqual(meshMetaProblem(x), undefined);
    assert.ok(n > 1000);
  });

  it("names the field in its message", () => {
    assert.match(meshMetaProblem({ v: 1, producer: "", eventId: "e" })!, /^meshMeta\.producer/);
  });
});

describe("channel names", () => {
  it("maps hive aliases and leaves every other name, even Object.prototype's, alone", () => {
    assert.equal(canonicalChannel("hive:agent:status"), "pilox:agent:status");
    for (const n of ["constructor", "__proto__", "toString", "jobs"]) assert.equal(canonicalChannel(n), n);
    assert.deepEqual(wireNamesOf("pilox:system:events"), ["pilox:system:events", "hive:system:events"]);
    assert.deepEqual(wireNamesOf("constructor"), ["constructor"]);
  });
});
