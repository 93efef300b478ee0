import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalize } from "./index.ts";

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
});
