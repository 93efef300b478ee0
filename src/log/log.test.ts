import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "./index.ts";

describe("text log lines", () => {
  const lines = (env: string | undefined) => {
    const out: string[] = [];
    const saved = process.env["JOURNAL_STREAM"];
    if (env === undefined) delete process.env["JOURNAL_STREAM"];
    else process.env["JOURNAL_STREAM"] = env;
    try {
      createLogger({ level: "info", format: "text", write: (l) => out.push(l) }).info("hello", { k: "v w" });
    } finally {
      if (saved === undefined) delete process.env["JOURNAL_STREAM"];
      else process.env["JOURNAL_STREAM"] = saved;
    }
    return out;
  };
  it("carry their time outside journald", () => {
    assert.match(lines(undefined)[0]!, /^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info msg=hello k="v w"$/);
  });
  it("leave it to journald when JOURNAL_STREAM says it reads stderr", () => {
    assert.equal(lines("8:12345")[0], 'level=info msg=hello k="v w"');
  });
});
