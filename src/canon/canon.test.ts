import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalize, canonicalizeWithout } from "./index.ts";

describe("canonicalize", () => {
  it("sorts keys by UTF-16 code units and drops undefined", () => {
    assert.equal(canonicalize({ b: 1, a: [3, { d: undefined, c: "x" }], A: null }), '{"A":null,"a":[3,{"c":"x"}],"b":1}');
    assert.equal(canonicalize({ "\u00e9": 1, z: 2, "\ud83d\ude00": 3, "\uff41": 4 }), '{"z":2,"é":1,"😀":3,"ａ":4}');
  });
  it("escapes keys and strings as JSON.stringify does", () => {
    assert.equal(canonicalize({ 'q"k': "a\nb", "back\\slash": "\u0001" }), '{"back\\\\slash":"\\u0001","q\\"k":"a\\nb"}');
  });
  it("writes numbers as JSON.stringify writes them", () => {
    assert.equal(canonicalize([1e21, 0.1, -0, 1.5e-7, 10]), "[1e+21,0.1,0,1.5e-7,10]");
  });
  it("arrays keep order; undefined in arrays is null", () => {
    assert.equal(canonicalize([3, undefined, 1]), "[3,null,1]");
  });
  it("matches JSON.stringify of a key-sorted copy for parsed JSON", () => {
    const sample = JSON.parse('{"z":{"y":[1,{"b":true,"a":false}],"x":"é"},"a":-0.5,"m":null}');
    assert.equal(canonicalize(sample), '{"a":-0.5,"m":null,"z":{"x":"é","y":[1,{"a":false,"b":true}]}}');
  });
  it("uses toJSON (Dates)", () => {
    assert.equal(canonicalize({ t: new Date(0) }), '{"t":"1970-01-01T00:00:00.000Z"}');
  });
  it("orders keys exactly as the default sort, for few and for many keys", () => {
    const alphabet = ["a", "B", "_", "é", "\ud83d\ude00", "\uff41", "0", "aa", "A"];
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (const n of [0, 1, 2, 5, 24, 25, 60]) {
      const obj: Record<string, number> = {};
      while (Object.keys(obj).length < n) {
        let k = "";
        for (let i = 0, len = 1 + Math.floor(rnd() * 4); i < len; i++) k += alphabet[Math.floor(rnd() * alphabet.length)];
        obj[k] = n;
      }
      const expected = "{" + Object.keys(obj).sort().map((k) => `${JSON.stringify(k)}:${n}`).join(",") + "}";
      assert.equal(canonicalize(obj), expected, `n=${n}`);
    }
  });
  it("canonicalizeWithout leaves out the given top-level keys only", () => {
    const m = { z: 1, meshSig: "x", a: { meshSig: 2 }, meshMeta: {} };
    assert.equal(canonicalizeWithout(m, new Set(["meshSig", "meshMeta"])), '{"a":{"meshSig":2},"z":1}');
  });
});
